//! End to end: what a VirtualService route can do besides choosing a
//! destination, seen by a client and by the upstream through a real Envoy:
//! retries (and not on conditions nobody asked for), timeouts, fault delay
//! and abort, redirects, direct responses, rewrites, header changes,
//! mirroring, CORS preflight, and match conditions on method, query, missing
//! headers and path case.

use crate::harness;

use harness::*;
use std::time::{Duration, Instant};

const ROUTES: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api]
  http:
  - name: mirrored
    match: [{uri: {prefix: /mirrored}}]
    route: [{destination: {host: api, subset: v1}}]
    mirror: {host: shadow}
    mirrorPercentage: {value: 100}
  - name: cors
    match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: "https://shop.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-token]
      maxAge: 24h
    route: [{destination: {host: api, subset: v1}}]
  - name: retried
    match: [{uri: {prefix: /retried}}]
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: api, subset: v1}}]
  - name: not-retried
    match: [{uri: {prefix: /not-retried}}]
    retries: {attempts: 3, retryOn: connect-failure}
    route: [{destination: {host: api, subset: v1}}]
  - name: slow
    match: [{uri: {prefix: /slow}}]
    timeout: 300ms
    route: [{destination: {host: api, subset: v1}}]
  - name: abort
    match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 50}}}
    route: [{destination: {host: api, subset: v1}}]
  - name: delay
    match: [{uri: {prefix: /delay}}]
    fault: {delay: {fixedDelay: 500ms, percentage: {value: 100}}}
    route: [{destination: {host: api, subset: v1}}]
  - name: moved
    match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: new.example.com, redirectCode: 308}
  - name: teapot
    match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - name: private
    match: [{uri: {prefix: /private}, withoutHeaders: {authorization: {}}}]
    directResponse: {status: 401, body: {string: "no token"}}
  - name: rewritten
    match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /v2/, authority: backend.internal}
    headers:
      request: {set: {x-route: rewritten}, remove: [x-secret]}
      response: {add: {x-served-by: sextant}}
    route: [{destination: {host: api, subset: v1}}]
  - name: canary
    match: [{method: {exact: POST}}, {queryParams: {canary: {exact: "1"}}}]
    route: [{destination: {host: api, subset: v2}}]
  - name: caseless
    match: [{uri: {prefix: /caseless}, ignoreUriCase: true}]
    route:
    - destination: {host: api, subset: v2}
      headers: {response: {set: {x-destination: v2}}}
  - route: [{destination: {host: api, subset: v1}}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_policies_seen_by_client_and_upstream() {
    let work = tempfile::tempdir().unwrap();
    let v1 = Upstream::start(work.path(), "127.0.1.121", "api", "v1");
    let v2 = Upstream::start(work.path(), "127.0.1.122", "api", "v2");
    let shadow = Upstream::start(work.path(), "127.0.1.123", "shadow", "v1");
    let config = ConfigDir::new();
    let services = [
        service_yaml("api", 80),
        workload_yaml("api", "v1", &v1),
        workload_yaml("api", "v2", &v2),
        service_yaml("shadow", 80),
        workload_yaml("shadow", "v1", &shadow),
    ];
    config.write("api.yaml", &services.join("---\n"));
    config.write("routes.yaml", ROUTES);
    let sextant = Sextant::start(work.path(), config.path()).await;
    let errors = sextant.admin_json("/debug/config_errors").await;
    assert_eq!(errors["errors"], 0, "{errors}");
    let envoy = Envoy::start(work.path(), &sextant, Workload::client("policies.default")).await;
    envoy.wait_until_serving("api").await;

    // Retries: a flaky upstream (every second answer is 503) looks healthy with
    // retryOn 5xx, and not with a condition that does not cover 503.
    let flaky = [("x-demo-fail-every", "2")];
    for _ in 0..10 {
        assert_eq!(envoy.get("api", "/retried", &flaky).await.0, 200);
    }
    let mut failures = 0;
    for _ in 0..10 {
        failures += usize::from(envoy.get("api", "/not-retried", &flaky).await.0 == 503);
    }
    assert!(
        failures >= 3,
        "connect-failure must not retry a 503: {failures} of 10 failed"
    );

    // Timeout: a 2 s upstream is cut at 300 ms with 504.
    let started = Instant::now();
    let (status, body) = envoy
        .get("api", "/slow", &[("x-demo-delay-ms", "2000")])
        .await;
    assert_eq!(status, 504, "{body}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );

    // Fault abort at 50 %, measured over 200 requests; fault delay of 500 ms.
    let mut aborted = 0;
    for _ in 0..200 {
        aborted += usize::from(envoy.get("api", "/abort", &[]).await.0 == 418);
    }
    assert!(
        (70..=130).contains(&aborted),
        "50 % abort measured as {aborted} of 200"
    );
    // Envoy arms timers from its event loop's cached clock, so a delay can end
    // a few milliseconds before the client's own clock says it should (seen:
    // 248 ms for 250 ms). The bound allows 50 ms for that, far below the delay.
    let started = Instant::now();
    assert_eq!(envoy.get("api", "/delay", &[]).await.0, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "not delayed: {:?}",
        started.elapsed()
    );

    // Redirect and direct responses, without an upstream.
    let (status, headers, _) = envoy.request("GET", "api", "/old", &[]).await;
    assert_eq!(status, 308);
    assert_eq!(headers["location"], "http://new.example.com/new");
    let (status, body) = envoy.get("api", "/teapot", &[]).await;
    assert_eq!((status, body.as_str()), (418, Some("short and stout")));
    assert_eq!(envoy.get("api", "/private/data", &[]).await.0, 401);
    assert_eq!(
        envoy
            .get("api", "/private/data", &[("authorization", "Bearer x")])
            .await
            .0,
        200
    );

    // Rewrite and header changes, as the upstream and the client see them.
    let (status, headers, body) = envoy
        .request("GET", "api", "/api/items?id=7", &[("x-secret", "s3cr3t")])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["path"], "/v2/items?id=7");
    assert_eq!(body["headers"]["host"], "backend.internal");
    assert_eq!(body["headers"]["x-route"], "rewritten");
    assert!(body["headers"].get("x-secret").is_none(), "{body}");
    assert_eq!(headers["x-served-by"], "sextant");

    // Mirroring: every request to /mirrored also reaches the shadow upstream.
    for _ in 0..5 {
        assert_eq!(envoy.get("api", "/mirrored", &[]).await.1["version"], "v1");
    }
    let shadow_url = format!("http://{}/", shadow.addr);
    let seen = wait_for(
        Duration::from_secs(5),
        "mirrored requests at the shadow",
        || async {
            let body: serde_json::Value =
                reqwest::get(&shadow_url).await.ok()?.json().await.ok()?;
            let served = body["served"].as_u64()?;
            (served > 5).then_some(served)
        },
    )
    .await;
    assert_eq!(seen, 6, "5 mirrored requests and this direct one");

    // CORS: a preflight from an allowed origin is answered; another origin gets no grant.
    let preflight = |origin: &'static str| {
        let envoy = &envoy;
        async move {
            let headers = [
                ("origin", origin),
                ("access-control-request-method", "POST"),
            ];
            envoy
                .request("OPTIONS", "api", "/cors/items", &headers)
                .await
        }
    };
    let (status, headers, _) = preflight("https://shop.example").await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example"
    );
    assert_eq!(headers["access-control-allow-methods"], "GET,POST");
    assert_eq!(headers["access-control-max-age"], "86400");
    let (_, headers, _) = preflight("https://evil.example").await;
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "{headers:?}"
    );

    // Match conditions: method, query parameter, path case; the rest goes to v1.
    assert_eq!(
        envoy.request("POST", "api", "/anything", &[]).await.2["version"],
        "v2"
    );
    assert_eq!(
        envoy.get("api", "/anything?canary=1", &[]).await.1["version"],
        "v2"
    );
    let (_, headers, body) = envoy.request("GET", "api", "/CaseLess/x", &[]).await;
    assert_eq!(body["version"], "v2");
    assert_eq!(headers["x-destination"], "v2");
    assert_eq!(envoy.get("api", "/anything", &[]).await.1["version"], "v1");
    assert_eq!(envoy.updates_rejected().await, 0);
}
