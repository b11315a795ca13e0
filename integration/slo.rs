//! End to end: ServiceLevelObjectives measured on real traffic. A client
//! sidecar (`productpage-v1`, 127.0.9.21, stats flushed every 500 ms to
//! Sextant's metrics service) sends `SENT` requests to `reviews`
//! (127.0.9.22): `FAILED` answer 500 and `SLOW` are held 300 ms by the demo
//! upstream, above the objective's 250 ms threshold. `ratings` (127.0.9.23)
//! gets no traffic. Then `/debug/slos` and `/metrics` must show exactly the
//! availability, latency compliance and burn rates those known counts give;
//! an invalid edit of the objective (threshold 300ms, target 120) must be
//! listed with the fields it breaks while the last good version stays
//! measured; and Debian's headless `chromium` must show the SLO panel of
//! `/ui` with the burn rates, the burning one highlighted.
//!
//! In Kubernetes mode (the fake API server of `kube_mode.rs`), a valid and
//! an invalid ServiceLevelObjective get `Accepted` conditions (the invalid
//! one naming its field) and only the valid one is measured.

use crate::harness;

use harness::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CLIENT_IP: &str = "127.0.9.21";
const REVIEWS_IP: &str = "127.0.9.22";
const RATINGS_IP: &str = "127.0.9.23";
const FLUSH_MS: u64 = 500;
/// Long enough that nothing leaves the window during the test.
const WINDOW_SECONDS: u64 = 600;

/// Requests to reviews; the first `FAILED` answer 500, the next `SLOW`
/// answer 200 after `SLOW_DELAY_MS`, the rest at once.
const SENT: u64 = 20;
const FAILED: u64 = 5;
const SLOW: u64 = 4;
const SLOW_DELAY_MS: u64 = 300;

const AVAILABILITY_TARGET: f64 = 99.0;
const THRESHOLD_MS: f64 = 250.0;
const LATENCY_TARGET: f64 = 75.0;
const RATINGS_TARGET: f64 = 99.9;

fn slos_yaml(reviews_spec: &str) -> String {
    format!(
        "apiVersion: telemetry.sextant.dev/v1alpha1\nkind: ServiceLevelObjective\nmetadata: {{name: reviews, namespace: default}}\nspec:\n{reviews_spec}---\napiVersion: telemetry.sextant.dev/v1alpha1\nkind: ServiceLevelObjective\nmetadata: {{name: ratings, namespace: default}}\nspec:\n  host: ratings.default.svc.cluster.local\n  availability: {{target: {RATINGS_TARGET}}}\n"
    )
}

fn good_reviews_spec() -> String {
    format!("  host: reviews\n  availability: {{target: {AVAILABILITY_TARGET}}}\n  latency: {{threshold: {THRESHOLD_MS}ms, target: {LATENCY_TARGET}}}\n")
}

/// Objective `objective` of the SLO `default/<name>` on `/debug/slos`.
fn objective(slos: &Value, name: &str, objective: &str) -> Option<Value> {
    let slo = slos["slos"]
        .as_array()?
        .iter()
        .find(|s| s["namespace"] == "default" && s["name"] == name)?;
    slo["objectives"]
        .as_array()?
        .iter()
        .find(|o| o["objective"] == objective)
        .cloned()
}

/// What an objective must show after `bad` of `total` events missed it.
struct Expected {
    target: f64,
    total: u64,
    bad: u64,
}

impl Expected {
    fn observed_percent(&self) -> f64 {
        100.0 * (self.total - self.bad) as f64 / self.total as f64
    }

    fn burn_rate(&self) -> f64 {
        (self.bad as f64 / self.total as f64) / (1.0 - self.target / 100.0)
    }

    fn state(&self) -> &'static str {
        if self.burn_rate() > 1.0 {
            "burning"
        } else {
            "ok"
        }
    }

    fn check(&self, shown: &Value, all: &Value) {
        let close = |a: &Value, b: f64| a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9);
        assert!(close(&shown["target_percent"], self.target), "{all:#}");
        assert_eq!(shown["total"], self.total, "{all:#}");
        assert_eq!(shown["bad"], self.bad, "{all:#}");
        assert!(
            close(&shown["observed_percent"], self.observed_percent()),
            "observed {} % expected: {all:#}",
            self.observed_percent()
        );
        assert!(
            close(&shown["burn_rate"], self.burn_rate()),
            "burn rate {} expected: {all:#}",
            self.burn_rate()
        );
        assert!(
            close(&shown["budget_remaining"], 1.0 - self.burn_rate()),
            "{all:#}"
        );
        assert_eq!(shown["state"], self.state(), "{all:#}");
    }
}

/// `sextant serve` on `dir` with a `WINDOW_SECONDS` edge window.
async fn start_sextant(work: &Path, dir: &Path) -> Sextant {
    let xds: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sextant"));
    command
        .args(["serve", "--config-dir"])
        .arg(dir)
        .args(["--xds-address", &xds.to_string()])
        .args(["--admin-address", &admin.to_string()])
        .args(["--edge-window-seconds", &WINDOW_SECONDS.to_string()]);
    Sextant::spawn(work, command, xds, admin, "sextant").await
}

/// The value of the `/metrics` sample `name{labels}`, if present.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slos_show_availability_latency_and_burn_rate_of_real_traffic() {
    let work = tempfile::tempdir().unwrap();
    let (_reviews, _ratings, config) = reviews_and_ratings(work.path(), REVIEWS_IP, RATINGS_IP);
    config.write("slos.yaml", &slos_yaml(&good_reviews_spec()));
    let sextant = start_sextant(work.path(), config.path()).await;
    let errors = sextant.admin_json("/debug/config_errors").await;
    assert_eq!(errors["diagnostics"], serde_json::json!([]), "{errors:#}");

    // Before any traffic: both objectives are shown, without traffic.
    let slos = sextant.admin_json("/debug/slos").await;
    assert_eq!(slos["window_seconds"], WINDOW_SECONDS as f64, "{slos:#}");
    for (name, kind) in [
        ("reviews", "availability"),
        ("reviews", "latency"),
        ("ratings", "availability"),
    ] {
        let shown = objective(&slos, name, kind).unwrap_or_else(|| panic!("{slos:#}"));
        assert_eq!(shown["state"], "no-traffic", "{slos:#}");
        assert_eq!(shown["burn_rate"], Value::Null, "{slos:#}");
    }

    let client = start_productpage(work.path(), &sextant, CLIENT_IP, FLUSH_MS).await;
    let delay = SLOW_DELAY_MS.to_string();
    for i in 0..SENT {
        let (headers, wanted): (Vec<(&str, &str)>, u16) = if i < FAILED {
            (vec![("x-demo-status", "500")], 500)
        } else if i < FAILED + SLOW {
            (vec![("x-demo-delay-ms", delay.as_str())], 200)
        } else {
            (vec![], 200)
        };
        let (status, answer, body) = client
            .request("GET", "reviews", &format!("/r/{i}"), &headers)
            .await;
        assert_eq!(status, wanted, "{body}");
        assert_eq!(answer["x-upstream"], "reviews-v1", "{body}");
    }

    // Wait until every response arrived, then for three more flushes: a
    // count that grows further (totals read as deltas) fails below.
    wait_for(
        Duration::from_secs(20),
        "every request to reviews on /debug/slos",
        || async {
            let slos = sextant.admin_json("/debug/slos").await;
            let availability = objective(&slos, "reviews", "availability")?;
            let latency = objective(&slos, "reviews", "latency")?;
            (availability["total"].as_u64()? >= SENT && latency["total"].as_u64()? >= SENT)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3 * FLUSH_MS)).await;
    let slos = sextant.admin_json("/debug/slos").await;
    eprintln!("/debug/slos: {slos:#}");

    let availability = Expected {
        target: AVAILABILITY_TARGET,
        total: SENT,
        bad: FAILED,
    };
    let latency = Expected {
        target: LATENCY_TARGET,
        total: SENT,
        bad: SLOW,
    };
    // The scenario has one objective of each state.
    assert_eq!((availability.state(), latency.state()), ("burning", "ok"));
    availability.check(&objective(&slos, "reviews", "availability").unwrap(), &slos);
    let shown_latency = objective(&slos, "reviews", "latency").unwrap();
    latency.check(&shown_latency, &slos);
    assert_eq!(shown_latency["threshold_ms"], THRESHOLD_MS, "{slos:#}");
    let reviews = slos["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "reviews")
        .unwrap();
    assert_eq!(reviews["service"], "reviews.default");
    assert_eq!(reviews["window_seconds"], WINDOW_SECONDS as f64);
    let ratings = objective(&slos, "ratings", "availability").unwrap();
    assert_eq!(ratings["state"], "no-traffic", "{slos:#}");
    assert_eq!(ratings["total"], 0, "{slos:#}");

    // The same on /metrics.
    let (status, text) = sextant.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let labels = |slo: &str, service: &str, objective: &str| {
        format!("slo=\"default/{slo}\",service=\"{service}\",objective=\"{objective}\"")
    };
    for (objective, expected) in [("availability", &availability), ("latency", &latency)] {
        let labels = labels("reviews", "reviews.default", objective);
        let burn = sample(&text, "sextant_slo_burn_rate", &labels)
            .unwrap_or_else(|| panic!("no burn rate of {labels}:\n{text}"));
        assert!((burn - expected.burn_rate()).abs() < 1e-9, "{burn}");
        let observed = sample(&text, "sextant_slo_observed_ratio", &labels).unwrap();
        assert!(
            (observed - expected.observed_percent() / 100.0).abs() < 1e-9,
            "{observed}"
        );
        let target = sample(&text, "sextant_slo_target_ratio", &labels).unwrap();
        assert!((target - expected.target / 100.0).abs() < 1e-9, "{target}");
    }
    let ratings_labels = labels("ratings", "ratings.default", "availability");
    assert!(sample(&text, "sextant_slo_target_ratio", &ratings_labels).is_some());
    assert_eq!(
        sample(&text, "sextant_slo_burn_rate", &ratings_labels),
        None,
        "no traffic, no burn rate:\n{text}"
    );

    // An invalid edit: both errors named, the last good version measured.
    config.write(
        "slos.yaml",
        &slos_yaml("  host: reviews\n  availability: {target: 120}\n  latency: {threshold: 300ms, target: 99}\n"),
    );
    let errors = wait_for(
        Duration::from_secs(10),
        "the invalid ServiceLevelObjective on /debug/config_errors",
        || async {
            let errors = sextant.admin_json("/debug/config_errors").await;
            (errors["errors"] == 2).then_some(errors)
        },
    )
    .await;
    let texts: Vec<&str> = errors["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["text"].as_str().unwrap())
        .collect();
    for (field, why) in [
        (
            "spec.availability.target",
            "120 is not a percentage strictly between 0 and 100",
        ),
        ("spec.latency.threshold", "\"300ms\" is not a bucket bound"),
    ] {
        let wanted = format!("ServiceLevelObjective default/reviews: {field}: {why}");
        assert!(
            texts.iter().any(|t| t.contains(&wanted)),
            "no {wanted:?} in {texts:#?}"
        );
    }
    let threshold_error = texts.iter().find(|t| t.contains("300ms")).unwrap();
    assert!(
        threshold_error.contains("250ms, 500ms"),
        "{threshold_error}"
    );
    let slos = sextant.admin_json("/debug/slos").await;
    availability.check(&objective(&slos, "reviews", "availability").unwrap(), &slos);
    latency.check(&objective(&slos, "reviews", "latency").unwrap(), &slos);
    // Nothing else changed: the sidecar rejected nothing and is in sync.
    assert_eq!(client.updates_rejected().await, 0);
    let syncz = sextant.admin_json("/debug/syncz").await;
    assert_eq!(syncz["proxies"][0]["RDS"], "SYNCED", "{syncz:#}");

    // The /ui page in a real browser: the SLO panel with its burn rates.
    let url = format!("http://{}/ui", sextant.admin);
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium(profile.path(), &url, &["--dump-dom".to_string()]).await;
    for (objective, expected) in [("availability", &availability), ("latency", &latency)] {
        let row = format!(
            "<tr class=\"{}\" data-slo=\"default/reviews\" data-objective=\"{objective}\"><td>default/reviews</td><td>reviews.default</td>",
            expected.state()
        );
        assert!(dom.contains(&row), "no {row:?} in the DOM:\n{dom}");
        let burn_class = if expected.state() == "burning" {
            "num burn bad"
        } else {
            "num burn"
        };
        let burn = format!(
            "<td class=\"{burn_class}\">{:.2}</td>",
            expected.burn_rate()
        );
        assert!(dom.contains(&burn), "no {burn:?} in the DOM:\n{dom}");
        let counts = format!(
            "<td class=\"num\">{} / {}</td>",
            expected.bad, expected.total
        );
        assert!(dom.contains(&counts), "no {counts:?} in the DOM:\n{dom}");
    }
    assert!(
        dom.contains(&format!("<td>latency ≤ {THRESHOLD_MS} ms</td>")),
        "no latency objective in the DOM:\n{dom}"
    );
    assert!(
        dom.contains("<tr class=\"no-traffic\" data-slo=\"default/ratings\" data-objective=\"availability\">")
            && dom.contains("<td class=\"state no-traffic\">no traffic</td>"),
        "ratings is not shown without traffic:\n{dom}"
    );
    assert!(
        dom.contains(&format!(
            "<small id=\"slo-window\">(last {WINDOW_SECONDS} s)</small>"
        )),
        "no window in the DOM:\n{dom}"
    );
    assert!(
        dom.contains("ServiceLevelObjective default/reviews: spec.latency.threshold"),
        "the invalid SLO is not in the error panel:\n{dom}"
    );

    screenshot(profile.path(), &url, "ui-slo.png", 1280, 1400).await;
}

/// The `type` → condition map of the last status patch of the
/// ServiceLevelObjective `name`, if any.
fn slo_conditions(fake: &crate::fake_kube::FakeKube, name: &str) -> Option<Value> {
    let suffix = format!("/servicelevelobjectives/{name}/status");
    let patches = fake.patches();
    let (_, body) = patches
        .iter()
        .rev()
        .find(|(path, _)| path.ends_with(&suffix))?;
    let by_type: serde_json::Map<String, Value> = body["status"]["conditions"]
        .as_array()?
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap_or_default().to_string(),
                c.clone(),
            )
        })
        .collect();
    Some(Value::Object(by_type))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slo_objects_in_a_cluster_are_measured_and_get_status_conditions() {
    let work = tempfile::tempdir().unwrap();
    let fake = crate::fake_kube::FakeKube::start().await;
    fake.apply(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]},
    }));
    let slo = |name: &str, latency: Value| {
        serde_json::json!({
            "apiVersion": "telemetry.sextant.dev/v1alpha1", "kind": "ServiceLevelObjective",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"host": "reviews", "latency": latency},
        })
    };
    fake.apply(slo(
        "fast",
        serde_json::json!({"threshold": "100ms", "target": 95}),
    ));
    fake.apply(slo(
        "odd",
        serde_json::json!({"threshold": "300ms", "target": 95}),
    ));
    let sextant =
        crate::kube_mode::start_sextant(work.path(), &fake, "sextant", &["--no-mtls"]).await;

    let good = wait_for(
        Duration::from_secs(10),
        "status conditions on ServiceLevelObjective default/fast",
        || async { slo_conditions(&fake, "fast") },
    )
    .await;
    assert_eq!(good["Accepted"]["status"], "True", "{good:#}");
    let bad = wait_for(
        Duration::from_secs(10),
        "status conditions on ServiceLevelObjective default/odd",
        || async { slo_conditions(&fake, "odd") },
    )
    .await;
    assert_eq!(bad["Accepted"]["status"], "False", "{bad:#}");
    assert_eq!(bad["Accepted"]["reason"], "Invalid", "{bad:#}");
    let message = bad["Accepted"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("spec.latency.threshold: \"300ms\" is not a bucket bound"),
        "{message}"
    );

    // Only the valid one is measured (no traffic yet).
    let slos = sextant.admin_json("/debug/slos").await;
    let names: Vec<&str> = slos["slos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fast"], "{slos:#}");
    assert_eq!(slos["slos"][0]["service"], "reviews.default");
    assert_eq!(
        objective(&slos, "fast", "latency").unwrap()["state"],
        "no-traffic"
    );
}
