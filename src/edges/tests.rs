use super::*;
use envoy_types::pb::io::prometheus::client::{
    Bucket, Counter, Gauge, Histogram, Metric, MetricFamily, MetricType,
};
use std::sync::Arc;

const REVIEWS: &str = "outbound|9080||reviews.default.svc.cluster.local";
const REVIEWS_V2: &str = "outbound|9080|v2|reviews.default.svc.cluster.local";
/// A ServiceEntry host ending in a word Envoy also uses as a stat scope.
const DB: &str = "outbound|5432||db.corp.internal";

fn counter(name: &str, value: f64) -> MetricFamily {
    MetricFamily {
        name: Some(name.to_string()),
        r#type: Some(MetricType::Counter as i32),
        metric: vec![Metric {
            counter: Some(Counter {
                value: Some(value),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn gauge(name: &str, value: f64) -> MetricFamily {
    MetricFamily {
        name: Some(name.to_string()),
        r#type: Some(MetricType::Gauge as i32),
        metric: vec![Metric {
            gauge: Some(Gauge { value: Some(value) }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A histogram as Envoy sends it: cumulative counts on its default bounds.
fn histogram(name: &str, samples_ms: &[f64]) -> MetricFamily {
    let bucket = LATENCY_BOUNDS_MS
        .iter()
        .map(|bound| Bucket {
            upper_bound: Some(*bound),
            cumulative_count: Some(samples_ms.iter().filter(|s| *s <= bound).count() as u64),
            ..Default::default()
        })
        .collect();
    MetricFamily {
        name: Some(name.to_string()),
        r#type: Some(MetricType::Histogram as i32),
        metric: vec![Metric {
            histogram: Some(Histogram {
                sample_count: Some(samples_ms.len() as u64),
                sample_sum: Some(samples_ms.iter().sum()),
                bucket,
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn stat(cluster: &str, stat: &str) -> String {
    format!("cluster.{cluster}.{stat}")
}

/// One flush of a client sidecar: `ok` 2xx and `failed` 5xx responses
/// from reviews, with Envoy's duplicate `external.` copies beside them.
fn flush(ok: u64, failed: u64, latencies: &[f64]) -> Vec<MetricFamily> {
    vec![
        gauge(&stat(REVIEWS, "membership_total"), 1.0),
        counter(&stat(REVIEWS, "upstream_rq_total"), (ok + failed) as f64),
        counter(&stat(REVIEWS, "upstream_rq_2xx"), ok as f64),
        counter(&stat(REVIEWS, "upstream_rq_200"), ok as f64),
        counter(&stat(REVIEWS, "external.upstream_rq_2xx"), ok as f64),
        counter(&stat(REVIEWS, "upstream_rq_5xx"), failed as f64),
        counter(&stat(REVIEWS, "external.upstream_rq_5xx"), failed as f64),
        gauge(&stat(REVIEWS, "upstream_cx_active"), 2.0),
        histogram(&stat(REVIEWS, "upstream_rq_time"), latencies),
        histogram(&stat(REVIEWS, "external.upstream_rq_time"), latencies),
        // Not outbound clusters: ignored.
        counter("cluster.inbound|9080||.upstream_rq_2xx", 99.0),
        counter("cluster.sextant-xds.upstream_rq_2xx", 99.0),
        counter("http.outbound_0.0.0.0_15001.downstream_rq_2xx", 99.0),
    ]
}

#[test]
fn cluster_stats_are_read_once_per_cluster_without_the_external_copies() {
    let samples = cluster_samples(&flush(7, 3, &[3.0, 30.0, 300.0]));
    let [sample] = samples.as_slice() else {
        panic!("one cluster: {samples:?}");
    };
    assert_eq!(sample.cluster, REVIEWS);
    assert_eq!(sample.responses, [0, 7, 0, 0, 3]);
    assert_eq!(sample.active_connections, Some(2));
    let latency = sample.latency.as_ref().unwrap();
    assert_eq!(latency.count(), 3);
    assert_eq!(latency.sum_ms, 333.0);
    // 3 ms in (1, 5], 30 ms in (25, 50], 300 ms in (250, 500].
    assert_eq!(latency.buckets[2], 1);
    assert_eq!(latency.buckets[5], 1);
    assert_eq!(latency.buckets[8], 1);
}

#[test]
fn a_host_ending_like_a_stat_scope_is_still_its_own_cluster() {
    let families = vec![
        counter(&stat(DB, "upstream_cx_total"), 1.0),
        counter(&stat(DB, "upstream_rq_2xx"), 4.0),
    ];
    let samples = cluster_samples(&families);
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert_eq!(samples[0].cluster, DB);
    assert_eq!(samples[0].responses[1], 4);
    assert_eq!(
        destination_of_cluster(DB),
        Some(("db.corp.internal".to_string(), String::new()))
    );
    assert_eq!(
        destination_of_cluster(REVIEWS_V2),
        Some(("reviews.default".to_string(), "v2".to_string()))
    );
    assert_eq!(destination_of_cluster("inbound|9080||"), None);
}

#[test]
fn a_used_cluster_with_nothing_new_gives_no_sample() {
    let samples = cluster_samples(&flush(0, 0, &[]));
    // The active connections still count.
    assert_eq!(samples.len(), 1);
    let mut families = flush(0, 0, &[]);
    families.retain(|f| !f.name.as_deref().unwrap().ends_with("upstream_cx_active"));
    assert_eq!(cluster_samples(&families), []);
}

#[test]
fn samples_above_the_last_bound_and_other_bounds_are_kept() {
    let histogram = Histogram {
        sample_count: Some(4),
        sample_sum: Some(0.0),
        bucket: vec![
            // A custom bound (7 ms) lands in Envoy's 10 ms bucket.
            Bucket {
                upper_bound: Some(7.0),
                cumulative_count: Some(2),
                ..Default::default()
            },
            Bucket {
                upper_bound: Some(3_600_000.0),
                cumulative_count: Some(3),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let latency = Latency::from_histogram(&histogram);
    assert_eq!(latency.buckets[3], 2);
    assert_eq!(latency.buckets[LATENCY_BUCKETS - 2], 1);
    assert_eq!(latency.buckets[LATENCY_BUCKETS - 1], 1);
    assert_eq!(latency.count(), 4);
}

#[test]
fn quantiles_interpolate_inside_their_bucket() {
    let mut latency = Latency::default();
    assert_eq!(latency.quantile(0.99), None);
    // 90 fast requests (1-5 ms) and 10 slow ones (250-500 ms).
    latency.buckets[2] = 90;
    latency.buckets[8] = 10;
    let p50 = latency.quantile(0.5).unwrap();
    assert!((1.0..=5.0).contains(&p50), "{p50}");
    let p90 = latency.quantile(0.9).unwrap();
    assert_eq!(p90, 5.0);
    let p99 = latency.quantile(0.99).unwrap();
    assert!((250.0..=500.0).contains(&p99), "{p99}");
    assert_eq!(p99, 250.0 + 250.0 * 0.9);
    // Everything above the last bound: the last bound.
    let mut slow = Latency::default();
    slow.buckets[LATENCY_BUCKETS - 1] = 1;
    assert_eq!(slow.quantile(0.5), Some(3_600_000.0));
}

fn record(store: &EdgeStore, node: &str, families: &[MetricFamily], at: Instant) {
    store.record("productpage.default", node, &cluster_samples(families), at);
}

#[test]
fn the_window_slides_and_the_totals_stay() {
    let store = EdgeStore::new(Duration::from_secs(60));
    let start = Instant::now();
    record(&store, "pp-1.default", &flush(8, 2, &[300.0; 10]), start);
    record(
        &store,
        "pp-2.default",
        &flush(10, 0, &[3.0; 10]),
        start + Duration::from_secs(5),
    );
    let view = store.view(start + Duration::from_secs(10));
    let [edge] = view.edges.as_slice() else {
        panic!("one edge: {view:?}");
    };
    assert_eq!(edge.key.source_workload, "productpage.default");
    assert_eq!(edge.key.destination_service, "reviews.default");
    assert_eq!(edge.key.destination_subset, "");
    assert_eq!((edge.requests, edge.errors), (20, 2));
    assert_eq!(edge.responses_by_class.get("2xx"), Some(&18));
    assert_eq!(edge.success_rate, Some(0.9));
    // 20 responses over the 10 s since the edge appeared.
    assert!((edge.rps - 2.0).abs() < 1e-9, "{}", edge.rps);
    let p99 = edge.latency_ms["p99"];
    assert!((250.0..=500.0).contains(&p99), "{p99}");
    // Two sidecars with two connections each.
    assert_eq!(edge.active_connections, 4);

    // A minute later the first flush has left the window, not the totals.
    let later = start + Duration::from_secs(62);
    let view = store.view(later);
    let edge = &view.edges[0];
    assert_eq!((edge.requests, edge.errors), (10, 0));
    assert_eq!((edge.total_requests, edge.total_errors), (20, 2));
    assert!(edge.latency_ms["p99"] <= 5.0);

    store.proxy_gone("pp-1.default");
    assert_eq!(store.view(later).edges[0].active_connections, 2);

    // Nobody reported for ten minutes: forgotten.
    assert!(store
        .view(start + Duration::from_secs(5) + IDLE_EDGE)
        .edges
        .is_empty());
}

#[test]
fn edges_beyond_the_cap_are_dropped_and_counted() {
    let store = EdgeStore::default();
    let now = Instant::now();
    let samples: Vec<ClusterSample> = (0..MAX_EDGES + 3)
        .map(|i| ClusterSample {
            cluster: format!("outbound|80||svc-{i}.default.svc.cluster.local"),
            responses: [0, 1, 0, 0, 0],
            ..ClusterSample::default()
        })
        .collect();
    store.record("client.default", "client-1.default", &samples, now);
    let view = store.view(now);
    assert_eq!(view.edges.len(), MAX_EDGES);
    assert_eq!(view.dropped_samples, 3);
    // Known edges still count.
    store.record("client.default", "client-1.default", &samples[..1], now);
    assert_eq!(store.totals().0[0].total.requests(), 2);
}

#[test]
fn edges_render_as_prometheus_series() {
    let store = Arc::new(EdgeStore::default());
    let metrics = crate::metrics::Metrics::new().with_edges(store.clone());
    record(
        &store,
        "pp-1.default",
        &flush(7, 3, &[300.0]),
        Instant::now(),
    );
    let text = metrics.render();
    let labels = "source_workload=\"productpage.default\",destination_service=\"reviews.default\",destination_subset=\"\"";
    for line in [
        format!("sextant_edge_requests_total{{{labels},response_code_class=\"2xx\"}} 7"),
        format!("sextant_edge_requests_total{{{labels},response_code_class=\"5xx\"}} 3"),
        format!("sextant_edge_request_duration_milliseconds_count{{{labels}}} 1"),
        format!("sextant_edge_request_duration_milliseconds_bucket{{le=\"250.0\",{labels}}} 0"),
        format!("sextant_edge_request_duration_milliseconds_bucket{{le=\"500.0\",{labels}}} 1"),
        format!("sextant_edge_active_connections{{{labels}}} 2"),
        "sextant_edge_dropped_samples_total 0".to_string(),
    ] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("response_code_class=\"4xx\""), "{text}");
}

/// One flush of a client sidecar's gRPC cluster: `ok` calls with
/// grpc-status 0 and `failed` with another status, all HTTP 200 (as a gRPC
/// server answers), plus `unavailable` local replies (Envoy charges the
/// translated 503 and the gRPC stats filter a failure).
fn grpc_flush(cluster: &str, ok: u64, failed: u64, unavailable: u64) -> Vec<MetricFamily> {
    vec![
        gauge(&stat(cluster, "membership_total"), 1.0),
        counter(&stat(cluster, "upstream_rq_2xx"), (ok + failed) as f64),
        counter(&stat(cluster, "upstream_rq_5xx"), unavailable as f64),
        counter(&stat(cluster, "grpc.success"), ok as f64),
        counter(
            &stat(cluster, "grpc.failure"),
            (failed + unavailable) as f64,
        ),
        counter(&stat(cluster, "grpc.14"), unavailable as f64),
        counter(&stat(cluster, "grpc.13"), failed as f64),
        counter(
            &stat(cluster, "grpc.total"),
            (ok + failed + unavailable) as f64,
        ),
    ]
}

#[test]
fn grpc_failures_count_as_errors_once() {
    const GREETER: &str = "outbound|9090||greeter.default.svc.cluster.local";
    let samples = cluster_samples(&grpc_flush(GREETER, 7, 2, 1));
    assert_eq!(samples.len(), 1, "{samples:?}");
    let sample = &samples[0];
    assert_eq!((sample.grpc_ok, sample.grpc_failed), (7, 3));
    // 2 non-OK statuses over HTTP 200 and one 503 that is also a gRPC failure.
    assert_eq!(sample.errors(), 3);

    let store = EdgeStore::default();
    let now = Instant::now();
    record(&store, "pp-1.default", &grpc_flush(GREETER, 7, 2, 1), now);
    // Plain HTTP beside it: 5xx count as they are.
    record(&store, "pp-1.default", &flush(4, 1, &[]), now);
    let view = store.view(now);
    let greeter = view
        .edges
        .iter()
        .find(|e| e.key.destination_service == "greeter.default")
        .unwrap();
    assert_eq!((greeter.requests, greeter.errors), (10, 3));
    assert_eq!(
        greeter.grpc_by_status,
        BTreeMap::from([("ok", 7), ("error", 3)])
    );
    assert_eq!(greeter.success_rate, Some(0.7));
    let reviews = view
        .edges
        .iter()
        .find(|e| e.key.destination_service == "reviews.default")
        .unwrap();
    assert_eq!((reviews.requests, reviews.errors), (5, 1));
    assert!(reviews.grpc_by_status.is_empty());
}

/// A port that carries gRPC and plain HTTP: the gRPC calls' local
/// replies (503 and UNAVAILABLE) are not counted twice, plain 5xx are.
#[test]
fn a_port_with_grpc_and_http_counts_each_failure_once() {
    const MIXED: &str = "outbound|8080||mixed.default.svc.cluster.local";
    let with_classes = |mut families: Vec<MetricFamily>, ok: f64, failed: f64| {
        families.retain(|f| {
            !f.name
                .as_deref()
                .is_some_and(|n| n.ends_with("upstream_rq_2xx") || n.ends_with("upstream_rq_5xx"))
        });
        families.push(counter(&stat(MIXED, "upstream_rq_2xx"), ok));
        families.push(counter(&stat(MIXED, "upstream_rq_5xx"), failed));
        cluster_samples(&families).remove(0)
    };
    // Upstream down for half: 10 gRPC calls and 10 HTTP requests answered
    // 503 by Envoy, 10 and 10 answered by the upstream.
    let sample = with_classes(grpc_flush(MIXED, 10, 0, 10), 20.0, 20.0);
    assert_eq!(sample.errors(), 20, "{sample:?}");
    // gRPC INTERNAL over HTTP 200 beside plain 500s: both count.
    let sample = with_classes(grpc_flush(MIXED, 10, 10, 0), 25.0, 5.0);
    assert_eq!(sample.errors(), 15, "{sample:?}");
}

#[test]
fn a_host_ending_in_grpc_keeps_its_grpc_stats() {
    const ODD: &str = "outbound|9090||api.grpc";
    let samples = cluster_samples(&grpc_flush(ODD, 1, 1, 0));
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert_eq!(samples[0].cluster, ODD);
    assert_eq!((samples[0].grpc_ok, samples[0].grpc_failed), (1, 1));
}

#[test]
fn grpc_outcomes_and_errors_render_as_prometheus_series() {
    const GREETER: &str = "outbound|9090||greeter.default.svc.cluster.local";
    let store = Arc::new(EdgeStore::default());
    let metrics = crate::metrics::Metrics::new().with_edges(store.clone());
    record(
        &store,
        "pp-1.default",
        &grpc_flush(GREETER, 5, 2, 0),
        Instant::now(),
    );
    let text = metrics.render();
    let labels = "source_workload=\"productpage.default\",destination_service=\"greeter.default\",destination_subset=\"\"";
    for line in [
        format!("sextant_edge_grpc_responses_total{{{labels},grpc_status_class=\"ok\"}} 5"),
        format!("sextant_edge_grpc_responses_total{{{labels},grpc_status_class=\"error\"}} 2"),
        format!("sextant_edge_errors_total{{{labels}}} 2"),
        format!("sextant_edge_requests_total{{{labels},response_code_class=\"2xx\"}} 7"),
    ] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn the_documented_memory_bound_holds() {
    // The module doc's figure per window slot.
    assert_eq!(std::mem::size_of::<Counts>(), 232);
}
