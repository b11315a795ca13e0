//! One run of one translation stage, for profilers:
//! `cargo bench --bench profile --no-run`, then run the binary it names as
//! `profile STAGE SERVICES` under e.g.
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*profile::measured*'`,
//! which counts the instructions of the stage only (not the world's set-up).
//!
//! STAGE is `world` (the store's view of every object), `ir_build`,
//! `resolve` (both, plus diagnostics: what the server does per config
//! event), `patch` (what replaces `ir_build` when one WorkloadEntry
//! moves), `ir_clone`, `translate`, `encode`, `snapshot`, `next_class`
//! (a snapshot for a proxy of a second class, `ns-1`, once the class of
//! `ns-0` is translated: what each further class of the same IR costs),
//! `proxy_snapshot` (300 snapshots for further proxies of that class),
//! `endpoint_change` (one endpoint of one cluster moves while a proxy of
//! every namespace is served: the new IR set and a snapshot for each),
//! `policy_change` (its baseline: the same, for a change of one cluster's
//! connect timeout, which retranslates every class, as every change did
//! before endpoint-only changes were told apart), `route_change` (the same
//! for a VirtualService weight change: the IR built again from the changed
//! world, set, and a snapshot for every class) or `validate` (what
//! `sextant validate` adds to the IR build: a translation per namespace
//! for the diagnostics only a proxy class shows). SERVICES is a
//! size for [`sextant::synth::WorldSpec::with_services`]. The wall time of
//! the stage is printed; criterion's `translate` bench is the one to quote
//! for time, this binary is for instruction counts and call graphs.

mod common;

use sextant::cache::{Resource, SnapshotCache};
use sextant::ir;
use sextant::model::Object;
use sextant::proxy::ProxyClass;
use sextant::synth::{self, WorldSpec};
use sextant::translate::{self, TranslateOptions};
use std::hint::black_box;
use std::time::Instant;

/// The code under measurement; its name is what `--toggle-collect` matches.
#[inline(never)]
fn measured<T>(f: impl FnOnce() -> T) -> T {
    f()
}

fn main() {
    // `cargo bench` passes `--bench`; skip flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let stage = args.first().map_or("ir_build", String::as_str);
    let services: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000);
    let store = synth::store(&WorldSpec::with_services(services));
    let (world, _) = store.world();
    let options = TranslateOptions::default();
    let ir = ir::build(&world);
    let p = common::proxy();
    let class = ProxyClass::of(&ir, &p.namespace, &p.labels, &options.root_namespace, false);
    let started = Instant::now();
    match stage {
        "ir_build" => drop(measured(|| ir::build(black_box(&world)))),
        "world" => drop(measured(|| black_box(&store).world())),
        "resolve" => drop(measured(|| ir::resolve(black_box(&store)))),
        "ir_clone" => drop(measured(|| black_box(&ir).clone())),
        "patch" => {
            // One WorkloadEntry moves: what the server does for it instead
            // of `ir_build`.
            let mut moved = world.clone();
            let (key, entry) = world
                .iter()
                .find(|(_, o)| matches!(o.as_ref(), Object::WorkloadEntry(_)))
                .expect("a WorkloadEntry");
            let mut entry = entry.as_ref().clone();
            if let Object::WorkloadEntry(e) = &mut entry {
                e.spec.address = "11.0.0.1".into();
            }
            moved.insert(key.clone(), std::sync::Arc::new(entry));
            // The server's caches are warm: the fastest of five.
            let mut fastest = std::time::Duration::MAX;
            for _ in 0..5 {
                let started = Instant::now();
                let patched = measured(|| ir::patch::patch(&ir, &world, black_box(&moved)));
                fastest = fastest.min(started.elapsed());
                assert!(patched.is_some(), "a move of one workload is patched");
            }
            eprintln!("{stage} at {services} services: {fastest:.1?} (fastest of 5)");
            return;
        }
        "translate" => drop(measured(|| translate::translate(&ir, &class, &options))),
        "encode" => {
            let t = translate::translate(&ir, &class, &options);
            let started = Instant::now();
            let n = measured(|| {
                t.clusters
                    .iter()
                    .map(|c| Resource::encode(c.name.as_str(), c).body.len())
                    .chain(
                        t.endpoints
                            .iter()
                            .map(|e| Resource::encode(e.cluster_name.as_str(), e).body.len()),
                    )
                    .chain(
                        t.route_configurations
                            .iter()
                            .map(|r| Resource::encode(r.name.as_str(), r).body.len()),
                    )
                    .sum::<usize>()
            });
            eprintln!("encode: {n} bytes in {:.1?}", started.elapsed());
            return;
        }
        "snapshot" => {
            let cache = SnapshotCache::new(options.clone());
            cache.set_ir(ir.clone());
            drop(measured(|| cache.snapshot(black_box(&p))));
        }
        "next_class" => {
            let cache = SnapshotCache::new(options.clone());
            cache.set_ir(ir.clone());
            drop(cache.snapshot(&p));
            let other = sextant::proxy::ProxyInfo {
                node_id: "bench.ns-1".into(),
                namespace: "ns-1".into(),
                ..common::proxy()
            };
            let started = Instant::now();
            drop(measured(|| cache.snapshot(black_box(&other))));
            eprintln!("{stage} at {services} services: {:.1?}", started.elapsed());
            return;
        }
        "endpoint_change" | "policy_change" | "route_change" => {
            let cache = SnapshotCache::new(options.clone());
            cache.set_ir(ir.clone());
            let namespaces: std::collections::BTreeSet<&str> =
                ir.clusters.values().map(|c| c.namespace.as_str()).collect();
            let proxies: Vec<sextant::proxy::ProxyInfo> = namespaces
                .iter()
                .map(|ns| sextant::proxy::ProxyInfo {
                    node_id: format!("bench.{ns}"),
                    namespace: ns.to_string(),
                    ..common::proxy()
                })
                .collect();
            for p in &proxies {
                drop(cache.snapshot(p));
            }
            // A weight change: the IR is built again from a world whose one
            // VirtualService moved weight, as the server builds it.
            let rebuilt = (stage == "route_change").then(|| {
                let mut changed = world.clone();
                let (key, object, http) = world
                    .iter()
                    .find_map(|(k, o)| match o.as_ref() {
                        Object::VirtualService(vs) => vs
                            .spec
                            .http
                            .iter()
                            .position(|h| h.route.len() > 1)
                            .map(|i| (k.clone(), vs.clone(), i)),
                        _ => None,
                    })
                    .expect("a VirtualService that splits traffic");
                let mut vs = object.as_ref().clone();
                let routes = &mut vs.spec.http[http].route;
                let first = routes[0].weight.unwrap_or(0);
                routes[0].weight = Some(first - 1);
                routes[1].weight = Some(routes[1].weight.unwrap_or(0) + 1);
                changed.insert(
                    key,
                    std::sync::Arc::new(Object::VirtualService(Box::new(vs))),
                );
                ir::build(&changed)
            });
            let mut next = ir.clone();
            let name = next
                .clusters
                .values()
                .find(|c| c.dns.is_none() && !c.endpoints.is_empty())
                .map(|c| c.name.clone())
                .expect("an EDS cluster with endpoints");
            let cluster = std::sync::Arc::make_mut(next.clusters.get_mut(&name).unwrap());
            if stage == "endpoint_change" {
                cluster.endpoints[0].port = cluster.endpoints[0].port.wrapping_add(1).max(1);
            } else {
                cluster.policy.connect_timeout = Some(std::time::Duration::from_millis(1234));
            }
            let next = rebuilt.unwrap_or(next);
            let started = Instant::now();
            measured(|| {
                cache.set_ir(black_box(next));
                for p in &proxies {
                    drop(cache.snapshot(black_box(p)));
                }
            });
            eprintln!(
                "{stage} at {services} services, {} classes: {:.1?}",
                proxies.len(),
                started.elapsed()
            );
            return;
        }
        "proxy_snapshot" => {
            // What each further proxy of a translated class costs: 300
            // snapshots of one class (the per-proxy listeners and maps).
            let cache = SnapshotCache::new(options.clone());
            cache.set_ir(ir.clone());
            drop(cache.snapshot(&p));
            let proxies: Vec<sextant::proxy::ProxyInfo> = (0..300)
                .map(|i| sextant::proxy::ProxyInfo {
                    node_id: format!("bench-{i}.ns-0"),
                    ..common::proxy()
                })
                .collect();
            let started = Instant::now();
            measured(|| {
                for p in &proxies {
                    drop(cache.snapshot(black_box(p)));
                }
            });
            eprintln!(
                "{stage} at {services} services, 300 proxies: {:.1?}",
                started.elapsed()
            );
            return;
        }
        "validate" => drop(measured(|| {
            translate::diagnostics_for_every_namespace(&ir, &options)
        })),
        other => panic!("unknown stage {other:?}"),
    }
    eprintln!("{stage} at {services} services: {:.1?}", started.elapsed());
}
