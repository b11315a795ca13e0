//! End to end: Services and EndpointSlices become clusters and endpoints that
//! a real Envoy uses (handed cases 003 port mapping and 005 terminating
//! endpoints).

use crate::harness;

use harness::*;
use std::collections::BTreeSet;
use std::time::Duration;

fn slice(
    name: &str,
    service: &str,
    port_name: Option<&str>,
    port: u16,
    endpoints: &[(&str, &str)],
) -> String {
    let port_name = port_name
        .map(|n| format!("name: {n}, "))
        .unwrap_or_default();
    let endpoints: String = endpoints
        .iter()
        .map(|(ip, conditions)| format!("- addresses: [\"{ip}\"]\n  conditions: {conditions}\n"))
        .collect();
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  namespace: default\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\nports:\n- {{{port_name}port: {port}, protocol: TCP}}\nendpoints:\n{endpoints}"
    )
}

async fn addresses_seen(envoy: &Envoy, host: &str, n: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let (status, body) = envoy.get(host, "/", &[]).await;
        assert_eq!(status, 200, "{host}: {body}");
        seen.insert(body["address"].as_str().unwrap().to_string());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_port_target_port_and_endpoint_conditions() {
    let work = tempfile::tempdir().unwrap();
    let config = ConfigDir::new();

    // Case 003: ledger 80 -> targetPort P (unnamed port), two ready endpoints on P.
    let ledger_a = Upstream::start(work.path(), "127.0.1.21", "ledger", "a");
    let port = ledger_a.addr.port();
    let ledger_b = Upstream::start_at(work.path(), "127.0.1.22", port, "ledger", "b");
    config.write(
        "ledger.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: ledger, namespace: default}}\nspec:\n  ports:\n  - {{port: 80, targetPort: {port}}}\n---\n{}",
            slice("ledger-1", "ledger", None, port, &[("127.0.1.21", "{ready: true}"), ("127.0.1.22", "{ready: true}")])
        ),
    );

    // Case 003: audit with a named targetPort; its slices carry different ports per pod.
    let audit_a = Upstream::start(work.path(), "127.0.1.23", "audit", "a");
    let audit_b = Upstream::start(work.path(), "127.0.1.24", "audit", "b");
    config.write(
        "audit.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: audit, namespace: default}}\nspec:\n  ports:\n  - {{name: http-api, port: 80, targetPort: http-api}}\n---\n{}---\n{}",
            slice("audit-1", "audit", Some("http-api"), audit_a.addr.port(), &[("127.0.1.23", "{ready: true}")]),
            slice("audit-2", "audit", Some("http-api"), audit_b.addr.port(), &[("127.0.1.24", "{ready: true}")]),
        ),
    );

    // Case 005: only the ready endpoint takes traffic; a terminating-but-serving
    // one and a not-serving one get none.
    let stock_ready = Upstream::start(work.path(), "127.0.1.31", "stock", "ready");
    let stock_port = stock_ready.addr.port();
    let _stock_terminating = Upstream::start_at(
        work.path(),
        "127.0.1.32",
        stock_port,
        "stock",
        "terminating",
    );
    let _stock_down = Upstream::start_at(work.path(), "127.0.1.33", stock_port, "stock", "down");
    // The stock Service and its slice with these endpoint conditions.
    let stock_yaml = |conditions: [&str; 3]| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: stock, namespace: default}}\nspec:\n  ports:\n  - {{name: http, port: 80, targetPort: {stock_port}}}\n---\n{}",
            slice(
                "stock-1",
                "stock",
                Some("http"),
                stock_port,
                &[
                    ("127.0.1.31", conditions[0]),
                    ("127.0.1.32", conditions[1]),
                    ("127.0.1.33", conditions[2]),
                ]
            )
        )
    };
    config.write(
        "stock.yaml",
        &stock_yaml([
            "{ready: true}",
            "{ready: false, serving: true, terminating: true}",
            "{ready: false, serving: false}",
        ]),
    );

    // Case 005: when every endpoint is terminating but serving, they still serve.
    let legacy = Upstream::start(work.path(), "127.0.1.34", "legacy", "terminating");
    config.write(
        "legacy.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: legacy, namespace: default}}\nspec:\n  ports:\n  - {{name: http, port: 80, targetPort: {p}}}\n---\n{}",
            slice("legacy-1", "legacy", Some("http"), legacy.addr.port(), &[("127.0.1.34", "{ready: false, serving: true, terminating: true}")]),
            p = legacy.addr.port()
        ),
    );

    let sextant = Sextant::start(work.path(), config.path()).await;
    let envoy = Envoy::start(
        work.path(),
        &sextant,
        Workload::client("endpoints-test.default"),
    )
    .await;
    envoy.wait_until_serving("ledger").await;

    // ledger:80 reaches both pods on the target port.
    let seen = addresses_seen(&envoy, "ledger:80", 20).await;
    let expected: BTreeSet<String> = [ledger_a.addr.to_string(), ledger_b.addr.to_string()].into();
    assert_eq!(seen, expected);
    assert_eq!(
        addresses_seen(&envoy, "ledger.default.svc.cluster.local", 4)
            .await
            .len(),
        2
    );

    // audit reaches each pod on its own port.
    let seen = addresses_seen(&envoy, "audit", 20).await;
    let expected: BTreeSet<String> = [audit_a.addr.to_string(), audit_b.addr.to_string()].into();
    assert_eq!(seen, expected);

    // stock: only the ready endpoint answers.
    let seen = addresses_seen(&envoy, "stock", 30).await;
    assert_eq!(
        seen,
        BTreeSet::from([stock_ready.addr.to_string()]),
        "terminating or down endpoints got traffic"
    );

    // legacy: all terminating but serving, so still served.
    assert_eq!(
        addresses_seen(&envoy, "legacy", 5).await,
        BTreeSet::from([legacy.addr.to_string()])
    );

    // A rollout step changes endpoints only: the terminating stock pod is
    // ready again and the ready one goes. Envoy follows, and Sextant took
    // its endpoint-only path (no class retranslated).
    config.write(
        "stock.yaml",
        &stock_yaml([
            "{ready: false, serving: false, terminating: true}",
            "{ready: true}",
            "{ready: false, serving: false}",
        ]),
    );
    let moved = format!("127.0.1.32:{stock_port}");
    wait_for(
        Duration::from_secs(10),
        "stock served by .32 only",
        || async {
            let seen = addresses_seen(&envoy, "stock", 10).await;
            (seen == BTreeSet::from([moved.clone()])).then_some(())
        },
    )
    .await;
    let (_, metrics) = sextant.admin_get("/metrics").await;
    let endpoint_updates = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("sextant_translation_duration_seconds_count{stage=\"endpoints\"} ")
        })
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert_eq!(endpoint_updates, Some(1), "{metrics}");
    assert_eq!(envoy.updates_rejected().await, 0);
}
