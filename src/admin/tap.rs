//! `GET /debug/tap?service=<name>.<namespace>`: live access log entries of
//! requests to one service, as server-sent events (one `data:` line of JSON
//! per request, [`crate::tap::TapEntry`]). The entries kept for the service
//! come first (by start time), then every new one as sidecars report it. A
//! service the current configuration does not have is a 404 naming the
//! known ones; a service's FQDN (`name.namespace.svc.cluster.local`) names
//! it too. `&filter=<CEL expression>` keeps only the requests it is
//! true for ([`crate::tap::TapFilter`]); a filter that does not compile is
//! a 400 saying why.

use super::AdminState;
use crate::tap::{service_of_cluster, TapFilter};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

/// Query of `/debug/tap`.
#[derive(Debug, Deserialize)]
pub(super) struct TapQuery {
    /// `name.namespace` of a Service, or a ServiceEntry host.
    service: Option<String>,
    /// A CEL expression over the request attributes; absent: every request.
    filter: Option<String>,
}

pub(super) async fn tap(
    State(state): State<AdminState>,
    Query(query): Query<TapQuery>,
) -> Response {
    // `reviews.default.svc.cluster.local` is `reviews.default`, as edges
    // and ServiceLevelObjectives name it.
    let fqdn_suffix = format!(".{}", crate::ir::DOMAIN_SUFFIX);
    let service = query.service.map(|s| {
        let s = s.trim().to_ascii_lowercase();
        s.strip_suffix(&fqdn_suffix)
            .map(str::to_string)
            .unwrap_or(s)
    });
    let Some(service) = service.filter(|s| !s.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            "give ?service=<name>.<namespace> (or a ServiceEntry host)\n",
        )
            .into_response();
    };
    let filter = match query.filter.as_deref().map(TapFilter::parse) {
        None => None,
        Some(Ok(filter)) => Some(Arc::new(filter)),
        Some(Err(reason)) => {
            return (StatusCode::BAD_REQUEST, format!("filter: {reason}\n")).into_response();
        }
    };
    let known: BTreeSet<String> = state
        .cache
        .ir()
        .clusters
        .keys()
        .map(|cluster| service_of_cluster(cluster))
        .collect();
    if !known.contains(&service) {
        let listed: Vec<&str> = known.iter().map(String::as_str).take(20).collect();
        return (
            StatusCode::NOT_FOUND,
            format!(
                "no service {service:?} in the current configuration \
                 (give <name>.<namespace> or a ServiceEntry host); known: {}{}\n",
                listed.join(", "),
                if known.len() > listed.len() {
                    ", …"
                } else {
                    ""
                }
            ),
        )
            .into_response();
    }
    // Subscribe before reading the ring, so no entry falls in between.
    let live = BroadcastStream::new(state.tap.subscribe());
    // Sidecars report in batches: the kept entries come in time order.
    let passes =
        move |entry: &crate::tap::TapEntry| filter.as_ref().is_none_or(|f| f.matches(entry));
    let mut recent = state.tap.recent(&service);
    recent.retain(&passes);
    recent.sort_by(|a, b| a.start_time.cmp(&b.start_time));
    let wanted = service.clone();
    let live = live.filter_map(move |item| match item {
        Ok(entry) if entry.service == wanted && passes(&entry) => Some((*entry).clone()),
        // Entries for other services or filtered out, or a lag (the
        // subscriber skips them).
        _ => None,
    });
    let events = tokio_stream::iter(recent)
        .chain(live)
        .filter_map(|entry| Event::default().json_data(&entry).ok())
        .map(Ok::<Event, Infallible>);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
