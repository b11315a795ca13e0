//! `sextant-load`: opens many ADS streams (simulated proxies) against a
//! Sextant server and measures cold sync, convergence after config changes,
//! bytes per type and the server's CPU and memory. See `BENCHMARKS.md`.

use anyhow::Context;
use clap::Parser;
use sextant::load::{self, LoadConfig, Protocol, Target};
use sextant::synth::WorldSpec;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Load-tests a Sextant server with simulated proxies.
///
/// By default it writes a synthetic world (as `sextant synth` does) into a
/// temporary directory, starts `sextant serve` on it on free loopback
/// ports, connects every proxy at once, then changes one endpoint, one
/// VirtualService weight, and many endpoints in a rolling update, and
/// reports how fast every proxy received each change.
#[derive(Debug, Parser)]
#[command(name = "sextant-load", version)]
struct Args {
    /// Simulated proxies (one ADS stream and connection each).
    #[arg(long, default_value_t = 100)]
    proxies: usize,
    /// Services of the synthetic world.
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Namespaces (default: one per 100 services); proxies are spread over them.
    #[arg(long)]
    namespaces: Option<usize>,
    /// Endpoints (WorkloadEntries) per service.
    #[arg(long, default_value_t = 3)]
    endpoints: usize,
    /// Seed of the synthetic world.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The ADS flavour of the proxies.
    #[arg(long, value_enum, default_value_t = Protocol::Sotw)]
    protocol: Protocol,
    /// Endpoints the rolling update moves (at most all of them).
    #[arg(long, default_value_t = 5000)]
    rolling_endpoints: usize,
    /// Duration of the rolling update, in seconds.
    #[arg(long, default_value_t = 10.0)]
    rolling_seconds: f64,
    /// File rewrites the rolling update is made of.
    #[arg(long, default_value_t = 20)]
    rolling_steps: usize,
    /// Longest any phase (start, cold sync, one scenario) may take, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
    /// A phase ends when no proxy received anything for this long, in ms.
    #[arg(long, default_value_t = 1000)]
    quiet_ms: u64,
    /// Also run the benchmark-only naive baseline (`serve --naive-baseline`)
    /// on the same world and print the ratios.
    #[arg(long)]
    baseline: bool,
    /// The `sextant` binary to start (default: the one beside this binary).
    #[arg(long)]
    sextant_bin: Option<PathBuf>,
    /// `--debounce-quiet-ms` of the started server.
    #[arg(long, default_value_t = 100)]
    debounce_quiet_ms: u64,
    /// `--debounce-max-ms` of the started server.
    #[arg(long, default_value_t = 1000)]
    debounce_max_ms: u64,
    /// Write the world and the server logs here instead of a temporary directory.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Load a server that is already running at this ADS address instead;
    /// needs --config-dir.
    #[arg(long, requires = "config_dir", conflicts_with = "baseline")]
    xds_address: Option<SocketAddr>,
    /// The config directory of the server at --xds-address; it must hold
    /// `sextant synth` output with the same --services, --namespaces,
    /// --endpoints and --seed. The tool edits it and restores it at the end.
    #[arg(long, requires = "xds_address")]
    config_dir: Option<PathBuf>,
    /// Process id of the server at --xds-address, to read its CPU and memory.
    #[arg(long, requires = "xds_address")]
    server_pid: Option<u32>,
    /// Each simulated proxy's HTTP/2 receive window, per stream and per
    /// connection, in bytes: how far the server may send ahead of what the
    /// proxy has read (default: Envoy's 256 MiB; 65,535 to 2,147,483,647,
    /// HTTP/2's limits). A smaller one bounds the tool's memory when it
    /// cannot keep up with many large streams.
    #[arg(long, default_value_t = load::run::ENVOY_HTTP2_WINDOW_BYTES,
          value_parser = clap::value_parser!(u32).range(65_535..=2_147_483_647))]
    http2_window_bytes: u32,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let world = WorldSpec {
        namespaces: args
            .namespaces
            .unwrap_or_else(|| args.services.div_ceil(100).max(1)),
        services: args.services,
        endpoints_per_service: args.endpoints,
        seed: args.seed,
        ..WorldSpec::default()
    };
    world.check().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(args.proxies > 0, "--proxies must be at least 1");
    anyhow::ensure!(
        args.rolling_seconds.is_finite() && args.rolling_seconds >= 0.0,
        "--rolling-seconds must be a non-negative number"
    );
    let config = LoadConfig {
        proxies: args.proxies,
        world,
        protocol: args.protocol,
        rolling_endpoints: args.rolling_endpoints,
        rolling_duration: Duration::from_secs_f64(args.rolling_seconds),
        rolling_steps: args.rolling_steps,
        timeout: Duration::from_secs(args.timeout_seconds),
        quiet: Duration::from_millis(args.quiet_ms),
        http2_window_bytes: args.http2_window_bytes,
    };
    let target = match (args.xds_address, args.config_dir) {
        (Some(xds), Some(config_dir)) => Target::Existing {
            xds,
            config_dir,
            pid: args.server_pid,
        },
        _ => Target::Spawn {
            binary: match args.sextant_bin {
                Some(bin) => bin,
                None => std::env::current_exe()
                    .context("locating this binary")?
                    .with_file_name("sextant"),
            },
            debounce_quiet_ms: args.debounce_quiet_ms,
            debounce_max_ms: args.debounce_max_ms,
            baseline: args.baseline,
            keep_dir: args.work_dir,
        },
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    // Many streams; the tool must not be the bottleneck it measures.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(load::run::run(&config, &target, command, &|line| {
        eprintln!("sextant-load: {line}")
    }))?;
    print!("{}", report.table());
    if let Some(path) = args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
