//! One load run per mode: start (or reach) the server, connect every
//! proxy at once and time the cold sync, then run the change scenarios
//! one after the other, each measured until the server is quiet again.

use super::ads::AdsStream;
use super::proxy::{self, Fleet, Protocol};
use super::report::{
    self, ColdSync, Mode, Report, RunReport, ScenarioReport, ServerUse, TypeBytes,
};
use super::server::{ServeOptions, Server};
use super::stats::Percentiles;
use super::watch::Check;
use super::world::World;
use super::LoadError;
use crate::envoy::TypeUrl;
use crate::synth::WorldSpec;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Envoy's default HTTP/2 receive window, per stream and per connection,
/// in bytes: 256 MiB (`Http2ProtocolOptions.initial_stream_window_size`
/// and `initial_connection_window_size`), the simulated proxies' default.
pub const ENVOY_HTTP2_WINDOW_BYTES: u32 = 256 * 1024 * 1024;

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Simulated proxies (streams).
    pub proxies: usize,
    /// The world (subsets must be 2 for the weight change).
    pub world: WorldSpec,
    /// SotW or delta.
    pub protocol: Protocol,
    /// Endpoints moved by the rolling update.
    pub rolling_endpoints: usize,
    /// How long the rolling update takes.
    pub rolling_duration: Duration,
    /// In how many steps (file rewrites) it moves them.
    pub rolling_steps: usize,
    /// How long any one phase (cold sync, one scenario) may take.
    pub timeout: Duration,
    /// The server is quiet when no proxy received anything for this long.
    pub quiet: Duration,
    /// Each simulated proxy's HTTP/2 receive window, per stream and per
    /// connection, in bytes ([`ENVOY_HTTP2_WINDOW_BYTES`] as Envoy): how
    /// much the server may send ahead of what a proxy has read, so also
    /// the most a proxy the tool has not got to yet holds.
    pub http2_window_bytes: u32,
}

/// The server to load.
#[derive(Clone, Debug)]
pub enum Target {
    /// Start `sextant serve` on a world written into a temporary directory;
    /// with `baseline`, then again with `--naive-baseline`.
    Spawn {
        /// The `sextant` binary.
        binary: PathBuf,
        /// `--debounce-quiet-ms` of the server.
        debounce_quiet_ms: u64,
        /// `--debounce-max-ms` of the server.
        debounce_max_ms: u64,
        /// Also run the naive baseline and compare.
        baseline: bool,
        /// Keep the temporary directory (world, logs) here instead.
        keep_dir: Option<PathBuf>,
    },
    /// A server someone else started on `config_dir`, which must hold the
    /// world of [`LoadConfig::world`] (it is restored afterwards).
    Existing {
        /// Its ADS address.
        xds: SocketAddr,
        /// Its config directory.
        config_dir: PathBuf,
        /// Its process id, for CPU and memory.
        pid: Option<u32>,
    },
}

/// Runs the load and returns what it measured; `progress` gets a line per phase.
///
/// # Errors
/// A [`LoadError`] naming the phase and what failed (a stream error, a
/// timeout with how many proxies were missing, a server that did not start).
pub async fn run(
    config: &LoadConfig,
    target: &Target,
    command: String,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Report, LoadError> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut runs = Vec::new();
    match target {
        Target::Existing {
            xds,
            config_dir,
            pid,
        } => {
            let mut world = World::adopt(config_dir, config.world.clone())?;
            let server = Server::existing(*xds, *pid);
            let result = run_mode(config, &mut world, &server, Mode::Shared, progress).await;
            world.restore()?;
            runs.push(result?);
        }
        Target::Spawn {
            binary,
            debounce_quiet_ms,
            debounce_max_ms,
            baseline,
            keep_dir,
        } => {
            let temp = tempfile::tempdir().map_err(LoadError::file(std::env::temp_dir()))?;
            let work = keep_dir
                .clone()
                .unwrap_or_else(|| temp.path().to_path_buf());
            let config_dir = work.join("config");
            std::fs::create_dir_all(&config_dir).map_err(LoadError::file(&config_dir))?;
            let mut world = World::write(&config_dir, config.world.clone())?;
            let mut modes = vec![Mode::Shared];
            if *baseline {
                modes.push(Mode::NaiveBaseline);
            }
            for mode in modes {
                let options = ServeOptions {
                    binary: binary.clone(),
                    config_dir: config_dir.clone(),
                    work_dir: work.clone(),
                    debounce_quiet_ms: *debounce_quiet_ms,
                    debounce_max_ms: *debounce_max_ms,
                    naive_baseline: mode == Mode::NaiveBaseline,
                };
                progress(&format!(
                    "starting {} on {} services",
                    options.binary.display(),
                    config.world.services
                ));
                let server = Server::start(&options, config.timeout).await?;
                let result = run_mode(config, &mut world, &server, mode, progress).await;
                let result = result.map_err(|e| match server.log_path() {
                    Some(log) => LoadError::Server(format!(
                        "{e}\n(server log: {}{})\n{}",
                        log.display(),
                        if keep_dir.is_some() {
                            ""
                        } else {
                            "; a temporary directory, removed on exit: \
                             rerun with --work-dir DIR to keep it"
                        },
                        server.log_tail()
                    )),
                    None => e,
                });
                drop(server);
                world.restore()?;
                runs.push(result?);
            }
        }
    }
    let ratios = match runs.as_slice() {
        [ours, baseline] => report::ratios(ours, baseline),
        _ => Vec::new(),
    };
    Ok(Report {
        cpus,
        command,
        runs,
        ratios,
    })
}

/// The running proxies: their tasks and what they share.
struct Proxies {
    fleet: Arc<Fleet>,
    tasks: JoinSet<Result<(), LoadError>>,
}

impl Proxies {
    /// Fails if a proxy's stream ended (the server closed it or it failed).
    fn check(&mut self) -> Result<(), LoadError> {
        match self.tasks.try_join_next() {
            None => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Ok(Ok(()))) => Err(LoadError::Stream {
                proxy: "?".into(),
                message: "the server ended a stream".into(),
            }),
            Some(Err(e)) => Err(LoadError::Stream {
                proxy: "?".into(),
                message: format!("task failed: {e}"),
            }),
        }
    }

    /// Waits until `done` holds, checking the streams every 5 ms.
    async fn wait(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&Fleet) -> Result<(), String>,
    ) -> Result<(), LoadError> {
        let started = Instant::now();
        loop {
            self.check()?;
            match done(&self.fleet) {
                Ok(()) => return Ok(()),
                Err(missing) if started.elapsed() > timeout => {
                    return Err(LoadError::Timeout(format!(
                        "{what} after {timeout:?}: {missing}"
                    )))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    /// Waits until no proxy received anything for `quiet`.
    async fn quiet(&mut self, quiet: Duration, timeout: Duration) -> Result<(), LoadError> {
        let mut last = self.fleet.responses();
        let mut since = Instant::now();
        self.wait(timeout, "waiting for the server to go quiet", |fleet| {
            let now = fleet.responses();
            if now != last {
                last = now;
                since = Instant::now();
            }
            if since.elapsed() >= quiet {
                Ok(())
            } else {
                Err("responses still arriving".into())
            }
        })
        .await
    }
}

fn bytes_since(fleet: &Fleet, before: [u64; 4]) -> TypeBytes {
    let now = fleet.bytes();
    TypeBytes::from_array([0, 1, 2, 3].map(|t| now[t] - before[t]))
}

fn cpu_since(server: &Server, before: Option<Duration>) -> Option<f64> {
    Some((server.sample()?.cpu.checked_sub(before?))?.as_secs_f64())
}

async fn run_mode(
    config: &LoadConfig,
    world: &mut World,
    server: &Server,
    mode: Mode,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<RunReport, LoadError> {
    let n = config.proxies;
    let idle = server.sample();
    let fleet = Arc::new(Fleet::new(n));
    let mut proxies = Proxies {
        fleet: fleet.clone(),
        tasks: JoinSet::new(),
    };
    progress(&format!(
        "{mode:?}: connecting {n} proxies ({:?})",
        config.protocol
    ));
    let started = Instant::now();
    for i in 0..n {
        let namespace = world.namespace_of(i);
        let (fleet, protocol, xds) = (fleet.clone(), config.protocol, server.xds);
        let (window, timeout) = (config.http2_window_bytes, config.timeout);
        proxies.tasks.spawn(async move {
            let node = proxy::node(i, &namespace);
            let fail = |message: String| LoadError::Stream {
                proxy: node.id.clone(),
                message,
            };
            let stream = tokio::time::timeout(timeout, AdsStream::open(xds, protocol, window))
                .await
                .map_err(|_| fail(format!("connecting took over {timeout:?}")))?
                .map_err(fail)?;
            proxy::run(i, node, stream, protocol, fleet).await
        });
    }
    proxies
        .wait(config.timeout, "cold sync", |fleet| {
            let missing = fleet
                .stats
                .iter()
                .filter(|s| s.synced_at.get().is_none())
                .count();
            if missing == 0 {
                Ok(())
            } else {
                Err(format!("{missing} of {n} proxies not synced"))
            }
        })
        .await?;
    let sync_times: Vec<Duration> = fleet
        .stats
        .iter()
        .filter_map(|s| s.synced_at.get())
        .map(|at| at.saturating_duration_since(started))
        .collect();
    let cold_seconds = sync_times
        .iter()
        .max()
        .copied()
        .unwrap_or_default()
        .as_secs_f64();
    proxies.quiet(config.quiet, config.timeout).await?;
    let synced = server.sample();
    let cold_sync = ColdSync {
        proxies_synced: fleet
            .stats
            .iter()
            .filter(|s| s.synced_at.get().is_some())
            .count(),
        seconds: cold_seconds,
        per_proxy: Percentiles::of(sync_times),
        bytes: TypeBytes::from_array(fleet.bytes()),
        server_cpu_seconds: cpu_since(server, idle.map(|s| s.cpu)),
    };
    progress(&format!("{mode:?}: cold sync {cold_seconds:.2} s"));

    let mut scenarios = Vec::new();
    for scenario in [Scenario::Endpoint, Scenario::Weight, Scenario::Rolling] {
        let report = run_scenario(config, world, server, &mut proxies, scenario).await?;
        progress(&format!(
            "{mode:?}: {}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            report.name,
            report.convergence.p50_ms,
            report.convergence.p99_ms,
            report.convergence.max_ms
        ));
        scenarios.push(report);
    }
    proxies.tasks.abort_all();
    let end = server.sample();
    let rss_per_stream_bytes = match (idle, synced) {
        (Some(i), Some(s)) if n > 0 => Some(s.rss_bytes.saturating_sub(i.rss_bytes) / n as u64),
        _ => None,
    };
    let spec = world.spec();
    Ok(RunReport {
        mode,
        protocol: config.protocol,
        proxies: n,
        services: spec.services,
        namespaces: spec.namespaces,
        endpoints: world.endpoints,
        clusters: world.clusters,
        cold_sync,
        scenarios,
        server: ServerUse {
            cpu_seconds: end.map(|s| s.cpu.as_secs_f64()),
            peak_rss_bytes: end.map(|s| s.peak_rss_bytes),
            rss_idle_bytes: idle.map(|s| s.rss_bytes),
            rss_synced_bytes: synced.map(|s| s.rss_bytes),
            rss_per_stream_bytes,
        },
    })
}

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Endpoint,
    Weight,
    Rolling,
}

async fn run_scenario(
    config: &LoadConfig,
    world: &mut World,
    server: &Server,
    proxies: &mut Proxies,
    scenario: Scenario,
) -> Result<ScenarioReport, LoadError> {
    let fleet = proxies.fleet.clone();
    let watches = &fleet.watches;
    watches.clear();
    let bytes_before = fleet.bytes();
    let cpu_before = server.sample().map(|s| s.cpu);
    let services = world.spec().services;
    let (name, change) = match scenario {
        Scenario::Endpoint => {
            let service = services / 2;
            let (file, address) = world.move_endpoint(service, 0)?;
            let at = world.flush(file)?;
            let cluster = world.cluster(service, None);
            watches.expect(
                TypeUrl::ClusterLoadAssignment,
                &cluster,
                Check::EndpointsAt(vec![IpAddr::V4(address)]),
                at,
            );
            (
                "endpoint_change",
                format!("WorkloadEntry svc-{service}-0 moved to {address} ({cluster})"),
            )
        }
        Scenario::Weight => {
            let service = world
                .weighted_service(services / 2)
                .or_else(|| world.weighted_service(0))
                .ok_or_else(|| {
                    LoadError::World("no service has a weighted VirtualService".into())
                })?;
            let (file, weight) = world.shift_weight(service)?;
            let at = world.flush(file)?;
            let cluster = world.cluster(service, Some("v1"));
            watches.expect(
                TypeUrl::RouteConfiguration,
                crate::translate::OUTBOUND_ROUTE_CONFIG,
                Check::ClusterWeight {
                    cluster: cluster.clone(),
                    weight,
                },
                at,
            );
            (
                "weight_change",
                format!("VirtualService svc-{service}: {cluster} weight {weight}"),
            )
        }
        Scenario::Rolling => {
            let total = world.endpoints;
            let moves = config.rolling_endpoints.min(total);
            let steps = config.rolling_steps.clamp(1, moves.max(1));
            let per_step = moves.div_ceil(steps);
            let interval = config.rolling_duration / steps as u32;
            let per_service = world.spec().endpoints_per_service.max(1);
            let begun = Instant::now();
            for step in 0..steps {
                tokio::time::sleep_until((begun + interval * step as u32).into()).await;
                proxies.check()?;
                let mut moved: BTreeMap<usize, Vec<IpAddr>> = BTreeMap::new();
                let mut files = BTreeSet::new();
                for j in step * per_step..((step + 1) * per_step).min(moves) {
                    let service = j / per_service;
                    let (file, address) = world.move_endpoint(service, j % per_service)?;
                    moved.entry(service).or_default().push(IpAddr::V4(address));
                    files.insert(file);
                }
                let mut written = BTreeMap::new();
                for file in files {
                    written.insert(file, world.flush(file)?);
                }
                for (service, addresses) in moved {
                    let at = written[&(service % world.spec().namespaces)];
                    watches.expect(
                        TypeUrl::ClusterLoadAssignment,
                        &world.cluster(service, None),
                        Check::EndpointsAt(addresses),
                        at,
                    );
                }
            }
            (
                "rolling_update",
                format!(
                    "{moves} endpoints moved in {steps} steps over {:.1} s",
                    config.rolling_duration.as_secs_f64()
                ),
            )
        }
    };
    proxies
        .wait(config.timeout, name, |fleet| {
            match fleet.watches.missing() {
                0 => Ok(()),
                missing => Err(format!("{missing} (change, proxy) pairs not seen")),
            }
        })
        .await?;
    proxies.quiet(config.quiet, config.timeout).await?;
    Ok(ScenarioReport {
        name: name.to_string(),
        change,
        convergence: Percentiles::of(watches.latencies()),
        bytes: bytes_since(&fleet, bytes_before),
        server_cpu_seconds: cpu_since(server, cpu_before),
    })
}
