//! End to end (handed case 006): a cluster-level change with unchanged
//! endpoints must not leave the cluster warming in Envoy.

use crate::harness;

use harness::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn catalog_rule(lb: &str) -> String {
    format!(
        "apiVersion: networking.sextant.dev/v1alpha1\nkind: DestinationRule\nmetadata: {{name: catalog, namespace: default}}\nspec:\n  host: catalog\n  trafficPolicy:\n    loadBalancer: {{simple: {lb}}}\n"
    )
}

fn cluster_state(clusters: &Value, name: &str) -> Option<String> {
    clusters["dynamic_active_clusters"]
        .as_array()?
        .iter()
        .find(|c| c["cluster"]["name"] == name)
        .map(|c| {
            c["cluster"]["lb_policy"]
                .as_str()
                .unwrap_or("ROUND_ROBIN")
                .to_string()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_change_with_same_endpoints_does_not_stay_warming_sotw() {
    cluster_change_with_same_endpoints(Workload::client("warming-test.default")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_change_with_same_endpoints_does_not_stay_warming_delta() {
    cluster_change_with_same_endpoints(Workload::client("warming-test.default").delta()).await;
}

async fn cluster_change_with_same_endpoints(workload: Workload<'_>) {
    let work = tempfile::tempdir().unwrap();
    let catalog = Upstream::start(work.path(), "127.0.1.51", "catalog", "v1");
    let config = ConfigDir::new();
    config.write(
        "catalog.yaml",
        &[
            service_yaml("catalog", 8080),
            workload_yaml("catalog", "v1", &catalog),
        ]
        .join("---\n"),
    );
    config.write("catalog-rule.yaml", &catalog_rule("ROUND_ROBIN"));
    let sextant = Sextant::start(work.path(), config.path()).await;
    let envoy = Envoy::start(work.path(), &sextant, workload).await;
    envoy.wait_until_serving("catalog").await;

    let name = "outbound|8080||catalog.default.svc.cluster.local";
    let edited = Instant::now();
    config.write("catalog-rule.yaml", &catalog_rule("LEAST_REQUEST"));
    wait_for(
        Duration::from_secs(5),
        "the updated catalog cluster to be active and nothing warming",
        || async {
            let clusters = envoy.dump_section("ClustersConfigDump").await;
            let warming = clusters["dynamic_warming_clusters"]
                .as_array()
                .map_or(0, Vec::len);
            (cluster_state(&clusters, name).as_deref() == Some("LEAST_REQUEST") && warming == 0)
                .then_some(())
        },
    )
    .await;
    let settled = edited.elapsed();
    assert!(
        settled < Duration::from_secs(1),
        "the cluster left warming after {settled:?}"
    );
    for _ in 0..10 {
        assert_eq!(envoy.get("catalog", "/", &[]).await.0, 200);
    }
    assert_eq!(envoy.updates_rejected().await, 0);
}
