//! End to end: the admin endpoint shows what a real Envoy ACKed, in a shape
//! that can be compared with Envoy's own `/config_dump`.

use crate::harness;

use harness::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_and_config_dump_match_envoy() {
    let work = tempfile::tempdir().unwrap();
    let ratings = Upstream::start(work.path(), "127.0.1.41", "ratings", "v1");
    let config = ConfigDir::new();
    config.write(
        "ratings.yaml",
        &[
            service_yaml("ratings", 9080),
            workload_yaml("ratings", "v1", &ratings),
        ]
        .join("---\n"),
    );
    let sextant = Sextant::start(work.path(), config.path()).await;
    let envoy = Envoy::start(
        work.path(),
        &sextant,
        Workload::client("admin-test.default"),
    )
    .await;
    envoy.wait_until_serving("ratings").await;

    // /debug/proxies: every type ACKed at the version sent (Envoy serves
    // new routes a moment before its ACK reaches sextant, hence the wait).
    let proxy = wait_for(Duration::from_secs(10), "ACKs of every type", || async {
        let proxies = sextant.admin_json("/debug/proxies").await;
        let proxy = proxies["proxies"]
            .as_array()?
            .iter()
            .find(|p| p["node_id"] == "admin-test.default")?
            .clone();
        let synced = ["CDS", "EDS", "LDS", "RDS"]
            .iter()
            .all(|t| proxy["types"][t]["synced"] == true);
        synced.then_some(proxy)
    })
    .await;
    for t in ["CDS", "EDS", "LDS", "RDS"] {
        let state = &proxy["types"][t];
        assert!(state["acked_version"].is_string(), "{t} not ACKed: {state}");
        assert_eq!(
            state["acked_version"], state["sent_version"],
            "{t}: {state}"
        );
        assert_eq!(state["nack_count"], 0);
    }

    // Envoy's own config dump reports the same versions and names.
    let envoy_dump = envoy.config_dump().await;
    let envoy_clusters = &section(&envoy_dump, "ClustersConfigDump");
    let envoy_listeners = &section(&envoy_dump, "ListenersConfigDump");
    assert_eq!(
        envoy_clusters["version_info"],
        proxy["types"]["CDS"]["acked_version"]
    );
    assert_eq!(
        envoy_listeners["version_info"],
        proxy["types"]["LDS"]["acked_version"]
    );

    let ours = sextant
        .admin_json("/config_dump?proxy=admin-test.default")
        .await;
    let our_clusters = &section(&ours, "ClustersConfigDump");
    let our_listeners = &section(&ours, "ListenersConfigDump");
    let our_routes = &section(&ours, "RoutesConfigDump");
    assert_eq!(our_clusters["version_info"], envoy_clusters["version_info"]);
    assert_eq!(
        names(&our_clusters["dynamic_active_clusters"], "/cluster/name"),
        names(&envoy_clusters["dynamic_active_clusters"], "/cluster/name")
    );
    assert_eq!(
        names(&our_listeners["dynamic_listeners"], "/name"),
        names(&envoy_listeners["dynamic_listeners"], "/name")
    );
    let envoy_routes = &section(&envoy_dump, "RoutesConfigDump");
    assert_eq!(
        names(&our_routes["dynamic_route_configs"], "/route_config/name"),
        names(&envoy_routes["dynamic_route_configs"], "/route_config/name"),
        "{envoy_routes}"
    );
    // The listener is the real proto in canonical JSON, Any expanded.
    let listener = &our_listeners["dynamic_listeners"][0]["active_state"]["listener"];
    assert_eq!(
        listener["@type"],
        "type.googleapis.com/envoy.config.listener.v3.Listener"
    );
    assert_eq!(
        listener["address"]["socket_address"]["port_value"],
        envoy.outbound.port()
    );

    // `sextant proxy-status` prints the same state as a table.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "proxy-status",
            "--admin-address",
            &sextant.admin.to_string(),
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("admin-test.default"))
        .unwrap_or_else(|| panic!("{table}"));
    assert_eq!(row.matches("SYNCED").count(), 4, "{table}");

    // An unknown proxy is a clear 404; health and readiness answer.
    let (status, body) = sextant.admin_get("/config_dump?proxy=nobody.default").await;
    assert_eq!(status, 404);
    assert!(body.contains("nobody.default"), "{body}");
    assert_eq!(sextant.admin_get("/healthz").await.0, 200);
    assert_eq!(sextant.admin_get("/readyz").await.0, 200);
}
