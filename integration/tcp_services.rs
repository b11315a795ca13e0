//! End to end: a TCP service (port named `tcp-*`) is proxied as opaque bytes
//! by a TCP proxy listener on the proxy's own loopback address and the
//! service port, and a VirtualService's `tcp` route splits connections by
//! weight (Istio's "TCP traffic shifting" task). The upstreams happen to
//! speak HTTP, which the TCP proxy does not parse; the HTTP route
//! configuration plays no part. A second service on the same TCP port is
//! reported and does not take the listener over.

use crate::harness;

use harness::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// The proxy's "pod" address; its TCP listeners bind here.
const PROXY_IP: &str = "127.0.3.1";

fn world(port: u16, v1: &Upstream, v2: &Upstream) -> String {
    let entry = |version: &str, upstream: &Upstream| {
        format!(
            "apiVersion: networking.sextant.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {{name: db-{version}, namespace: default}}\nspec:\n  address: {}\n  ports: {{tcp-db: {}}}\n  labels: {{app: db, version: {version}}}\n",
            upstream.addr.ip(),
            upstream.addr.port()
        )
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: db, namespace: default, creationTimestamp: \"2026-01-01T00:00:00Z\"}}\nspec:\n  selector: {{app: db}}\n  ports:\n  - {{name: tcp-db, port: {port}}}\n---\n{}---\n{}---\napiVersion: networking.sextant.dev/v1alpha1\nkind: DestinationRule\nmetadata: {{name: db, namespace: default}}\nspec:\n  host: db\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n",
        entry("v1", v1),
        entry("v2", v2)
    )
}

fn split(v1: u32, v2: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: db, namespace: default}}\nspec:\n  hosts: [db]\n  tcp:\n  - route:\n    - {{destination: {{host: db, subset: v1}}, weight: {v1}}}\n    - {{destination: {{host: db, subset: v2}}, weight: {v2}}}\n"
    )
}

async fn connections(envoy: &Envoy, port: u16, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let version = envoy.tcp_get(port).await.unwrap_or_else(|e| e);
        *counts.entry(version).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_service_through_a_tcp_proxy_with_weights() {
    let work = tempfile::tempdir().unwrap();
    let v1 = Upstream::start(work.path(), "127.0.1.161", "db", "v1");
    let v2 = Upstream::start(work.path(), "127.0.1.162", "db", "v2");
    let port = free_port();
    let config = ConfigDir::new();
    config.write("db.yaml", &world(port, &v1, &v2));
    config.write("split.yaml", &split(75, 25));
    let sextant = Sextant::start(work.path(), config.path()).await;
    let envoy = Envoy::start(
        work.path(),
        &sextant,
        Workload::client("tcp-client.default").at(PROXY_IP),
    )
    .await;
    wait_for(
        Duration::from_secs(10),
        "the TCP listener to forward",
        || async { envoy.tcp_get(port).await.ok() },
    )
    .await;

    // 75/25 by connection, measured over 200 new connections (binomial
    // standard deviation ~6; the bounds are 5 of them).
    let counts = connections(&envoy, port, 200).await;
    let v1_count = counts.get("v1").copied().unwrap_or(0);
    assert_eq!(
        v1_count + counts.get("v2").copied().unwrap_or(0),
        200,
        "{counts:?}"
    );
    assert!(
        (120..=180).contains(&v1_count),
        "75 % measured as {counts:?}"
    );

    // Bytes went through the TCP proxy, not the HTTP route configuration.
    let proxied = envoy
        .stat_sum(&format!(
            "tcp.outbound|{port}||db.default.svc.cluster.local.downstream_cx_total"
        ))
        .await;
    assert!(proxied >= 200, "TCP proxy saw {proxied} connections");

    // Shift everything to v2 by editing the route.
    config.write("split.yaml", &split(0, 100));
    wait_for(
        Duration::from_secs(10),
        "all connections to reach v2",
        || async {
            let counts = connections(&envoy, port, 10).await;
            (counts.get("v2") == Some(&10)).then_some(())
        },
    )
    .await;

    // A younger service on the same port is reported and gets no listener.
    config.write(
        "legacy.yaml",
        &format!("apiVersion: v1\nkind: Service\nmetadata: {{name: legacy-db, namespace: default, creationTimestamp: \"2026-02-01T00:00:00Z\"}}\nspec:\n  selector: {{app: legacy-db}}\n  ports:\n  - {{name: tcp, port: {port}}}\n"),
    );
    let errors = wait_for(
        Duration::from_secs(10),
        "the port conflict to be reported",
        || async {
            let errors = sextant.admin_json("/debug/config_errors").await;
            errors
                .to_string()
                .contains("is already proxied for db.default.svc.cluster.local")
                .then_some(errors)
        },
    )
    .await;
    assert!(
        errors.to_string().contains("Service default/legacy-db"),
        "{errors}"
    );
    assert_eq!(connections(&envoy, port, 10).await.get("v2"), Some(&10));
    assert_eq!(envoy.updates_rejected().await, 0);
}
