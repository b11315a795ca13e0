//! `GET /ui`: the topology page. One HTML page, its script and its style
//! sheet, compiled into the binary (`include_str!`; no CDN, no library):
//! the service graph from `/debug/edges` (nodes are workloads and services,
//! edges coloured by success rate and labelled with requests per second and
//! p99), the edge table, the service level objectives of `/debug/slos`
//! (burn rate above 1 in red), the per-proxy sync table of `/debug/syncz`
//! and the diagnostics of `/debug/config_errors`, refreshed every 2 s.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX_HTML: &str = include_str!("ui/index.html");
const UI_JS: &str = include_str!("ui/ui.js");
const UI_CSS: &str = include_str!("ui/ui.css");

pub(super) async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
}

pub(super) async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        UI_JS,
    )
}

pub(super) async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], UI_CSS)
}
