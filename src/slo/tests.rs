use super::*;
use crate::diagnostic::Diagnostic;
use crate::edges::{ClusterSample, Latency, LATENCY_BUCKETS};
use crate::ir::slo::Objective;
use crate::model::{Kind, ObjectKey};
use crate::source::parse::parse_documents;
use crate::store::Store;
use std::time::Duration;

/// Counts with `ok` 2xx and `errors` 5xx responses and latency samples per
/// bucket index.
fn counts(ok: u64, errors: u64, samples: &[(usize, u64)]) -> Counts {
    let mut latency = Latency::default();
    for (bucket, n) in samples {
        latency.buckets[*bucket] += n;
    }
    Counts {
        responses: [0, ok, 0, 0, errors],
        grpc: [0, 0],
        errors,
        latency,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

const LATENCY_250: ObjectiveKind = ObjectiveKind::Latency {
    threshold_ms: 250.0,
};

#[test]
fn slo_availability_burn_rate_is_the_error_share_over_the_allowed_share() {
    // 6 of 20 failed: 70 % good; a 99 % target allows 1 % bad: burn 30.
    let view = objective_view(ObjectiveKind::Availability, 99.0, &counts(14, 6, &[]));
    assert_eq!((view.total, view.bad), (20, 6));
    assert!(close(view.observed_percent.unwrap(), 70.0), "{view:?}");
    assert!(close(view.burn_rate.unwrap(), 30.0), "{view:?}");
    assert!(close(view.budget_remaining.unwrap(), -29.0), "{view:?}");
    assert_eq!(view.state, SloState::Burning);
    assert_eq!(view.threshold_ms, None);

    // 1 of 1000 against 99.9 %: exactly on budget, still ok.
    let on_budget = objective_view(ObjectiveKind::Availability, 99.9, &counts(999, 1, &[]));
    assert!(close(on_budget.burn_rate.unwrap(), 1.0), "{on_budget:?}");
    assert_eq!(on_budget.state, SloState::Ok);
    // Half the allowed errors: half the budget left.
    let half = objective_view(ObjectiveKind::Availability, 98.0, &counts(99, 1, &[]));
    assert!(close(half.burn_rate.unwrap(), 0.5), "{half:?}");
    assert!(close(half.budget_remaining.unwrap(), 0.5), "{half:?}");
    assert_eq!(half.state, SloState::Ok);
}

#[test]
fn slo_latency_counts_samples_in_buckets_at_or_below_the_threshold() {
    // Bucket 1 is (0.5, 1] ms, 7 is (100, 250], 8 is (250, 500], the last is +Inf.
    assert_eq!(LATENCY_BOUNDS_MS[7], 250.0);
    let c = counts(10, 0, &[(1, 5), (7, 3), (8, 1), (LATENCY_BUCKETS - 1, 1)]);
    assert_eq!(measure(LATENCY_250, &c), Measured { good: 8, total: 10 });
    let at_100 = ObjectiveKind::Latency {
        threshold_ms: 100.0,
    };
    assert_eq!(measure(at_100, &c), Measured { good: 5, total: 10 });
    let at_500 = ObjectiveKind::Latency {
        threshold_ms: 500.0,
    };
    assert_eq!(measure(at_500, &c), Measured { good: 9, total: 10 });
    let at_hour = ObjectiveKind::Latency {
        threshold_ms: 3_600_000.0,
    };
    assert_eq!(measure(at_hour, &c), Measured { good: 9, total: 10 });

    // 2 of 10 slow against 90 %: burn 2.
    let view = objective_view(LATENCY_250, 90.0, &c);
    assert_eq!(view.threshold_ms, Some(250.0));
    assert!(close(view.observed_percent.unwrap(), 80.0), "{view:?}");
    assert!(close(view.burn_rate.unwrap(), 2.0), "{view:?}");
    assert_eq!(view.state, SloState::Burning);
    // Errors do not count against latency, nor slow answers against availability.
    let availability = objective_view(ObjectiveKind::Availability, 90.0, &c);
    assert_eq!(availability.burn_rate, Some(0.0));
}

#[test]
fn slo_without_traffic_has_no_burn_rate() {
    for kind in [ObjectiveKind::Availability, LATENCY_250] {
        let view = objective_view(kind, 99.0, &Counts::default());
        assert_eq!(view.state, SloState::NoTraffic);
        assert_eq!(
            (view.total, view.observed_percent, view.burn_rate),
            (0, None, None)
        );
        assert_eq!(view.budget_remaining, None);
    }
    let json = serde_json::to_value(objective_view(LATENCY_250, 99.0, &Counts::default())).unwrap();
    assert_eq!(json["state"], "no-traffic");
    assert_eq!(json["burn_rate"], serde_json::Value::Null);
}

fn cluster(service: &str, subset: &str, ok: u64, errors: u64, slow: u64) -> ClusterSample {
    let mut latency = Latency::default();
    latency.buckets[2] = ok + errors - slow; // (1, 5] ms
    latency.buckets[8] = slow; // (250, 500] ms
    ClusterSample {
        cluster: format!("outbound|9080|{subset}|{service}.default.svc.cluster.local"),
        responses: [0, ok, 0, 0, errors],
        latency: Some(latency),
        ..Default::default()
    }
}

fn policy(service: &str, objectives: Vec<Objective>) -> SloPolicy {
    SloPolicy {
        origin: ObjectKey {
            kind: Kind::ServiceLevelObjective,
            namespace: "default".into(),
            name: service.into(),
        },
        host: format!("{service}.default.svc.cluster.local"),
        service: format!("{service}.default"),
        objectives,
    }
}

#[test]
fn slo_sums_every_edge_to_the_service_over_the_window() {
    let edges = EdgeStore::new(Duration::from_secs(60));
    let start = Instant::now();
    // Two callers, one of them through a subset; ratings is another service.
    edges.record(
        "productpage-v1.default",
        "pp-1",
        &[
            cluster("reviews", "", 8, 2, 1),
            cluster("ratings", "", 5, 5, 0),
        ],
        start,
    );
    edges.record(
        "gateway.default",
        "gw-1",
        &[cluster("reviews", "v2", 9, 1, 3)],
        start + Duration::from_secs(1),
    );
    let objectives = vec![
        Objective {
            kind: ObjectiveKind::Availability,
            target_percent: 99.0,
        },
        Objective {
            kind: LATENCY_250,
            target_percent: 95.0,
        },
    ];
    let slos = [
        policy("reviews", objectives.clone()),
        policy("details", objectives),
    ];
    let view = measure_all(&slos, &edges, start + Duration::from_secs(2));
    assert_eq!(view.window_seconds, 60.0);
    let reviews = &view.slos[0];
    assert_eq!(
        (reviews.namespace.as_str(), reviews.name.as_str()),
        ("default", "reviews")
    );
    assert_eq!(reviews.service, "reviews.default");
    // 20 responses, 3 errors: 85 % good, burn 0.15 / 0.01 = 15.
    let availability = &reviews.objectives[0];
    assert_eq!((availability.total, availability.bad), (20, 3));
    assert!(close(availability.burn_rate.unwrap(), 15.0), "{view:#?}");
    // 4 of 20 slower than 250 ms: 80 % good, burn 0.2 / 0.05 = 4.
    let latency = &reviews.objectives[1];
    assert_eq!((latency.total, latency.bad), (20, 4));
    assert!(close(latency.burn_rate.unwrap(), 4.0), "{view:#?}");
    // details has no edge: no traffic.
    assert!(view.slos[1]
        .objectives
        .iter()
        .all(|o| o.state == SloState::NoTraffic));

    // Once the window has passed, the same objectives see no traffic.
    let later = measure_all(&slos, &edges, start + Duration::from_secs(70));
    assert!(later.slos[0]
        .objectives
        .iter()
        .all(|o| o.state == SloState::NoTraffic && o.total == 0));
}

#[test]
fn slo_collector_renders_gauges_per_objective() {
    let view = view(
        &[policy(
            "reviews",
            vec![Objective {
                kind: ObjectiveKind::Availability,
                target_percent: 99.0,
            }],
        )],
        &[("reviews.default".to_string(), counts(18, 2, &[]))].into(),
        60.0,
    );
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(SloCollector::new(view)));
    let text = crate::metrics::Metrics::new().render_with(&registry);
    let labels = "slo=\"default/reviews\",service=\"reviews.default\",objective=\"availability\"";
    for line in [
        format!("sextant_slo_target_ratio{{{labels}}} 0.99"),
        format!("sextant_slo_observed_ratio{{{labels}}} 0.9"),
        "sextant_slo_window_seconds 60.0".to_string(),
    ] {
        assert!(text.contains(&line), "no {line:?} in:\n{text}");
    }
    let burn = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("sextant_slo_burn_rate{{{labels}}} ")))
        .unwrap_or_else(|| panic!("no burn rate in:\n{text}"));
    assert!(close(burn.parse().unwrap(), 10.0), "{burn}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");
}

/// Parses one file, as the config directory would, into a store.
fn store_of(files: &[(&str, &str)]) -> Store {
    let mut store = Store::new();
    for (name, text) in files {
        store.apply(name, parse_documents(name, text));
    }
    store
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: shop}\nspec:\n  ports: [{name: http, port: 9080}]\n";

fn slo_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: telemetry.sextant.dev/v1alpha1\nkind: ServiceLevelObjective\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n{spec}"
    )
}

/// `(field, message)` of each error about `name`.
fn errors_of(diagnostics: &[Diagnostic], name: &str) -> Vec<(String, String)> {
    diagnostics
        .iter()
        .filter(|d| d.is_error() && d.object.as_ref().is_some_and(|o| o.name == name))
        .map(|d| (d.field.clone(), d.message.clone()))
        .collect()
}

#[test]
fn slo_hosts_resolve_as_edges_name_services() {
    for host in ["reviews", "reviews.shop", "reviews.shop.svc.cluster.local"] {
        let store = store_of(&[
            ("world.yaml", SERVICE),
            (
                "slo.yaml",
                &slo_yaml(
                    "r",
                    &format!("  host: {host}\n  availability: {{target: 99.9}}\n  latency: {{threshold: 250ms, target: 99}}\n"),
                ),
            ),
        ]);
        let (ir, diagnostics) = crate::ir::resolve(&store);
        assert!(diagnostics.is_empty(), "{host}: {diagnostics:?}");
        assert_eq!(ir.slos.len(), 1);
        let slo = &ir.slos[0];
        assert_eq!(slo.service, "reviews.shop", "{host}");
        assert_eq!(slo.host, "reviews.shop.svc.cluster.local");
        assert_eq!(
            slo.objectives,
            vec![
                Objective {
                    kind: ObjectiveKind::Availability,
                    target_percent: 99.9
                },
                Objective {
                    kind: LATENCY_250,
                    target_percent: 99.0
                },
            ]
        );
    }
    // A host that names no service: a warning; the objective is kept.
    let store = store_of(&[
        ("world.yaml", SERVICE),
        (
            "slo.yaml",
            &slo_yaml("d", "  host: details\n  availability: {target: 99}\n"),
        ),
    ]);
    let (ir, diagnostics) = crate::ir::resolve(&store);
    assert_eq!(ir.slos.len(), 1);
    let warning = diagnostics
        .iter()
        .find(|d| d.field == "spec.host")
        .unwrap_or_else(|| panic!("{diagnostics:?}"));
    assert!(!warning.is_error());
    assert!(
        warning.message.contains("details.shop.svc.cluster.local"),
        "{warning}"
    );
}

/// A spec, what is wrong with it, and the (field, part of the message) of
/// each error it must give.
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

#[test]
fn slo_validation_names_each_bad_field() {
    let cases: &[Case] = &[
        (
            "  host: reviews\n  latency: {threshold: 300ms, target: 99}\n",
            "not a bound",
            &[(
                "spec.latency.threshold",
                "\"300ms\" is not a bucket bound of Envoy's upstream_rq_time histogram",
            )],
        ),
        (
            "  host: reviews\n  latency: {threshold: soon, target: 99}\n",
            "not a duration",
            &[("spec.latency.threshold", "\"soon\" is not a duration")],
        ),
        (
            "  host: reviews\n  availability: {target: 120}\n  latency: {threshold: 1s, target: 0}\n",
            "targets",
            &[
                ("spec.availability.target", "120 is not a percentage strictly between 0 and 100"),
                ("spec.latency.target", "0 is not a percentage strictly between 0 and 100"),
            ],
        ),
        (
            "  host: reviews\n  availability: {target: 100}\n",
            "no budget",
            &[("spec.availability.target", "it would leave no error budget")],
        ),
        (
            "  host: \" \"\n  availability: {target: 99}\n",
            "empty host",
            &[("spec.host", "name the service")],
        ),
        (
            "  host: \"evil\\\"} 1\"\n  availability: {target: 99}\n",
            "not a host name",
            &[("spec.host", "is not a host name")],
        ),
        (
            "  host: reviews\n",
            "no objective",
            &[("spec", "set at least one objective")],
        ),
        (
            "  host: reviews\n  latency: {threshold: 250ms, target: 99, percentile: 99}\n",
            "unknown field",
            &[("spec.latency.percentile", "unknown or unsupported field")],
        ),
        (
            "  host: reviews\n  availability: {target: \"99.9%\"}\n",
            "not a number",
            &[("spec.availability.target", "invalid type")],
        ),
    ];
    for (spec, what, expected) in cases {
        let parsed = parse_documents("slo.yaml", &slo_yaml("bad", spec));
        assert!(parsed.objects.is_empty(), "{what}: accepted");
        assert_eq!(parsed.rejected.len(), 1, "{what}");
        let errors = errors_of(&parsed.diagnostics, "bad");
        assert_eq!(errors.len(), expected.len(), "{what}: {errors:?}");
        for ((field, message), (want_field, want_message)) in errors.iter().zip(*expected) {
            assert_eq!(field, want_field, "{what}: {message}");
            assert!(
                message.contains(want_message),
                "{what}: {message:?} lacks {want_message:?}"
            );
        }
    }
    // The threshold error lists the bounds that work.
    let parsed = parse_documents(
        "slo.yaml",
        &slo_yaml(
            "bad",
            "  host: reviews\n  latency: {threshold: 300ms, target: 99}\n",
        ),
    );
    let message = &errors_of(&parsed.diagnostics, "bad")[0].1;
    assert!(
        message.contains("0.5ms, 1ms, 5ms") && message.contains("250ms, 500ms, 1s, 2.5s"),
        "{message}"
    );
    assert!(message.ends_with("30m, 1h"), "{message}");
    // Every bound is accepted, in any spelling of the same duration.
    for text in ["0.5ms", "500us", "2.5s", "2500ms", "1m", "1h"] {
        assert!(
            crate::ir::slo::threshold_ms(text).is_ok(),
            "{text} is a bound"
        );
    }
    // Istio's telemetry group has no such kind.
    let parsed = parse_documents(
        "slo.yaml",
        "apiVersion: telemetry.istio.io/v1\nkind: ServiceLevelObjective\nmetadata: {name: x}\nspec: {host: reviews, availability: {target: 99}}\n",
    );
    assert!(parsed.objects.is_empty());
    assert!(
        parsed.diagnostics[0]
            .message
            .contains("use telemetry.sextant.dev/v1alpha1"),
        "{:?}",
        parsed.diagnostics
    );
    assert!(
        !parsed.diagnostics[0]
            .message
            .contains("telemetry.istio.io/v1,"),
        "{:?}",
        parsed.diagnostics
    );
}

#[test]
fn slo_an_invalid_edit_keeps_the_last_good_version() {
    let good = slo_yaml(
        "r",
        "  host: reviews\n  latency: {threshold: 250ms, target: 99}\n",
    );
    let mut store = store_of(&[("world.yaml", SERVICE), ("slo.yaml", &good)]);
    let bad = slo_yaml(
        "r",
        "  host: reviews\n  latency: {threshold: 300ms, target: 120}\n",
    );
    store.apply("slo.yaml", parse_documents("slo.yaml", &bad));
    let (ir, diagnostics) = crate::ir::resolve(&store);
    assert_eq!(ir.slos.len(), 1, "the last good version stays");
    assert_eq!(
        ir.slos[0].objectives,
        vec![Objective {
            kind: LATENCY_250,
            target_percent: 99.0
        }]
    );
    let fields: Vec<_> = errors_of(&diagnostics, "r")
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert_eq!(fields, ["spec.latency.threshold", "spec.latency.target"]);
    // Nothing else changed: the service's cluster is still there.
    assert!(ir
        .clusters
        .contains_key("outbound|9080||reviews.shop.svc.cluster.local"));
}

#[test]
fn slo_ratios_on_metrics_carry_no_binary_noise() {
    assert_eq!(collector::ratio_of(99.9).to_string(), "0.999");
    assert_eq!(collector::ratio_of(99.99999999).to_string(), "0.9999999999");
    assert_eq!(collector::ratio_of(75.0).to_string(), "0.75");
}
