//! End to end: Sextant restarts under steady traffic without losing a
//! request or flapping Envoy's config, and a large mesh fits in one push.

use crate::harness;

use harness::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `ip` is the test's own loopback address for Sextant: while it is down,
/// no other test's free port can be one of its ports there.
async fn restart_under_traffic(workload: Workload<'_>, ip: &str) {
    let work = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(work.path(), "127.0.1.61", "inventory", "v1");
    let config = ConfigDir::new();
    config.write(
        "inventory.yaml",
        &[
            service_yaml("inventory", 80),
            workload_yaml("inventory", "v1", &upstream),
        ]
        .join("---\n"),
    );
    let node_id = workload.node_id.to_string();
    let (xds, admin) = (free_port_on(ip), free_port_on(ip));
    let mut sextant = Sextant::start_at(work.path(), config.path(), xds, admin, "sextant").await;
    let envoy = Arc::new(Envoy::start(work.path(), &sextant, workload).await);
    envoy.wait_until_serving("inventory").await;
    let before = envoy.dump_section("ClustersConfigDump").await["version_info"].clone();
    let modified_before =
        envoy.stat_sum("cluster_modified").await + envoy.stat_sum("listener_modified").await;

    // Steady traffic through Envoy while the control plane goes away and comes back.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic = {
        let (envoy, stop, ok, failed) = (envoy.clone(), stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let counter = if envoy.get("inventory", "/", &[]).await.0 == 200 {
                    &ok
                } else {
                    &failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    sextant.process.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let restarted = Sextant::start_at(
        work.path(),
        config.path(),
        sextant.xds,
        sextant.admin,
        "sextant-restarted",
    )
    .await;
    wait_for(
        Duration::from_secs(20),
        "envoy to reconnect and ACK every type",
        || async {
            let syncz = restarted.admin_json("/debug/syncz").await;
            let row = syncz["proxies"]
                .as_array()?
                .iter()
                .find(|p| p["node_id"] == node_id.as_str())?
                .clone();
            ["CDS", "EDS", "LDS", "RDS"]
                .iter()
                .all(|t| row[*t] == "SYNCED")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();

    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 50, "too little traffic to judge: {ok} requests");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed across the restart",
        ok + failed
    );
    // Same content, same versions: Envoy changed nothing.
    assert_eq!(
        envoy.dump_section("ClustersConfigDump").await["version_info"],
        before
    );
    let modified_after =
        envoy.stat_sum("cluster_modified").await + envoy.stat_sum("listener_modified").await;
    assert_eq!(
        modified_after, modified_before,
        "Envoy modified clusters or listeners after the reconnect"
    );
    assert_eq!(envoy.updates_rejected().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_restart_loses_no_request_sotw() {
    restart_under_traffic(Workload::client("restart-sotw.default"), "127.0.11.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_restart_loses_no_request_delta() {
    restart_under_traffic(
        Workload::client("restart-delta.default").delta(),
        "127.0.11.2",
    )
    .await;
}

/// 2,000 services (each with its own cluster, endpoints and virtual host of
/// eight domains) reach one Envoy in one push, over the default message limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_services_in_one_config() {
    const SERVICES: usize = 2000;
    let work = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(work.path(), "127.0.1.62", "bulk", "v1");
    let config = ConfigDir::new();
    let mut yaml = String::new();
    for i in 0..SERVICES {
        let name = format!("bulk-{i:04}");
        yaml.push_str(&service_yaml(&name, 80));
        yaml.push_str("---\n");
        yaml.push_str(&workload_yaml(&name, "v1", &upstream));
        yaml.push_str("---\n");
    }
    config.write("bulk.yaml", &yaml);
    let sextant = Sextant::start(work.path(), config.path()).await;
    let envoy = Envoy::start(work.path(), &sextant, Workload::client("bulk-test.default")).await;
    envoy.wait_until_serving("bulk-1999").await;
    assert_eq!(
        envoy
            .get("bulk-0000.default.svc.cluster.local", "/", &[])
            .await
            .0,
        200
    );
    assert_eq!(envoy.active_clusters().await.len(), SERVICES);
    assert_eq!(envoy.updates_rejected().await, 0);
}

/// A route configuration over 4 MiB (the default gRPC message limit of many
/// stacks) reaches Envoy over SotW and delta without the stream failing.
async fn large_route_configuration(workload: Workload<'_>) {
    const SERVICES: usize = 200;
    const ROUTES: usize = 150;
    let work = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(work.path(), "127.0.1.63", "big", "v1");
    let config = ConfigDir::new();
    let mut yaml = String::new();
    let long_value = "x".repeat(120);
    for i in 0..SERVICES {
        let name = format!("big-{i:03}");
        yaml.push_str(&service_yaml(&name, 80));
        yaml.push_str("---\n");
        yaml.push_str(&workload_yaml(&name, "v1", &upstream));
        yaml.push_str("---\n");
        yaml.push_str(&format!(
            "apiVersion: networking.sextant.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  hosts: [{name}]\n  http:\n"
        ));
        for r in 0..ROUTES {
            yaml.push_str(&format!(
                "  - match: [{{headers: {{x-route-{r}: {{exact: {long_value}}}}}}}]\n    route: [{{destination: {{host: {name}}}}}]\n"
            ));
        }
        yaml.push_str("  - route: [{destination: {host: ");
        yaml.push_str(&name);
        yaml.push_str("}}]\n---\n");
    }
    config.write("big.yaml", &yaml);
    let sextant = Sextant::start(work.path(), config.path()).await;
    let node_id = workload.node_id.to_string();
    let envoy = Envoy::start(work.path(), &sextant, workload).await;
    envoy.wait_until_serving("big-199").await;
    let header = "x-route-149".to_string();
    let (status, body) = envoy.get("big-000", "/", &[(&header, &long_value)]).await;
    assert_eq!(status, 200, "{body}");

    // Envoy serves the new routes a moment before its ACK reaches sextant.
    let proxy = wait_for(Duration::from_secs(10), "the RDS ACK", || async {
        let proxies = sextant.admin_json("/debug/proxies").await;
        let proxy = proxies["proxies"]
            .as_array()?
            .iter()
            .find(|p| p["node_id"] == node_id.as_str())?
            .clone();
        (proxy["types"]["RDS"]["synced"] == true).then_some(proxy)
    })
    .await;
    let rds_bytes = proxy["types"]["RDS"]["sent_bytes"].as_u64().unwrap();
    assert!(
        rds_bytes > 4 * 1024 * 1024,
        "the route configuration is only {rds_bytes} bytes"
    );
    assert_eq!(envoy.updates_rejected().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_configuration_over_4_mib_sotw() {
    large_route_configuration(Workload::client("large-sotw.default")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_configuration_over_4_mib_delta() {
    large_route_configuration(Workload::client("large-delta.default").delta()).await;
}
