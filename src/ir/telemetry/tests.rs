use super::*;
use crate::model::Kind;
use crate::source::parse::parse_documents;

fn key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::Telemetry,
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn policy(
    namespace: &str,
    name: &str,
    selector: Option<&[(&str, &str)]>,
    log_path: Option<&str>,
    sampling: Option<f64>,
) -> TelemetryPolicy {
    TelemetryPolicy {
        origin: key(namespace, name),
        selector: selector.map(|s| {
            s.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
        created: String::new(),
        access_logs: log_path.map(|p| {
            vec![AccessLogSink {
                path: p.into(),
                filter: None,
            }]
        }),
        tracing: sampling.map(|s| TracingSettings {
            provider: TracingProvider {
                kind: TracerKind::Zipkin,
                host: "127.0.0.1".into(),
                port: 9411,
            },
            sampling_percent: s,
            disable_span_reporting: false,
            custom_tags: BTreeMap::new(),
        }),
        metrics: None,
    }
}

#[test]
fn filter_expressions_translate_to_status_comparisons() {
    let ok = |e: &str| parse_filter(e).unwrap();
    assert_eq!(
        ok("response.code >= 400"),
        StatusFilter {
            op: Comparison::Ge,
            code: 400
        }
    );
    assert_eq!(
        ok("response.code>499"),
        StatusFilter {
            op: Comparison::Ge,
            code: 500
        }
    );
    assert_eq!(
        ok(" response.code == 503 "),
        StatusFilter {
            op: Comparison::Eq,
            code: 503
        }
    );
    assert_eq!(
        ok("response.code < 300"),
        StatusFilter {
            op: Comparison::Le,
            code: 299
        }
    );
    for bad in [
        "response.code != 200",
        "response.code >= 400 && request.method == 'GET'",
        "response.duration > 1000",
        "response.code >= 4000",
        "response.code >= x",
        "response.code < 0",
        "",
    ] {
        assert!(parse_filter(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn the_most_specific_telemetry_sets_each_part() {
    let mut all = vec![
        policy("istio-system", "mesh", None, Some("/mesh.log"), Some(1.0)),
        policy("shop", "ns", None, Some("/ns.log"), None),
        policy("shop", "cart", Some(&[("app", "cart")]), None, Some(50.0)),
    ];
    sort(&mut all);
    let labels: BTreeMap<String, String> = [("app".to_string(), "cart".to_string())].into();
    let cart = selecting(&all, "shop", &labels).map(|t| t.origin.clone());
    assert_eq!(cart, Some(key("shop", "cart")));
    let t = for_proxy(&all, "shop", cart.as_ref(), "istio-system");
    // Workload sets tracing, namespace sets logs.
    assert_eq!(t.access_logs[0].path, "/ns.log");
    assert_eq!(t.tracing.unwrap().sampling_percent, 50.0);
    // Another workload of the namespace: namespace logs, mesh tracing.
    let t = for_proxy(&all, "shop", None, "istio-system");
    assert_eq!(t.access_logs[0].path, "/ns.log");
    assert_eq!(t.tracing.unwrap().sampling_percent, 1.0);
    // Another namespace: the mesh-wide one.
    let t = for_proxy(&all, "web", None, "istio-system");
    assert_eq!(t.access_logs[0].path, "/mesh.log");
    // A selector of another namespace does not apply.
    assert_eq!(selecting(&all, "web", &labels), None);
    // Nothing configured: no access logs, no tracer.
    assert_eq!(
        for_proxy(&[], "web", None, "istio-system"),
        ProxyTelemetry::default()
    );
}

fn errors(yaml: &str) -> Vec<String> {
    let parsed = parse_documents("t.yaml", yaml);
    parsed
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect()
}

#[test]
fn bad_telemetries_are_errors_naming_the_field() {
    let doc = |spec: &str| {
        format!(
            "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: t, namespace: shop}}\nspec:\n{spec}"
        )
    };
    let cases = [
        (
            "  tracing: [{providers: [{name: zipkin, address: '127.0.0.1:9411'}], randomSamplingPercentage: 150}]\n",
            "spec.tracing[0].randomSamplingPercentage",
            "150 is not a percentage",
        ),
        (
            "  tracing: [{providers: [{name: jaeger, address: 'j:1'}]}]\n",
            "spec.tracing[0].providers[0]",
            "unknown tracing provider \"jaeger\"",
        ),
        (
            "  accessLogging: [{providers: [{name: stackdriver}]}]\n",
            "spec.accessLogging[0].providers[0]",
            "unknown access log provider \"stackdriver\"",
        ),
        (
            "  tracing: [{providers: [{name: zipkin}]}]\n",
            "spec.tracing[0].providers[0]",
            "needs `address`",
        ),
        (
            "  accessLogging: [{providers: [{name: envoy}], filter: {expression: 'response.code != 200'}}]\n",
            "spec.accessLogging[0].filter.expression",
            "is not supported",
        ),
        (
            "  metrics: [{providers: [{name: statsd}]}]\n",
            "spec.metrics[0].providers[0]",
            "unknown metrics provider \"statsd\"",
        ),
        (
            "  metrics: [{overrides: [{match: {metric: REQUEST_COUNTS}, disabled: true}]}]\n",
            "spec.metrics[0].overrides[0].match.metric",
            "unknown metric \"REQUEST_COUNTS\"",
        ),
        (
            "  metrics: [{overrides: [{match: {mode: SERVERS}, disabled: true}]}]\n",
            "spec.metrics[0].overrides[0].match.mode",
            "unknown mode \"SERVERS\"",
        ),
        (
            "  metrics: [{overrides: [{match: {customMetric: my_metric}, disabled: true}]}]\n",
            "spec.metrics[0].overrides[0].match.customMetric",
            "no custom metrics",
        ),
        (
            "  metrics: [{overrides: [{tagOverrides: {request_host: {operation: REMOVE}}}]}]\n",
            "spec.metrics[0].overrides[0].tagOverrides",
            "edge labels are fixed",
        ),
        (
            "  metrics: [{reportingInterval: 15s}]\n",
            "spec.metrics[0].reportingInterval",
            "--stats-flush-interval-ms",
        ),
        (
            "  metrics: [{overrides: [{match: {metric: REQUEST_COUNTS}, disabled: true}, {nope: 1}]}]\n",
            "spec.metrics[0].overrides[1].nope",
            "unknown or unsupported field",
        ),
        (
            "  tracing: [{providers: [{name: zipkin, address: 'z:9411'}], customTags: {a: {}}}]\n",
            "spec.tracing[0].customTags.a",
            "exactly one of",
        ),
    ];
    for (spec, field, reason) in cases {
        let found = errors(&doc(spec));
        assert!(
            found
                .iter()
                .any(|e| e.contains("Telemetry shop/t") && e.contains(field) && e.contains(reason)),
            "{spec}: expected an error on {field} ({reason}), got {found:?}"
        );
    }
    // Our group and Istio's v1alpha1 load; a clean one has no diagnostics.
    for api in [
        "telemetry.sextant.dev/v1alpha1",
        "telemetry.istio.io/v1alpha1",
    ] {
        let yaml = format!("apiVersion: {api}\nkind: Telemetry\nmetadata: {{name: t}}\nspec:\n  accessLogging: [{{providers: [{{name: envoy}}]}}]\n");
        let parsed = parse_documents("t.yaml", &yaml);
        assert!(
            parsed.diagnostics.is_empty(),
            "{api}: {:?}",
            parsed.diagnostics
        );
        assert_eq!(parsed.objects.len(), 1);
    }
}

#[test]
fn a_selecting_telemetry_splits_the_proxy_class() {
    let ir = crate::ir::Ir {
        telemetries: vec![policy(
            "shop",
            "cart",
            Some(&[("app", "cart")]),
            Some("/cart.log"),
            None,
        )],
        ..Default::default()
    };
    let labels =
        |app: &str| -> BTreeMap<String, String> { [("app".to_string(), app.to_string())].into() };
    let class =
        |app: &str| crate::proxy::ProxyClass::of(&ir, "shop", &labels(app), "istio-system", false);
    assert_ne!(class("cart"), class("web"), "cart gets its own access log");
    assert_eq!(
        class("web"),
        class("api"),
        "unselected workloads share a class"
    );
    assert_eq!(class("cart").telemetry, Some(key("shop", "cart")));
}

#[test]
fn metrics_overrides_turn_off_what_the_client_side_reports() {
    let parsed = parse_documents(
        "t.yaml",
        "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh, namespace: istio-system}
spec:
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - {match: {metric: REQUEST_DURATION, mode: CLIENT}, disabled: true}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  metrics:
  - overrides:
    - {disabled: true}
    - {match: {metric: REQUEST_COUNT}, disabled: false}
    - {match: {metric: REQUEST_SIZE, mode: SERVER}, disabled: true}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: server-only, namespace: web}
spec:
  metrics:
  - overrides:
    - {match: {mode: SERVER}, disabled: true}
",
    );
    assert!(
        parsed.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        parsed.diagnostics
    );
    // What changes nothing says so.
    let warnings: Vec<String> = parsed.diagnostics.iter().map(ToString::to_string).collect();
    for field in [
        "spec.metrics[0].overrides[2].match.metric",
        "spec.metrics[0].overrides[0].match.mode",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(field)),
            "no warning on {field}: {warnings:?}"
        );
    }
    let mut all: Vec<TelemetryPolicy> = parsed
        .objects
        .iter()
        .filter_map(|object| match &**object {
            crate::model::Object::Telemetry(t) => Some(resolve(&object.key(), t)),
            _ => None,
        })
        .collect();
    sort(&mut all);
    let labels =
        |app: &str| -> BTreeMap<String, String> { [("app".to_string(), app.to_string())].into() };
    let disabled = |namespace: &str, app: &str| {
        metrics_for_proxy(&all, namespace, &labels(app), "istio-system").disabled
    };
    // Mesh-wide: no latency histograms.
    assert_eq!(
        disabled("shop", "web"),
        BTreeSet::from([EdgeMetric::RequestDuration])
    );
    // The cart workload: everything off, then requests back on.
    assert_eq!(
        disabled("shop", "cart"),
        BTreeSet::from([EdgeMetric::RequestDuration, EdgeMetric::ActiveConnections])
    );
    // A SERVER-only override is the namespace's `metrics`: nothing is off.
    assert_eq!(disabled("web", "web"), BTreeSet::new());
    // Nothing configured: everything counts.
    assert_eq!(
        metrics_for_proxy(&[], "shop", &labels("cart"), "istio-system"),
        MetricsSettings::default()
    );
}
