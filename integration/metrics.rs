//! End to end: `GET /metrics` follows a real Envoy: its stream in
//! `sextant_connected_proxies`, the responses it got in the push and byte
//! counters, its convergence to an edit of the config directory, a broken
//! file in `sextant_config_errors`, and a real NACK (the test-only hook that
//! makes Envoy reject a cluster) in `sextant_xds_nacks_total`, and the
//! server's own CPU, memory and descriptors in the `process_*` metrics.

use crate::harness;

use harness::*;
use std::process::Command;
use std::time::Duration;

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
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: v1}}
      weight: {v1}
    - destination: {{host: reviews, subset: v2}}
      weight: {v2}
"#
    )
}

/// The value of the sample `series` (name with labels, exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Like [`sample`], panicking with the whole exposition when absent.
fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

async fn scrape(sextant: &Sextant) -> String {
    let (status, body) = sextant.admin_get("/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Scrapes until `series` satisfies `ok`; returns that scrape.
async fn wait_for_sample(sextant: &Sextant, series: &str, ok: impl Fn(f64) -> bool) -> String {
    wait_for(Duration::from_secs(20), series, || async {
        let text = scrape(sextant).await;
        sample(&text, series).filter(|v| ok(*v)).map(|_| text)
    })
    .await
}

/// Waits until every type of `node_id` is SYNCED on `/debug/syncz`.
async fn wait_synced(sextant: &Sextant, node_id: &str) {
    wait_for(
        Duration::from_secs(20),
        "every type SYNCED on /debug/syncz",
        || async {
            let syncz = sextant.admin_json("/debug/syncz").await;
            let row = syncz["proxies"]
                .as_array()?
                .iter()
                .find(|p| p["node_id"] == node_id)?
                .clone();
            ["CDS", "EDS", "LDS", "RDS"]
                .iter()
                .all(|t| row[*t] == "SYNCED")
                .then_some(())
        },
    )
    .await;
}

async fn metrics_follow_envoy(delta: bool) {
    let (protocol, other) = if delta {
        ("delta", "sotw")
    } else {
        ("sotw", "delta")
    };
    let work = tempfile::tempdir().unwrap();
    let v1 = Upstream::start(work.path(), "127.0.1.171", "reviews", "v1");
    let v2 = Upstream::start(work.path(), "127.0.1.172", "reviews", "v2");
    let config = ConfigDir::new();
    config.write(
        "reviews.yaml",
        &[
            service_yaml("reviews", 9080),
            workload_yaml("reviews", "v1", &v1),
            workload_yaml("reviews", "v2", &v2),
        ]
        .join("---\n"),
    );
    config.write("reviews-routing.yaml", &reviews_routing(50, 50));
    let sextant = Sextant::start(work.path(), config.path()).await;

    // The content type, and every series at 0 before any proxy connects.
    let response = reqwest::get(format!("http://{}/metrics", sextant.admin))
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    assert_eq!(
        value(
            &text,
            &format!("sextant_connected_proxies{{protocol=\"{protocol}\"}}")
        ),
        0.0
    );
    assert_eq!(value(&text, "sextant_config_errors"), 0.0);

    let node_id = format!("metrics-{protocol}.default");
    let workload = Workload::client(&node_id);
    let workload = if delta { workload.delta() } else { workload };
    let envoy = Envoy::start(work.path(), &sextant, workload).await;
    envoy.wait_until_serving("reviews").await;
    wait_synced(&sextant, &node_id).await;

    // The kernel counts CPU time in clock ticks (10 ms), and a small world
    // may take less than one to serve: scrape (which costs the server CPU)
    // until /proc shows two ticks, so that an exposed 0 below is wrong, not
    // early.
    let pid = sextant.process.pid();
    for _ in 0..1000 {
        if sextant::procfs::sample(pid).unwrap().cpu >= Duration::from_millis(20) {
            break;
        }
        scrape(&sextant).await;
    }
    let text = scrape(&sextant).await;
    assert_eq!(
        value(
            &text,
            &format!("sextant_connected_proxies{{protocol=\"{protocol}\"}}")
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            &format!("sextant_connected_proxies{{protocol=\"{other}\"}}")
        ),
        0.0
    );
    // The server's own cost, under the Prometheus clients' process metric
    // names: the figures of its pid, as the test reads them from /proc
    // right after the scrape (memory and descriptors may move a little in
    // between; CPU time only grows).
    let measured = sextant::procfs::sample(pid).unwrap();
    let rss = measured.rss_bytes as f64;
    let exposed = value(&text, "process_resident_memory_bytes");
    assert!(
        (exposed - rss).abs() <= rss / 4.0,
        "resident {exposed} B against {rss} B in /proc/{pid}/status:\n{text}"
    );
    assert!(value(&text, "process_peak_resident_memory_bytes") >= exposed);
    let cpu = value(&text, "process_cpu_seconds_total");
    assert!(
        cpu > 0.0 && cpu <= measured.cpu.as_secs_f64(),
        "CPU {cpu} s against {:?} in /proc/{pid}/stat:\n{text}",
        measured.cpu
    );
    let fds = value(&text, "process_open_fds");
    let open = sextant::procfs::open_fds(pid).unwrap() as f64;
    assert!(
        fds >= 4.0 && (fds - open).abs() <= 4.0,
        "{fds} open descriptors against {open} in /proc/{pid}/fd:\n{text}"
    );
    if let Some(max) = sample(&text, "process_max_fds") {
        assert!(max >= fds, "{max} allowed, {fds} open:\n{text}");
    }
    // The allocator's settings (src/allocator.rs) are in effect: jemalloc's
    // purging thread runs in the server.
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect();
    assert!(
        threads.iter().any(|c| c == "jemalloc_bg_thd"),
        "no jemalloc background thread among {threads:?}"
    );
    for t in ["cds", "eds", "lds", "rds"] {
        let labels = format!("{{type=\"{t}\",protocol=\"{protocol}\"}}");
        assert!(
            value(&text, &format!("sextant_xds_pushes_total{labels}")) >= 1.0,
            "{t}:\n{text}"
        );
        assert!(
            value(&text, &format!("sextant_xds_response_bytes_total{labels}")) > 0.0,
            "{t}:\n{text}"
        );
        let labels = format!("{{type=\"{t}\",protocol=\"{other}\"}}");
        assert_eq!(
            value(&text, &format!("sextant_xds_pushes_total{labels}")),
            0.0
        );
        assert_eq!(
            value(&text, &format!("sextant_xds_nacks_total{{type=\"{t}\"}}")),
            0.0
        );
    }
    assert!(
        value(
            &text,
            "sextant_translation_duration_seconds_count{stage=\"resolve\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &text,
            "sextant_translation_duration_seconds_count{stage=\"translate\"}"
        ) >= 1.0
    );
    let converged = value(&text, "sextant_proxy_convergence_seconds_count");
    let rds_pushes = value(
        &text,
        &format!("sextant_xds_pushes_total{{type=\"rds\",protocol=\"{protocol}\"}}"),
    );

    // An edit of the weights: one more convergence, once Envoy ACKs the new
    // routes, timed from the file change through the debounce.
    config.write("reviews-routing.yaml", &reviews_routing(10, 90));
    let text = wait_for_sample(&sextant, "sextant_proxy_convergence_seconds_count", |n| {
        n > converged
    })
    .await;
    assert_eq!(
        value(&text, "sextant_proxy_convergence_seconds_count"),
        converged + 1.0,
        "one change, one proxy: one observation\n{text}"
    );
    let took = value(&text, "sextant_proxy_convergence_seconds_sum");
    assert!(
        took > 0.0 && took < 20.0,
        "convergence time {took} s:\n{text}"
    );
    assert!(value(&text, "sextant_debounce_wait_seconds_count") >= 1.0);
    assert!(
        value(
            &text,
            &format!("sextant_xds_pushes_total{{type=\"rds\",protocol=\"{protocol}\"}}")
        ) > rds_pushes,
        "{text}"
    );
    wait_synced(&sextant, &node_id).await;
    let stats = envoy.stat_sum("update_rejected").await;
    assert_eq!(stats, 0, "Envoy rejected nothing");

    // A broken file: an error diagnostic, as on /debug/config_errors.
    config.write("broken.yaml", "kind: [\n");
    wait_for_sample(&sextant, "sextant_config_errors", |n| n >= 1.0).await;

    // The proxy goes away: its stream leaves the gauge.
    drop(envoy);
    wait_for_sample(
        &sextant,
        &format!("sextant_connected_proxies{{protocol=\"{protocol}\"}}"),
        |n| n == 0.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_real_envoy_sotw() {
    metrics_follow_envoy(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_real_envoy_delta() {
    metrics_follow_envoy(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_nack_is_counted_by_type() {
    let work = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(work.path(), "127.0.1.173", "orders", "v1");
    let config = ConfigDir::new();
    config.write(
        "orders.yaml",
        &[
            service_yaml("orders", 80),
            workload_yaml("orders", "v1", &upstream),
        ]
        .join("---\n"),
    );
    let xds = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_sextant"));
    command
        .args(["serve", "--config-dir"])
        .arg(config.path())
        .args(["--xds-address", &xds, "--admin-address", &admin])
        .args([
            "--test-inject-invalid-cluster",
            "outbound|80||orders.default.svc.cluster.local",
        ]);
    let sextant = Sextant::spawn(
        work.path(),
        command,
        xds.parse().unwrap(),
        admin.parse().unwrap(),
        "sextant",
    )
    .await;
    let text = scrape(&sextant).await;
    assert_eq!(value(&text, "sextant_xds_nacks_total{type=\"cds\"}"), 0.0);

    let envoy = Envoy::start(
        work.path(),
        &sextant,
        Workload::client("metrics-nack.default"),
    )
    .await;
    let text = wait_for_sample(&sextant, "sextant_xds_nacks_total{type=\"cds\"}", |n| {
        n >= 1.0
    })
    .await;
    // The counter agrees with /debug/proxies and with Envoy's own count.
    let nacks = value(&text, "sextant_xds_nacks_total{type=\"cds\"}");
    let shown = sextant.nacks_total().await["CDS"].as_u64().unwrap_or(0) as f64;
    assert!(
        shown >= nacks,
        "/debug/proxies says {shown}, /metrics {nacks}"
    );
    assert!(envoy.updates_rejected().await >= 1);
    for t in ["eds", "lds", "rds"] {
        assert_eq!(
            value(&text, &format!("sextant_xds_nacks_total{{type=\"{t}\"}}")),
            0.0,
            "{text}"
        );
    }
}
