//! End to end: a real Envoy accepts the RBAC filters Sextant generates.
//!
//! For every AuthorizationPolicy case in `src/translate/testdata/rbac/in`
//! (the RBAC golden inputs), the filters for the golden workload (namespace
//! `default`, `app=backend`) are generated through the public API and put
//! into a static bootstrap: one listener whose HTTP connection manager runs
//! the HTTP RBAC filters before the router, one whose network RBAC filters
//! run before `tcp_proxy`. `envoy --mode validate` must accept each; a
//! control case with a broken RBAC policy must be refused, so the check
//! really reaches the RBAC config. Fails (never skips) without `envoy`.

use crate::harness;

use serde_json::{json, Value};
use sextant::envoy::json::to_json;
use sextant::ir::{build, policies_for};
use sextant::source::parse::parse_documents;
use sextant::store::Store;
use sextant::translate::{http_rbac_filters, network_rbac_filters};
use std::path::{Path, PathBuf};
use std::process::Command;

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/translate/testdata/rbac/in");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    cases
}

/// The HTTP and network RBAC filters (as JSON) of the golden workload.
fn filters(case: &Path) -> (Vec<Value>, Vec<Value>) {
    let text = std::fs::read_to_string(case).unwrap();
    let file = case.display().to_string();
    let mut store = Store::new();
    store.apply(&file, parse_documents(&file, &text));
    let (world, _) = store.world();
    let ir = build(&world);
    let labels = [("app".to_string(), "backend".to_string())].into();
    let policies = policies_for(
        &ir.authorization_policies,
        "default",
        &labels,
        "istio-system",
    );
    let http = http_rbac_filters(&policies)
        .iter()
        .map(|f| to_json(f).unwrap())
        .collect();
    let tcp = network_rbac_filters(&policies, "tcp.")
        .iter()
        .map(|f| to_json(f).unwrap())
        .collect();
    (http, tcp)
}

/// A static bootstrap with the filters on an HTTP and a TCP listener.
fn bootstrap(mut http: Vec<Value>, mut tcp: Vec<Value>) -> Value {
    http.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    }));
    tcp.push(json!({
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": "inbound_tcp",
            "cluster": "app"
        }
    }));
    let address =
        |port: u16| json!({"socket_address": {"address": "127.0.0.1", "port_value": port}});
    json!({"static_resources": {
        "listeners": [
            {"name": "inbound-http", "address": address(1), "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "inbound_http",
                    "http_filters": http,
                    "route_config": {"name": "inbound", "virtual_hosts": [{"name": "app", "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]}
                }
            }]}]},
            {"name": "inbound-tcp", "address": address(2), "filter_chains": [{"filters": tcp}]}
        ],
        "clusters": [{"name": "app", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
            "cluster_name": "app",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address(9)}}]}]
        }}]
    }})
}

/// Whether `envoy --mode validate` accepts `config`, and its last log line.
fn envoy_accepts(config: &Value, dir: &Path, name: &str, base_id: u32) -> (bool, String) {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
    let output = Command::new(harness::envoy_binary())
        .args([
            "--mode",
            "validate",
            "--base-id",
            &base_id.to_string(),
            "-c",
        ])
        .arg(&path)
        .output()
        .expect("running envoy --mode validate");
    let log = String::from_utf8_lossy(&output.stderr);
    let last = log.lines().last().unwrap_or("").to_string();
    (output.status.success(), last)
}

#[test]
fn envoy_accepts_every_generated_rbac_filter() {
    let dir = tempfile::tempdir().unwrap();
    let base = u32::from(harness::free_port()) * 100;
    let configs: Vec<(String, Value)> = cases()
        .iter()
        .map(|case| {
            let (http, tcp) = filters(case);
            let name = case.file_stem().unwrap().to_string_lossy().into_owned();
            (name, bootstrap(http, tcp))
        })
        .collect();
    // Every case must generate something, except the one about selection.
    for (name, config) in &configs {
        let text = config.to_string();
        assert_eq!(
            text.contains("envoy.filters.http.rbac"),
            name != "selector-not-matching",
            "{name}: {text}"
        );
    }
    let verdicts: Vec<(bool, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = configs
            .iter()
            .enumerate()
            .map(|(i, (name, config))| {
                let dir = dir.path();
                scope.spawn(move || envoy_accepts(config, dir, name, base + i as u32))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused: Vec<String> = configs
        .iter()
        .zip(verdicts)
        .filter(|(_, (ok, _))| !ok)
        .map(|((name, _), (_, log))| format!("{name}: {log}"))
        .collect();
    assert!(refused.is_empty(), "envoy refused:\n{}", refused.join("\n"));
}

#[test]
fn envoy_refuses_a_broken_rbac_policy() {
    let dir = tempfile::tempdir().unwrap();
    let base = u32::from(harness::free_port()) * 100 + 99;
    // An empty prefix is not a valid StringMatcher: validation must see it.
    let broken = json!({
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"policies": {"p": {
                "permissions": [{"any": true}],
                "principals": [{"authenticated": {"principal_name": {"prefix": ""}}}]
            }}}
        }
    });
    let (ok, log) = envoy_accepts(
        &bootstrap(vec![broken], Vec::new()),
        dir.path(),
        "broken",
        base,
    );
    assert!(!ok, "envoy accepted a broken RBAC policy: {log}");
}
