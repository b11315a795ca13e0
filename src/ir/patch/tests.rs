use super::*;
use crate::ir::{build, resolve, Resolver};
use crate::source::parse::parse_value;
use crate::store::Store;
use serde_json::{json, Value};

/// Each a prefix of the next: a namespace's objects are read as a range of
/// the world, which must end where the namespace does.
const NAMESPACES: [&str; 3] = ["a", "a-1", "a-10"];

/// Addresses workloads move between: some in a namespace's own range, some
/// shared by every namespace (so two workloads collide now and then).
fn address(rng: &mut fastrand::Rng, namespace: usize) -> String {
    if rng.u8(..12) == 0 {
        format!("10.9.0.{}", rng.u8(..6))
    } else {
        format!("10.{namespace}.0.{}", rng.u8(..12))
    }
}

fn labels(rng: &mut fastrand::Rng) -> Value {
    let mut labels = json!({
        "app": format!("svc-{}", rng.u8(..3)),
        "version": format!("v{}", rng.u8(1..3)),
    });
    if rng.bool() {
        labels["security.istio.io/tlsMode"] = json!("istio");
    }
    labels
}

fn pod(rng: &mut fastrand::Rng, ns: usize, i: usize) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i}"), "namespace": NAMESPACES[ns], "labels": labels(rng)},
        "spec": {"containers": [{"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"podIP": address(rng, ns)},
    });
    match rng.u8(..10) {
        0 | 1 => pod["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]),
        2 => pod["status"] = json!({}),
        3 => pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z"),
        _ => {}
    }
    pod
}

fn workload_entry(rng: &mut fastrand::Rng, ns: usize, i: usize) -> Value {
    json!({
        "apiVersion": "networking.sextant.dev/v1alpha1", "kind": "WorkloadEntry",
        "metadata": {"name": format!("we-{i}"), "namespace": NAMESPACES[ns]},
        "spec": {"address": address(rng, ns), "labels": labels(rng), "serviceAccount": "sa",
                 "ports": if rng.bool() { json!({"http": 9090}) } else { json!({}) }},
    })
}

/// The EndpointSlice of `svc-1`: some of the namespace's Pods by name, now
/// and then one of another namespace's or an address that is no IP.
fn slice(rng: &mut fastrand::Rng, ns: usize) -> Value {
    let endpoints: Vec<Value> = (0..rng.usize(1..4))
        .map(|_| {
            // Now and then the address of another namespace's workload.
            let from = if rng.u8(..6) == 0 { rng.usize(..3) } else { ns };
            let mut endpoint = json!({
                "addresses": [address(rng, from)],
                "conditions": {"ready": rng.u8(..4) != 0},
                "targetRef": {"kind": "Pod", "name": format!("pod-{}", rng.usize(..4))},
            });
            match rng.u8(..25) {
                0 => endpoint["targetRef"]["namespace"] = json!(NAMESPACES[(ns + 1) % 3]),
                // A reference to something other than a Pod elsewhere: the
                // build ignores it, so the patch may not give up for it.
                5 => {
                    endpoint["targetRef"] =
                        json!({"kind": "Node", "name": "pod-0", "namespace": NAMESPACES[(ns + 1) % 3]})
                }
                1 | 2 => endpoint["addresses"] = json!(["not-an-ip"]),
                3 | 4 => drop(endpoint.as_object_mut().unwrap().remove("targetRef")),
                _ => {}
            }
            endpoint
        })
        .collect();
    // Mostly svc-1's; now and then the selectorless svc-3's, or nobody's.
    let labels = match rng.u8(..8) {
        0 => json!({}),
        1 | 2 => json!({"kubernetes.io/service-name": "svc-3"}),
        _ => json!({"kubernetes.io/service-name": "svc-1"}),
    };
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "svc-1-x", "namespace": NAMESPACES[ns], "labels": labels},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": endpoints,
    })
}

/// Services, rules and an entry per namespace, one of them reaching across.
fn config(ns: usize, port: u16) -> Vec<Value> {
    let n = NAMESPACES[ns];
    let service = |name: &str| {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": n},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": "http", "port": port, "targetPort": "http"}]},
        })
    };
    let subsets = json!([{"name": "v1", "labels": {"version": "v1"}},
                         {"name": "v2", "labels": {"version": "v2"}}]);
    vec![
        service("svc-0"),
        service("svc-1"),
        // No selector: its endpoints come from slices only.
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "svc-3", "namespace": n},
            "spec": {"ports": [{"name": "http", "port": port}]},
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "external", "namespace": n},
            "spec": {"type": "ExternalName", "externalName": "example.com",
                     "ports": [{"name": "http", "port": 80}]},
        }),
        json!({
            "apiVersion": "networking.sextant.dev/v1alpha1", "kind": "ServiceEntry",
            "metadata": {"name": "dns", "namespace": n},
            "spec": {"hosts": [format!("dns.{n}.example")], "resolution": "DNS",
                     "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}]},
        }),
        json!({
            "apiVersion": "networking.sextant.dev/v1alpha1", "kind": "ServiceEntry",
            "metadata": {"name": "svc-2", "namespace": n},
            "spec": {"hosts": [format!("svc-2.{n}.example")], "resolution": "STATIC",
                     "ports": [{"number": 80, "name": "http", "protocol": "HTTP", "targetPort": 8080}],
                     "workloadSelector": {"labels": {"app": "svc-2"}}},
        }),
        json!({
            "apiVersion": "networking.sextant.dev/v1alpha1", "kind": "DestinationRule",
            "metadata": {"name": "svc-0", "namespace": n},
            "spec": {"host": "svc-0", "subsets": subsets},
        }),
        // An entry for the next namespace's svc-0, which its Service owns.
        json!({
            "apiVersion": "networking.sextant.dev/v1alpha1", "kind": "ServiceEntry",
            "metadata": {"name": "next-svc-0", "namespace": n},
            "spec": {"hosts": [format!("svc-0.{}.svc.cluster.local", NAMESPACES[(ns + 1) % 3])],
                     "resolution": "STATIC",
                     "ports": [{"number": port, "name": "http", "protocol": "HTTP", "targetPort": 8080}],
                     "workloadSelector": {"labels": {"app": "svc-0"}}},
        }),
        // A rule for the next namespace's svc-1: a cluster with an origin elsewhere.
        json!({
            "apiVersion": "networking.sextant.dev/v1alpha1", "kind": "DestinationRule",
            "metadata": {"name": "next-svc-1", "namespace": n},
            "spec": {"host": format!("svc-1.{}.svc.cluster.local", NAMESPACES[(ns + 1) % 3]),
                     "subsets": subsets},
        }),
    ]
}

fn put(store: &mut Store, object: Value) {
    let origin = format!(
        "{}/{}/{}.yaml",
        object["metadata"]["namespace"].as_str().unwrap(),
        object["kind"].as_str().unwrap(),
        object["metadata"]["name"].as_str().unwrap()
    );
    store.apply(&origin, parse_value(&origin, object));
}

/// One random change: mostly of workloads, now and then of a Service.
fn change(rng: &mut fastrand::Rng, store: &mut Store) {
    let ns = rng.usize(..3);
    let i = rng.usize(..4);
    match rng.u8(..20) {
        0..=5 => put(store, pod(rng, ns, i)),
        6..=10 => put(store, workload_entry(rng, ns, i)),
        11..=13 => put(store, slice(rng, ns)),
        14 => {
            store.remove(&format!("{}/Pod/pod-{i}.yaml", NAMESPACES[ns]));
        }
        15 => {
            store.remove(&format!("{}/WorkloadEntry/we-{i}.yaml", NAMESPACES[ns]));
        }
        16 => {
            store.remove(&format!("{}/EndpointSlice/svc-1-x.yaml", NAMESPACES[ns]));
        }
        17 => {
            for object in config(ns, [80, 81][rng.usize(..2)]) {
                put(store, object);
            }
        }
        _ => {
            // Several namespaces at once.
            put(store, pod(rng, (ns + 1) % 3, i));
            put(store, workload_entry(rng, ns, i));
        }
    }
}

#[test]
fn patched_ir_equals_a_full_build() {
    let mut patched = 0;
    let mut steps = 0;
    for seed in 0..40 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut store = Store::new();
        for ns in 0..3 {
            for object in config(ns, 80) {
                put(&mut store, object);
            }
            for i in 0..4 {
                put(&mut store, pod(&mut rng, ns, i));
                put(&mut store, workload_entry(&mut rng, ns, i));
            }
        }
        let mut resolver = Resolver::default();
        let (mut last_world, _) = store.world();
        let mut last = build(&last_world);
        resolver.resolve(&store);
        for step in 0..60 {
            for _ in 0..rng.usize(1..3) {
                change(&mut rng, &mut store);
            }
            steps += 1;
            let (world, _) = store.world();
            let full = build(&world);
            if let Some(ir) = patch(&last, &last_world, &world) {
                patched += 1;
                assert!(
                    ir == full,
                    "seed {seed} step {step}: the patch differs from a full build\n\
                     changed: {:?}\npatched: {}\nfull: {}",
                    changed_keys(&last_world, &world),
                    serde_json::to_string_pretty(&ir).unwrap(),
                    serde_json::to_string_pretty(&full).unwrap(),
                );
            }
            // The server's path: each IR patched from the one before, files located.
            let (served, diagnostics) = resolver.resolve(&store);
            let (expected, expected_diagnostics) = resolve(&store);
            assert!(
                *served == expected,
                "seed {seed} step {step}: served IR differs"
            );
            assert_eq!(diagnostics, expected_diagnostics, "seed {seed} step {step}");
            last = full;
            last_world = world;
        }
    }
    // The comparison above means something only if most changes are patched.
    assert!(
        patched * 2 > steps,
        "only {patched} of {steps} changes were patched"
    );
}

#[test]
fn a_change_of_anything_but_workloads_is_not_patched() {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut store = Store::new();
    for object in config(0, 80) {
        put(&mut store, object);
    }
    put(&mut store, pod(&mut rng, 0, 0));
    let (before, _) = store.world();
    let ir = build(&before);
    put(&mut store, config(0, 81).remove(0));
    let (after, _) = store.world();
    assert!(patch(&ir, &before, &after).is_none());
    put(&mut store, pod(&mut rng, 0, 1));
    let (only_workloads, _) = store.world();
    assert!(patch(&build(&after), &after, &only_workloads).is_some());
}

#[test]
fn a_slice_naming_something_other_than_a_pod_elsewhere_is_patched() {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut store = Store::new();
    for object in config(0, 80).into_iter().chain(config(1, 80)) {
        put(&mut store, object);
    }
    let mut slice = slice(&mut rng, 0);
    slice["metadata"]["labels"] = json!({"kubernetes.io/service-name": "svc-1"});
    slice["endpoints"][0]["targetRef"] = json!({"kind": "Node", "name": "pod-0", "namespace": "b"});
    put(&mut store, slice.clone());
    let (before, _) = store.world();
    let previous = build(&before);
    slice["endpoints"][0]["addresses"] = json!(["10.0.0.77"]);
    put(&mut store, slice);
    let (after, _) = store.world();
    let patched = patch(&previous, &before, &after).expect("a Node reference is no Pod elsewhere");
    assert!(patched == build(&after));
}

/// A workload that moves to the address of one in another namespace:
/// which of the two the IR keeps depends on both, so the patch gives up
/// (the other one, selected by no service, is behind no endpoint).
#[test]
fn a_workload_moving_to_an_address_held_elsewhere_is_not_patched() {
    let mut store = Store::new();
    for object in config(0, 80).into_iter().chain(config(1, 80)) {
        put(&mut store, object);
    }
    put(
        &mut store,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "lonely", "namespace": NAMESPACES[1], "labels": {"app": "none"}},
            "status": {"podIP": "10.9.9.9"},
        }),
    );
    let entry = |address: &str| {
        json!({
            "apiVersion": "networking.sextant.dev/v1alpha1", "kind": "WorkloadEntry",
            "metadata": {"name": "mover", "namespace": NAMESPACES[0]},
            "spec": {"address": address, "labels": {"app": "none"}},
        })
    };
    put(&mut store, entry("10.9.9.1"));
    let (before, _) = store.world();
    let previous = build(&before);
    put(&mut store, entry("10.9.9.9"));
    let (after, _) = store.world();
    let full = build(&after);
    assert_eq!(
        full.workloads[&"10.9.9.9".parse::<IpAddr>().unwrap()]
            .origin
            .name,
        "lonely"
    );
    assert!(patch(&previous, &before, &after).is_none());
    // And back: the address is shared before the change.
    put(&mut store, entry("10.9.9.1"));
    let (back, _) = store.world();
    assert!(patch(&full, &after, &back).is_none());
}
