//! The admin HTTP endpoint (axum).
//!
//! | path | what |
//! |---|---|
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 once the first full load is done, 503 before |
//! | `GET /debug/proxies` | connected proxies and, per type, versions sent and ACKed, the last NACK |
//! | `GET /debug/syncz` | per proxy and type: SYNCED, NOT SENT, STALE or NACKED (Istio's proxy-status columns) |
//! | `GET /debug/config_errors` | current errors and warnings about the input |
//! | `GET /debug/ir` | the resolved world (IR) as JSON |
//! | `GET /config_dump?proxy=<node-id>` | what the proxy ACKed, in Envoy's config-dump shape |

mod config_dump;

use crate::cache::SnapshotCache;
use crate::diagnostic::Diagnostic;
use crate::envoy::TypeUrl;
use crate::server::registry::{Registry, SyncState, TypeStatus};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// What the admin endpoint reads.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// The snapshot cache.
    pub cache: Arc<SnapshotCache>,
    /// Connected streams.
    pub registry: Arc<Registry>,
    /// Set once the first full load of the sources is done.
    pub ready: Arc<AtomicBool>,
    /// Current diagnostics of all inputs.
    pub diagnostics: Arc<RwLock<Vec<Diagnostic>>>,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/debug/proxies", get(proxies))
        .route("/debug/syncz", get(syncz))
        .route("/debug/config_errors", get(config_errors))
        .route("/debug/ir", get(ir))
        .route("/config_dump", get(config_dump))
        .with_state(state)
}

async fn readyz(State(state): State<AdminState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "loading the first configuration\n",
        )
            .into_response()
    }
}

async fn config_errors(State(state): State<AdminState>) -> Json<serde_json::Value> {
    let mut diagnostics = state.diagnostics.read().expect("diagnostics lock").clone();
    diagnostics.extend(state.cache.translation_diagnostics());
    let items: Vec<_> = diagnostics
        .iter()
        .map(|d| {
            let mut value = serde_json::to_value(d).expect("diagnostics serialize");
            value["text"] = json!(d.to_string());
            value
        })
        .collect();
    Json(
        json!({ "errors": diagnostics.iter().filter(|d| d.is_error()).count(), "diagnostics": items }),
    )
}

async fn ir(State(state): State<AdminState>) -> Json<serde_json::Value> {
    Json(serde_json::to_value(&*state.cache.ir()).expect("IR serializes"))
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn nack_json(nack: &crate::server::stream::Nack) -> serde_json::Value {
    json!({
        "version": nack.version,
        "nonce": nack.nonce,
        "message": nack.message,
        "at_unix_seconds": unix_seconds(nack.at),
    })
}

async fn proxies(State(state): State<AdminState>) -> Json<serde_json::Value> {
    let proxies: Vec<_> = state
        .registry
        .streams()
        .iter()
        .map(|entry| {
            let stream = entry.state.lock().expect("stream lock");
            let types: serde_json::Map<String, serde_json::Value> = stream
                .status()
                .iter()
                .map(|(type_url, t)| {
                    let value = json!({
                        "type_url": type_url.as_str(),
                        "subscription": t.subscription,
                        "sent_version": t.sent_version,
                        "sent_nonce": t.sent_nonce,
                        "sent_resources": t.sent_resources,
                        "sent_bytes": t.sent_bytes,
                        "acked_version": t.acked_version,
                        "synced": t.sync_state() == SyncState::Synced,
                        "last_nack": t.last_nack.as_ref().map(nack_json),
                        "nack_count": t.nack_count,
                    });
                    (type_url.short_name().to_string(), value)
                })
                .collect();
            json!({
                "node_id": entry.proxy.node_id,
                "protocol": stream.protocol(),
                "cluster": entry.proxy.cluster,
                "namespace": entry.proxy.namespace,
                "service_account": entry.proxy.service_account,
                "labels": entry.proxy.labels,
                "outbound_listener": entry.proxy.outbound.to_string(),
                "peer": entry.peer.map(|p| p.to_string()),
                "connected_at_unix_seconds": unix_seconds(entry.connected_at),
                "types": types,
            })
        })
        .collect();
    Json(json!({ "proxies": proxies, "nacks_total": nack_totals(&state) }))
}

fn nack_totals(state: &AdminState) -> serde_json::Map<String, serde_json::Value> {
    state
        .registry
        .nack_totals()
        .into_iter()
        .map(|(t, n)| (t.short_name().to_string(), json!(n)))
        .collect()
}

/// Istio's proxy-status table: per proxy and type, SYNCED, NOT SENT, STALE
/// or NACKED, with the trimmed NACK message.
async fn syncz(State(state): State<AdminState>) -> Json<serde_json::Value> {
    let proxies: Vec<_> = state
        .registry
        .streams()
        .iter()
        .map(|entry| {
            let status = entry.state.lock().expect("stream lock").status();
            let mut row = serde_json::Map::new();
            row.insert("node_id".into(), json!(entry.proxy.node_id));
            for type_url in TypeUrl::ALL {
                let t = status.get(&type_url);
                let sync = t.map_or(SyncState::NotSent, TypeStatus::sync_state);
                row.insert(type_url.short_name().into(), json!(sync));
                if let Some(nack) = t.and_then(|t| t.last_nack.as_ref()) {
                    let mut nack = nack_json(nack);
                    let objects = state.registry.nack_objects(&entry.proxy.node_id, type_url);
                    nack["objects"] =
                        json!(objects.iter().map(ToString::to_string).collect::<Vec<_>>());
                    row.insert(format!("{}_nack", type_url.short_name()), nack);
                }
            }
            serde_json::Value::Object(row)
        })
        .collect();
    Json(json!({ "proxies": proxies, "nacks_total": nack_totals(&state) }))
}

#[derive(Deserialize)]
struct DumpQuery {
    proxy: Option<String>,
}

async fn config_dump(State(state): State<AdminState>, Query(query): Query<DumpQuery>) -> Response {
    let Some(node_id) = query.proxy else {
        return (
            StatusCode::BAD_REQUEST,
            "missing query parameter: proxy=<node id>\n",
        )
            .into_response();
    };
    let Some(entry) = state.registry.find(&node_id) else {
        let message = format!("no connected proxy has node id {node_id:?}; see /debug/proxies\n");
        return (StatusCode::NOT_FOUND, message).into_response();
    };
    let status = entry.state.lock().expect("stream lock").status();
    let dump = config_dump::acked(&status);
    match crate::envoy::json::to_json(&dump) {
        Ok(json) => Json(json).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")).into_response(),
    }
}
