//! End to end: a second, independent xDS client consumes Sextant's config.
//! gRPC's own xDS support (Python `grpcio`, target `xds:///...`, bootstrap
//! from `sextant bootstrap --grpc`) resolves a service through our LDS (API
//! listeners), RDS, CDS and EDS and calls real gRPC upstreams, following the
//! VirtualService's weights. Needs `pip install grpcio`; fails, never skips,
//! without it.

use crate::harness;

use harness::grpc::*;
use harness::*;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// The split, on a route that also has a CORS policy: gRPC has no CORS
/// filter and must ignore it (it is marked optional).
fn routing(v1: u32, v2: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  host: reviews\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  hosts: [reviews]\n  http:\n  - corsPolicy: {{allowOrigins: [{{exact: \"https://shop.example\"}}]}}\n    route:\n    - destination: {{host: reviews, subset: v1}}\n      weight: {v1}\n    - destination: {{host: reviews, subset: v2}}\n      weight: {v2}\n"
    )
}

fn call(bootstrap: &std::path::Path, target: &str, n: usize) -> BTreeMap<String, u64> {
    call_with(&[target, &n.to_string()], Some(bootstrap))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_xds_client_resolves_and_routes_through_sextant() {
    require_grpcio();
    let work = tempfile::tempdir().unwrap();
    let v1 = start_grpc_upstream(work.path(), "127.0.1.101", "v1");
    let v2 = start_grpc_upstream(work.path(), "127.0.1.102", "v2");
    let config = ConfigDir::new();
    let entry = |version: &str, ip: &str, port: u16| {
        format!("apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: reviews-{version}, namespace: default}}\nspec:\n  address: {ip}\n  ports: {{grpc: {port}}}\n  labels: {{app: reviews, version: {version}}}\n")
    };
    config.write(
        "reviews.yaml",
        &[
            "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: default}\nspec:\n  selector: {app: reviews}\n  ports:\n  - {name: grpc, port: 9080, appProtocol: grpc}\n".to_string(),
            entry("v1", "127.0.1.101", v1.port),
            entry("v2", "127.0.1.102", v2.port),
        ]
        .join("---\n"),
    );
    config.write("routing.yaml", &routing(0, 100));
    let sextant = Sextant::start(work.path(), config.path()).await;

    let bootstrap = work.path().join("grpc-bootstrap.json");
    let status = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "bootstrap",
            "--grpc",
            "--node-id",
            "grpc-client.default",
            "--labels",
            "app=client",
        ])
        .args(["--xds-address", &sextant.xds.to_string(), "--output"])
        .arg(&bootstrap)
        .status()
        .unwrap();
    assert!(status.success());

    // All traffic goes to v2, as the VirtualService says: the client used our routes.
    let target = "xds:///reviews.default.svc.cluster.local:9080";
    let counts = tokio::task::spawn_blocking({
        let bootstrap = bootstrap.clone();
        move || call(&bootstrap, target, 20)
    })
    .await
    .unwrap();
    assert_eq!(
        counts,
        BTreeMap::from([("reviews-v2".to_string(), 20)]),
        "{target}"
    );

    // A short name resolves as in the client's namespace; a split shows both.
    config.write("routing.yaml", &routing(50, 50));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = tokio::task::spawn_blocking(move || call(&bootstrap, "xds:///reviews:9080", 100))
        .await
        .unwrap();
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        ["reviews-v1", "reviews-v2"],
        "{counts:?}"
    );

    // Sextant saw a gRPC client that ACKed what it asked for, and no NACK.
    assert_eq!(sextant.nacks_total().await, serde_json::json!({}));
}

/// gRPC through an Envoy sidecar: the service port says `appProtocol: grpc`,
/// so its cluster speaks HTTP/2 to the upstream (a gRPC server answers
/// nothing over HTTP/1.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_through_an_envoy_sidecar_uses_http2_upstreams() {
    require_grpcio();
    let work = tempfile::tempdir().unwrap();
    let upstream = start_grpc_upstream(work.path(), "127.0.1.103", "v1");
    let config = ConfigDir::new();
    config.write(
        "reviews.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  selector: {{app: reviews}}\n  ports:\n  - {{name: rpc, port: 9080, appProtocol: grpc}}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: reviews-v1, namespace: default}}\nspec:\n  address: 127.0.1.103\n  ports: {{rpc: {}}}\n  labels: {{app: reviews, version: v1}}\n",
            upstream.port
        ),
    );
    let sextant = Sextant::start(work.path(), config.path()).await;
    let envoy = Envoy::start(
        work.path(),
        &sextant,
        Workload::client("grpc-sidecar.default"),
    )
    .await;
    let outbound = envoy.outbound.to_string();
    envoy
        .wait_for_route("reviews.default.svc.cluster.local")
        .await;
    let counts =
        tokio::task::spawn_blocking(move || call_with(&[&outbound, "10", "reviews:9080"], None))
            .await
            .unwrap();
    assert_eq!(counts, BTreeMap::from([("reviews-v1".to_string(), 10)]));
    assert_eq!(envoy.updates_rejected().await, 0);
}
