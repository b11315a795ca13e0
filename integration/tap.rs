//! End to end: live tap. A meshed client sidecar (127.0.8.5) streams its
//! access logs to Sextant over Envoy's gRPC access log service (the
//! `sextant-als` cluster of `sextant bootstrap`); `sextant tap reviews`,
//! started before the requests, prints each request to `reviews` with
//! method, path, status, duration, the client's SPIFFE ID and trace ID.
//! Measured: the time from sending a request to its line appearing.

use crate::harness;

use harness::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CLIENT_IP: &str = "127.0.8.5";
const UPSTREAM_IP: &str = "127.0.8.6";

/// The world: `reviews` (the demo upstream at 127.0.8.6, or `upstream_ip`)
/// and the meshed client sidecar at `client_ip`, serving `reviews`.
async fn tap_world(
    work: &std::path::Path,
    client_ip: &str,
    upstream_ip: &str,
) -> (Upstream, ConfigDir, Sextant, Envoy) {
    let upstream = Upstream::start(work, upstream_ip, "reviews", "v1");
    let config = ConfigDir::new();
    config.write("service.yaml", &service_yaml("reviews", 9080));
    config.write("workloads.yaml", &workload_yaml("reviews", "v1", &upstream));
    config.write(
        "client.yaml",
        &format!(
            "apiVersion: networking.sextant.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {{name: client-1, namespace: default}}\nspec:\n  address: {client_ip}\n  labels: {{app: client, security.istio.io/tlsMode: istio}}\n  serviceAccount: client-sa\n"
        ),
    );
    let sextant = Sextant::start(work, config.path()).await;
    let client = Envoy::start(
        work,
        &sextant,
        Workload::client("client.default").meshed(client_ip, "client-sa", free_port()),
    )
    .await;
    client.wait_until_serving("reviews").await;
    (upstream, config, sextant, client)
}

/// `sextant tap <args>` against `sextant`: the process, its stdout lines
/// with the time each arrived, and the first line it wrote to stderr.
fn start_tap(
    work: &std::path::Path,
    sextant: &Sextant,
    args: &[&str],
) -> (Process, mpsc::Receiver<(Instant, String)>, String) {
    let mut tap = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .arg("tap")
        .args(args)
        .arg("--admin-address")
        .arg(sextant.admin.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sextant tap");
    let stdout = tap.stdout.take().unwrap();
    let stderr = tap.stderr.take().unwrap();
    let tap = Process::adopt("sextant tap", tap, work.join("tap.log"));
    let (lines_tx, lines) = mpsc::channel::<(Instant, String)>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let mut stderr = BufReader::new(stderr);
    let mut started = String::new();
    stderr.read_line(&mut started).unwrap();
    (tap, lines, started)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_prints_requests_sent_after_it_started() {
    let work = tempfile::tempdir().unwrap();
    let (_upstream, _config, sextant, client) =
        tap_world(work.path(), CLIENT_IP, UPSTREAM_IP).await;
    // The endpoint wants a service.
    let (status, body) = sextant.admin_get("/debug/tap").await;
    assert_eq!(status, 400, "{body}");
    // A service the configuration does not have is named, with the known ones.
    let (status, body) = sextant
        .admin_get("/debug/tap?service=reveiws.default")
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("\"reveiws.default\"") && body.contains("reviews.default"),
        "{body}"
    );

    let (tap, lines, started) = start_tap(work.path(), &sextant, &["reviews"]);
    assert!(started.contains("tapping reviews.default"), "{started:?}");

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut latencies = Vec::new();
    for i in 0..5 {
        let path = format!("/tapped/{i}");
        let sent = Instant::now();
        let (status, _) = client
            .get(
                "reviews",
                &path,
                &[("x-b3-traceid", trace), ("x-b3-spanid", "00f067aa0ba902b7")],
            )
            .await;
        assert_eq!(status, 200);
        let (seen, line) = loop {
            let (at, line) = lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|e| {
                    panic!("no tap line for {path} ({e}); tap log:\n{}", tap.log())
                });
            if line.contains(&format!(" {path} ")) {
                break (at, line);
            }
        };
        latencies.push(seen.duration_since(sent));
        assert!(
            line.contains("outbound|9080||reviews.default.svc.cluster.local"),
            "{line}"
        );
        assert!(line.contains(&format!("GET {path} 200 ")), "{line}");
        assert!(
            line.contains("ms source=spiffe://cluster.local/ns/default/sa/client-sa"),
            "{line}"
        );
        assert!(line.contains(&format!("trace={trace}")), "{line}");
    }
    latencies.sort();
    eprintln!("tap latencies (request sent → line printed): {latencies:?}");
    // Envoy flushes the access log stream every 100 ms; the median must
    // stay well under a second even on a loaded machine.
    assert!(
        latencies[2] < Duration::from_secs(1),
        "median tap latency {:?}",
        latencies[2]
    );
    assert_eq!(client.updates_rejected().await, 0);
}

/// `sextant tap --filter <CEL>` prints only the requests the expression is
/// true for (here: errors, or slower than 250 ms), and a filter that does
/// not compile, or names an attribute requests do not have, is refused
/// with the reason. The service is named by its FQDN here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_filter_shows_only_the_requests_it_selects() {
    let work = tempfile::tempdir().unwrap();
    let (_upstream, _config, sextant, client) =
        tap_world(work.path(), "127.0.8.7", "127.0.8.8").await;

    for (filter, reason) in [
        ("response.code >=", "not a CEL expression"),
        ("response.status >= 500", "status"),
        ("request.path", "must be a boolean"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(["tap", "reviews", "--filter", filter, "--admin-address"])
            .arg(sextant.admin.to_string())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{filter}: {stderr}");
        assert!(
            stderr.contains("400") && stderr.contains(reason),
            "{filter}: {stderr}"
        );
    }

    let filter = r#"response.code >= 500 || request.duration > duration("250ms")"#;
    let (tap, lines, started) = start_tap(
        work.path(),
        &sextant,
        &["reviews.default.svc.cluster.local", "--filter", filter],
    );
    assert!(started.contains(filter), "{started:?}");
    // (path, extra header, shown by the filter), sent in this order.
    let requests = [
        ("/fast-ok", None, false),
        ("/failed", Some(("x-demo-status", "500")), true),
        ("/slow-ok", Some(("x-demo-delay-ms", "300")), true),
        ("/not-found", Some(("x-demo-status", "404")), false),
        ("/failed-last", Some(("x-demo-status", "503")), true),
    ];
    for (path, header, _) in requests {
        let headers: Vec<(&str, &str)> = header.into_iter().collect();
        let (status, _, body) = client.request("GET", "reviews", path, &headers).await;
        let expected = header
            .filter(|(name, _)| *name == "x-demo-status")
            .map_or("200", |(_, v)| v);
        assert_eq!(status.to_string(), expected, "{path}: {body}");
    }
    // Each of Envoy's worker threads buffers its own access log entries and
    // flushes them on its own (every second at most), so lines of requests
    // served by different workers may come out of order: read until every
    // expected line is there, then a while longer (past one flush) to see
    // that no other request shows up. The tap first replays the kept
    // entries (the warm-up's requests to `/`, some of them 503 while Envoy
    // was still warming): the filter holds for those too.
    let expected: Vec<&str> = requests
        .iter()
        .filter(|(_, _, shown)| *shown)
        .map(|(path, _, _)| *path)
        .collect();
    let mut shown: Vec<String> = Vec::new();
    let mut settle_until: Option<Instant> = None;
    loop {
        let wait = match settle_until {
            None => Duration::from_secs(10),
            Some(until) => match until.checked_duration_since(Instant::now()) {
                Some(left) => left,
                None => break,
            },
        };
        let line = match lines.recv_timeout(wait) {
            Ok((_, line)) => line,
            Err(_) if settle_until.is_some() => break,
            Err(e) => panic!(
                "no more tap lines ({e}) after {shown:?}; tap log:\n{}",
                tap.log()
            ),
        };
        // `<start> <cluster> <method> <path> <status> <duration>ms ...`
        let fields: Vec<&str> = line.split(' ').collect();
        let status: u32 = fields[4].parse().unwrap_or(0);
        let ms: f64 = fields[5].trim_end_matches("ms").parse().unwrap_or(0.0);
        assert!(
            status >= 500 || ms > 250.0,
            "the filter let through {line:?}"
        );
        if requests.iter().any(|(path, _, _)| *path == fields[3]) {
            shown.push(fields[3].to_string());
        }
        if settle_until.is_none() && expected.iter().all(|p| shown.iter().any(|s| s == p)) {
            settle_until = Some(Instant::now() + Duration::from_millis(1_500));
        }
    }
    // In the order the requests were sent.
    shown.sort_by_key(|path| requests.iter().position(|(p, _, _)| p == path));
    assert_eq!(shown, expected, "tap log:\n{}", tap.log());
}
