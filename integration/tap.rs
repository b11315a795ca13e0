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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_prints_requests_sent_after_it_started() {
    let work = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(work.path(), UPSTREAM_IP, "reviews", "v1");
    let config = ConfigDir::new();
    config.write("service.yaml", &service_yaml("reviews", 9080));
    config.write("workloads.yaml", &workload_yaml("reviews", "v1", &upstream));
    config.write(
        "client.yaml",
        &format!(
            "apiVersion: networking.sextant.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {{name: client-1, namespace: default}}\nspec:\n  address: {CLIENT_IP}\n  labels: {{app: client, security.istio.io/tlsMode: istio}}\n  serviceAccount: client-sa\n"
        ),
    );
    let sextant = Sextant::start(work.path(), config.path()).await;
    let client = Envoy::start(
        work.path(),
        &sextant,
        Workload::client("client.default").meshed(CLIENT_IP, "client-sa", free_port()),
    )
    .await;
    client.wait_until_serving("reviews").await;

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

    let mut tap = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["tap", "reviews", "--admin-address"])
        .arg(sextant.admin.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sextant tap");
    let stdout = tap.stdout.take().unwrap();
    let stderr = tap.stderr.take().unwrap();
    let tap = Process::adopt("sextant tap", tap, work.path().join("tap.log"));
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
