//! Golden tests of the whole translation (YAML → store → IR → Envoy JSON),
//! plus plain assertions that spell out what each golden case is about.
//!
//! Every `testdata/in/<case>.yaml` is rendered with
//! [`render::translation_json`](super::render::translation_json) for a proxy
//! in namespace `default` and compared with `testdata/out/<case>.json`. Set
//! `SEXTANT_UPDATE_GOLDEN=1` to rewrite the outputs, then review the diff.

use super::render::translation_json;
use super::TranslateOptions;
use crate::ir::{self, EndpointState, Ir};
use crate::proxy::ProxyClass;
use crate::source::parse::parse_documents;
use crate::store::Store;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Set to `1` to rewrite the golden outputs instead of comparing.
const UPDATE_ENV: &str = "SEXTANT_UPDATE_GOLDEN";

/// The cases this file's assertions rely on; any further input is compared too.
const CASES: &[&str] = &[
    "bookinfo-weights",
    "port-mapping",
    "terminating-endpoints",
    "pods-as-endpoints",
    "unknown-destination",
    "zero-weights",
    "uneven-weights",
    "service-entries",
    "tcp-services",
];

fn testdata(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/translate/testdata")
        .join(dir)
}

/// Case names of the files in `testdata/<dir>` that end in `.<ext>`.
fn case_names(dir: &str, ext: &str) -> BTreeSet<String> {
    let path = testdata(dir);
    let entries =
        std::fs::read_dir(&path).unwrap_or_else(|e| panic!("listing {}: {e}", path.display()));
    entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Loads a case as the file source would: parse, store, resolve. Golden
/// inputs must load without parse diagnostics (they test translation; the
/// parser has its own tests), so a typo in an input cannot go unnoticed.
fn load(case: &str) -> Ir {
    let path = testdata("in").join(format!("{case}.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    load_text(case, &text)
}

/// Loads YAML `text` (named `case`) as [`load`] does.
fn load_text(case: &str, text: &str) -> Ir {
    let file = format!("{case}.yaml");
    let parsed = parse_documents(&file, text);
    let problems: Vec<String> = parsed.diagnostics.iter().map(ToString::to_string).collect();
    assert!(
        problems.is_empty() && parsed.rejected.is_empty() && !parsed.unreadable,
        "case {case}: the input does not load cleanly:\n{}",
        problems.join("\n")
    );
    let mut store = Store::new();
    store.apply(&file, parsed);
    let (world, duplicates) = store.world();
    assert!(duplicates.is_empty(), "case {case}: {duplicates:?}");
    ir::build(&world)
}

fn render(ir: &Ir) -> Value {
    // The golden proxy: a workload `app=client` in `default`.
    let labels = [("app".to_string(), "client".to_string())].into();
    let class = ProxyClass::of(ir, "default", &labels, "istio-system", false);
    translation_json(ir, &class, &TranslateOptions::default())
}

/// The translation of a case, as JSON. Cases named `mtls-*` are rendered
/// for a proxy that has a mesh certificate, plus the inbound side of every
/// workload with a sidecar (under `inbound`, by address).
fn translation(case: &str) -> Value {
    let ir = load(case);
    if !case.starts_with("mtls-") {
        return render(&ir);
    }
    let labels = [("app".to_string(), "client".to_string())].into();
    let class = ProxyClass::of(&ir, "default", &labels, "istio-system", true);
    let options = TranslateOptions::default();
    let mut out = translation_json(&ir, &class, &options);
    let mut inbound = serde_json::Map::new();
    let index = super::inbound::InboundIndex::new(&ir);
    for w in ir.workloads.values().filter(|w| w.sidecar_port.is_some()) {
        let addr = std::net::SocketAddr::new(w.address, w.sidecar_port.unwrap());
        let authz = super::inbound::authz_filters(&ir, w, &options);
        let rendered = match super::inbound::inbound(
            &ir,
            &index,
            w,
            addr,
            Some("cluster.local"),
            &authz,
            &super::translate(&ir, &class, &options).telemetry,
            &options,
        ) {
            Some((listener, clusters)) => serde_json::json!({
                "listener": crate::envoy::json::to_json(&listener).unwrap(),
                "clusters": clusters.iter().map(|c| crate::envoy::json::to_json(c).unwrap()).collect::<Vec<_>>(),
            }),
            None => Value::Null,
        };
        inbound.insert(w.address.to_string(), rendered);
    }
    out["inbound"] = Value::Object(inbound);
    out
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON renders");
    text.push('\n');
    text
}

/// Where two texts first differ, for a failure message that can be read
/// without a diff tool.
fn first_difference(expected: &str, actual: &str) -> String {
    let (mut expected_lines, mut actual_lines) = (expected.lines(), actual.lines());
    let mut line = 1;
    loop {
        match (expected_lines.next(), actual_lines.next()) {
            (Some(e), Some(a)) if e == a => line += 1,
            (None, None) => return "the texts differ only in line endings".into(),
            (e, a) => {
                return format!(
                    "first difference at line {line}:\n  expected: {}\n  actual:   {}",
                    e.unwrap_or("<end of file>"),
                    a.unwrap_or("<end of file>")
                )
            }
        }
    }
}

#[test]
fn golden_translations_match_their_outputs() {
    let update = std::env::var(UPDATE_ENV).is_ok_and(|v| v == "1");
    let inputs = case_names("in", "yaml");
    let outputs = case_names("out", "json");
    let mut failures = Vec::new();
    for case in CASES {
        if !inputs.contains(*case) {
            failures.push(format!("{case}: the input in/{case}.yaml is missing"));
        }
    }
    for case in outputs.difference(&inputs) {
        failures.push(format!(
            "{case}: out/{case}.json has no input in/{case}.yaml; delete the output or restore the input"
        ));
    }
    for case in &inputs {
        let actual = pretty(&translation(case));
        let path = testdata("out").join(format!("{case}.json"));
        if update {
            std::fs::write(&path, &actual)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            continue;
        }
        match std::fs::read_to_string(&path) {
            Err(_) => failures.push(format!(
                "{case}: there is no out/{case}.json; run with {UPDATE_ENV}=1 to write it"
            )),
            Ok(expected) if expected != actual => failures.push(format!(
                "{case}: the translation differs from out/{case}.json; {}\n  (if the change is intended, run with {UPDATE_ENV}=1 and review the diff)",
                first_difference(&expected, &actual)
            )),
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "golden cases failed:\n\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn first_difference_names_the_line() {
    assert_eq!(
        first_difference("a\nb\nc\n", "a\nB\nc\n"),
        "first difference at line 2:\n  expected: b\n  actual:   B"
    );
    assert_eq!(
        first_difference("a\n", "a\nb\n"),
        "first difference at line 2:\n  expected: <end of file>\n  actual:   b"
    );
}

// ---------------------------------------------------------------------------
// Reading the translation JSON.

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

/// `(address, port)` of every endpoint of the ClusterLoadAssignment named `cluster`.
fn endpoints_of(t: &Value, cluster: &str) -> Vec<(String, u64)> {
    let cla = array(t, "cluster_load_assignments")
        .iter()
        .find(|c| text(c, "cluster_name") == cluster)
        .unwrap_or_else(|| panic!("no ClusterLoadAssignment named {cluster}"));
    array(cla, "endpoints")
        .iter()
        .flat_map(|locality| array(locality, "lb_endpoints"))
        .map(|lb| {
            let socket = &lb["endpoint"]["address"]["socket_address"];
            (
                text(socket, "address").to_string(),
                socket["port_value"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Every sent endpoint address, over all ClusterLoadAssignments.
fn all_endpoint_addresses(t: &Value) -> BTreeSet<String> {
    array(t, "cluster_load_assignments")
        .iter()
        .flat_map(|cla| endpoints_of(t, text(cla, "cluster_name")))
        .map(|(address, _)| address)
        .collect()
}

fn virtual_hosts(t: &Value) -> Vec<&Value> {
    array(t, "route_configurations")
        .iter()
        .flat_map(|rc| array(rc, "virtual_hosts"))
        .collect()
}

/// The Envoy routes of the virtual host named `name`, by route name.
fn routes_of<'a>(t: &'a Value, name: &str) -> BTreeMap<&'a str, &'a Value> {
    let vhost = virtual_hosts(t)
        .into_iter()
        .find(|v| text(v, "name") == name)
        .unwrap_or_else(|| panic!("no virtual host named {name}"));
    array(vhost, "routes")
        .iter()
        .map(|r| (text(r, "name"), r))
        .collect()
}

/// `(cluster, weight)` a forwarding route sends to (weight 1 for a single cluster).
fn destinations(route: &Value) -> Vec<(&str, u64)> {
    let action = &route["route"];
    if let Some(cluster) = action["cluster"].as_str() {
        return vec![(cluster, 1)];
    }
    array(&action["weighted_clusters"], "clusters")
        .iter()
        .map(|c| (text(c, "name"), c["weight"].as_u64().unwrap_or(0)))
        .collect()
}

fn diagnostics(t: &Value) -> Vec<&str> {
    array(t, "diagnostics")
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect()
}

fn ip(s: &str) -> (String, u64) {
    let (address, port) = s.rsplit_once(':').unwrap();
    (address.to_string(), port.parse().unwrap())
}

// ---------------------------------------------------------------------------
// What every case must satisfy for Envoy to accept the whole configuration.

#[test]
fn every_case_keeps_the_invariants_envoy_relies_on() {
    for case in &case_names("in", "yaml") {
        let t = translation(case);
        let cluster_names: Vec<&str> = array(&t, "clusters")
            .iter()
            .map(|c| text(c, "name"))
            .collect();
        let assignment_names: BTreeSet<&str> = array(&t, "cluster_load_assignments")
            .iter()
            .map(|c| text(c, "cluster_name"))
            .collect();
        assert_eq!(
            cluster_names.iter().collect::<BTreeSet<_>>().len(),
            cluster_names.len(),
            "{case}: duplicate cluster names"
        );
        for cluster in array(&t, "clusters") {
            let name = text(cluster, "name");
            assert!(!name.is_empty(), "{case}: a cluster without a name");
            let kind = cluster["type"].as_str().unwrap_or("EDS");
            if kind != "EDS" {
                // A DNS cluster carries its names; LOGICAL_DNS exactly one.
                let targets = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
                    .as_array()
                    .map_or(0, Vec::len);
                assert!(
                    kind == "STRICT_DNS" || targets == 1,
                    "{case}: {name} is {kind} with {targets} targets"
                );
                continue;
            }
            let service_name = text(&cluster["eds_cluster_config"], "service_name");
            assert_eq!(service_name, name, "{case}");
            assert!(
                assignment_names.contains(service_name),
                "{case}: cluster {name} asks EDS for {service_name:?}, which no ClusterLoadAssignment is named"
            );
        }

        let mut domains = BTreeSet::new();
        for vhost in virtual_hosts(&t) {
            let name = text(vhost, "name");
            let vhost_domains = array(vhost, "domains");
            assert!(
                !vhost_domains.is_empty(),
                "{case}: virtual host {name} has no domains"
            );
            for domain in vhost_domains {
                let domain = domain.as_str().unwrap();
                assert_eq!(domain, domain.to_ascii_lowercase(), "{case}");
                assert!(
                    domains.insert(domain),
                    "{case}: domain {domain} appears twice"
                );
            }
            for route in array(vhost, "routes") {
                let route_name = text(route, "name");
                if route.get("direct_response").is_some() || route.get("redirect").is_some() {
                    continue;
                }
                let targets = destinations(route);
                assert!(
                    !targets.is_empty(),
                    "{case}: route {route_name} goes nowhere"
                );
                assert!(
                    targets.iter().map(|(_, w)| w).sum::<u64>() > 0,
                    "{case}: {route_name}"
                );
                for (cluster, weight) in targets {
                    assert!(
                        !cluster.is_empty(),
                        "{case}: route {route_name} has an empty cluster name"
                    );
                    assert!(
                        weight > 0,
                        "{case}: route {route_name} has weight 0 for {cluster}"
                    );
                    assert!(
                        cluster_names.contains(&cluster),
                        "{case}: route {route_name} uses cluster {cluster}, which is not sent"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// One test per case, saying in plain asserts what its golden output pins.

#[test]
fn bookinfo_weights_split_90_10_and_route_jason_to_v2() {
    let t = translation("bookinfo-weights");
    let routes = routes_of(&t, "reviews.default.svc.cluster.local:9080");
    let jason = routes["default/reviews.jason"];
    assert_eq!(
        destinations(jason),
        [("outbound|9080|v2|reviews.default.svc.cluster.local", 1)]
    );
    assert_eq!(text(&jason["match"]["headers"][0], "name"), "end-user");
    assert_eq!(
        text(&jason["match"]["headers"][0]["string_match"], "exact"),
        "jason"
    );
    assert_eq!(
        destinations(routes["default/reviews.1"]),
        [
            ("outbound|9080|v1|reviews.default.svc.cluster.local", 90),
            ("outbound|9080|v2|reviews.default.svc.cluster.local", 10),
        ]
    );
    assert_eq!(
        endpoints_of(&t, "outbound|9080|v1|reviews.default.svc.cluster.local"),
        [ip("10.1.0.1:9080")]
    );
    assert_eq!(
        endpoints_of(&t, "outbound|9080||reviews.default.svc.cluster.local"),
        [ip("10.1.0.1:9080"), ip("10.1.0.2:9080")]
    );
    assert!(diagnostics(&t).is_empty(), "{:?}", diagnostics(&t));
}

/// Handed case 003.
#[test]
fn port_mapping_keys_clusters_by_service_port_and_uses_slice_target_ports() {
    let ir = load("port-mapping");
    let t = render(&ir);
    let ledger = "outbound|80||ledger.default.svc.cluster.local";
    assert_eq!(ir.clusters[ledger].port, 80);
    assert_eq!(
        endpoints_of(&t, ledger),
        [ip("10.2.0.1:8080"), ip("10.2.0.2:8080")]
    );
    // The named target port resolves per slice: 9090 on one pod, 9191 on the other.
    assert_eq!(
        endpoints_of(&t, "outbound|80||audit.default.svc.cluster.local"),
        [ip("10.3.0.1:9090"), ip("10.3.0.2:9191")]
    );
    assert_eq!(
        endpoints_of(&t, "outbound|9100||audit.default.svc.cluster.local"),
        [ip("10.3.0.1:9100"), ip("10.3.0.2:9100")]
    );
    // No cluster is keyed by a target port.
    let names: Vec<&str> = ir.clusters.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "outbound|80||audit.default.svc.cluster.local",
            "outbound|80||ledger.default.svc.cluster.local",
            "outbound|9100||audit.default.svc.cluster.local",
        ]
    );
    // `ledger` (port 80, its default) answers the short name with and without the port.
    let vhost = virtual_hosts(&t)
        .into_iter()
        .find(|v| text(v, "name") == "ledger.default.svc.cluster.local:80")
        .unwrap();
    let domains: Vec<&str> = array(vhost, "domains")
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        domains.contains(&"ledger") && domains.contains(&"ledger:80"),
        "{domains:?}"
    );
}

/// Handed case 005.
#[test]
fn terminating_endpoints_get_traffic_only_when_nothing_is_ready() {
    let ir = load("terminating-endpoints");
    let states: BTreeMap<String, EndpointState> = ir
        .clusters
        .values()
        .flat_map(|c| &c.endpoints)
        .map(|e| (e.address.to_string(), e.state))
        .collect();
    assert_eq!(states["10.4.0.1"], EndpointState::Ready);
    assert_eq!(states["10.4.0.2"], EndpointState::ServingTerminating);
    assert_eq!(states["10.4.0.3"], EndpointState::NotServing);
    assert_eq!(states["10.6.0.1"], EndpointState::Ready, "empty conditions");
    assert_eq!(states["10.6.0.2"], EndpointState::Ready, "no conditions");

    let t = render(&ir);
    assert_eq!(
        endpoints_of(&t, "outbound|80||checkout.default.svc.cluster.local"),
        [ip("10.4.0.1:8080")]
    );
    assert_eq!(
        endpoints_of(&t, "outbound|80||drain.default.svc.cluster.local"),
        [ip("10.5.0.1:8080"), ip("10.5.0.2:8080")]
    );
    assert_eq!(
        endpoints_of(&t, "outbound|80||legacy.default.svc.cluster.local"),
        [ip("10.6.0.1:8080"), ip("10.6.0.2:8080")]
    );
    let sent = all_endpoint_addresses(&t);
    for never in ["10.4.0.3", "10.5.0.3", "10.6.0.3"] {
        assert!(!sent.contains(never), "{never} is not serving but was sent");
    }
    // What is sent is sent as HEALTHY: nothing for Envoy's panic threshold to spread onto.
    for cla in array(&t, "cluster_load_assignments") {
        for locality in array(cla, "endpoints") {
            for lb in array(locality, "lb_endpoints") {
                assert_eq!(text(lb, "health_status"), "HEALTHY");
            }
        }
    }
}

#[test]
fn pods_selected_by_a_service_are_its_endpoints() {
    let t = translation("pods-as-endpoints");
    assert_eq!(
        endpoints_of(&t, "outbound|80||web.default.svc.cluster.local"),
        [ip("10.7.0.1:8080"), ip("10.7.0.2:8080")]
    );
    // The named targetPort is the container port of that name, in each Pod.
    assert_eq!(
        endpoints_of(&t, "outbound|9000||web.default.svc.cluster.local"),
        [ip("10.7.0.1:9901")]
    );
    assert!(
        !all_endpoint_addresses(&t).contains("10.7.0.9"),
        "other-1 is not selected"
    );
}

/// Handed case 007, parts C and D.
#[test]
fn an_unknown_subset_or_host_answers_503_and_names_the_field() {
    let t = translation("unknown-destination");
    let routes = routes_of(&t, "inventory.default.svc.cluster.local:80");
    for name in [
        "default/inventory.unknown-subset",
        "default/inventory.unknown-host",
    ] {
        let route = routes[name];
        assert_eq!(route["direct_response"]["status"], 503, "{name}");
        assert!(
            route.get("route").is_none(),
            "{name} must not point at a cluster"
        );
    }
    assert_eq!(
        destinations(routes["default/inventory.2"]),
        [("outbound|80|v1|inventory.default.svc.cluster.local", 1)]
    );
    let diagnostics = diagnostics(&t);
    let subset = diagnostics
        .iter()
        .find(|d| d.contains("spec.http[0].route[0].destination.subset"))
        .unwrap_or_else(|| panic!("{diagnostics:?}"));
    assert!(
        subset.starts_with("VirtualService default/inventory: "),
        "{subset}"
    );
    assert!(subset.contains("v9"), "{subset}");
    let host = diagnostics
        .iter()
        .find(|d| d.contains("spec.http[1].route[0].destination.host"))
        .unwrap_or_else(|| panic!("{diagnostics:?}"));
    assert!(
        host.starts_with("VirtualService default/inventory: "),
        "{host}"
    );
    assert!(host.contains("warehouse"), "{host}");
    let clusters: Vec<&str> = array(&t, "clusters")
        .iter()
        .map(|c| text(c, "name"))
        .collect();
    assert!(clusters
        .iter()
        .all(|c| !c.contains("|v9|") && !c.contains("warehouse")));
}

/// Handed case 007, part B.
#[test]
fn all_zero_weights_answer_503_directly() {
    let t = translation("zero-weights");
    let routes = routes_of(&t, "inventory.default.svc.cluster.local:80");
    assert_eq!(
        routes["default/inventory.all-zero"]["direct_response"]["status"],
        503
    );
    assert_eq!(
        destinations(routes["default/inventory.1"]),
        [("outbound|80|v1|inventory.default.svc.cluster.local", 1)]
    );
    assert!(
        diagnostics(&t)
            .iter()
            .any(|d| d.starts_with("VirtualService default/inventory: spec.http[0].route: ")),
        "{:?}",
        diagnostics(&t)
    );
}

/// Handed case 007, part A.
#[test]
fn uneven_weights_are_sent_as_relative_weights() {
    let t = translation("uneven-weights");
    let routes = routes_of(&t, "inventory.default.svc.cluster.local:80");
    assert_eq!(
        destinations(routes["default/inventory.0"]),
        [
            ("outbound|80|v1|inventory.default.svc.cluster.local", 3),
            ("outbound|80|v2|inventory.default.svc.cluster.local", 1),
        ]
    );
    // No total_weight: Envoy splits by weight / sum (75% / 25%).
    let route = routes["default/inventory.0"];
    assert!(route["route"]["weighted_clusters"]
        .get("total_weight")
        .is_none());
    assert!(diagnostics(&t).is_empty(), "{:?}", diagnostics(&t));
}

#[test]
fn a_destination_rule_applies_only_where_it_is_exported() {
    let ir = load("destination-rule-export");
    let render_in = |namespace: &str| {
        let class = ProxyClass::of(&ir, namespace, &Default::default(), "istio-system", false);
        translation_json(&ir, &class, &TranslateOptions::default())
    };
    let cluster = |t: &Value, name: &str| {
        array(t, "clusters")
            .iter()
            .find(|c| text(c, "name") == name)
            .cloned()
    };
    let base = "outbound|80||reviews.default.svc.cluster.local";
    let subset = "outbound|80|v1|reviews.default.svc.cluster.local";
    let home = render_in("default");
    assert_eq!(cluster(&home, base).unwrap()["lb_policy"], "LEAST_REQUEST");
    assert!(cluster(&home, subset).is_some());

    let away = render_in("other");
    let plain = cluster(&away, base).expect("the service's cluster is still sent");
    assert!(plain.get("lb_policy").is_none(), "{plain}");
    assert!(cluster(&away, subset).is_none());
    let pinned = virtual_hosts(&away)
        .iter()
        .flat_map(|v| array(v, "routes"))
        .find(|r| text(r, "name") == "default/reviews.0")
        .cloned()
        .unwrap();
    assert_eq!(pinned["direct_response"]["status"], 503, "{pinned}");
}

#[test]
fn validation_sees_the_conflicts_of_every_namespace() {
    let ir = load("tcp-services");
    let found =
        crate::translate::diagnostics_for_every_namespace(&ir, &TranslateOptions::default());
    assert!(
        found.iter().any(|d| d.is_error()
            && d.message
                .contains("is already proxied for db.default.svc.cluster.local")),
        "{found:?}"
    );
}

/// What `sextant validate` reported before it skipped translation: the
/// diagnostics of translating for each class, sorted, without duplicates.
fn diagnostics_by_translating(ir: &Ir) -> Vec<crate::diagnostic::Diagnostic> {
    let options = TranslateOptions::default();
    let mut all: Vec<_> = crate::translate::classes_of_every_namespace(ir, &options)
        .iter()
        .flat_map(|class| crate::translate::translate(ir, class, &options).diagnostics)
        .collect();
    all.sort();
    all.dedup();
    all
}

/// Domains and TCP ports claimed twice in several ways: a ServiceEntry host
/// equal to a service's short name, same-named services in two namespaces,
/// a VirtualService on a service's `name.ns` alias, an exportTo that hides
/// one claimant from some namespaces, a Sidecar that hides one from its
/// workloads, and TCP ports shared by services of different namespaces.
const CONFLICTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  ports: [{name: http, port: 80}, {name: tcp-db, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bank, annotations: {networking.istio.io/exportTo: "bank,shop"}}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: bank}
spec:
  ports: [{name: tcp-db, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: web}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: web}
spec:
  hosts: [reviews]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: alias, namespace: web}
spec:
  hosts: ["reviews.shop"]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: narrow, namespace: web}
spec:
  workloadSelector: {labels: {app: narrow}}
  egress:
  - hosts: ["bank/*"]
"#;

#[test]
fn validation_finds_what_translating_every_class_finds() {
    let options = TranslateOptions::default();
    let mut cases: Vec<(String, Ir)> = case_names("in", "yaml")
        .into_iter()
        .map(|case| {
            let ir = load(&case);
            (case, ir)
        })
        .collect();
    cases.push(("conflicts".into(), load_text("conflicts", CONFLICTS)));
    let mut conflicts_found = 0;
    for (case, ir) in &cases {
        let expected = diagnostics_by_translating(ir);
        let found = crate::translate::diagnostics_for_every_namespace(ir, &options);
        assert_eq!(found, expected, "case {case}");
        if case == "conflicts" {
            conflicts_found = found.len();
        }
    }
    assert!(
        conflicts_found >= 3,
        "the conflicts case has conflicts to find"
    );
}

/// The IR of every golden input, of [`CONFLICTS`] and of a synthetic mesh
/// of 300 services, each with its name.
fn golden_conflicts_and_a_mesh() -> impl Iterator<Item = (Ir, String)> {
    let synthetic = ir::resolve(&crate::synth::store(
        &crate::synth::WorldSpec::with_services(300),
    ))
    .0;
    case_names("in", "yaml")
        .into_iter()
        .map(|case| (load(&case), case))
        .chain([
            (load_text("conflicts", CONFLICTS), "conflicts".to_string()),
            (synthetic, "synthetic".to_string()),
        ])
}

/// The domain claims of a plan (which borrow the uncontested virtual hosts'
/// domains from the per-IR table and check only the contested ones) are
/// those of claiming every domain of every virtual host in order, with the
/// same diagnostics, for every class of every golden input, of the
/// conflicts above and of a synthetic mesh.
#[test]
fn domain_claims_match_claiming_every_domain_of_every_virtual_host() {
    use super::route::domains_of;
    use super::scope::Scope;
    use crate::diagnostic::Diagnostic;
    let options = TranslateOptions::default();
    let cases = golden_conflicts_and_a_mesh();
    let mut contested = 0;
    for (ir, case) in cases {
        let table = super::VirtualHostDomains::new(&ir);
        contested += table.contested().count();
        for class in super::classes_of_every_namespace(&ir, &options) {
            let scope = Scope::new(&ir, &class);
            let mut expected_diagnostics: Vec<Diagnostic> = Vec::new();
            let mut taken: std::collections::HashMap<String, &str> = Default::default();
            let mut expected = Vec::new();
            for (index, vhost) in ir.virtual_hosts.iter().enumerate() {
                if !scope.virtual_host(vhost) {
                    continue;
                }
                let mut domains = Vec::new();
                for domain in domains_of(vhost, &class) {
                    if let Some(owner) = taken.get(&domain) {
                        expected_diagnostics.push(Diagnostic {
                            severity: crate::diagnostic::Severity::Error,
                            file: None,
                            object: vhost.origins.last().cloned(),
                            field: String::new(),
                            message: format!("domain {domain:?} of virtual host {} is already served by virtual host {owner}; left out", vhost.name),
                        });
                        continue;
                    }
                    taken.insert(domain.clone(), &vhost.name);
                    domains.push(domain);
                }
                if !domains.is_empty() {
                    expected.push((index, domains));
                }
            }
            let reach = super::ClusterReach::new(&ir);
            let plan = super::plan::plan(&ir, &table, &reach, &class, &options);
            let actual: Vec<(usize, Vec<String>)> = plan
                .virtual_hosts
                .iter()
                .map(|v| (v.index, v.domains.to_vec()))
                .collect();
            assert_eq!(actual, expected, "{case}: {class:?}");
            let mut actual_diagnostics: Vec<&Diagnostic> = plan
                .diagnostics
                .iter()
                .filter(|d| d.message.starts_with("domain "))
                .collect();
            actual_diagnostics.sort();
            expected_diagnostics.sort();
            assert_eq!(
                actual_diagnostics,
                expected_diagnostics.iter().collect::<Vec<_>>(),
                "{case}: {class:?}"
            );
        }
    }
    assert!(
        contested >= 3,
        "the conflicts case has contested virtual hosts"
    );
}

/// The clusters a plan gives a class (read from the per-IR reach table
/// where it decides) are those of asking the class's scope about every
/// cluster, with the same DestinationRule flag: for every class (every
/// namespace and Sidecar) of every golden input, of the conflicts above
/// (with a Sidecar that narrows what its workloads see) and of a synthetic
/// mesh, and for a class of a namespace no object names.
#[test]
fn planned_clusters_are_those_the_scope_lets_the_class_see() {
    use super::scope::Scope;
    let options = TranslateOptions::default();
    let cases = golden_conflicts_and_a_mesh();
    let mut narrowed = 0;
    let mut by_sidecar = 0;
    for (ir, case) in cases {
        let table = super::VirtualHostDomains::new(&ir);
        let reach = super::ClusterReach::new(&ir);
        let mut classes = super::classes_of_every_namespace(&ir, &options);
        let narrow = BTreeMap::from([("app".to_string(), "narrow".to_string())]);
        for (namespace, labels) in [("elsewhere", BTreeMap::new()), ("web", narrow)] {
            classes.push(ProxyClass::of(
                &ir,
                namespace,
                &labels,
                &options.root_namespace,
                false,
            ));
        }
        for class in classes {
            let scope = Scope::new(&ir, &class);
            let expected: Vec<(usize, bool)> = ir
                .clusters
                .values()
                .enumerate()
                .filter(|(_, c)| scope.cluster(c))
                .map(|(i, c)| (i, scope.applies_rule(c)))
                .collect();
            narrowed += usize::from(expected.len() < ir.clusters.len());
            by_sidecar += usize::from(
                scope.has_sidecar()
                    && ir
                        .clusters
                        .values()
                        .any(|c| !scope.cluster(c) && c.export_to.is_all() && c.subset.is_none()),
            );
            let plan = super::plan::plan(&ir, &table, &reach, &class, &options);
            let actual: Vec<(usize, bool)> = plan
                .clusters
                .iter()
                .map(|c| (c.index, c.with_rule))
                .collect();
            assert_eq!(actual, expected, "{case}: {class:?}");
        }
    }
    assert!(
        narrowed > 0,
        "some class sees fewer clusters than the IR has"
    );
    assert!(
        by_sidecar > 0,
        "a Sidecar hides a cluster exported everywhere"
    );
}
