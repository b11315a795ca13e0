//! `sextant tap <service>[.<namespace>]`: prints live requests to a service
//! (method, path, status, duration, source identity, trace ID), read from
//! the admin endpoint's `/debug/tap` server-sent events, until interrupted.

use anyhow::{bail, Context};
use clap::Args;
use sextant::tap::TapEntry;
use std::io::Write;
use std::net::SocketAddr;

#[derive(Debug, Args)]
pub struct TapArgs {
    /// The destination service: `name.namespace`, or `name` for
    /// `--namespace` (a ServiceEntry host: `--host`).
    service: String,
    /// Namespace of a service given without one.
    #[arg(long, short, default_value = "default")]
    namespace: String,
    /// Take SERVICE as a ServiceEntry host, as written.
    #[arg(long)]
    host: bool,
    /// Show only the requests this CEL expression is true for, over Envoy's
    /// attribute names: `request.method`, `request.path`, `request.url_path`,
    /// `request.host`, `request.id`, `request.duration`, `response.code`,
    /// `source.principal`, `xds.cluster_name`, `xds.node_id`; e.g.
    /// `'response.code >= 500'` or `'request.duration > duration("100ms")'`.
    #[arg(long)]
    filter: Option<String>,
    /// The admin address of the running `sextant serve`.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin_address: SocketAddr,
}

pub fn run(args: TapArgs) -> anyhow::Result<()> {
    let service = if args.host || args.service.contains('.') {
        args.service.clone()
    } else {
        format!("{}.{}", args.service, args.namespace)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut query = vec![("service", service.as_str())];
        if let Some(filter) = &args.filter {
            query.push(("filter", filter));
        }
        let mut response = super::admin_get(args.admin_address, "/debug/tap", &query).await?;
        match &args.filter {
            Some(filter) => eprintln!("tapping {service} where {filter} (Ctrl-C stops)"),
            None => eprintln!("tapping {service} (Ctrl-C stops)"),
        }
        let mut pending = String::new();
        while let Some(chunk) = response.chunk().await.context("reading the tap stream")? {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                if let Some(data) = line.trim_end().strip_prefix("data:") {
                    match serde_json::from_str::<TapEntry>(data.trim()) {
                        Ok(entry) => println!("{}", render(&entry)),
                        Err(err) => eprintln!("unreadable tap event ({err}): {data}"),
                    }
                    std::io::stdout().flush().ok();
                }
            }
        }
        bail!("the tap stream ended (sextant stopped?)")
    })
}

/// One line per request: `METHOD path status duration source trace`.
pub fn render(e: &TapEntry) -> String {
    let status = e.status.map_or("-".to_string(), |s| s.to_string());
    let duration = e
        .duration_ms
        .map_or("-".to_string(), |d| format!("{d:.1}ms"));
    let source = if e.source.is_empty() { "-" } else { &e.source };
    let trace = e.trace_id.as_deref().unwrap_or("-");
    format!(
        "{} {} {} {} {status} {duration} source={source} trace={trace}",
        e.start_time.as_deref().unwrap_or("-"),
        e.cluster,
        e.method,
        e.path
    )
}
