//! End to end: DestinationRule traffic policies seen through a real Envoy:
//! circuit breaking (503 with `x-envoy-overloaded`), outlier detection
//! ejecting a failing endpoint, and consistent-hash stickiness.

use crate::harness;

use harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

fn entry(app: &str, version: &str, upstream: &Upstream) -> String {
    workload_yaml(app, version, upstream)
}

fn rule(host: &str, policy: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {host}, namespace: default}}\nspec:\n  host: {host}\n  trafficPolicy:\n{policy}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaking_outlier_detection_and_consistent_hash() {
    let work = tempfile::tempdir().unwrap();
    let pool = Upstream::start(work.path(), "127.0.1.141", "pool", "v1");
    let good = Upstream::start(work.path(), "127.0.1.142", "flaky", "good");
    let bad = Upstream::start_with(
        work.path(),
        "127.0.1.143",
        0,
        "flaky",
        "bad",
        &["--status", "503"],
    );
    let sticky: Vec<Upstream> = (0..3)
        .map(|i| {
            Upstream::start(
                work.path(),
                &format!("127.0.1.14{}", 4 + i),
                "sticky",
                &format!("s{i}"),
            )
        })
        .collect();
    let config = ConfigDir::new();
    let mut yaml = vec![
        service_yaml("pool", 80),
        entry("pool", "v1", &pool),
        service_yaml("flaky", 80),
        entry("flaky", "good", &good),
        entry("flaky", "bad", &bad),
        service_yaml("sticky", 80),
    ];
    yaml.extend(
        sticky
            .iter()
            .enumerate()
            .map(|(i, u)| entry("sticky", &format!("s{i}"), u)),
    );
    yaml.push(rule("pool", "    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1, http2MaxRequests: 1}\n"));
    yaml.push(rule("flaky", "    outlierDetection: {consecutive5xxErrors: 1, interval: 100ms, baseEjectionTime: 60s, maxEjectionPercent: 100}\n"));
    yaml.push(rule(
        "sticky",
        "    loadBalancer:\n      consistentHash: {httpHeaderName: x-user}\n",
    ));
    config.write("mesh.yaml", &yaml.join("---\n"));
    let sextant = Sextant::start(work.path(), config.path()).await;
    let errors = sextant.admin_json("/debug/config_errors").await;
    assert_eq!(errors["errors"], 0, "{errors}");
    let envoy = Arc::new(
        Envoy::start(
            work.path(),
            &sextant,
            Workload::client("policies-dr.default"),
        )
        .await,
    );
    envoy.wait_until_serving("pool").await;

    // Circuit breaking: one connection, one pending request; ten slow requests at once.
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let envoy = envoy.clone();
            tokio::spawn(async move {
                envoy
                    .request("GET", "pool", "/", &[("x-demo-delay-ms", "500")])
                    .await
            })
        })
        .collect();
    let mut overloaded = 0;
    for request in requests {
        let (status, headers, _) = request.await.unwrap();
        if status == 503 {
            assert_eq!(
                headers
                    .get("x-envoy-overloaded")
                    .map(|v| v.to_str().unwrap()),
                Some("true")
            );
            overloaded += 1;
        }
    }
    assert!(
        overloaded >= 5,
        "only {overloaded} of 10 requests were turned away by the circuit breaker"
    );

    // Outlier detection: the endpoint that answers 503 is ejected after its first failure.
    let mut answers = Vec::new();
    for _ in 0..30 {
        answers.push(envoy.get("flaky", "/", &[]).await.0);
    }
    let failures = answers.iter().filter(|s| **s == 503).count();
    assert!(
        failures <= 2,
        "the failing endpoint kept getting traffic: {answers:?}"
    );
    assert!(answers[10..].iter().all(|s| *s == 200), "{answers:?}");

    // Consistent hash: each user always reaches the same endpoint; users
    // spread. The ring depends on the endpoints' (random) ports and its
    // shares are uneven: 6 users once all landed on one of the 3 endpoints;
    // with 24 users that is vanishingly rare.
    let mut endpoint_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for i in 0..24 {
        let user = format!("user-{i}");
        let user = user.as_str();
        for _ in 0..4 {
            let (status, body) = envoy.get("sticky", "/", &[("x-user", user)]).await;
            assert_eq!(status, 200);
            endpoint_of
                .entry(user.to_string())
                .or_default()
                .insert(body["address"].as_str().unwrap().to_string());
        }
    }
    assert!(
        endpoint_of.values().all(|e| e.len() == 1),
        "a user moved between endpoints: {endpoint_of:?}"
    );
    let used: BTreeSet<_> = endpoint_of.values().flatten().collect();
    assert!(
        used.len() >= 2,
        "every user hashed to one endpoint: {endpoint_of:?}"
    );
    assert_eq!(envoy.updates_rejected().await, 0);
}
