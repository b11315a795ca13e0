//! End to end: routes that depend on who the client is (`sourceLabels`,
//! `sourceNamespace`) send different workloads' requests to different
//! versions, and the remaining route policies behave as Istio documents
//! them: `uriRegexRewrite` reaches the upstream rewritten, a `grpcStatus`
//! abort answers gRPC clients with that status.

use crate::harness;

use harness::*;

const ROUTES: &str = r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api.default.svc.cluster.local]
  http:
  - match: [{sourceLabels: {track: canary}}, {sourceNamespace: ops}]
    route: [{destination: {host: api.default.svc.cluster.local, subset: v2}}]
  - match: [{uri: {prefix: /v1/}}]
    rewrite:
      uriRegexRewrite: {match: "^/v1/([a-z]+)/(.*)$", rewrite: "/api/\\2/\\1"}
    route: [{destination: {host: api.default.svc.cluster.local, subset: v1}}]
  - match: [{headers: {x-fail: {exact: grpc}}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: api.default.svc.cluster.local, subset: v1}}]
  - route: [{destination: {host: api.default.svc.cluster.local, subset: v1}}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_conditions_and_route_rewrites() {
    let work = tempfile::tempdir().unwrap();
    let v1 = Upstream::start(work.path(), "127.0.1.171", "api", "v1");
    let v2 = Upstream::start(work.path(), "127.0.1.172", "api", "v2");
    let config = ConfigDir::new();
    config.write(
        "api.yaml",
        &[
            service_yaml("api", 80),
            workload_yaml("api", "v1", &v1),
            workload_yaml("api", "v2", &v2),
        ]
        .join("---\n"),
    );
    config.write("routes.yaml", ROUTES);
    let sextant = Sextant::start(work.path(), config.path()).await;
    let errors = sextant.admin_json("/debug/config_errors").await;
    assert_eq!(errors["errors"], 0, "{errors}");

    let plain = Envoy::start(work.path(), &sextant, Workload::client("plain.default")).await;
    let canary = Envoy::start(
        work.path(),
        &sextant,
        Workload {
            labels: "app=client,track=canary",
            ..Workload::client("canary.default").delta()
        },
    )
    .await;
    let ops = Envoy::start(
        work.path(),
        &sextant,
        Workload {
            namespace: "ops",
            ..Workload::client("tool.ops")
        },
    )
    .await;
    let fqdn = "api.default.svc.cluster.local";
    for envoy in [&plain, &canary, &ops] {
        envoy.wait_until_serving(fqdn).await;
    }

    // Same host, same request: the client decides the version.
    assert_eq!(plain.version_counts(fqdn, 10).await.get("v1"), Some(&10));
    assert_eq!(canary.version_counts(fqdn, 10).await.get("v2"), Some(&10));
    assert_eq!(ops.version_counts(fqdn, 10).await.get("v2"), Some(&10));

    // The regex rewrite, with capture groups swapped, as the upstream sees it.
    let (status, body) = plain.get(fqdn, "/v1/users/42?full=1", &[]).await;
    assert_eq!(status, 200, "{body}");
    // Envoy rewrites the path only; the query string is kept.
    assert_eq!(body["path"], "/api/42/users?full=1", "{body}");

    // A gRPC abort: HTTP 200 with grpc-status 14 (UNAVAILABLE), no upstream.
    let (status, headers, _) = plain
        .request(
            "POST",
            fqdn,
            "/pkg.Service/Method",
            &[("x-fail", "grpc"), ("content-type", "application/grpc")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["grpc-status"], "14", "{headers:?}");
    for envoy in [&plain, &canary, &ops] {
        assert_eq!(envoy.updates_rejected().await, 0);
    }
}
