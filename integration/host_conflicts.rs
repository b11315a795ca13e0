//! End to end (handed case 001): hosts that collide (the same host in two
//! VirtualServices, differing only in case; a VirtualService host that is a
//! Service's alias) never produce a duplicate domain, the later object is
//! reported naming both, and a real Envoy ACKs the result.

use crate::harness;

use harness::*;
use std::time::Duration;

fn vs(name: &str, created: &str, host: &str, destination: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: shop, creationTimestamp: \"{created}\"}}\nspec:\n  hosts: [\"{host}\"]\n  http:\n  - route: [{{destination: {{host: {destination}}}}}]\n"
    )
}

fn service(name: &str, upstream: &Upstream) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  selector: {{app: {name}}}\n  ports:\n  - {{name: http, port: 80}}\n---\napiVersion: networking.sextant.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  address: {}\n  ports: {{http: {}}}\n  labels: {{app: {name}}}\n",
        upstream.addr.ip(),
        upstream.addr.port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colliding_hosts_are_reported_and_envoy_accepts_the_rest() {
    let work = tempfile::tempdir().unwrap();
    let cart = Upstream::start(work.path(), "127.0.1.131", "cart", "v1");
    let basket = Upstream::start(work.path(), "127.0.1.132", "basket", "v1");
    let config = ConfigDir::new();
    config.write(
        "services.yaml",
        &[service("cart", &cart), service("basket", &basket)].join("---\n"),
    );
    config.write(
        "routes.yaml",
        &[
            vs(
                "storefront",
                "2026-01-01T00:00:00Z",
                "cart.shop.example",
                "cart",
            ),
            vs(
                "storefront-copy",
                "2026-02-01T00:00:00Z",
                "CART.shop.example",
                "basket",
            ),
            // The Service `cart`'s own FQDN, routed elsewhere: the VirtualService owns the host.
            vs(
                "cart-override",
                "2026-01-01T00:00:00Z",
                "cart.shop.svc.cluster.local",
                "basket",
            ),
        ]
        .join("---\n"),
    );
    let sextant = Sextant::start(work.path(), config.path()).await;
    let envoy = Envoy::start(
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
    envoy.wait_until_serving("basket").await;

    // The older VirtualService wins the host, whatever the case of the request.
    for host in ["cart.shop.example", "CART.shop.example"] {
        let (status, body) = envoy.get(host, "/", &[]).await;
        assert_eq!(
            (status, body["service"].as_str()),
            (200, Some("cart")),
            "{host}: {body}"
        );
    }
    // The Service's aliases follow the VirtualService that owns its FQDN.
    assert_eq!(envoy.get("cart", "/", &[]).await.1["service"], "basket");

    // The later one is reported, naming both objects.
    let text = wait_for(
        Duration::from_secs(5),
        "the conflict on /debug/config_errors",
        || async {
            let errors = sextant.admin_json("/debug/config_errors").await;
            errors["diagnostics"].as_array()?.iter().find_map(|d| {
                let text = d["text"].as_str()?;
                text.contains("VirtualService shop/storefront-copy")
                    .then(|| text.to_string())
            })
        },
    )
    .await;
    assert!(
        text.contains("VirtualService shop/storefront") && text.contains("routes.yaml"),
        "{text}"
    );

    // No virtual host has an empty or duplicate domain, and Envoy took it all.
    let routes = envoy.dump_section("RoutesConfigDump").await;
    let mut domains = Vec::new();
    for vhost in routes["dynamic_route_configs"][0]["route_config"]["virtual_hosts"]
        .as_array()
        .unwrap()
    {
        let list = vhost["domains"].as_array().unwrap();
        assert!(!list.is_empty(), "{vhost}");
        domains.extend(list.iter().map(|d| d.as_str().unwrap().to_string()));
    }
    let unique: std::collections::BTreeSet<_> = domains.iter().collect();
    assert_eq!(
        unique.len(),
        domains.len(),
        "duplicate domains: {domains:?}"
    );
    assert!(
        domains.iter().all(|d| *d == d.to_ascii_lowercase()),
        "{domains:?}"
    );
    assert_eq!(envoy.updates_rejected().await, 0);
}
