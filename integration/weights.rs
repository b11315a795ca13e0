//! End to end (handed case 007): weights that do not add up to 100 are
//! relative, all-zero weights and unresolvable destinations answer a fixed
//! 503 with an error naming the field, and every other route keeps working.

use crate::harness;

use harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_zero_and_unresolvable_weights() {
    let work = tempfile::tempdir().unwrap();
    let v1 = Upstream::start(work.path(), "127.0.1.161", "inventory", "v1");
    let v2 = Upstream::start(work.path(), "127.0.1.162", "inventory", "v2");
    let config = ConfigDir::new();
    config.write(
        "inventory.yaml",
        &[
            service_yaml("inventory", 80),
            workload_yaml("inventory", "v1", &v1),
            workload_yaml("inventory", "v2", &v2),
        ]
        .join("---\n"),
    );
    config.write(
        "routing.yaml",
        r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: inventory, namespace: default}
spec:
  host: inventory
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: inventory, namespace: default}
spec:
  hosts: [inventory]
  http:
  - name: three-to-one
    match: [{uri: {prefix: /a}}]
    route:
    - {destination: {host: inventory, subset: v1}, weight: 3}
    - {destination: {host: inventory, subset: v2}, weight: 1}
  - name: all-zero
    match: [{uri: {prefix: /b}}]
    route:
    - {destination: {host: inventory, subset: v1}, weight: 0}
    - {destination: {host: inventory, subset: v2}, weight: 0}
  - name: missing-subset
    match: [{uri: {prefix: /c}}]
    route: [{destination: {host: inventory, subset: v9}}]
  - name: missing-host
    match: [{uri: {prefix: /d}}]
    route: [{destination: {host: warehouse}}]
  - route: [{destination: {host: inventory, subset: v2}}]
"#,
    );
    let sextant = Sextant::start(work.path(), config.path()).await;
    let envoy = Envoy::start(work.path(), &sextant, Workload::client("weights.default")).await;
    envoy.wait_until_serving("inventory").await;

    // 3:1 means 75 % / 25 %, measured over 400 requests.
    let mut v1_count = 0;
    for _ in 0..400 {
        let (status, body) = envoy.get("inventory", "/a", &[]).await;
        assert_eq!(status, 200, "{body}");
        v1_count += usize::from(body["version"] == "v1");
    }
    assert!(
        (260..=340).contains(&v1_count),
        "3:1 measured as {v1_count} of 400 on v1"
    );

    // All-zero weights, an undefined subset and an unknown host: a fixed 503.
    for path in ["/b", "/c", "/d"] {
        let (status, body) = envoy.get("inventory", path, &[]).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert!(
            body.as_str().is_some_and(|b| b.starts_with("sextant:")),
            "{path}: answered by sextant's route, not an upstream: {body}"
        );
    }
    let errors = sextant.admin_json("/debug/config_errors").await;
    let texts: Vec<&str> = errors["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["text"].as_str())
        .collect();
    for needle in [
        "spec.http[2].route[0].destination.subset",
        "spec.http[3].route[0].destination.host",
        "spec.http[1].route",
    ] {
        assert!(
            texts
                .iter()
                .any(|t| t.contains(needle) && t.contains("VirtualService default/inventory")),
            "{needle}: {texts:?}"
        );
    }
    // Everything else still routes.
    assert_eq!(envoy.version_of("inventory").await, "v2");
    assert_eq!(envoy.updates_rejected().await, 0);
}
