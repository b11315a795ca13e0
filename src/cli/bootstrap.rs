//! `sextant bootstrap`.

use anyhow::Context;
use clap::Args;
use sextant::bootstrap::{bootstrap_yaml, BootstrapOptions};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Envoy node id, unique per workload (e.g. `reviews-v1.default`).
    #[arg(long)]
    node_id: String,
    /// The workload's service (`node.cluster`); defaults to the node id up to the first '.'.
    #[arg(long)]
    cluster: Option<String>,
    /// Namespace of the workload.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Service account of the workload.
    #[arg(long, default_value = "default")]
    service_account: String,
    /// Workload labels, `k=v,k2=v2`.
    #[arg(long, default_value = "")]
    labels: String,
    /// Workload IPs, comma-separated.
    #[arg(long, default_value = "")]
    instance_ips: String,
    /// Sextant's xDS address, `host:port`.
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds_address: String,
    /// Port of Envoy's admin listener (bound on 127.0.0.1).
    #[arg(long, default_value_t = 15000, value_parser = clap::value_parser!(u16).range(1..))]
    admin_port: u16,
    /// Address of the outbound HTTP listener that apps send requests to.
    #[arg(long, default_value = "127.0.0.1")]
    outbound_address: IpAddr,
    /// Port of the outbound HTTP listener.
    #[arg(long, default_value_t = 15001, value_parser = clap::value_parser!(u16).range(1..))]
    outbound_port: u16,
    /// Port of the inbound listener that terminates mutual TLS in front of
    /// the app, bound on the first of `--instance-ips`.
    #[arg(long, default_value_t = 15006, value_parser = clap::value_parser!(u16).range(1..))]
    inbound_port: u16,
    /// Use delta (incremental) ADS instead of state of the world.
    #[arg(long)]
    delta: bool,
    /// Write a gRPC xDS bootstrap (JSON, for `GRPC_XDS_BOOTSTRAP`) for a
    /// proxyless gRPC application instead of an Envoy bootstrap.
    #[arg(long, conflicts_with = "delta")]
    grpc: bool,
    /// A file holding a token from `sextant token` for this workload's
    /// namespace and service account: Envoy sends it on the ADS stream
    /// (needed when sextant runs `--require-token`). The token is copied into
    /// the bootstrap, so keep the bootstrap as private as the token. Not
    /// available with `--grpc`.
    #[arg(long, conflicts_with = "grpc")]
    token_file: Option<PathBuf>,
    /// Do not stream HTTP access logs to Sextant's access log service (no
    /// `sextant-als` cluster; `sextant tap` then sees nothing of this proxy).
    #[arg(long)]
    no_access_log_service: bool,
    /// Do not stream Envoy's stats to Sextant's metrics service (no
    /// `sextant-metrics` cluster and stats sink; this proxy's calls then
    /// miss from the per-edge signals on `/metrics`, `/debug/edges`, `/ui`).
    #[arg(long)]
    no_metrics_service: bool,
    /// How often Envoy flushes stats to its sinks, in ms (Envoy's
    /// `stats_flush_interval`; default: Envoy's 5000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=300_000))]
    stats_flush_interval_ms: Option<u64>,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub fn run(args: BootstrapArgs) -> anyhow::Result<()> {
    let (host, port) = args
        .xds_address
        .rsplit_once(':')
        .with_context(|| format!("--xds-address {:?} is not host:port", args.xds_address))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("--xds-address: {port:?} is not a port"))?;
    let instance_ips = args
        .instance_ips
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .with_context(|| format!("--instance-ips: {s:?} is not an IP address"))
        })
        .collect::<anyhow::Result<_>>()?;
    let options = BootstrapOptions {
        cluster: args.cluster.unwrap_or_else(|| {
            args.node_id
                .split('.')
                .next()
                .unwrap_or_default()
                .to_string()
        }),
        node_id: args.node_id,
        namespace: args.namespace,
        service_account: args.service_account,
        labels: super::parse_labels(&args.labels)?,
        instance_ips,
        xds_host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        xds_port: port,
        admin: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), args.admin_port),
        outbound: SocketAddr::new(args.outbound_address, args.outbound_port),
        inbound_port: args.inbound_port,
        delta: args.delta,
        token: match &args.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("--token-file {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        },
        access_log_service: !args.no_access_log_service,
        metrics_service: !args.no_metrics_service,
        stats_flush_interval: args
            .stats_flush_interval_ms
            .map(std::time::Duration::from_millis),
    };
    let yaml = if args.grpc {
        format!("{:#}\n", sextant::bootstrap::grpc_bootstrap_json(&options))
    } else {
        bootstrap_yaml(&options)?
    };
    match args.output {
        Some(path) => {
            std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{yaml}"),
    }
    Ok(())
}
