//! End to end: weighted routing, header matching and live edits of the
//! config directory, through a real Envoy to real upstream processes.

use crate::harness;

use harness::*;
use std::time::{Duration, Instant};

fn reviews_routing(v1: u32, v2: u32) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
  - {{name: v3, labels: {{version: v3}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {{exact: jason}}
    route:
    - destination: {{host: reviews, subset: v3}}
  - route:
    - destination: {{host: reviews, subset: v1}}
      weight: {v1}
    - destination: {{host: reviews, subset: v2}}
      weight: {v2}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_header_match_and_live_edits_sotw() {
    weights_header_match_and_live_edits(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_header_match_and_live_edits_delta() {
    weights_header_match_and_live_edits(true).await;
}

async fn weights_header_match_and_live_edits(delta: bool) {
    let work = tempfile::tempdir().unwrap();
    let v1 = Upstream::start(work.path(), "127.0.1.3", "reviews", "v1");
    let v2 = Upstream::start(work.path(), "127.0.1.4", "reviews", "v2");
    let v3 = Upstream::start(work.path(), "127.0.1.5", "reviews", "v3");
    let details = Upstream::start(work.path(), "127.0.1.2", "details", "v1");

    let config = ConfigDir::new();
    config.write("reviews-service.yaml", &service_yaml("reviews", 9080));
    config.write("details-service.yaml", &service_yaml("details", 9080));
    let workloads = [
        ("reviews", "v1", &v1),
        ("reviews", "v2", &v2),
        ("reviews", "v3", &v3),
        ("details", "v1", &details),
    ]
    .map(|(app, version, upstream)| workload_yaml(app, version, upstream))
    .join("---\n");
    config.write("workloads.yaml", &workloads);
    config.write("reviews-routing.yaml", &reviews_routing(90, 10));

    let sextant = Sextant::start(work.path(), config.path()).await;
    let envoy = Envoy::start(
        work.path(),
        &sextant,
        Workload {
            node_id: "productpage-v1.default",
            namespace: "default",
            labels: "app=productpage",
            delta,
            ip: "127.0.0.1",
            service_account: "default",
            inbound_port: None,
            token_file: None,
            stats_flush_ms: None,
            envoy_args: &[],
        },
    )
    .await;
    wait_for(
        Duration::from_secs(10),
        "reviews to answer through envoy",
        || async { (envoy.get("reviews", "/", &[]).await.0 == 200).then_some(()) },
    )
    .await;

    let proxies = sextant.admin_json("/debug/proxies").await;
    assert_eq!(
        proxies["proxies"][0]["protocol"],
        if delta { "delta" } else { "SotW" },
        "{proxies}"
    );

    // A 90/10 split, measured over 400 requests, lands within ±6 points.
    let counts = envoy.version_counts("reviews", 400).await;
    let v1_share = *counts.get("v1").unwrap_or(&0) as f64 / 4.0;
    let v2_share = *counts.get("v2").unwrap_or(&0) as f64 / 4.0;
    assert!(
        (v1_share - 90.0).abs() <= 6.0 && (v2_share - 10.0).abs() <= 6.0,
        "90/10 split measured as {counts:?}"
    );
    assert_eq!(counts.len(), 2, "only v1 and v2 answer: {counts:?}");

    // Header match goes first.
    let (status, body) = envoy
        .get("reviews:9080", "/", &[("end-user", "jason")])
        .await;
    assert_eq!(
        (status, body["version"].as_str()),
        (200, Some("v3")),
        "{body}"
    );

    // Editing the file to 0/100 moves all traffic within a second, without a restart.
    let edited = Instant::now();
    config.write("reviews-routing.yaml", &reviews_routing(0, 100));
    // Until 30 answers in a row come from v2.
    let mut consecutive = 0;
    while consecutive < 30 {
        assert!(
            edited.elapsed() < Duration::from_secs(5),
            "traffic did not move to v2 within 5 s"
        );
        consecutive = if envoy.version_of("reviews").await == "v2" {
            consecutive + 1
        } else {
            0
        };
    }
    let moved_after = edited.elapsed();
    assert!(
        moved_after < Duration::from_secs(1) + Duration::from_millis(30 * 20),
        "traffic moved after {moved_after:?}"
    );
    assert_eq!(
        envoy.version_counts("reviews", 50).await.get("v2"),
        Some(&50)
    );

    // Deleting a Service's file removes its cluster; Envoy keeps serving the rest.
    let details_cluster = "outbound|9080||details.default.svc.cluster.local".to_string();
    assert!(envoy.active_clusters().await.contains(&details_cluster));
    config.remove("details-service.yaml");
    wait_for(
        Duration::from_secs(5),
        "details cluster removed from envoy",
        || async { (!envoy.active_clusters().await.contains(&details_cluster)).then_some(()) },
    )
    .await;
    let (status, _) = envoy.get("details", "/", &[]).await;
    assert_eq!(status, 404, "details has no virtual host any more");
    assert_eq!(envoy.version_of("reviews").await, "v2");
    assert_eq!(
        envoy.updates_rejected().await,
        0,
        "Envoy rejected an update"
    );
    assert_eq!(sextant.nacks_total().await, serde_json::json!({}));
}
