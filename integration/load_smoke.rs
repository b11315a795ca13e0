//! Smoke run of `sextant-load` at a tiny size (seconds): a real `sextant
//! serve` child, simulated proxies over SotW and delta, and the naive
//! baseline. It checks what a user of the report relies on, never timings:
//! every proxy synced every type, an endpoint change cost EDS bytes only,
//! the baseline re-sends everything, and the JSON has its fields.

use serde_json::Value;
use std::process::Command;

const PROXIES: u64 = 5;

/// Runs `sextant-load` with `extra` flags on 5 proxies and 20 services;
/// returns the parsed JSON report.
fn load(extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_sextant-load"))
        .args(["--sextant-bin", env!("CARGO_BIN_EXE_sextant")])
        .args([
            "--proxies",
            &PROXIES.to_string(),
            "--services",
            "20",
            "--namespaces",
            "3",
        ])
        .args([
            "--rolling-endpoints",
            "12",
            "--rolling-seconds",
            "1",
            "--rolling-steps",
            "3",
        ])
        .args(["--quiet-ms", "300", "--timeout-seconds", "60"])
        .arg("--work-dir")
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .args(extra)
        .output()
        .expect("running sextant-load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "sextant-load failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("cold sync, s"),
        "no table printed:\n{stdout}"
    );
    let text = std::fs::read_to_string(&json).expect("the JSON report");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON ({e}):\n{text}"))
}

fn scenario<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name} in {run:#}"))
}

fn bytes(value: &Value, t: &str) -> u64 {
    value["bytes"][t]
        .as_u64()
        .unwrap_or_else(|| panic!("no {t} bytes in {value:#}"))
}

/// What holds for any run of Sextant itself.
fn check_sextant_run(run: &Value) {
    assert_eq!(run["mode"], "shared");
    assert_eq!(run["proxies"], PROXIES);
    assert_eq!(run["services"], 20);
    let cold = &run["cold_sync"];
    assert_eq!(cold["proxies_synced"], PROXIES, "{cold:#}");
    assert!(cold["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(cold["per_proxy"]["samples"], PROXIES);
    for t in ["cds", "eds", "lds", "rds"] {
        assert!(
            bytes(cold, t) > 0,
            "cold sync received no {t} bytes: {cold:#}"
        );
    }

    let endpoint = scenario(run, "endpoint_change");
    // One changed ClusterLoadAssignment, seen by every proxy.
    assert_eq!(endpoint["convergence"]["samples"], PROXIES, "{endpoint:#}");
    assert!(bytes(endpoint, "eds") > 0, "{endpoint:#}");
    for t in ["cds", "lds", "rds"] {
        assert_eq!(
            bytes(endpoint, t),
            0,
            "an endpoint change sent {t} bytes: {endpoint:#}"
        );
    }

    let weight = scenario(run, "weight_change");
    assert_eq!(weight["convergence"]["samples"], PROXIES, "{weight:#}");
    assert!(bytes(weight, "rds") > 0, "{weight:#}");
    assert_eq!(bytes(weight, "cds"), 0, "{weight:#}");

    let rolling = scenario(run, "rolling_update");
    // 12 endpoints of 3-endpoint services: 4 services, each a sample per proxy (at least).
    assert!(
        rolling["convergence"]["samples"].as_u64().unwrap() >= 4 * PROXIES,
        "{rolling:#}"
    );
    assert!(bytes(rolling, "eds") > 0, "{rolling:#}");
    for field in ["p50_ms", "p99_ms", "max_ms"] {
        assert!(
            rolling["convergence"][field].as_f64().is_some(),
            "{rolling:#}"
        );
    }

    let server = &run["server"];
    for field in [
        "cpu_seconds",
        "peak_rss_bytes",
        "rss_idle_bytes",
        "rss_synced_bytes",
        "rss_per_stream_bytes",
    ] {
        assert!(
            server[field].is_number(),
            "server.{field} missing: {server:#}"
        );
    }
    assert!(
        server["peak_rss_bytes"].as_u64().unwrap() >= server["rss_idle_bytes"].as_u64().unwrap()
    );
}

#[test]
fn sotw_with_naive_baseline() {
    let report = load(&["--protocol", "sotw", "--baseline"]);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{report:#}");
    assert_eq!(runs[0]["protocol"], "sotw");
    check_sextant_run(&runs[0]);

    // The baseline did converge, and re-sent clusters and listeners for an
    // endpoint change: the waste the shared mode avoids.
    let baseline = &runs[1];
    assert_eq!(baseline["mode"], "naive-baseline");
    assert_eq!(baseline["cold_sync"]["proxies_synced"], PROXIES);
    let endpoint = scenario(baseline, "endpoint_change");
    assert_eq!(endpoint["convergence"]["samples"], PROXIES, "{endpoint:#}");
    assert!(bytes(endpoint, "cds") > 0, "{endpoint:#}");
    assert!(bytes(endpoint, "lds") > 0, "{endpoint:#}");

    let ratios = report["ratios"].as_array().expect("ratios");
    let cds = ratios
        .iter()
        .find(|r| r["metric"] == "endpoint_change: EDS bytes")
        .expect("an EDS bytes ratio");
    assert!(
        cds["baseline"].as_f64().unwrap() >= cds["sextant"].as_f64().unwrap(),
        "{cds:#}"
    );
}

#[test]
fn delta() {
    let report = load(&["--protocol", "delta"]);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{report:#}");
    assert_eq!(runs[0]["protocol"], "delta");
    check_sextant_run(&runs[0]);
    assert!(report["ratios"].as_array().unwrap().is_empty());
}
