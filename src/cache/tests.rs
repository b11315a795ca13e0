//! The shared, piecewise encoding of a class ([`super::shared`]) gives the
//! same bytes as encoding [`translate::translate`]'s output, for every
//! golden input and for classes that differ in namespace, labels, Sidecar
//! and mutual TLS, translated one after the other against one store of
//! shared parts (so later classes reuse what earlier ones built).

use super::{encode_class, shared::SharedParts, ResourceMap};
use crate::ir::{self, Ir};
use crate::proxy::ProxyClass;
use crate::source::parse::parse_documents;
use crate::store::Store;
use crate::translate::{self, TranslateOptions};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

fn load(name: &str, text: &str) -> Ir {
    let mut store = Store::new();
    store.apply(name, parse_documents(name, text));
    ir::resolve(&store).0
}

/// What the cache sent before sharing: every resource of `translate` encoded.
fn encoded_translation(
    ir: &Ir,
    class: &ProxyClass,
    options: &TranslateOptions,
) -> [ResourceMap; 3] {
    super::encode_translation(&translate::translate(ir, class, options))
}

/// Every class of every namespace (and Sidecar), and one per workload with
/// its labels (for `sourceLabels`), each without and with mutual TLS.
fn classes(ir: &Ir, options: &TranslateOptions) -> Vec<ProxyClass> {
    let mut out = translate::classes_of_every_namespace(ir, options);
    for w in ir.workloads.values() {
        out.push(ProxyClass::of(
            ir,
            &w.namespace,
            &w.labels,
            &options.root_namespace,
            false,
        ));
    }
    out.push(ProxyClass::of(
        ir,
        "ops",
        &BTreeMap::new(),
        &options.root_namespace,
        false,
    ));
    let with_mtls: Vec<ProxyClass> = out
        .iter()
        .map(|c| ProxyClass {
            mtls: true,
            ..c.clone()
        })
        .collect();
    out.extend(with_mtls);
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert(c.clone()));
    out
}

/// The same name, bytes and version: `Resource`'s own equality compares
/// names and content hashes only, and these tests are about the bytes.
fn same_bytes(a: &super::Resource, b: &super::Resource) -> bool {
    a.name == b.name && a.body == b.body && a.hash == b.hash
}

/// `got` holds the same resources as `want`, byte for byte.
fn assert_same_content(what: &str, got: &ResourceMap, want: &ResourceMap) {
    assert!(
        got.len() == want.len()
            && got
                .iter()
                .zip(want.iter())
                .all(|((n, r), (wn, wr))| n == wn && same_bytes(r, wr)),
        "{what}: the content of a fresh translation"
    );
}

/// [`assert_same_bytes_with`] with the shortest shared run of the server,
/// then with every shared record a part of its own (the runs of a small
/// mesh are otherwise all copied).
fn assert_same_bytes(case: &str, ir: &Ir) {
    assert_same_bytes_with(case, ir);
    super::body::TEST_MIN_SHARED_RUN.set(0);
    assert_same_bytes_with(&format!("{case}, every record shared"), ir);
    super::body::TEST_MIN_SHARED_RUN.set(super::body::MIN_SHARED_RUN_BYTES);
}

fn assert_same_bytes_with(case: &str, ir: &Ir) {
    let options = TranslateOptions::default();
    let parts = SharedParts::new(ir);
    for class in classes(ir, &options) {
        let expected = encoded_translation(ir, &class, &options);
        let (actual, _) = encode_class(ir, &class, &options, &parts, None);
        let actual = [
            (*actual.clusters).clone(),
            (*actual.endpoints).clone(),
            (*actual.routes).clone(),
        ];
        for (kind, (e, a)) in ["clusters", "endpoints", "routes"]
            .iter()
            .zip(expected.iter().zip(&actual))
        {
            assert_eq!(
                e.keys().collect::<Vec<_>>(),
                a.keys().collect::<Vec<_>>(),
                "{case}: {kind} names differ for {class:?}"
            );
            for (name, resource) in e {
                assert!(
                    same_bytes(&a[name], resource),
                    "{case}: {kind} {name} encodes differently for {class:?}"
                );
            }
        }
    }
}

#[test]
fn shared_encoding_matches_translation_for_every_golden_input() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/translate/testdata/in");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).expect("golden inputs") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable input");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_same_bytes(&name, &load(&name, &text));
        cases += 1;
    }
    assert!(cases >= 20, "found only {cases} golden inputs");
}

/// Sharing must stop where classes differ: a Sidecar's egress, `exportTo`
/// of a service, of a DestinationRule with a subset and of a
/// VirtualService, and client conditions.
#[test]
fn shared_encoding_matches_translation_where_classes_differ() {
    let text = r#"
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: private, namespace: shop, annotations: {networking.istio.io/exportTo: "."}}
spec:
  selector: {app: private}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-1, namespace: shop}
spec: {address: 127.0.10.1, labels: {app: api, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: web}
spec: {address: 127.0.10.2, labels: {app: web, role: client}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api
  exportTo: ["shop"]
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.shop.svc.cluster.local]
  exportTo: ["shop", "web"]
  http:
  - match: [{sourceLabels: {role: client}}]
    route: [{destination: {host: api.shop.svc.cluster.local, subset: v1}}]
  - mirror: {host: private.shop.svc.cluster.local}
    route: [{destination: {host: private.shop.svc.cluster.local}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: web}
spec:
  hosts: [web.web.svc.cluster.local]
  exportTo: ["web"]
  http:
  - route: [{destination: {host: web.web.svc.cluster.local}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: web}
spec:
  egress:
  - hosts: ["shop/*"]
"#;
    let ir = load("scoped.yaml", text);
    assert!(
        ir.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        ir.diagnostics
    );
    assert_same_bytes("scoped.yaml", &ir);
}

/// A synthetic mesh of several namespaces, classes sharing most parts.
#[test]
fn shared_encoding_matches_translation_for_a_synthetic_mesh() {
    let store = crate::synth::store(&crate::synth::WorldSpec::with_services(300));
    let (ir, _) = ir::resolve(&store);
    assert_same_bytes("synthetic", &ir);
}

/// The hash is the first 8 bytes of the SHA-256 of the length-prefixed
/// parts, in lower-case hex (versions Envoy saw before must not change).
#[test]
fn short_hash_is_lower_hex_of_the_sha256_prefix() {
    use sha2::{Digest, Sha256};
    for parts in [
        &[][..],
        &[&b""[..]],
        &[&b"abc"[..], &[0xff, 0x00, 0x7f][..]],
    ] {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        let expected: String = hasher.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(super::short_hash(parts), expected);
    }
}

/// `ir` with endpoints changed the ways a rollout changes them: one EDS
/// cluster loses its first endpoint, another's first endpoint moves to a
/// new port, a third gains one at a new address, and the workload behind
/// one mesh endpoint changes its labels (which decide its `tlsMode`).
fn with_endpoint_changes(ir: &Ir) -> Ir {
    let mut new = ir.clone();
    let names: Vec<String> = new
        .clusters
        .values()
        .filter(|c| c.dns.is_none() && !c.endpoints.is_empty())
        .map(|c| c.name.clone())
        .collect();
    let mut eds = names.iter();
    let mut edit = |change: &dyn Fn(&mut ir::Cluster)| {
        if let Some(name) = eds.next() {
            change(Arc::make_mut(new.clusters.get_mut(name).unwrap()));
        }
    };
    edit(&|c| {
        c.endpoints.remove(0);
    });
    edit(&|c| c.endpoints[0].port = c.endpoints[0].port.wrapping_add(1).max(1));
    edit(&|c| {
        let mut added = c.endpoints[0].clone();
        added.address = "10.99.0.1".parse().unwrap();
        c.endpoints.push(added);
    });
    let meshed = new
        .clusters
        .values()
        .flat_map(|c| &c.endpoints)
        .find(|e| e.mesh.is_some())
        .map(|e| e.address);
    if let Some(w) = meshed
        .and_then(|ip| new.workloads.get_mut(&ip))
        .map(Arc::make_mut)
    {
        w.labels.insert("rollout".into(), "2".into());
    }
    reindexed(new)
}

/// `ir` with its cluster index built again from its clusters (which the
/// changes here edit in place).
fn reindexed(mut ir: Ir) -> Ir {
    ir.cluster_index = ir::cluster_index::ClusterIndex::of(&ir.clusters);
    ir
}

/// After an endpoint-only change, every class's updated resources are the
/// bytes a fresh translation of the new IR gives, and what the change did
/// not touch is kept (the route configuration is the same `Arc`).
fn assert_endpoint_update_matches(case: &str, ir: &Ir) {
    let options = TranslateOptions::default();
    let new = with_endpoint_changes(ir);
    let Some(dirty) = ir::endpoint_change::endpoint_only_change(ir, &new) else {
        panic!("{case}: not an endpoint-only change");
    };
    let parts = SharedParts::new(ir);
    let classes: std::collections::HashMap<_, _> = classes(ir, &options)
        .into_iter()
        .map(|class| {
            let (resources, _) = encode_class(ir, &class, &options, &parts, None);
            (class, std::sync::Arc::new(resources))
        })
        .collect();
    let new_parts = SharedParts::carry_over(&parts, &dirty);
    let updated =
        super::endpoint_update::update_classes(&classes, &new, &dirty, &new_parts, &options);
    for (class, resources) in &updated {
        assert_fresh(
            &format!("{case}, after an endpoint change"),
            &new,
            class,
            resources.maps(),
        );
        assert!(
            std::sync::Arc::ptr_eq(&resources.routes, &classes[class].routes),
            "{case}: the route configuration was rebuilt"
        );
    }
}

/// Runs `check` on the IR of every golden input, then on a synthetic mesh
/// of 300 services (named `synthetic`), each twice: the second time with
/// every shared virtual host record a part of its own.
fn for_every_golden_input_and_a_mesh(check: impl Fn(&str, &Ir)) {
    // With the server's shortest shared run, then with every shared
    // record a part of its own (the runs of these meshes are short).
    let check = |name: &str, ir: &Ir| {
        check(name, ir);
        super::body::TEST_MIN_SHARED_RUN.set(0);
        check(&format!("{name}, every record shared"), ir);
        super::body::TEST_MIN_SHARED_RUN.set(super::body::MIN_SHARED_RUN_BYTES);
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/translate/testdata/in");
    for entry in std::fs::read_dir(&dir).expect("golden inputs") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable input");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        check(&name, &load(&name, &text));
    }
    let store = crate::synth::store(&crate::synth::WorldSpec::with_services(300));
    check("synthetic", &ir::resolve(&store).0);
}

#[test]
fn an_endpoint_change_updates_classes_to_what_translation_gives() {
    for_every_golden_input_and_a_mesh(assert_endpoint_update_matches);
}

/// Changes that are not endpoint-only, each alone: one cluster's policy
/// (with endpoint and workload changes elsewhere), the PeerAuthentications
/// (they decide every meshed endpoint's `tlsMode`), the workloads' labels
/// (a PeerAuthentication's selector reads them), a cluster removed and one
/// added (every later index shifts), a virtual host removed.
fn other_changes(ir: &Ir) -> Vec<(&'static str, Ir)> {
    let mut policy = with_endpoint_changes(ir);
    if let Some(last) = policy.clusters.keys().next_back().cloned() {
        let c = policy.clusters.get_mut(&last).expect("the last cluster");
        Arc::make_mut(c).policy.connect_timeout = Some(std::time::Duration::from_millis(1234));
    }
    let mut peer = ir.clone();
    peer.peer_authentications.clear();
    // The last cluster goes and one comes first: every index shifts.
    let mut shifted = ir.clone();
    if let Some((last, cluster)) = ir.clusters.iter().next_back() {
        shifted.clusters.remove(last);
        let mut added = (**cluster).clone();
        added.name = format!("0-added-{last}");
        shifted.clusters.insert(added.name.clone(), Arc::new(added));
    }
    // Workloads leaving a PeerAuthentication's selector change the
    // `tlsMode` of endpoints whose clusters stay equal (with a policy
    // change, so that the change is not endpoint-only).
    let mut unlabelled = ir.clone();
    let addresses: Vec<_> = unlabelled.workloads.keys().copied().collect();
    for address in &addresses {
        if let Some(w) = unlabelled.workloads.get_mut(address) {
            Arc::make_mut(w).labels.clear();
        }
    }
    // And one workload goes (its endpoints lose their `tlsMode`).
    if let Some(address) = addresses.first() {
        unlabelled.workloads.remove(address);
    }
    if let Some(last) = unlabelled.clusters.keys().next_back().cloned() {
        let c = unlabelled
            .clusters
            .get_mut(&last)
            .expect("the last cluster");
        Arc::make_mut(c).policy.connect_timeout = Some(std::time::Duration::from_millis(4321));
    }
    let mut routes = ir.clone();
    Arc::make_mut(&mut routes.virtual_hosts).pop();
    vec![
        ("a cluster's policy", reindexed(policy)),
        ("the PeerAuthentications", peer),
        ("the workloads' labels", reindexed(unlabelled)),
        ("a cluster removed and one added", reindexed(shifted)),
        ("a virtual host removed", routes),
    ]
}

/// Asserts that `actual` holds the bytes of a fresh translation of `ir`
/// for `class`.
fn assert_fresh(what: &str, ir: &Ir, class: &ProxyClass, actual: [&ResourceMap; 3]) {
    let expected = encoded_translation(ir, class, &TranslateOptions::default());
    for (kind, (e, a)) in ["clusters", "endpoints", "routes"]
        .iter()
        .zip(expected.iter().zip(actual))
    {
        assert!(
            e.len() == a.len()
                && e.iter()
                    .zip(a.iter())
                    .all(|((en, er), (an, ar))| en == an && same_bytes(er, ar)),
            "{what}: {kind} differ from a fresh translation for {class:?}"
        );
    }
}

/// After any change that is not endpoint-only, the parts carried over
/// from the previous IR give every class the bytes a fresh translation of
/// the new IR gives, its maps built on the class's previous ones as the
/// cache builds them; so do the parts carried back again (the change
/// undone, over parts that were themselves carried); and where the change
/// left clusters alone, their encoded resources are the old ones.
fn assert_carried_over_parts_match(case: &str, ir: &Ir) {
    let options = TranslateOptions::default();
    let classes = classes(ir, &options);
    let parts = SharedParts::new(ir);
    for class in &classes {
        encode_class(ir, class, &options, &parts, None);
    }
    for (what, new) in other_changes(ir) {
        if ir::endpoint_change::endpoint_only_change(ir, &new).is_some() {
            // Nothing to change here (no PeerAuthentication, say): the
            // endpoint path would take it.
            continue;
        }
        let carried = SharedParts::carry_over_unchanged(&parts, ir, &new);
        let carried_back = SharedParts::carry_over_unchanged(&carried, &new, ir);
        let mut reused = 0;
        let mut resources = 0;
        for class in &classes {
            let (before, _) = encode_class(ir, class, &options, &parts, None);
            let (after, _) = encode_class(&new, class, &options, &carried, Some(before.maps()));
            let actual = after.maps();
            assert_fresh(&format!("{case}, after {what}"), &new, class, actual);
            let (back, _) = encode_class(ir, class, &options, &carried_back, Some(actual));
            assert_fresh(&format!("{case}, {what} undone"), ir, class, back.maps());
            for (old, now) in [
                (&before.clusters, actual[0]),
                (&before.endpoints, actual[1]),
            ] {
                resources += now.len();
                reused += now
                    .iter()
                    .filter(|(n, r)| {
                        old.get(*n)
                            .is_some_and(|o| o.body.as_ptr() == r.body.as_ptr())
                    })
                    .count();
            }
        }
        // In the synthetic mesh (no PeerAuthentication) each change but
        // that of every workload touches a few of 1,800 clusters: nearly
        // all resources stay.
        let few = case == "synthetic" && what != "the workloads' labels";
        assert!(
            !few || reused * 10 > resources * 9,
            "{case}, after {what}: only {reused} of {resources} resources reused"
        );
    }
}

#[test]
fn any_other_change_reuses_only_what_it_left_equal() {
    for_every_golden_input_and_a_mesh(assert_carried_over_parts_match);
}

#[test]
fn only_endpoint_changes_take_the_endpoint_path() {
    let store = crate::synth::store(&crate::synth::WorldSpec::with_services(30));
    let ir = ir::resolve(&store).0;
    assert_eq!(
        ir::endpoint_change::endpoint_only_change(&ir, &ir.clone()),
        Some(vec![false; ir.clusters.len()])
    );
    let changed = with_endpoint_changes(&ir);
    let dirty = ir::endpoint_change::endpoint_only_change(&ir, &changed).unwrap();
    assert_eq!(dirty.iter().filter(|d| **d).count(), 3, "{dirty:?}");
    // A cluster's policy, a virtual host, a cluster more: a full translation.
    let mut policy = ir.clone();
    let first = policy.clusters.keys().next().unwrap().clone();
    Arc::make_mut(policy.clusters.get_mut(&first).unwrap()).port += 1;
    assert_eq!(
        ir::endpoint_change::endpoint_only_change(&ir, &policy),
        None
    );
    let mut routes = ir.clone();
    Arc::make_mut(&mut routes.virtual_hosts).pop();
    assert_eq!(
        ir::endpoint_change::endpoint_only_change(&ir, &routes),
        None
    );
    let mut more = ir.clone();
    let (name, cluster) = more
        .clusters
        .iter()
        .next()
        .map(|(n, c)| (format!("{n}-copy"), c.clone()))
        .unwrap();
    more.clusters.insert(name, cluster);
    assert_eq!(ir::endpoint_change::endpoint_only_change(&ir, &more), None);
}

/// A workload that goes while every cluster stays equal (its endpoints
/// lose their `tlsMode`) marks each cluster with an endpoint at its
/// address, and no other: what reading every cluster's endpoints finds.
#[test]
fn a_workload_change_marks_the_clusters_at_its_address() {
    let store = crate::synth::store(&crate::synth::WorldSpec::with_services(30));
    let ir = ir::resolve(&store).0;
    let at = |address: &std::net::IpAddr| -> Vec<bool> {
        ir.clusters
            .values()
            .map(|c| c.endpoints.iter().any(|e| e.address == *address))
            .collect()
    };
    // An address with endpoints in several clusters (a service's and its
    // subsets').
    let address = *ir
        .workloads
        .keys()
        .find(|a| at(a).iter().filter(|t| **t).count() >= 2)
        .expect("a workload behind several clusters");
    let mut gone = ir.clone();
    gone.workloads.remove(&address);
    let dirty = ir::endpoint_change::endpoint_only_change(&ir, &gone).unwrap();
    assert_eq!(dirty, at(&address));
}

/// A mesh where one VirtualService splits `api` by weight, `WEIGHT` to v1.
const WEIGHTED: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-1, namespace: shop}
spec: {address: 127.0.10.1, labels: {app: api, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-2, namespace: shop}
spec: {address: 127.0.10.2, labels: {app: api, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.shop.svc.cluster.local]
  http:
  - route:
    - {destination: {host: api.shop.svc.cluster.local, subset: v1}, weight: WEIGHT}
    - {destination: {host: api.shop.svc.cluster.local, subset: v2}, weight: REST}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: scoped}
spec:
  egress:
  - hosts: ["*/*"]
"#;

fn weighted(weight: u32) -> Ir {
    let text = WEIGHTED
        .replace("WEIGHT", &weight.to_string())
        .replace("REST", &(100 - weight).to_string());
    let ir = load("weighted.yaml", &text);
    assert!(
        ir.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        ir.diagnostics
    );
    ir
}

fn class(ir: &Ir, namespace: &str, mtls: bool) -> ProxyClass {
    let root = &TranslateOptions::default().root_namespace;
    ProxyClass {
        mtls,
        ..ProxyClass::of(ir, namespace, &BTreeMap::new(), root, false)
    }
}

/// The outbound route configuration of each class, encoded by the cache
/// against one store of shared parts (in that order).
fn route_configurations(ir: &Ir, classes: &[ProxyClass]) -> Vec<super::Resource> {
    let options = TranslateOptions::default();
    let parts = SharedParts::new(ir);
    classes
        .iter()
        .map(|class| {
            let (resources, _) = encode_class(ir, class, &options, &parts, None);
            let routes = &resources.routes;
            assert_eq!(routes.len(), 1, "{class:?}");
            routes.values().next().unwrap().clone()
        })
        .collect()
}

/// Classes whose route configurations encode the same get the same
/// version, however the cache built them: from the routes shared between
/// classes (namespace `other`, with and without mutual TLS), or from
/// routes built for the class alone (`scoped` has a Sidecar, so its routes
/// are never taken from the shared parts); and that version is the one
/// `route_configuration_hash` computes from the bytes alone.
#[test]
fn identical_route_configurations_get_the_same_version() {
    let ir = weighted(90);
    let classes = [
        class(&ir, "other", false),
        class(&ir, "scoped", false),
        class(&ir, "other", true),
        class(&ir, "empty", false),
    ];
    let routes = route_configurations(&ir, &classes);
    assert!(
        routes[0]
            .body
            .to_vec()
            .windows(b"api.shop".len())
            .any(|w| w == b"api.shop"),
        "the route configuration names the api service"
    );
    for (class, r) in classes.iter().zip(&routes) {
        assert_eq!(r.body, routes[0].body, "{class:?}");
        assert_eq!(r.hash, routes[0].hash, "{class:?}");
        assert_eq!(
            &*r.hash,
            super::route_configuration_hash(&r.body.to_vec()).as_str(),
            "{class:?}"
        );
    }
}

/// A change in one shared virtual host (the weights of `api`'s routes)
/// changes the version of the route configuration of every class that
/// sees it, while the same input gives the same version again; and the
/// class of the services' own namespace (which claims the short domains
/// too) has a version of its own.
#[test]
fn a_change_in_one_shared_virtual_host_changes_the_route_version() {
    let namespaces = ["other", "scoped", "shop"];
    let versions = |weight| {
        let ir = weighted(weight);
        let classes: Vec<ProxyClass> = namespaces.iter().map(|ns| class(&ir, ns, false)).collect();
        route_configurations(&ir, &classes)
    };
    let (before, again, after) = (versions(90), versions(90), versions(80));
    for (i, ns) in namespaces.iter().enumerate() {
        assert_eq!(before[i], again[i], "{ns}: same input, same resource");
        assert_ne!(before[i].body, after[i].body, "{ns}: the weights changed");
        assert_ne!(before[i].hash, after[i].hash, "{ns}: the version changed");
        assert_eq!(
            &*after[i].hash,
            super::route_configuration_hash(&after[i].body.to_vec()).as_str()
        );
    }
    assert_ne!(before[0].body, before[2].body, "shop claims more domains");
    assert_ne!(before[0].hash, before[2].hash);
}

/// The version reads the bytes: moving a record between the head of a
/// virtual host and its routes, or between virtual hosts, changes it, as
/// does any single changed byte of a real route configuration.
#[test]
fn route_configuration_hash_changes_with_every_byte() {
    let ir = weighted(90);
    let body = route_configurations(&ir, &[class(&ir, "shop", false)])
        .pop()
        .unwrap()
        .body
        .to_vec();
    let version = super::route_configuration_hash(&body);
    let mut seen = std::collections::HashSet::from([version]);
    for i in 0..body.len() {
        let mut changed = body.to_vec();
        changed[i] ^= 0x01;
        assert!(
            seen.insert(super::route_configuration_hash(&changed)),
            "flipping byte {i} of {} gave a version seen before",
            body.len()
        );
    }
}

/// A proxy of namespace `ns` without certificates.
fn proxy_in(ns: &str) -> crate::proxy::ProxyInfo {
    crate::proxy::ProxyInfo {
        node_id: format!("p.{ns}"),
        cluster: "test".into(),
        namespace: ns.into(),
        labels: BTreeMap::new(),
        service_account: "default".into(),
        instance_ips: Vec::new(),
        outbound: crate::proxy::DEFAULT_OUTBOUND,
        admin_port: None,
        inbound_port: 15006,
        proxyless_grpc: false,
        access_log_service: None,
    }
}

/// An endpoint-only change carries over the classes proxies asked for
/// since the previous change, and drops the others: a namespace whose
/// proxies went away is not updated on every later endpoint change.
#[test]
fn an_endpoint_change_drops_classes_no_proxy_asked_for() {
    let store = crate::synth::store(&crate::synth::WorldSpec::with_services(300));
    let ir = ir::resolve(&store).0;
    let cache = super::SnapshotCache::new(TranslateOptions::default());
    cache.set_ir(ir.clone());
    let (a, b) = (proxy_in("ns-0"), proxy_in("ns-1"));
    cache.snapshot(&a);
    cache.snapshot(&b);
    let classes = |cache: &super::SnapshotCache| -> Vec<String> {
        let mut namespaces: Vec<String> = cache
            .state
            .lock()
            .unwrap()
            .classes
            .keys()
            .map(|c| c.namespace.clone())
            .collect();
        namespaces.sort();
        namespaces
    };
    assert_eq!(classes(&cache), ["ns-0", "ns-1"]);

    let changed = with_endpoint_changes(&ir);
    cache.set_ir(changed.clone());
    assert_eq!(classes(&cache), ["ns-0", "ns-1"], "both were asked for");
    // Only ns-0's proxy asks during this generation.
    cache.snapshot(&a);
    let again = with_endpoint_changes(&changed);
    cache.set_ir(again.clone());
    assert_eq!(classes(&cache), ["ns-0"], "ns-1 was not asked for");
    // ns-1's proxy coming back gets its class translated again, as a fresh
    // cache would.
    let eds = crate::envoy::TypeUrl::ClusterLoadAssignment;
    let back = cache.snapshot(&b);
    assert_eq!(classes(&cache), ["ns-0", "ns-1"]);
    let fresh = super::SnapshotCache::new(TranslateOptions::default());
    fresh.set_ir(again);
    let expected = fresh.snapshot(&b);
    assert!(!back.of(eds).is_empty());
    assert_same_content(
        "ns-1's endpoints, those of the current IR",
        back.of(eds),
        expected.of(eds),
    );
}

/// A class translated again after a change that is not endpoint-only is
/// built on its previous maps: what did not change is the very resource
/// streams were sent (so their diffs skip it), what changed is new, and
/// the content is what a fresh cache would give.
#[test]
fn a_class_translated_again_reuses_what_did_not_change() {
    let cache = super::SnapshotCache::new(TranslateOptions::default());
    cache.set_ir(weighted(90));
    let proxy = proxy_in("shop");
    let before = cache.snapshot(&proxy);
    cache.set_ir(weighted(70));
    let after = cache.snapshot(&proxy);
    let fresh = super::SnapshotCache::new(TranslateOptions::default());
    fresh.set_ir(weighted(70));
    let expected = fresh.snapshot(&proxy);
    use crate::envoy::TypeUrl::{Cluster, ClusterLoadAssignment, RouteConfiguration};
    for t in [Cluster, ClusterLoadAssignment, RouteConfiguration] {
        assert_same_content(&format!("{t:?}"), after.of(t), expected.of(t));
    }
    let same_buffer = |a: &super::Resource, b: &super::Resource| a.body.as_ptr() == b.body.as_ptr();
    assert!(!after.of(Cluster).is_empty());
    for (name, r) in after.of(Cluster).iter() {
        assert!(
            same_buffer(r, &before.of(Cluster)[name]),
            "{name} did not change"
        );
    }
    let routes =
        |s: &super::ProxySnapshot| s.of(RouteConfiguration).values().next().unwrap().clone();
    assert!(
        !same_buffer(&routes(&after), &routes(&before)),
        "the weights changed"
    );
}

/// Two changes in a row with no snapshot between them (one push): the
/// class translated after both is still built on the maps its proxies
/// hold, so with its clusters unchanged its cluster map is that very map.
#[test]
fn two_changes_within_one_push_keep_the_maps_proxies_hold() {
    use crate::envoy::TypeUrl::{Cluster, ClusterLoadAssignment};
    let cache = super::SnapshotCache::new(TranslateOptions::default());
    cache.set_ir(weighted(90));
    let proxy = proxy_in("shop");
    let before = cache.snapshot(&proxy);
    cache.set_ir(weighted(70));
    cache.set_ir(weighted(60));
    let after = cache.snapshot(&proxy);
    for t in [Cluster, ClusterLoadAssignment] {
        assert!(
            before.resources[&t].ptr_eq(&after.resources[&t]),
            "{t:?}: the map proxies were sent"
        );
    }
}

/// Classes that see the same clusters (here: namespaces that differ only
/// in name) share one CDS and one EDS map, the same `Arc`s; a class that
/// sees another set of clusters (a service exported to its own namespace
/// only), applies a DestinationRule others do not (one exported to it
/// alone, with no subsets, so the set of clusters is the same) or has a
/// mesh certificate gets its own maps, with the bytes a fresh translation
/// gives. After an endpoint-only change the sharing classes still share,
/// and their maps hold the new load assignments.
#[test]
fn classes_that_see_the_same_clusters_share_their_maps() {
    use crate::envoy::TypeUrl::{Cluster, ClusterLoadAssignment, RouteConfiguration};
    let mut text = WEIGHTED.replace("WEIGHT", "90").replace("REST", "10");
    text.push_str(
        r#"---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: shop, annotations: {networking.istio.io/exportTo: "."}}
spec:
  selector: {app: local}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: local-1, namespace: shop}
spec: {address: 127.0.10.3, labels: {app: local}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  exportTo: [c]
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
"#,
    );
    let ir = load("shared-maps.yaml", &text);
    assert!(
        !ir.diagnostics.iter().any(|d| d.is_error()),
        "{:?}",
        ir.diagnostics
    );
    let cache = super::SnapshotCache::new(TranslateOptions::default());
    cache.set_ir(ir.clone());
    let [shop, a, b, c] = ["shop", "a", "b", "c"].map(|ns| cache.snapshot(&proxy_in(ns)));
    let shared = |x: &super::ProxySnapshot, y: &super::ProxySnapshot, t| {
        Arc::ptr_eq(&x.resources[&t], &y.resources[&t])
    };
    for t in [Cluster, ClusterLoadAssignment] {
        assert!(shared(&a, &b, t), "{t:?}: a and b see the same clusters");
        assert!(
            !shared(&a, &shop, t),
            "{t:?}: shop sees its local service too"
        );
    }
    assert!(!shared(&a, &c, Cluster), "c applies web's DestinationRule");
    assert_eq!(a.of(Cluster).len(), c.of(Cluster).len());
    assert!(shop.of(Cluster).keys().any(|n| n.contains("|local.shop")));
    assert!(!a.of(Cluster).keys().any(|n| n.contains("|local.shop")));
    let route_bytes =
        |s: &super::ProxySnapshot| s.of(RouteConfiguration).values().next().unwrap().clone();
    assert!(
        same_bytes(&route_bytes(&a), &route_bytes(&b)),
        "a and b see the same hosts"
    );
    assert!(
        !same_bytes(&route_bytes(&a), &route_bytes(&shop)),
        "shop's short names"
    );
    for (ns, snapshot) in [("shop", &shop), ("a", &a), ("c", &c)] {
        let fresh = super::SnapshotCache::new(TranslateOptions::default());
        fresh.set_ir(ir.clone());
        let expected = fresh.snapshot(&proxy_in(ns));
        for t in [Cluster, ClusterLoadAssignment, RouteConfiguration] {
            assert_same_content(&format!("{ns}, {t:?}"), snapshot.of(t), expected.of(t));
        }
    }

    // A class with a mesh certificate originates mutual TLS: other clusters.
    let plain = super::encode_class(
        &ir,
        &class(&ir, "a", false),
        &TranslateOptions::default(),
        &SharedParts::new(&ir),
        None,
    )
    .0;
    let parts = SharedParts::new(&ir);
    let options = TranslateOptions::default();
    let [x, y, z] = [("a", false), ("b", false), ("a", true)]
        .map(|(ns, mtls)| encode_class(&ir, &class(&ir, ns, mtls), &options, &parts, None).0);
    assert!(Arc::ptr_eq(&x.clusters, &y.clusters));
    assert!(!Arc::ptr_eq(&x.clusters, &z.clusters), "mutual TLS differs");
    assert_eq!(*x.clusters, *plain.clusters);

    // An endpoint-only change: a and b still share, with the new bytes.
    let changed = with_endpoint_changes(&ir);
    assert!(ir::endpoint_change::endpoint_only_change(&ir, &changed).is_some());
    cache.set_ir(changed.clone());
    let [a2, b2] = ["a", "b"].map(|ns| cache.snapshot(&proxy_in(ns)));
    let fresh = super::SnapshotCache::new(TranslateOptions::default());
    fresh.set_ir(changed);
    let expected = fresh.snapshot(&proxy_in("a"));
    for t in [Cluster, ClusterLoadAssignment] {
        assert!(shared(&a2, &b2, t), "{t:?}: still shared after the update");
        assert_same_content(&format!("{t:?}"), a2.of(t), expected.of(t));
    }
    assert!(
        !shared(&a, &a2, ClusterLoadAssignment),
        "the change reached EDS"
    );
}

/// The route configurations of four classes of a synthetic mesh of 1,000
/// services in `namespaces` namespaces, encoded against one store of
/// shared parts, and the buffer of shared records they may point into.
fn route_bodies(namespaces: usize) -> (Ir, Vec<super::Resource>, Option<bytes::Bytes>) {
    let spec = crate::synth::WorldSpec {
        namespaces,
        ..crate::synth::WorldSpec::with_services(1000)
    };
    let ir = ir::build(&crate::synth::store(&spec).world().0);
    let options = TranslateOptions::default();
    let parts = SharedParts::new(&ir);
    let routes = ["ns-0", "ns-1", "ns-5", "ns-9"]
        .iter()
        .map(|ns| {
            let class = class(&ir, ns, false);
            let (resources, _) = encode_class(&ir, &class, &options, &parts, None);
            let r = resources.routes.values().next().unwrap().clone();
            let expected = encoded_translation(&ir, &class, &options)[2]
                .values()
                .next()
                .unwrap()
                .clone();
            assert!(same_bytes(&r, &expected), "{ns}: the bytes of translate");
            r
        })
        .collect();
    (ir, routes, parts.assembled_records())
}

/// Classes take the bytes of the shared virtual hosts from one buffer per
/// IR, and copy only the others (those of their own namespace, which claim
/// short names too). With 50 namespaces (services of a namespace are every
/// 50th in name order, so the class's own virtual hosts cut the shared
/// ones into runs of about 30 KB), at least 3/4 of each class's route
/// configuration points into that buffer, in runs of several virtual
/// hosts, and its bytes are still those of encoding `translate`'s output.
#[test]
fn classes_share_the_bytes_of_the_shared_virtual_hosts() {
    let (ir, routes, records) = route_bodies(50);
    let records = records.expect("a class laid out the shared records");
    let buffer = records.as_ptr_range();
    for r in &routes {
        let shared: usize = r
            .body
            .parts()
            .iter()
            .filter(|p| buffer.contains(&p.as_ptr()))
            .map(|p| p.len())
            .sum();
        assert!(
            shared * 4 >= r.body.len() * 3 && r.body.parts().len() * 5 <= ir.virtual_hosts.len(),
            "{shared} of {} bytes shared, in {} parts for {} virtual hosts",
            r.body.len(),
            r.body.parts().len(),
            ir.virtual_hosts.len()
        );
    }
}

/// With 10 namespaces the runs of shared records between a class's own
/// virtual hosts are about 6 KB: too short to be worth a part each (every
/// part costs each stream), so each class's route configuration is copied
/// into one buffer of its own, as before sharing, and the shared records are
/// not laid out in a buffer of their own that nothing would point into.
#[test]
fn short_runs_of_shared_virtual_hosts_are_copied() {
    let (_, routes, records) = route_bodies(10);
    assert!(
        records.is_none(),
        "the shared records were laid out though no class shares a run of them"
    );
    for r in &routes {
        assert_eq!(r.body.parts().len(), 1);
    }
}

/// A VirtualService exported to one namespace: its classes take the
/// VirtualService's routes for `api`, every other class the default route,
/// both shared between classes. The records of both route lists are
/// shared, but a class may point only to a record of the list it takes:
/// the first class (default route) lays out the buffer, `team-a` takes the
/// VirtualService's routes, `team-b` the default route again.
#[test]
fn a_class_points_only_to_records_of_its_own_route_list() {
    let text = WEIGHTED
        .replace("WEIGHT", "90")
        .replace("REST", "10")
        .replace(
            "  hosts: [api.shop.svc.cluster.local]\n",
            "  hosts: [api.shop.svc.cluster.local]\n  exportTo: [team-a]\n",
        );
    let text = format!(
        "{text}---\napiVersion: v1\nkind: Service\nmetadata: {{name: a, namespace: team-a}}\nspec:\n  selector: {{app: a}}\n  ports: [{{name: http, port: 80}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: b, namespace: team-b}}\nspec:\n  selector: {{app: b}}\n  ports: [{{name: http, port: 80}}]\n"
    );
    let ir = load("exported.yaml", &text);
    assert!(
        ir.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        ir.diagnostics
    );
    let namespaces: Vec<String> = classes(&ir, &TranslateOptions::default())
        .iter()
        .map(|c| c.namespace.clone())
        .collect();
    assert_ne!(
        namespaces[0], "team-a",
        "the first class takes the default route"
    );
    assert!(namespaces.iter().any(|n| n == "team-a") && namespaces.iter().any(|n| n == "team-b"));
    assert_same_bytes("exported.yaml", &ir);
}
