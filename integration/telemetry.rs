//! End to end: Telemetry objects turn on Envoy's access logs and tracing.
//!
//! 1. Access logs: workload A (127.0.8.1) calls service `b` over mutual
//!    TLS; B's app (127.0.8.2) sits behind B's sidecar. A Telemetry per
//!    workload (selector) writes JSON lines to a file per sidecar: A's line
//!    has method, path, status and the destination cluster; B's inbound
//!    line has A's SPIFFE ID. A filter `response.code >= 400` then keeps
//!    2xx out of A's log.
//! 2. Tracing: a Zipkin collector stand-in in this test (HTTP on a free
//!    port, counting the spans POSTed to it). A client's B3 or W3C trace
//!    context reaches the upstream with the same trace ID and the span
//!    reaches the collector; over 1,000 requests without trace context, 10 %
//!    sampling reports a binomial count within 4 sigma of 100.
//! 3. Bad input: sampling 150 and an unknown provider are errors naming the
//!    object and field; Envoy keeps the last good config (no NACK) and
//!    serves. A valid edit to OpenTelemetry then applies (Envoy accepts it).

use crate::harness;

use axum::routing::post;
use harness::*;
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const A_IP: &str = "127.0.8.1";
const B_IP: &str = "127.0.8.2";
const CLIENT_IP: &str = "127.0.8.3";
const UPSTREAM_IP: &str = "127.0.8.4";

fn meshed_world(b_app: &Upstream, b_inbound: u16) -> String {
    [
        meshed_service_yaml("b", B_IP, b_app, b_inbound),
        meshed_client_yaml("a", A_IP),
    ]
    .join("---\n")
}

/// A Telemetry selecting `app=<app>` that logs to `path`, optionally filtered.
fn access_log_telemetry(app: &str, path: &Path, filter: Option<&str>) -> String {
    let filter = filter
        .map(|f| format!("\n    filter: {{expression: \"{f}\"}}"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: logs-{app}, namespace: default}}
spec:
  selector: {{matchLabels: {{app: {app}}}}}
  accessLogging:
  - providers: [{{name: file, path: "{path}"}}]{filter}
"#,
        path = path.display()
    )
}

/// The JSON lines of an access log file so far (none if it does not exist yet).
fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits for the access log line of the request to `path`.
async fn line_for(log: &Path, path: &str) -> Value {
    wait_for(
        Duration::from_secs(10),
        &format!("an access log line for {path} in {}", log.display()),
        || async { log_lines(log).into_iter().find(|l| l["path"] == path) },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logs_reach_their_files_with_identity_and_filters() {
    let work = tempfile::tempdir().unwrap();
    let b_app = Upstream::start(work.path(), B_IP, "b", "v1");
    let b_inbound = free_port();
    let a_log = work.path().join("a-access.log");
    let b_log = work.path().join("b-access.log");
    let config = ConfigDir::new();
    config.write("world.yaml", &meshed_world(&b_app, b_inbound));
    config.write("a-logs.yaml", &access_log_telemetry("a", &a_log, None));
    config.write("b-logs.yaml", &access_log_telemetry("b", &b_log, None));
    let sextant = Sextant::start(work.path(), config.path()).await;
    let a = Envoy::start_meshed(work.path(), &sextant, "a", A_IP, free_port()).await;
    let b = Envoy::start_meshed(work.path(), &sextant, "b", B_IP, b_inbound).await;
    a.wait_until_serving("b").await;

    let (status, body) = a.get("b", "/orders/42?x=1", &[]).await;
    assert_eq!(status, 200, "{body}");
    let request_id = body["headers"]["x-request-id"]
        .as_str()
        .expect("Envoy generates x-request-id")
        .to_string();

    // A's outbound line: method, path, status, destination cluster.
    let line = line_for(&a_log, "/orders/42?x=1").await;
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["response_code"], 200, "{line}");
    assert_eq!(
        line["upstream_cluster"], "outbound|80||b.default.svc.cluster.local",
        "{line}"
    );
    assert_eq!(line["request_id"], request_id.as_str(), "{line}");
    assert!(line["start_time"].as_str().is_some_and(|t| t.contains('T')));
    assert!(line["duration_ms"].is_number(), "{line}");

    // B's inbound line: the caller's identity from its certificate.
    let line = line_for(&b_log, "/orders/42?x=1").await;
    assert_eq!(
        line["downstream_peer_uri_san"], "spiffe://cluster.local/ns/default/sa/a-sa",
        "{line}"
    );
    assert!(
        line["x_forwarded_client_cert"]
            .as_str()
            .is_some_and(|x| x.contains("spiffe://cluster.local/ns/default/sa/a-sa")),
        "{line}"
    );
    assert_eq!(
        line["upstream_cluster"],
        format!("inbound|{}||", b_app.addr.port()),
        "{line}"
    );
    assert_eq!(line["request_id"], request_id.as_str(), "{line}");

    // Only errors: a filter keeps 2xx out of A's log. Wait until a probe
    // pair shows the filter applied (error logged, success not), then check
    // a batch.
    config.write(
        "a-logs.yaml",
        &access_log_telemetry("a", &a_log, Some("response.code >= 400")),
    );
    let mut probe = 0;
    wait_for(
        Duration::from_secs(15),
        "the response code filter to apply",
        || {
            probe += 1;
            let (ok, err) = (format!("/probe-ok-{probe}"), format!("/probe-err-{probe}"));
            let a = &a;
            let a_log = &a_log;
            async move {
                assert_eq!(a.get("b", &ok, &[]).await.0, 200);
                let (status, _) = a.get("b", &err, &[("x-demo-status", "503")]).await;
                assert_eq!(status, 503);
                line_for(a_log, &err).await;
                let logged_ok = log_lines(a_log).iter().any(|l| l["path"] == ok.as_str());
                (!logged_ok).then_some(())
            }
        },
    )
    .await;
    // Connections accepted before the change keep the old filter chain
    // until Envoy has drained it.
    wait_for(
        Duration::from_secs(15),
        "the old filter chain to drain",
        || async {
            let draining = a
                .stat_sum("listener_manager.total_filter_chains_draining")
                .await
                + a.stat_sum("listener_manager.total_listeners_draining")
                    .await;
            (draining == 0).then_some(())
        },
    )
    .await;
    for i in 0..20 {
        assert_eq!(a.get("b", &format!("/batch-ok-{i}"), &[]).await.0, 200);
    }
    let (status, _) = a.get("b", "/batch-err", &[("x-demo-status", "500")]).await;
    assert_eq!(status, 500);
    let line = line_for(&a_log, "/batch-err").await;
    assert_eq!(line["response_code"], 500);
    let lines = log_lines(&a_log);
    let oks: Vec<&Value> = lines
        .iter()
        .filter(|l| l["path"].as_str().unwrap_or("").starts_with("/batch-ok"))
        .collect();
    assert!(
        oks.is_empty(),
        "2xx lines logged despite the filter: {oks:?}"
    );
    assert_eq!(a.updates_rejected().await, 0);
    assert_eq!(b.updates_rejected().await, 0);
}

/// A Zipkin collector stand-in: accepts `POST /api/v2/spans` (a JSON array
/// of Zipkin v2 spans) and keeps every span.
struct Collector {
    addr: std::net::SocketAddr,
    spans: Arc<Mutex<Vec<Value>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans: Arc<Mutex<Vec<Value>>> = Arc::default();
        let store = spans.clone();
        let app = axum::Router::new().route(
            "/api/v2/spans",
            post(move |body: axum::body::Bytes| {
                let store = store.clone();
                async move {
                    let batch: Vec<Value> = serde_json::from_slice(&body)
                        .unwrap_or_else(|e| panic!("spans are not a JSON array ({e}): {body:?}"));
                    store.lock().unwrap().extend(batch);
                    axum::http::StatusCode::ACCEPTED
                }
            }),
        );
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Collector {
            addr,
            spans,
            _server: server,
        }
    }

    /// Spans whose `http.url` tag contains `part`.
    fn count(&self, part: &str) -> usize {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| {
                s["tags"]["http.url"]
                    .as_str()
                    .is_some_and(|u| u.contains(part))
            })
            .count()
    }

    fn trace_ids(&self) -> Vec<String> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter_map(|s| s["traceId"].as_str().map(str::to_string))
            .collect()
    }
}

fn tracing_telemetry(collector: &str, sampling: &str, provider: &str) -> String {
    format!(
        r#"apiVersion: telemetry.sextant.dev/v1alpha1
kind: Telemetry
metadata: {{name: tracing, namespace: default}}
spec:
  tracing:
  - providers: [{{name: {provider}, address: "{collector}"}}]
    randomSamplingPercentage: {sampling}
    customTags:
      team: {{literal: {{value: payments}}}}
"#
    )
}

/// The HTTP connection manager of Envoy's outbound listener, from its config dump.
async fn outbound_hcm(envoy: &Envoy) -> Value {
    let listeners = envoy.dump_section("ListenersConfigDump").await;
    let dynamic = listeners["dynamic_listeners"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let outbound = dynamic
        .iter()
        .find(|l| l["name"] == "outbound")
        .unwrap_or_else(|| panic!("no outbound listener: {listeners}"));
    outbound["active_state"]["listener"]["filter_chains"][0]["filters"][0]["typed_config"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_is_propagated_and_sampled_at_the_configured_rate() {
    let work = tempfile::tempdir().unwrap();
    let collector = Collector::start().await;
    let upstream = Upstream::start(work.path(), UPSTREAM_IP, "reviews", "v1");
    let config = ConfigDir::new();
    config.write("service.yaml", &service_yaml("reviews", 9080));
    config.write("workloads.yaml", &workload_yaml("reviews", "v1", &upstream));
    config.write(
        "tracing.yaml",
        &tracing_telemetry(&collector.addr.to_string(), "10", "zipkin"),
    );
    let sextant = Sextant::start(work.path(), config.path()).await;
    let client = Envoy::start(
        work.path(),
        &sextant,
        Workload::client("client.default").at(CLIENT_IP),
    )
    .await;
    client.wait_until_serving("reviews").await;

    // B3 from the client: the upstream sees the same trace, in a child span.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (status, body) = client
        .get(
            "reviews",
            "/b3",
            &[
                ("x-b3-traceid", trace_id),
                ("x-b3-spanid", "00f067aa0ba902b7"),
                ("x-b3-sampled", "1"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let headers = &body["headers"];
    assert_eq!(headers["x-b3-traceid"], trace_id, "{body}");
    assert_ne!(
        headers["x-b3-spanid"], "00f067aa0ba902b7",
        "a new span: {body}"
    );
    assert!(headers["x-request-id"].as_str().is_some(), "{body}");

    // W3C traceparent from the client: the same trace ID upstream.
    let w3c_trace = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{w3c_trace}-b7ad6b7169203331-01");
    let (status, body) = client
        .get("reviews", "/w3c", &[("traceparent", &traceparent)])
        .await;
    assert_eq!(status, 200, "{body}");
    let upstream_traceparent = body["headers"]["traceparent"].as_str().unwrap_or_default();
    assert!(
        upstream_traceparent.contains(w3c_trace),
        "traceparent upstream: {body}"
    );

    // Both sampled spans reach the collector, with the custom tag.
    wait_for(
        Duration::from_secs(20),
        "the spans of the client's traces at the collector",
        || async {
            let ids = collector.trace_ids();
            (ids.iter().any(|i| i == trace_id) && ids.iter().any(|i| i == w3c_trace)).then_some(())
        },
    )
    .await;
    let tagged = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .any(|s| s["traceId"] == trace_id && s["tags"]["team"] == "payments");
    assert!(tagged, "the custom tag is on the span");

    // Sampling: 1,000 requests without trace context at 10 %. The count is
    // binomial (n = 1000, p = 0.1): mean 100, sigma 9.5; 4 sigma both ways.
    let n = 1000;
    for i in 0..n {
        let (status, _) = client.get("reviews", &format!("/sampling/{i}"), &[]).await;
        assert_eq!(status, 200);
    }
    // Envoy's Zipkin tracer sends batches every 5 s: wait until the count
    // stops moving for 6 s.
    let mut last = (usize::MAX, std::time::Instant::now());
    let sampled = loop {
        let now = collector.count("/sampling/");
        if now != last.0 {
            last = (now, std::time::Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(6) {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("sampled {sampled} of {n} requests at 10 %");
    assert!(
        (62..=138).contains(&sampled),
        "{sampled} of {n} sampled; 10 % sampling should give 100 ± 38"
    );

    // Bad input: sampling 150 on the same object, and a new Telemetry with
    // an unknown provider. Both are errors; Envoy keeps the last good config.
    config.write(
        "tracing.yaml",
        &tracing_telemetry(&collector.addr.to_string(), "150", "zipkin"),
    );
    config.write(
        "unknown.yaml",
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: jaeger, namespace: default}\nspec:\n  tracing:\n  - providers: [{name: jaeger, address: \"127.0.0.1:14268\"}]\n",
    );
    for needles in [
        [
            "Telemetry default/tracing",
            "spec.tracing[0].randomSamplingPercentage",
            "150 is not a percentage",
        ],
        [
            "Telemetry default/jaeger",
            "spec.tracing[0].providers[0]",
            "unknown tracing provider \"jaeger\"",
        ],
    ] {
        wait_for(
            Duration::from_secs(5),
            &format!("a config error mentioning {needles:?}"),
            || async {
                let errors = sextant.admin_json("/debug/config_errors").await;
                errors["diagnostics"]
                    .as_array()?
                    .iter()
                    .find(|d| {
                        let text = d["text"].as_str().unwrap_or_default();
                        d["severity"] == "error" && needles.iter().all(|n| text.contains(n))
                    })
                    .map(|_| ())
            },
        )
        .await;
    }
    let hcm = outbound_hcm(&client).await;
    assert_eq!(hcm["tracing"]["random_sampling"]["value"], 10.0, "{hcm}");
    assert_eq!(client.get("reviews", "/after-bad-input", &[]).await.0, 200);
    assert_eq!(client.updates_rejected().await, 0);

    // A valid edit applies again: OpenTelemetry (OTLP/gRPC) is accepted by Envoy.
    config.remove("unknown.yaml");
    config.write(
        "tracing.yaml",
        &tracing_telemetry(&collector.addr.to_string(), "5", "opentelemetry"),
    );
    wait_for(
        Duration::from_secs(10),
        "the OpenTelemetry tracer in Envoy's config",
        || async {
            let hcm = outbound_hcm(&client).await;
            (hcm["tracing"]["provider"]["name"] == "envoy.tracers.opentelemetry").then_some(())
        },
    )
    .await;
    assert_eq!(client.get("reviews", "/after-otel", &[]).await.0, 200);
    assert_eq!(client.updates_rejected().await, 0);
    let nacks = sextant.nacks_total().await;
    let all_zero = nacks
        .as_object()
        .is_some_and(|m| m.values().all(|v| v == 0));
    assert!(all_zero, "no NACK: {nacks}");
}
