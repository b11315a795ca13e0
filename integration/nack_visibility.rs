//! End to end: when a real Envoy NACKs (here a test-only hook replaces the
//! cluster of Service `orders` with one Envoy rejects; no config file can
//! produce it), Sextant logs it, counts it, shows the trimmed reason on
//! `/debug/syncz` and `/debug/proxies`, and names the object behind it.

use crate::harness;

use harness::*;
use std::process::Command;
use std::time::Duration;

async fn start_with_invalid_cluster(work: &std::path::Path, config: &ConfigDir) -> Sextant {
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
    Sextant::spawn(
        work,
        command,
        xds.parse().unwrap(),
        admin.parse().unwrap(),
        "sextant",
    )
    .await
}

async fn nack_is_visible(workload: Workload<'_>) {
    let work = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(work.path(), "127.0.1.71", "orders", "v1");
    let config = ConfigDir::new();
    config.write(
        "orders.yaml",
        &[
            service_yaml("orders", 80),
            workload_yaml("orders", "v1", &upstream),
        ]
        .join("---\n"),
    );
    let sextant = start_with_invalid_cluster(work.path(), &config).await;
    let node_id = workload.node_id.to_string();
    let envoy = Envoy::start(work.path(), &sextant, workload).await;

    let row = wait_for(
        Duration::from_secs(20),
        "CDS to show NACKED on /debug/syncz",
        || async {
            let syncz = sextant.admin_json("/debug/syncz").await;
            let row = syncz["proxies"]
                .as_array()?
                .iter()
                .find(|p| p["node_id"] == node_id.as_str())?
                .clone();
            (row["CDS"] == "NACKED").then_some(row)
        },
    )
    .await;
    let message = row["CDS_nack"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.starts_with("Proto constraint validation failed"),
        "trimmed NACK message: {message:?}"
    );
    assert!(message.contains("CleanupInterval"), "{message}");
    // The rejected cluster is traced back to the Service it comes from.
    assert_eq!(
        row["CDS_nack"]["objects"],
        serde_json::json!(["Service default/orders"]),
        "{row}"
    );
    assert!(
        envoy.updates_rejected().await >= 1,
        "Envoy itself rejected the update"
    );

    let proxies = sextant.admin_json("/debug/proxies").await;
    assert!(
        proxies["nacks_total"]["CDS"].as_u64().unwrap_or(0) >= 1,
        "{proxies}"
    );
    let cds = &proxies["proxies"][0]["types"]["CDS"];
    assert!(cds["nack_count"].as_u64().unwrap_or(0) >= 1, "{cds}");
    assert_eq!(cds["last_nack"]["message"], message.as_str());
    wait_for(
        Duration::from_secs(5),
        "the NACK in sextant's log",
        || async {
            sextant
                .process
                .log()
                .contains("proxy NACKed: Proto constraint validation failed")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_nack_is_logged_counted_and_shown_sotw() {
    nack_is_visible(Workload::client("nack-sotw.default")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_nack_is_logged_counted_and_shown_delta() {
    nack_is_visible(Workload::client("nack-delta.default").delta()).await;
}
