//! End to end: per-proxy scoping. A proxy receives only what its namespace
//! may see (`exportTo` of Services and VirtualServices) and, under an Istio
//! `Sidecar`, only its egress hosts; two real Envoys in different
//! namespaces get different config from the same world.

use crate::harness;

use harness::*;
use std::collections::BTreeSet;

fn service(name: &str, namespace: &str, export_to: Option<&str>) -> String {
    let annotations = export_to
        .map(|e| format!("  annotations: {{networking.istio.io/exportTo: \"{e}\"}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\n{annotations}spec:\n  selector: {{app: {name}}}\n  ports:\n  - {{name: http, port: 80}}\n"
    )
}

fn workload(name: &str, namespace: &str, version: &str, upstream: &Upstream) -> String {
    format!(
        "apiVersion: networking.istio.io/v1beta1\nkind: WorkloadEntry\nmetadata: {{name: {name}-{version}, namespace: {namespace}}}\nspec:\n  address: {}\n  ports: {{http: {}}}\n  labels: {{app: {name}, version: {version}}}\n",
        upstream.addr.ip(),
        upstream.addr.port()
    )
}

async fn versions(envoy: &Envoy, host: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let (status, body) = envoy.get(host, "/", &[]).await;
        assert_eq!(status, 200, "{host}: {body}");
        seen.insert(body["version"].as_str().unwrap().to_string());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_and_sidecar_egress_scope_each_proxy() {
    let work = tempfile::tempdir().unwrap();
    let cart_v1 = Upstream::start(work.path(), "127.0.1.81", "cart", "v1");
    let cart_v2 = Upstream::start(work.path(), "127.0.1.82", "cart", "v2");
    let ledger = Upstream::start(work.path(), "127.0.1.83", "ledger", "v1");
    let audit = Upstream::start(work.path(), "127.0.1.84", "audit", "v1");
    let config = ConfigDir::new();
    config.write(
        "shop.yaml",
        &[
            service("cart", "shop", None),
            workload("cart", "shop", "v1", &cart_v1),
            workload("cart", "shop", "v2", &cart_v2),
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: cart, namespace: shop}\nspec:\n  host: cart\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n".into(),
            // Only proxies in `shop` send cart traffic to v2.
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: cart, namespace: shop}\nspec:\n  hosts: [cart]\n  exportTo: [\".\"]\n  http:\n  - route:\n    - destination: {host: cart, subset: v2}\n".into(),
        ]
        .join("---\n"),
    );
    config.write(
        "bank.yaml",
        &[
            service("ledger", "bank", Some(".")),
            workload("ledger", "bank", "v1", &ledger),
            service("audit", "bank", None),
            workload("audit", "bank", "v1", &audit),
        ]
        .join("---\n"),
    );
    // Proxies in `web` may reach only what `shop` serves.
    config.write(
        "web-sidecar.yaml",
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: web}\nspec:\n  egress:\n  - hosts: [\"shop/*\"]\n",
    );
    let sextant = Sextant::start(work.path(), config.path()).await;
    let shop = Envoy::start(
        work.path(),
        &sextant,
        Workload {
            node_id: "client.shop",
            namespace: "shop",
            labels: "app=client",
            delta: false,
            ip: "127.0.0.1",
            service_account: "default",
            inbound_port: None,
            token_file: None,
            stats_flush_ms: None,
            envoy_args: &[],
        },
    )
    .await;
    let web = Envoy::start(
        work.path(),
        &sextant,
        Workload {
            node_id: "client.web",
            namespace: "web",
            labels: "app=client",
            delta: true,
            ip: "127.0.0.1",
            service_account: "default",
            inbound_port: None,
            token_file: None,
            stats_flush_ms: None,
            envoy_args: &[],
        },
    )
    .await;
    shop.wait_until_serving("cart").await;
    web.wait_until_serving("cart.shop").await;

    // shop: its own VirtualService applies; ledger is not exported to it; audit is.
    assert_eq!(
        versions(&shop, "cart").await,
        BTreeSet::from(["v2".to_string()])
    );
    assert_eq!(shop.get("ledger.bank", "/", &[]).await.0, 404);
    assert!(!shop
        .active_clusters()
        .await
        .iter()
        .any(|c| c.ends_with("ledger.bank.svc.cluster.local")));
    assert_eq!(
        versions(&shop, "audit.bank").await,
        BTreeSet::from(["v1".to_string()])
    );

    // web: the shop-only VirtualService does not apply (both versions answer),
    // and the Sidecar keeps bank's services out entirely.
    assert_eq!(
        versions(&web, "cart.shop").await,
        BTreeSet::from(["v1".to_string(), "v2".to_string()])
    );
    assert_eq!(web.get("audit.bank", "/", &[]).await.0, 404);
    let clusters = web.active_clusters().await;
    assert!(
        clusters
            .iter()
            .all(|c| c.ends_with("|cart.shop.svc.cluster.local")),
        "{clusters:?}"
    );
    assert_eq!(
        shop.updates_rejected().await + web.updates_rejected().await,
        0
    );
}
