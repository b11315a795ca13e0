//! End to end: per-edge golden signals from Envoy's metrics service. A
//! client sidecar (`productpage-v1`, 127.0.9.1, stats flushed every 500 ms
//! to Sextant over `envoy.stat_sinks.metrics_service`) calls `reviews`
//! (127.0.9.2) and a slow `ratings` (127.0.9.3, each answer held 300 ms by
//! the demo upstream). After the requests, `/metrics` and `/debug/edges`
//! show each edge with exactly the requests sent and the 5xx the upstream
//! answered, and the slow edge's p99 in its delay's bucket (250-500 ms).

use crate::harness;

use harness::*;
use serde_json::Value;
use std::time::Duration;

const CLIENT_IP: &str = "127.0.9.1";
const REVIEWS_IP: &str = "127.0.9.2";
const RATINGS_IP: &str = "127.0.9.3";
const FLUSH_MS: u64 = 500;

/// Requests to reviews, of which `REVIEWS_FAILED` answer 500.
const REVIEWS_SENT: u64 = 20;
const REVIEWS_FAILED: u64 = 6;
/// Requests to ratings, each delayed by `RATINGS_DELAY_MS`.
const RATINGS_SENT: u64 = 8;
const RATINGS_DELAY_MS: u64 = 300;

/// The edge `productpage-v1.default` → `service` of `/debug/edges`, if shown.
fn edge(edges: &Value, service: &str) -> Option<Value> {
    edges["edges"].as_array()?.iter().find_map(|e| {
        (e["source_workload"] == "productpage-v1.default" && e["destination_service"] == service)
            .then(|| e.clone())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_show_requests_errors_and_latency_from_envoy_stats() {
    let work = tempfile::tempdir().unwrap();
    let (_reviews, _ratings, config) = reviews_and_ratings(work.path(), REVIEWS_IP, RATINGS_IP);
    let sextant = Sextant::start(work.path(), config.path()).await;
    let client = start_productpage(work.path(), &sextant, CLIENT_IP, FLUSH_MS).await;

    // Every request is checked to have reached its upstream, so the
    // expected counts are what the upstreams answered.
    let mut failed = 0;
    for i in 0..REVIEWS_SENT {
        let fail = i % 3 == 0 && failed < REVIEWS_FAILED;
        let status_header = if fail { "500" } else { "200" };
        let (status, headers, body) = client
            .request(
                "GET",
                "reviews",
                &format!("/r/{i}"),
                &[("x-demo-status", status_header)],
            )
            .await;
        assert_eq!(status.to_string(), status_header, "{body}");
        assert_eq!(headers["x-upstream"], "reviews-v1", "{body}");
        failed += u64::from(fail);
    }
    assert_eq!(failed, REVIEWS_FAILED);
    let delay = RATINGS_DELAY_MS.to_string();
    for i in 0..RATINGS_SENT {
        let (status, headers, body) = client
            .request(
                "GET",
                "ratings",
                &format!("/slow/{i}"),
                &[("x-demo-delay-ms", &delay)],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["x-upstream"], "ratings-v1", "{body}");
    }

    // Wait until the flushes arrived, then for two more flushes: a count
    // that grows further (counters read as totals, duplicate stats) fails.
    wait_for(
        Duration::from_secs(20),
        "both edges with every request on /debug/edges",
        || async {
            let edges = sextant.admin_json("/debug/edges").await;
            let reviews = edge(&edges, "reviews.default")?;
            let ratings = edge(&edges, "ratings.default")?;
            (reviews["total_requests"].as_u64()? >= REVIEWS_SENT
                && ratings["total_requests"].as_u64()? >= RATINGS_SENT)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3 * FLUSH_MS)).await;
    let edges = sextant.admin_json("/debug/edges").await;
    eprintln!("/debug/edges: {edges:#}");

    let reviews_edge = edge(&edges, "reviews.default").unwrap();
    assert_eq!(reviews_edge["destination_subset"], "");
    assert_eq!(reviews_edge["total_requests"], REVIEWS_SENT, "{edges:#}");
    assert_eq!(reviews_edge["total_errors"], REVIEWS_FAILED, "{edges:#}");
    // Everything happened inside the 60 s window.
    assert_eq!(reviews_edge["requests"], REVIEWS_SENT, "{edges:#}");
    assert_eq!(reviews_edge["errors"], REVIEWS_FAILED, "{edges:#}");
    assert_eq!(
        reviews_edge["responses_by_class"],
        serde_json::json!({"2xx": REVIEWS_SENT - REVIEWS_FAILED, "5xx": REVIEWS_FAILED})
    );
    let success = reviews_edge["success_rate"].as_f64().unwrap();
    let expected = (REVIEWS_SENT - REVIEWS_FAILED) as f64 / REVIEWS_SENT as f64;
    assert!((success - expected).abs() < 1e-9, "{success}");
    // The connection to reviews stays open (HTTP/1.1 keep-alive).
    assert!(
        reviews_edge["active_connections"].as_u64().unwrap() >= 1,
        "{edges:#}"
    );

    let ratings_edge = edge(&edges, "ratings.default").unwrap();
    assert_eq!(ratings_edge["total_requests"], RATINGS_SENT, "{edges:#}");
    assert_eq!(ratings_edge["total_errors"], 0, "{edges:#}");
    let p99 = ratings_edge["latency_ms"]["p99"].as_f64().unwrap();
    assert!(
        (250.0..=500.0).contains(&p99),
        "p99 of a 300 ms upstream is {p99} ms, outside Envoy's (250, 500] bucket"
    );
    let p50 = ratings_edge["latency_ms"]["p50"].as_f64().unwrap();
    assert!((250.0..=500.0).contains(&p50), "p50 {p50}");

    // The same on /metrics, with the Prometheus labels.
    let (status, text) = sextant.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let labels = |service: &str| {
        format!(
            "source_workload=\"productpage-v1.default\",destination_service=\"{service}\",destination_subset=\"\""
        )
    };
    for line in [
        format!(
            "sextant_edge_requests_total{{{},response_code_class=\"2xx\"}} {}",
            labels("reviews.default"),
            REVIEWS_SENT - REVIEWS_FAILED
        ),
        format!(
            "sextant_edge_requests_total{{{},response_code_class=\"5xx\"}} {REVIEWS_FAILED}",
            labels("reviews.default")
        ),
        format!(
            "sextant_edge_requests_total{{{},response_code_class=\"2xx\"}} {RATINGS_SENT}",
            labels("ratings.default")
        ),
        // Every slow request is above 250 ms and within 500 ms.
        format!(
            "sextant_edge_request_duration_milliseconds_bucket{{le=\"250.0\",{}}} 0",
            labels("ratings.default")
        ),
        format!(
            "sextant_edge_request_duration_milliseconds_bucket{{le=\"500.0\",{}}} {RATINGS_SENT}",
            labels("ratings.default")
        ),
    ] {
        assert!(
            text.contains(&line),
            "missing {line:?} in /metrics:\n{text}"
        );
    }
    assert!(
        !text.contains("response_code_class=\"5xx\"} 0")
            && !text.contains(&format!(
                "{{{},response_code_class=\"5xx\"}}",
                labels("ratings.default")
            )),
        "ratings answered no 5xx:\n{text}"
    );
    assert_eq!(client.updates_rejected().await, 0);
}
