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

/// gRPC calls answered with a non-OK grpc-status are errors of their edge,
/// though the HTTP status is 200: counted once, from Envoy's gRPC stats
/// filter on the calling sidecar. A Python gRPC upstream (127.0.9.42)
/// fails every 4th call with INTERNAL; the client sidecar (127.0.9.41)
/// carries the calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_with_a_non_ok_status_are_edge_errors() {
    const SENT: u64 = 20;
    const FAIL_EVERY: u64 = 4;
    const FAILED: u64 = SENT / FAIL_EVERY;
    harness::grpc::require_grpcio();
    let work = tempfile::tempdir().unwrap();
    let upstream = harness::grpc::start_grpc_upstream(work.path(), "127.0.9.42", "v1");
    let config = ConfigDir::new();
    config.write(
        "greeter.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: greeter, namespace: default}}\nspec:\n  selector: {{app: greeter}}\n  ports:\n  - {{name: grpc, port: 9090, appProtocol: grpc}}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: greeter-v1, namespace: default}}\nspec:\n  address: 127.0.9.42\n  ports: {{grpc: {}}}\n  labels: {{app: greeter, version: v1}}\n",
            upstream.port
        ),
    );
    let sextant = Sextant::start(work.path(), config.path()).await;
    let client = start_productpage(work.path(), &sextant, "127.0.9.41", FLUSH_MS).await;
    client
        .wait_for_route("greeter.default.svc.cluster.local")
        .await;

    let outbound = client.outbound.to_string();
    let every = FAIL_EVERY.to_string();
    let answers = tokio::task::spawn_blocking(move || {
        harness::grpc::call_with_env(
            &[&outbound, &SENT.to_string(), "greeter:9090"],
            None,
            &[("ECHO_FAIL_EVERY", &every)],
        )
    })
    .await
    .unwrap();
    assert_eq!(
        answers,
        std::collections::BTreeMap::from([
            ("reviews-v1".to_string(), SENT - FAILED),
            ("error INTERNAL: asked to fail".to_string(), FAILED),
        ]),
        "what the gRPC client saw"
    );

    wait_for(
        Duration::from_secs(20),
        "the greeter edge with every call on /debug/edges",
        || async {
            let edges = sextant.admin_json("/debug/edges").await;
            (edge(&edges, "greeter.default")?["total_requests"].as_u64()? >= SENT).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3 * FLUSH_MS)).await;
    let edges = sextant.admin_json("/debug/edges").await;
    let greeter = edge(&edges, "greeter.default").unwrap();
    assert_eq!(greeter["requests"], SENT, "{edges:#}");
    // HTTP says 200 for every call; gRPC says which failed.
    assert_eq!(
        greeter["responses_by_class"],
        serde_json::json!({"2xx": SENT}),
        "{edges:#}"
    );
    assert_eq!(
        greeter["grpc_by_status"],
        serde_json::json!({"ok": SENT - FAILED, "error": FAILED}),
        "{edges:#}"
    );
    assert_eq!(greeter["errors"], FAILED, "{edges:#}");
    assert_eq!(greeter["total_errors"], FAILED, "{edges:#}");
    let success = greeter["success_rate"].as_f64().unwrap();
    assert!(
        (success - (SENT - FAILED) as f64 / SENT as f64).abs() < 1e-9,
        "{success}"
    );

    let (_, text) = sextant.admin_get("/metrics").await;
    let labels = "source_workload=\"productpage-v1.default\",destination_service=\"greeter.default\",destination_subset=\"\"";
    for line in [
        format!("sextant_edge_errors_total{{{labels}}} {FAILED}"),
        format!(
            "sextant_edge_grpc_responses_total{{{labels},grpc_status_class=\"error\"}} {FAILED}"
        ),
        format!(
            "sextant_edge_grpc_responses_total{{{labels},grpc_status_class=\"ok\"}} {}",
            SENT - FAILED
        ),
    ] {
        assert!(
            text.contains(&line),
            "missing {line:?} in /metrics:\n{text}"
        );
    }
    // The per-status stat Sextant reads UNAVAILABLE from has this shape.
    let internal = client
        .stat_sum("greeter.default.svc.cluster.local.grpc.13")
        .await;
    assert_eq!(internal, FAILED, "INTERNAL calls in Envoy's grpc.13 stat");

    // The upstream goes away: Envoy answers the next calls itself (503,
    // UNAVAILABLE), which it counts as 5xx and as gRPC failures; each is
    // still one error.
    drop(upstream);
    let outbound = client.outbound.to_string();
    let answers = tokio::task::spawn_blocking(move || {
        harness::grpc::call_with(&[&outbound, "3", "greeter:9090"], None)
    })
    .await
    .unwrap();
    assert_eq!(answers.values().sum::<u64>(), 3, "{answers:?}");
    assert!(
        answers.keys().all(|k| k.starts_with("error UNAVAILABLE")),
        "{answers:?}"
    );
    wait_for(
        Duration::from_secs(20),
        "the UNAVAILABLE calls on /debug/edges",
        || async {
            let edges = sextant.admin_json("/debug/edges").await;
            (edge(&edges, "greeter.default")?["total_requests"].as_u64()? >= SENT + 3).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3 * FLUSH_MS)).await;
    let edges = sextant.admin_json("/debug/edges").await;
    let greeter = edge(&edges, "greeter.default").unwrap();
    assert_eq!(greeter["total_requests"], SENT + 3, "{edges:#}");
    assert_eq!(greeter["total_errors"], FAILED + 3, "{edges:#}");
    assert_eq!(
        greeter["responses_by_class"],
        serde_json::json!({"2xx": SENT, "5xx": 3}),
        "{edges:#}"
    );
    assert_eq!(client.updates_rejected().await, 0);
}

/// Telemetry `metrics` overrides choose what a proxy's reports feed, live:
/// with `REQUEST_DURATION` off for the client workload its edge counts
/// requests but keeps no latency; with everything off, requests are not
/// counted; with the Telemetry gone, both count again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_metrics_overrides_drop_what_they_turn_off() {
    let work = tempfile::tempdir().unwrap();
    let (_reviews, _ratings, config) = reviews_and_ratings(work.path(), "127.0.9.32", "127.0.9.33");
    let telemetry = |overrides: &str| {
        format!(
            "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: productpage, namespace: default}}\nspec:\n  selector: {{matchLabels: {{app: productpage}}}}\n  metrics:\n  - providers: [{{name: prometheus}}]\n    overrides: [{overrides}]\n"
        )
    };
    config.write(
        "telemetry.yaml",
        &telemetry("{match: {metric: REQUEST_DURATION, mode: CLIENT}, disabled: true}"),
    );
    let sextant = Sextant::start(work.path(), config.path()).await;
    let client = start_productpage(work.path(), &sextant, "127.0.9.31", FLUSH_MS).await;
    let send = |n: u64, from: u64| {
        let client = &client;
        async move {
            for i in from..from + n {
                let (status, _, body) = client
                    .request("GET", "reviews", &format!("/m/{i}"), &[])
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        }
    };
    let reviews_total = || async {
        let edges = sextant.admin_json("/debug/edges").await;
        edge(&edges, "reviews.default").map(|e| e["total_requests"].as_u64().unwrap())
    };

    send(6, 0).await;
    wait_for(
        Duration::from_secs(20),
        "6 requests on the edge",
        || async { (reviews_total().await? >= 6).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3 * FLUSH_MS)).await;
    let edges = sextant.admin_json("/debug/edges").await;
    let reviews = edge(&edges, "reviews.default").unwrap();
    assert_eq!(reviews["total_requests"], 6, "{edges:#}");
    assert_eq!(reviews["latency_ms"], serde_json::json!({}), "{edges:#}");
    let labels = "source_workload=\"productpage-v1.default\",destination_service=\"reviews.default\",destination_subset=\"\"";
    let (_, text) = sextant.admin_get("/metrics").await;
    let count_line = format!("sextant_edge_request_duration_milliseconds_count{{{labels}}} 0");
    assert!(
        text.contains(&count_line),
        "missing {count_line:?}:\n{text}"
    );

    // Everything off: new requests are not counted.
    config.write("telemetry.yaml", &telemetry("{disabled: true}"));
    wait_for(
        Duration::from_secs(10),
        "the new Telemetry served",
        || async {
            let (_, dump) = sextant.admin_get("/debug/ir").await;
            dump.contains("active_connections").then_some(())
        },
    )
    .await;
    send(4, 100).await;
    tokio::time::sleep(Duration::from_millis(4 * FLUSH_MS)).await;
    assert_eq!(reviews_total().await, Some(6), "requests counted while off");

    // Without the Telemetry, requests and latency count again.
    config.remove("telemetry.yaml");
    wait_for(Duration::from_secs(10), "the Telemetry gone", || async {
        let (_, dump) = sextant.admin_get("/debug/ir").await;
        (!dump.contains("active_connections")).then_some(())
    })
    .await;
    send(2, 200).await;
    wait_for(
        Duration::from_secs(20),
        "8 requests with latency",
        || async {
            let edges = sextant.admin_json("/debug/edges").await;
            let reviews = edge(&edges, "reviews.default")?;
            (reviews["total_requests"].as_u64()? == 8 && reviews["latency_ms"]["p50"].is_number())
                .then_some(())
        },
    )
    .await;
    assert_eq!(client.updates_rejected().await, 0);
}
