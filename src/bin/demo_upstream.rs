//! A trivial HTTP upstream for demos and end-to-end tests: answers every
//! request with its own name and version and echoes what it received.
//!
//! Usage: `demo-upstream --listen 127.0.1.3:9080 --name reviews --version v1`.
//! Port 0 picks a free port; the bound address is printed on stdout as
//! `listening on <addr>` so a test can read it.
//!
//! Request headers steer it, for tests of timeouts, retries and faults:
//! `x-demo-delay-ms: N` answers after N ms; `x-demo-status: S` answers with
//! status S; `x-demo-fail-every: N` answers 503 unless this is the Nth, 2Nth,
//! ... request it serves.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use clap::Parser;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Service name to report.
    #[arg(long)]
    name: String,
    /// Version to report.
    #[arg(long, default_value = "v1")]
    version: String,
    /// HTTP status of every answer (unless `x-demo-status` says otherwise),
    /// e.g. 503 for a broken endpoint.
    #[arg(long, default_value_t = 200)]
    status: u16,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    let default_status = StatusCode::from_u16(args.status).unwrap_or(StatusCode::OK);
    let identity = Arc::new((args.name, args.version, addr, AtomicU64::new(0)));
    let app = axum::Router::new().fallback(move |request: Request| {
        let identity = identity.clone();
        async move {
            let (name, version, addr, count) = &*identity;
            let served = count.fetch_add(1, Ordering::Relaxed) + 1;
            let (delay, status, fail_every) = {
                let header = |name: &str| {
                    let value = request.headers().get(name)?.to_str().ok()?;
                    value.parse::<u64>().ok()
                };
                (
                    header("x-demo-delay-ms"),
                    header("x-demo-status"),
                    header("x-demo-fail-every"),
                )
            };
            if let Some(ms) = delay {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            let mut status = status
                .and_then(|s| StatusCode::from_u16(u16::try_from(s).ok()?).ok())
                .unwrap_or(default_status);
            if fail_every.is_some_and(|n| n > 0 && served % n != 0) {
                status = StatusCode::SERVICE_UNAVAILABLE;
            }
            let headers: serde_json::Map<String, serde_json::Value> = request
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
                .collect();
            let body = json!({
                "service": name,
                "version": version,
                "address": addr.to_string(),
                "method": request.method().as_str(),
                "path": request.uri().to_string(),
                "headers": headers,
                "served": served,
            });
            (
                status,
                [("x-upstream", format!("{name}-{version}"))],
                Json(body),
            )
                .into_response()
        }
    });
    axum::serve(listener, app).await
}
