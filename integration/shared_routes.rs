//! End to end: route configurations made of parts. In a mesh of 100
//! namespaces whose services interleave in name order, a class's route
//! configuration points into the IR's buffer of shared virtual hosts in
//! runs of tens of KB, with the class's own virtual hosts (which answer
//! short names too) copied between them (`cache::Body`). Two stock Envoys
//! of two namespaces, one over SotW and one over delta, accept it and
//! route real requests by every name form, before and after an edit that
//! changes one shared virtual host. A third Envoy of the delta proxy's
//! class, started once that one is serving, is sent the same maps: their
//! encoded `resources` sections are the ones kept from the first
//! (`server/sections.rs`), the message lengths taken from them.

use crate::harness;

use harness::*;
use std::fmt::Write;

/// Namespaces `ns-0`.. and services `svc-0`.. (`svc-i` in `ns-{i % 100}`).
const NAMESPACES: usize = 100;
const SERVICES: usize = 600;

/// The Services of the mesh; `svc-1` (ns-1) and `svc-250` (ns-50) have a
/// workload each, the upstreams `own` and `far`.
fn mesh_yaml(own: &Upstream, far: &Upstream) -> String {
    let mut out = String::new();
    for i in 0..SERVICES {
        let ns = i % NAMESPACES;
        write!(
            out,
            "apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, namespace: ns-{ns}}}\nspec:\n  selector: {{app: svc-{i}}}\n  ports: [{{name: http, port: 80}}]\n---\n"
        )
        .unwrap();
    }
    for (i, upstream) in [(1, own), (250, far)] {
        write!(
            out,
            "apiVersion: networking.sextant.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {{name: svc-{i}-1, namespace: ns-{ns}}}\nspec:\n  address: {ip}\n  ports: {{http: {port}}}\n  labels: {{app: svc-{i}}}\n---\n",
            ns = i % NAMESPACES,
            ip = upstream.addr.ip(),
            port = upstream.addr.port()
        )
        .unwrap();
    }
    out
}

/// Which upstream answers `host` through `envoy` (its name), or the status.
async fn answer(envoy: &Envoy, host: &str, path: &str) -> String {
    match envoy.get(host, path, &[]).await {
        (200, body) => body["service"].as_str().unwrap_or("?").to_string(),
        (status, _) => status.to_string(),
    }
}

/// Asserts that `host` + `path` through `envoy` gets `want` (see [`answer`]).
async fn expect(envoy: &Envoy, host: &str, path: &str, want: &str) {
    assert_eq!(
        answer(envoy, host, path).await,
        want,
        "{} asking for {host}{path}",
        envoy.node_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_configurations_in_parts_route_every_name() {
    let work = tempfile::tempdir().unwrap();
    let own = Upstream::start(work.path(), "127.0.1.171", "own", "v1");
    let far = Upstream::start(work.path(), "127.0.1.172", "far", "v1");
    let config = ConfigDir::new();
    config.write("mesh.yaml", &mesh_yaml(&own, &far));
    let sextant = Sextant::start(work.path(), config.path()).await;
    let near = Envoy::start(
        work.path(),
        &sextant,
        Workload {
            namespace: "ns-1",
            ..Workload::client("near.ns-1")
        },
    )
    .await;
    let other = Envoy::start(
        work.path(),
        &sextant,
        Workload {
            namespace: "ns-50",
            ..Workload::client("other.ns-50").delta()
        },
    )
    .await;
    near.wait_until_serving("svc-250.ns-50").await;
    other.wait_until_serving("svc-1.ns-1").await;
    let twin = Envoy::start(
        work.path(),
        &sextant,
        Workload {
            namespace: "ns-50",
            ..Workload::client("twin.ns-50").delta()
        },
    )
    .await;
    twin.wait_until_serving("svc-1.ns-1").await;

    // Every virtual host arrived, and no Envoy rejected anything.
    for envoy in [&near, &other, &twin] {
        let routes = envoy.dump_section("RoutesConfigDump").await;
        let vhosts = routes["dynamic_route_configs"][0]["route_config"]["virtual_hosts"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(
            vhosts,
            SERVICES,
            "{}: {}",
            envoy.node_id,
            envoy.process.log()
        );
        assert_eq!(envoy.updates_rejected().await, 0, "{}", envoy.process.log());
    }
    // Short names answer in the service's own namespace only (those
    // virtual hosts are the class's own bytes); the others are shared.
    expect(&near, "svc-1", "/", "own").await;
    expect(&near, "svc-1.ns-1.svc.cluster.local", "/", "own").await;
    expect(&near, "svc-250.ns-50", "/", "far").await;
    expect(&near, "svc-250.ns-50.svc:80", "/", "far").await;
    expect(&near, "svc-250", "/", "404").await;
    expect(&other, "svc-250", "/", "far").await;
    expect(&other, "svc-1.ns-1", "/", "own").await;
    expect(&other, "svc-1", "/", "404").await;
    expect(&twin, "svc-250", "/", "far").await;
    expect(&twin, "svc-1.ns-1", "/", "own").await;
    for envoy in [&other, &twin] {
        let clusters = envoy.dump_section("ClustersConfigDump").await;
        let dynamic = clusters["dynamic_active_clusters"]
            .as_array()
            .map_or(0, Vec::len);
        assert!(dynamic >= SERVICES, "{}: {dynamic} clusters", envoy.node_id);
    }

    // An edit of one shared virtual host: a new IR, a new shared buffer.
    config.write(
        "teapot.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: svc-250, namespace: ns-50}\nspec:\n  hosts: [svc-250]\n  http:\n  - match: [{uri: {prefix: /teapot}}]\n    directResponse: {status: 418}\n  - route: [{destination: {host: svc-250}}]\n",
    );
    for envoy in [&near, &other, &twin] {
        wait_for(
            std::time::Duration::from_secs(10),
            &format!("{} to answer 418 for svc-250.ns-50/teapot", envoy.node_id),
            || async { (answer(envoy, "svc-250.ns-50", "/teapot").await == "418").then_some(()) },
        )
        .await;
    }
    expect(&near, "svc-250.ns-50", "/", "far").await;
    expect(&near, "svc-1", "/teapot", "own").await;
    expect(&other, "svc-250", "/teapot", "418").await;
    expect(&other, "svc-1.ns-1", "/", "own").await;
    expect(&twin, "svc-250", "/teapot", "418").await;
    for envoy in [&near, &other, &twin] {
        assert_eq!(envoy.updates_rejected().await, 0, "{}", envoy.process.log());
    }
}
