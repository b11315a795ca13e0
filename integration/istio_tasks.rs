//! End to end: routing YAML in the shape of Istio's documented
//! traffic-management tasks (`examples/istio-tasks/`, Istio apiVersions,
//! unchanged) loads with no error or warning beside the bookinfo world, and a
//! real Envoy accepts every resource Sextant makes of it. (What each feature
//! does on the wire is shown by `route_policies.rs` and
//! `destination_policies.rs`.)

use crate::harness;

use harness::*;
use std::path::Path;
use std::time::Duration;

const HTTPBIN: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: httpbin, namespace: default}\nspec:\n  selector: {app: httpbin}\n  ports:\n  - {name: http, port: 8000, targetPort: 80}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: httpbin-v1, namespace: default}\nspec:\n  address: 127.0.1.151\n  labels: {app: httpbin, version: v1}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: httpbin-v2, namespace: default}\nspec:\n  address: 127.0.1.152\n  labels: {app: httpbin, version: v2}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_task_configs_load_unchanged_and_envoy_accepts_them() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut tasks: Vec<_> = std::fs::read_dir(examples.join("istio-tasks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    tasks.sort();
    assert_eq!(tasks.len(), 6, "{tasks:?}");
    for task in tasks {
        let name = task.file_stem().unwrap().to_string_lossy().to_string();
        let work = tempfile::tempdir().unwrap();
        let config = ConfigDir::new();
        for world in ["services.yaml", "workloads.yaml"] {
            config.write(
                world,
                &std::fs::read_to_string(examples.join("bookinfo").join(world)).unwrap(),
            );
        }
        config.write("httpbin.yaml", HTTPBIN);
        config.write("task.yaml", &std::fs::read_to_string(&task).unwrap());

        let sextant = Sextant::start(work.path(), config.path()).await;
        let report = sextant.admin_json("/debug/config_errors").await;
        assert_eq!(
            report["diagnostics"],
            serde_json::json!([]),
            "{name}: {report}"
        );

        let node_id = format!("{name}.default");
        let envoy = Envoy::start(work.path(), &sextant, Workload::client(&node_id)).await;
        // A bound, not a speed check: the whole suite shares 2 cores.
        wait_for(
            Duration::from_secs(30),
            &format!("{name}: every type ACKed"),
            || async {
                let syncz = sextant.admin_json("/debug/syncz").await;
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
        assert_eq!(envoy.updates_rejected().await, 0, "{name}");
        assert_eq!(sextant.nacks_total().await, serde_json::json!({}), "{name}");
    }
}
