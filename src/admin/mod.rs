//! The admin HTTP endpoint (axum).
//!
//! | path | what |
//! |---|---|
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 once the first full load is done, 503 before |
//! | `GET /metrics` | Prometheus metrics (below), OpenMetrics text format |
//! | `GET /debug/proxies` | connected proxies and, per type, versions sent and ACKed, the last NACK |
//! | `GET /debug/syncz` | per proxy and type: SYNCED, NOT SENT, STALE or NACKED (Istio's proxy-status columns) |
//! | `GET /debug/config_errors` | current errors and warnings about the input |
//! | `GET /debug/ir` | the resolved world (IR) as JSON |
//! | `GET /debug/certs` | workload certificates issued (SPIFFE ID, serial, validity; never keys) and the trust bundle |
//! | `GET /config_dump?proxy=<node-id>` | what the proxy ACKed, in Envoy's config-dump shape |
//! | `GET /debug/tap?service=<name>.<ns>` | live requests to a service (server-sent events) |
//! | `GET /ui` | the topology page: service graph, edge table, SLO panel, proxy sync table, config errors (assets compiled in) |
//! | `GET /debug/edges` | per edge (source workload → destination service/subset): requests, errors, rate, success rate, p50/p90/p99 over the window, totals, active connections |
//! | `GET /debug/slos` | per ServiceLevelObjective and objective: target, observed share, burn rate, budget left and state over the edge window ([`crate::slo::SlosView`]) |
//!
//! # Metrics
//!
//! `GET /metrics` answers with `Content-Type:
//! application/openmetrics-text; version=1.0.0; charset=utf-8`. Labels:
//! `protocol` is `sotw` or `delta`; `type` is `cds`, `eds`, `lds`, `rds` or `sds`.
//! Every labelled series exists from the start, at 0.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `sextant_connected_proxies` | gauge | `protocol` | ADS streams open now |
//! | `sextant_xds_pushes_total` | counter | `type`, `protocol` | xDS responses sent |
//! | `sextant_xds_response_bytes_total` | counter | `type`, `protocol` | encoded size of the resources in those responses (each resource's protobuf bytes, without the response envelope) |
//! | `sextant_xds_nacks_total` | counter | `type` | responses a proxy rejected (`error_detail` set) |
//! | `sextant_config_errors` | gauge | | error diagnostics now, as on `/debug/config_errors` (updated when scraped) |
//! | `sextant_config_warnings` | gauge | | warning diagnostics now, likewise |
//! | `sextant_translation_duration_seconds` | histogram | `stage` | `resolve`: store → IR and the cache update, once per input change; `translate`: IR → encoded clusters, endpoints and routes of one proxy class, once per class and change (when its first proxy asks) |
//! | `sextant_debounce_wait_seconds` | histogram | | from the first file event of a burst to the start of its resolve (quiet period, capped by the maximum wait) |
//! | `sextant_edge_requests_total`, `sextant_edge_request_duration_milliseconds`, `sextant_edge_active_connections`, `sextant_edge_dropped_samples_total` | | | per edge, see [`crate::edges::EdgeCollector`] |
//! | `sextant_slo_target_ratio`, `sextant_slo_observed_ratio`, `sextant_slo_burn_rate`, `sextant_slo_window_seconds` | gauge | `slo`, `service`, `objective` | per ServiceLevelObjective, see [`crate::slo::SloCollector`] |
//! | `sextant_proxy_convergence_seconds` | histogram | | per proxy and config change that sent it something: from the first file event of the change's burst to the proxy's ACK of the last response the change caused; not observed for a change the proxy NACKs; a change made while an earlier one is still unACKed folds into it (measured from the earlier) |
//! | `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_peak_resident_memory_bytes`, `process_open_fds`, `process_max_fds` | counter, gauges | | this process's CPU time, resident memory now and at peak, open descriptors and their soft limit, read from `/proc` at each scrape (see `metrics::process`) |

mod config_dump;
mod tap;
mod ui;

use crate::cache::SnapshotCache;
use crate::diagnostic::Diagnostic;
use crate::envoy::TypeUrl;
use crate::metrics::{self, Metrics};
use crate::server::registry::{Registry, SyncState, TypeStatus};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
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
    /// The Prometheus metrics `GET /metrics` renders.
    pub metrics: Arc<Metrics>,
    /// Access log entries streamed by sidecars, for `GET /debug/tap`.
    pub tap: Arc<crate::tap::TapHub>,
    /// Per-edge signals streamed by sidecars, for `GET /debug/edges`.
    pub edges: Arc<crate::edges::EdgeStore>,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/debug/proxies", get(proxies))
        .route("/debug/syncz", get(syncz))
        .route("/debug/config_errors", get(config_errors))
        .route("/debug/ir", get(ir))
        .route("/debug/certs", get(certs))
        .route("/config_dump", get(config_dump))
        .route("/debug/tap", get(tap::tap))
        .route("/debug/edges", get(edges))
        .route("/debug/slos", get(slos))
        .route("/ui", get(ui::index))
        .route("/ui/ui.js", get(ui::script))
        .route("/ui/ui.css", get(ui::style))
        .with_state(state)
}

/// The workload certificates issued: SPIFFE ID, serial, validity and
/// rotation time (seconds since the Unix epoch); never keys. With
/// `?proxy=<node-id>`: that proxy's identity, certificate and SDS state
/// (`sds`: SYNCED, NOT_SENT, STALE or NACKED; 404 for an unknown proxy).
async fn certs(State(state): State<AdminState>, Query(query): Query<DumpQuery>) -> Response {
    let certs = state.cache.certs();
    if let Some(node_id) = &query.proxy {
        let Some(entry) = state.registry.find(node_id) else {
            return (
                StatusCode::NOT_FOUND,
                format!("no connected proxy has node id {node_id:?}\n"),
            )
                .into_response();
        };
        let spiffe_id = state.cache.identity_of(&entry.proxy);
        // Whether the proxy has the secrets: Envoy asks for them only once a
        // listener or cluster it received needs a certificate.
        let sds = entry
            .state
            .lock()
            .expect("stream lock")
            .status()
            .get(&TypeUrl::Secret)
            .map_or(SyncState::NotSent, TypeStatus::sync_state);
        let certificate = certs.and_then(|c| {
            c.summaries()
                .into_iter()
                .find(|s| Some(&s.spiffe_id) == spiffe_id.as_ref())
        });
        return Json(json!({
            "node_id": node_id,
            "spiffe_id": spiffe_id,
            "no_certificate_because": state.cache.identity_problem(&entry.proxy),
            "sds": sds,
            "certificate": certificate,
            "root_pem": certs.map(|c| c.root_pem().to_string()),
        }))
        .into_response();
    }
    Json(json!({
        "trust_domain": certs.map(|c| c.trust_domain().as_str().to_string()),
        "root_pem": certs.map(|c| c.root_pem().to_string()),
        "certificates": certs.map(|c| c.summaries()).unwrap_or_default(),
    }))
    .into_response()
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

/// Every current diagnostic: the inputs' and the translation's.
fn all_diagnostics(state: &AdminState) -> Vec<Diagnostic> {
    let mut diagnostics = state.diagnostics.read().expect("diagnostics lock").clone();
    diagnostics.extend(state.cache.translation_diagnostics());
    diagnostics
}

/// The metrics in the OpenMetrics text format; the diagnostic gauges are
/// brought up to date first.
async fn metrics_text(State(state): State<AdminState>) -> Response {
    let diagnostics = all_diagnostics(&state);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    state
        .metrics
        .set_config_diagnostics(errors, diagnostics.len() - errors);
    // The objectives' series follow the configuration: measured per scrape.
    let mut slos = prometheus_client::registry::Registry::default();
    slos.register_collector(Box::new(crate::slo::SloCollector::new(measure_slos(
        &state,
    ))));
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render_with(&slos),
    )
        .into_response()
}

/// The current ServiceLevelObjectives measured on the edges now.
fn measure_slos(state: &AdminState) -> crate::slo::SlosView {
    crate::slo::measure_all(
        &state.cache.ir().slos,
        &state.edges,
        std::time::Instant::now(),
    )
}

/// The service level objectives measured over the edge window
/// ([`crate::slo::SlosView`]).
async fn slos(State(state): State<AdminState>) -> Json<crate::slo::SlosView> {
    Json(measure_slos(&state))
}

async fn config_errors(State(state): State<AdminState>) -> Json<serde_json::Value> {
    let diagnostics = all_diagnostics(&state);
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

/// The per-edge signals: window values and totals ([`crate::edges::EdgesView`]).
async fn edges(State(state): State<AdminState>) -> Json<crate::edges::EdgesView> {
    Json(state.edges.view(std::time::Instant::now()))
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

#[cfg(test)]
mod tests;
