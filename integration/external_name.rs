//! End to end (handed case 004): an ExternalName service becomes a STRICT_DNS
//! cluster per port that a real Envoy resolves (`localhost` here, so traffic
//! stays on this machine); an invalid one is rejected without touching the rest.

use crate::harness;

use harness::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_name_service_resolves_and_serves() {
    let work = tempfile::tempdir().unwrap();
    let legacy = Upstream::start(work.path(), "127.0.0.1", "billing-legacy", "external");
    let ledger = Upstream::start(work.path(), "127.0.1.111", "ledger", "v1");
    let port = legacy.addr.port();
    let config = ConfigDir::new();
    config.write(
        "billing.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: billing-legacy, namespace: default}}\nspec:\n  type: ExternalName\n  externalName: localhost\n  ports:\n  - {{name: http, port: {port}}}\n  - {{name: http-alt, port: 8443}}\n---\napiVersion: networking.sextant.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: billing-legacy, namespace: default}}\nspec:\n  hosts: [billing-legacy]\n  http:\n  - route:\n    - destination: {{host: billing-legacy, port: {{number: {port}}}}}\n"
        ),
    );
    config.write(
        "ledger.yaml",
        &[
            service_yaml("ledger", 80),
            workload_yaml("ledger", "v1", &ledger),
        ]
        .join("---\n"),
    );
    let sextant = Sextant::start(work.path(), config.path()).await;
    let envoy = Envoy::start(
        work.path(),
        &sextant,
        Workload::client("external-name.default"),
    )
    .await;
    envoy.wait_until_serving("ledger").await;

    let host = format!("billing-legacy:{port}");
    wait_for(
        Duration::from_secs(10),
        "billing-legacy through its DNS cluster",
        || async {
            let (status, body) = envoy.get(&host, "/", &[]).await;
            (status == 200 && body["service"] == "billing-legacy").then_some(())
        },
    )
    .await;
    let clusters = envoy.dump_section("ClustersConfigDump").await;
    let dns = clusters["dynamic_active_clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["cluster"]["name"]
                == format!("outbound|{port}||billing-legacy.default.svc.cluster.local").as_str()
        })
        .unwrap_or_else(|| panic!("{clusters}"));
    assert_eq!(dns["cluster"]["type"], "STRICT_DNS");

    // An ExternalName service without a valid name is rejected; nothing else changes.
    config.write(
        "broken.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: broken-legacy, namespace: default}\nspec:\n  type: ExternalName\n  externalName: \"\"\n  ports:\n  - {port: 80}\n",
    );
    wait_for(
        Duration::from_secs(5),
        "an error about spec.externalName",
        || async {
            let errors = sextant.admin_json("/debug/config_errors").await;
            let found = errors["diagnostics"]
                .as_array()?
                .iter()
                .any(|d| d["field"] == "spec.externalName");
            found.then_some(())
        },
    )
    .await;
    assert!(!envoy
        .active_clusters()
        .await
        .iter()
        .any(|c| c.contains("broken-legacy")));
    assert_eq!(envoy.get(&host, "/", &[]).await.0, 200);
    assert_eq!(envoy.version_of("ledger").await, "v1");
    assert_eq!(envoy.updates_rejected().await, 0);
}
