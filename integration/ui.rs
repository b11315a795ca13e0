//! End to end: the `/ui` topology page in a real headless browser. A client
//! sidecar (`productpage-v1`, 127.0.9.11) calls `reviews` (127.0.9.12, a
//! third of the answers 500) and `ratings` (127.0.9.13); its stats reach
//! Sextant over Envoy's metrics service. Debian's `chromium` then loads
//! `/ui` (its script runs, reads the admin endpoint and draws) and the
//! rendered DOM must show both services, each edge with its request and
//! error counts, its colour and its p99 as `/debug/edges` has them, the
//! proxy as SYNCED, and a config error from a bad Telemetry. A screenshot
//! is saved under the target directory.

use crate::harness;

use harness::*;
use serde_json::Value;
use std::time::Duration;

const CLIENT_IP: &str = "127.0.9.11";
const REVIEWS_IP: &str = "127.0.9.12";
const RATINGS_IP: &str = "127.0.9.13";

fn edge<'a>(edges: &'a Value, service: &str) -> &'a Value {
    edges["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["destination_service"] == service)
        .unwrap_or_else(|| panic!("no edge to {service}: {edges:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_page_draws_the_graph_sync_table_and_errors_in_a_browser() {
    let work = tempfile::tempdir().unwrap();
    let (_reviews, _ratings, config) = reviews_and_ratings(work.path(), REVIEWS_IP, RATINGS_IP);
    config.write(
        "bad-telemetry.yaml",
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: too-many, namespace: default}\nspec:\n  tracing:\n  - providers: [{name: zipkin, address: \"zipkin:9411\"}]\n    randomSamplingPercentage: 150\n",
    );
    let sextant = Sextant::start(work.path(), config.path()).await;
    let client = start_productpage(work.path(), &sextant, CLIENT_IP, 500).await;
    // The slowest ratings request as the client saw it (through its sidecar).
    let mut slowest_ratings_ms = 0.0_f64;
    for i in 0..12 {
        let wanted = if i % 3 == 0 { 500 } else { 200 };
        let status_header = wanted.to_string();
        let (status, _) = client
            .get("reviews", "/", &[("x-demo-status", &status_header)])
            .await;
        assert_eq!(status, wanted);
        let sent = std::time::Instant::now();
        let (status, _) = client
            .get("ratings", "/", &[("x-demo-delay-ms", "30")])
            .await;
        slowest_ratings_ms = slowest_ratings_ms.max(sent.elapsed().as_secs_f64() * 1e3);
        assert_eq!(status, 200);
    }
    let edges = wait_for(
        Duration::from_secs(20),
        "both edges with every request on /debug/edges",
        || async {
            let edges = sextant.admin_json("/debug/edges").await;
            let done = edges["edges"].as_array()?.len() == 2
                && edges["edges"]
                    .as_array()?
                    .iter()
                    .all(|e| e["requests"] == 12);
            done.then_some(edges)
        },
    )
    .await;

    let url = format!("http://{}/ui", sextant.admin);
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium(profile.path(), &url, &["--dump-dom".to_string()]).await;

    for node in [
        "productpage-v1.default",
        "reviews.default",
        "ratings.default",
    ] {
        assert!(
            dom.contains(&format!("<g class=\"node\" data-name=\"{node}\">")),
            "no graph node {node} in the DOM:\n{dom}"
        );
    }
    // reviews: 4 of 12 failed (red); ratings: all good (green).
    for (service, class, errors) in [("reviews.default", "bad", 4), ("ratings.default", "ok", 0)] {
        let g = format!(
            "<g class=\"edge {class}\" data-source=\"productpage-v1.default\" data-destination=\"{service}\" data-requests=\"12\" data-errors=\"{errors}\">"
        );
        assert!(dom.contains(&g), "no {g} in the DOM:\n{dom}");
        let p99 = edge(&edges, service)["latency_ms"]["p99"].as_f64().unwrap();
        let label = format!("p99 {} ms · 12 req", p99.round());
        assert!(
            dom.contains(&label),
            "no edge label {label:?} in the DOM:\n{dom}"
        );
    }
    let ratings_p99 = edge(&edges, "ratings.default")["latency_ms"]["p99"]
        .as_f64()
        .unwrap();
    // Every ratings answer waited 30 ms upstream, so each sample is in Envoy's
    // (25, 50] ms bucket or above; none took longer than the client saw, so
    // the p99 is at most the upper bound of the bucket holding the slowest
    // (on an idle machine 50 ms; a loaded one can take longer).
    let bound = sextant::edges::LATENCY_BOUNDS_MS
        .into_iter()
        .find(|b| *b >= slowest_ratings_ms)
        .unwrap();
    assert!(
        (25.0..=bound).contains(&ratings_p99),
        "ratings p99 {ratings_p99} ms; the slowest request took {slowest_ratings_ms:.1} ms at the client"
    );
    assert!(
        dom.contains("<tr data-proxy=\"productpage-v1.default\"><td>productpage-v1.default</td><td class=\"SYNCED\">SYNCED</td>"),
        "no SYNCED row for the proxy:\n{dom}"
    );
    assert!(
        dom.contains("randomSamplingPercentage") && dom.contains("<li class=\"error\">"),
        "the Telemetry error is not listed:\n{dom}"
    );

    screenshot(profile.path(), &url, "ui-topology.png", 1280, 1100).await;
}
