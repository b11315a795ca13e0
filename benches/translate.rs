//! Translation at mesh scale: `cargo bench --bench translate`.
//!
//! Worlds come from [`sextant::synth`] (1k and 10k services; see
//! `WorldSpec::with_services`), parsed by the real file-source parser.
//! Per size it measures:
//!
//! - `ir_build`: [`sextant::ir::build`] of the whole world;
//! - `translate`: [`sextant::translate::translate`] for one proxy class (a
//!   sidecar in `ns-0` that sees every service);
//! - `encode_only`: encoding an already translated class (every cluster,
//!   load assignment and route configuration to its bytes and hash), the
//!   baseline for
//! - `snapshot`: `SnapshotCache::snapshot` for a fresh class of a new IR,
//!   i.e. translate + encode + the per-proxy listeners, as a first proxy
//!   of a class costs;
//! - `push_meshed`: `SnapshotCache::snapshot` again for a proxy whose class
//!   is already translated, in the same world with every workload behind a
//!   sidecar (`security.istio.io/tlsMode: istio`): what each later push to
//!   a sidecar costs (its listeners, among them the inbound one).
//!
//! After criterion's own report it prints a table of this run's times
//! side by side: the share of encoding in a snapshot and the
//! 10k/1k ratios (10 × the services: a ratio near 10 is linear).

mod common;

use criterion::{BatchSize, BenchmarkId, Criterion};
use sextant::cache::{ResourceMap, SnapshotCache};
use sextant::ir::{self, Ir};
use sextant::proxy::{ProxyClass, ProxyInfo};
use sextant::source::parse::parse_documents;
use sextant::store::{Store, World};
use sextant::synth::{self, WorldSpec};
use sextant::translate::{self, TranslateOptions, Translation};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// The sizes measured, by label.
const SIZES: [(&str, usize); 2] = [("1k", 1_000), ("10k", 10_000)];
/// The benchmarks, in table order.
const BENCHES: [&str; 5] = [
    "ir_build",
    "translate",
    "encode_only",
    "snapshot",
    "push_meshed",
];

/// A world, its IR, and one translation of it (built once per size, on first use).
struct Fixture {
    world: World,
    ir: Ir,
    class: ProxyClass,
    translation: Translation,
}

fn fixture(services: usize) -> &'static Fixture {
    static SMALL: OnceLock<Fixture> = OnceLock::new();
    static LARGE: OnceLock<Fixture> = OnceLock::new();
    let cell = if services == 1_000 { &SMALL } else { &LARGE };
    cell.get_or_init(|| {
        let started = std::time::Instant::now();
        let spec = WorldSpec::with_services(services);
        let store = synth::store(&spec);
        let (world, _) = store.world();
        let (ir, diagnostics) = ir::resolve(&store);
        assert!(
            diagnostics.iter().all(|d| !d.is_error()),
            "the synthetic world has errors: {diagnostics:?}"
        );
        let options = TranslateOptions::default();
        let class = proxy_class(&ir, &options);
        let translation = translate::translate(&ir, &class, &options);
        eprintln!(
            "world of {services} services: {} objects, {} clusters, {} virtual hosts; \
             the proxy gets {} clusters, {} load assignments (set up in {:.1?})",
            world.len(),
            ir.clusters.len(),
            ir.virtual_hosts.len(),
            translation.clusters.len(),
            translation.endpoints.len(),
            started.elapsed()
        );
        Fixture {
            world,
            ir,
            class,
            translation,
        }
    })
}

/// The synthetic world of `services` services with every WorkloadEntry
/// marked as having a sidecar, parsed like [`synth::store`] does; its IR;
/// and the proxy of the first workload of `svc-0` (built once per size).
fn meshed(services: usize) -> &'static (Ir, ProxyInfo) {
    static SMALL: OnceLock<(Ir, ProxyInfo)> = OnceLock::new();
    static LARGE: OnceLock<(Ir, ProxyInfo)> = OnceLock::new();
    let cell = if services == 1_000 { &SMALL } else { &LARGE };
    cell.get_or_init(|| {
        let mut store = Store::new();
        for (file, text) in synth::generate(&WorldSpec::with_services(services)).files {
            let text = text.replace(
                "  labels: {app: ",
                "  labels: {security.istio.io/tlsMode: istio, app: ",
            );
            store.apply(&file, parse_documents(&file, &text));
        }
        let (ir, _) = ir::resolve(&store);
        let workload = ir
            .workloads
            .values()
            .find(|w| w.origin.name == "svc-0-0")
            .expect("the world has workload svc-0-0");
        assert!(workload.sidecar_port.is_some(), "svc-0-0 has a sidecar");
        let proxy = ProxyInfo {
            node_id: "svc-0-0.ns-0".into(),
            cluster: "svc-0".into(),
            namespace: workload.namespace.clone(),
            labels: workload.labels.clone(),
            service_account: workload.service_account.clone(),
            instance_ips: vec![workload.address],
            ..common::proxy()
        };
        (ir, proxy)
    })
}

fn proxy_class(ir: &Ir, options: &TranslateOptions) -> ProxyClass {
    let p = common::proxy();
    ProxyClass::of(ir, &p.namespace, &p.labels, &options.root_namespace, false)
}

/// What the cache does to a translation: every resource to its bytes and hash.
fn encode(t: &Translation) -> [ResourceMap; 3] {
    sextant::cache::encode_translation(t)
}

fn benches(c: &mut Criterion) {
    let options = TranslateOptions::default();
    for (label, services) in SIZES {
        let time = if services >= 10_000 { 8 } else { 3 };
        let mut group = c.benchmark_group(label);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(time));
        group.bench_function(BenchmarkId::from_parameter("ir_build"), |b| {
            let f = fixture(services);
            b.iter_with_large_drop(|| ir::build(black_box(&f.world)));
        });
        group.bench_function(BenchmarkId::from_parameter("translate"), |b| {
            let f = fixture(services);
            b.iter_with_large_drop(|| translate::translate(black_box(&f.ir), &f.class, &options));
        });
        group.bench_function(BenchmarkId::from_parameter("encode_only"), |b| {
            let f = fixture(services);
            b.iter_with_large_drop(|| encode(black_box(&f.translation)));
        });
        group.bench_function(BenchmarkId::from_parameter("snapshot"), |b| {
            let f = fixture(services);
            let proxy = common::proxy();
            b.iter_batched_ref(
                || {
                    let cache = SnapshotCache::new(options.clone());
                    cache.set_ir(f.ir.clone());
                    cache
                },
                |cache| cache.snapshot(black_box(&proxy)),
                BatchSize::PerIteration,
            );
        });
        group.bench_function(BenchmarkId::from_parameter("push_meshed"), |b| {
            let (ir, proxy) = meshed(services);
            let cache = SnapshotCache::new(options.clone());
            cache.set_ir(ir.clone());
            let first = cache.snapshot(proxy);
            assert!(
                first
                    .of(sextant::envoy::TypeUrl::Listener)
                    .contains_key(sextant::translate::inbound::INBOUND_LISTENER),
                "the meshed proxy gets an inbound listener"
            );
            b.iter_with_large_drop(|| cache.snapshot(black_box(proxy)));
        });
        group.finish();
    }
}

/// Where criterion writes its estimates (as criterion finds it, short of
/// asking `cargo metadata`).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("criterion")
}

/// The time per iteration of `bench` at `size` measured by this run (an
/// estimate file written since `since`), if any.
fn estimate(size: &str, bench: &str, since: SystemTime) -> Option<Duration> {
    let path = criterion_dir()
        .join(size)
        .join(bench)
        .join("new")
        .join("estimates.json");
    let fresh = std::fs::metadata(&path).ok()?.modified().ok()? >= since;
    if !fresh {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    // What criterion prints as `time`: the slope of a linear sampling, else the mean.
    let nanos = json["slope"]["point_estimate"]
        .as_f64()
        .or_else(|| json["mean"]["point_estimate"].as_f64())?;
    Some(Duration::from_secs_f64(nanos / 1e9))
}

fn print_comparison(since: SystemTime) {
    let means: BTreeMap<(&str, &str), Duration> = SIZES
        .iter()
        .flat_map(|(size, _)| BENCHES.iter().map(move |bench| (*size, *bench)))
        .filter_map(|(size, bench)| Some(((size, bench), estimate(size, bench, since)?)))
        .collect();
    if means.is_empty() {
        return;
    }
    let cell = |d: Option<&Duration>| d.map_or("-".to_string(), |d| format!("{d:.2?}"));
    println!("\nTimes per iteration in this run (criterion's point estimates, as printed above):");
    print!("{:<8}", "size");
    for bench in BENCHES {
        print!("{bench:>14}");
    }
    println!("{:>22}", "encode/snapshot");
    for (size, _) in SIZES {
        print!("{size:<8}");
        for bench in BENCHES {
            print!("{:>14}", cell(means.get(&(size, bench))));
        }
        let share = match (
            means.get(&(size, "encode_only")),
            means.get(&(size, "snapshot")),
        ) {
            (Some(e), Some(s)) => format!("{:.0} %", 100.0 * e.as_secs_f64() / s.as_secs_f64()),
            _ => "-".into(),
        };
        println!("{share:>22}");
    }
    print!("{:<8}", "10k/1k");
    for bench in BENCHES {
        let ratio = match (means.get(&("10k", bench)), means.get(&("1k", bench))) {
            (Some(large), Some(small)) => {
                format!("{:.1}x", large.as_secs_f64() / small.as_secs_f64())
            }
            _ => "-".into(),
        };
        print!("{ratio:>14}");
    }
    println!("\n(10k has 10x the services of 1k: 10.0x is linear.)");
}

fn main() {
    let since = SystemTime::now();
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    print_comparison(since);
}
