//! End to end: ServiceEntries bring hosts the platform does not know into
//! the mesh, and a real Envoy reaches them on this machine. STATIC endpoints
//! with subsets and a header route, DNS resolution of `localhost`, NONE
//! (the host the client names, resolved by DNS), and a VM-like
//! WorkloadEntry picked by `workloadSelector`. A bad entry is reported with
//! its field and leaves the others serving.

use crate::harness;

use harness::*;
use std::time::Duration;

fn entries(api_v1: &Upstream, api_v2: &Upstream, local: &Upstream, vm: &Upstream) -> String {
    let (p1, p2, lp, vp) = (
        api_v1.addr.port(),
        api_v2.addr.port(),
        local.addr.port(),
        vm.addr.port(),
    );
    let (ip1, ip2, vip) = (api_v1.addr.ip(), api_v2.addr.ip(), vm.addr.ip());
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: partner-api, namespace: default}}
spec:
  hosts: [api.partner.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: {ip1}, ports: {{http: {p1}}}, labels: {{version: v1}}}}
  - {{address: {ip2}, ports: {{http: {p2}}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: partner-api, namespace: default}}
spec:
  host: api.partner.test
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: partner-api, namespace: default}}
spec:
  hosts: [api.partner.test]
  http:
  - match: [{{headers: {{x-canary: {{exact: "yes"}}}}}}]
    route: [{{destination: {{host: api.partner.test, subset: v2}}}}]
  - route: [{{destination: {{host: api.partner.test, subset: v1}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: partner-dns, namespace: default}}
spec:
  hosts: [dns.partner.test]
  resolution: DNS
  ports: [{{number: 80, name: http, targetPort: {lp}}}]
  endpoints: [{{address: localhost}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: passthrough, namespace: default}}
spec:
  hosts: [localhost]
  resolution: NONE
  ports: [{{number: {lp}, name: http, protocol: HTTP}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: vm-billing, namespace: default}}
spec:
  hosts: [billing.vm.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: vm-billing}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: vm-billing-1, namespace: default}}
spec:
  address: {vip}
  ports: {{http: {vp}}}
  labels: {{app: vm-billing}}
"#
    )
}

const BAD: &str = r#"apiVersion: networking.sextant.dev/v1alpha1
kind: ServiceEntry
metadata: {name: bad, namespace: default}
spec:
  hosts: [bad.partner.test]
  resolution: NONE
  ports: [{number: 80, name: http}]
  endpoints: [{address: 127.0.1.159}]
"#;

async fn run(delta: bool) {
    let work = tempfile::tempdir().unwrap();
    let api_v1 = Upstream::start(work.path(), "127.0.1.151", "partner-api", "v1");
    let api_v2 = Upstream::start(work.path(), "127.0.1.152", "partner-api", "v2");
    let local = Upstream::start(work.path(), "127.0.0.1", "partner-dns", "local");
    let vm = Upstream::start(work.path(), "127.0.1.153", "billing", "vm");
    let config = ConfigDir::new();
    config.write("entries.yaml", &entries(&api_v1, &api_v2, &local, &vm));
    config.write("bad.yaml", BAD);
    let sextant = Sextant::start(work.path(), config.path()).await;
    let node = if delta {
        "se-delta.default"
    } else {
        "se-sotw.default"
    };
    let workload = Workload::client(node);
    let workload = if delta { workload.delta() } else { workload };
    let envoy = Envoy::start(work.path(), &sextant, workload).await;
    envoy.wait_until_serving("api.partner.test").await;

    // STATIC endpoints with subsets: the header route picks v2, the rest v1.
    let counts = envoy.version_counts("api.partner.test", 10).await;
    assert_eq!(counts.get("v1"), Some(&10), "{counts:?}");
    let (status, body) = envoy
        .get("api.partner.test", "/", &[("x-canary", "yes")])
        .await;
    assert_eq!(
        (status, body["version"].as_str()),
        (200, Some("v2")),
        "{body}"
    );

    // DNS: Envoy resolves `localhost` and connects on the target port.
    wait_for(
        Duration::from_secs(10),
        "dns.partner.test to answer",
        || async { (envoy.version_of("dns.partner.test").await == "local").then_some(()) },
    )
    .await;
    let clusters = envoy.dump_section("ClustersConfigDump").await;
    let dns = clusters["dynamic_active_clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"]["name"] == "outbound|80||dns.partner.test")
        .unwrap_or_else(|| panic!("no DNS cluster: {clusters}"));
    assert_eq!(dns["cluster"]["type"], "STRICT_DNS", "{dns}");

    // NONE: the request goes to the host the client named.
    let host = format!("localhost:{}", local.addr.port());
    wait_for(Duration::from_secs(10), "localhost to answer", || async {
        (envoy.version_of(&host).await == "local").then_some(())
    })
    .await;

    // workloadSelector: the WorkloadEntry (a VM) serves the entry.
    assert_eq!(envoy.version_of("billing.vm.internal").await, "vm");

    // An entry host has no Kubernetes short names.
    assert_eq!(envoy.get("api", "/", &[]).await.0, 404);

    // The bad entry is reported with its field; it never reaches Envoy.
    let errors = sextant.admin_json("/debug/config_errors").await;
    let text = errors.to_string();
    assert!(
        text.contains("ServiceEntry default/bad")
            && text.contains("spec.endpoints")
            && text.contains("resolution NONE takes no endpoints"),
        "{errors}"
    );
    assert!(!envoy
        .active_clusters()
        .await
        .iter()
        .any(|c| c.contains("bad.partner.test")));
    assert_eq!(envoy.updates_rejected().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_entries_reach_external_hosts_and_vms_sotw() {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_entries_reach_external_hosts_and_vms_delta() {
    run(true).await;
}
