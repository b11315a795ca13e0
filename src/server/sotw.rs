//! The task that runs one SotW ADS stream.

use super::registry::Registry;
use super::stream::{Request, RequestKind, Response};
use crate::cache::SnapshotCache;
use crate::envoy::TypeUrl;
use crate::proxy::ProxyInfo;
use envoy_types::pb::envoy::config::core::v3::ControlPlane;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

/// `control_plane.identifier` of every response.
const IDENTIFIER: &str = concat!("sextant/", env!("CARGO_PKG_VERSION"));

/// Runs one stream until the proxy goes away or the response channel closes.
pub(super) async fn serve_stream(
    mut inbound: Streaming<DiscoveryRequest>,
    out: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    cache: Arc<SnapshotCache>,
    registry: Arc<Registry>,
    peer: Option<SocketAddr>,
) {
    let first = match inbound.message().await {
        Ok(Some(first)) => first,
        Ok(None) => return,
        Err(status) => {
            tracing::debug!(?peer, %status, "ADS stream failed before its first request");
            return;
        }
    };
    let proxy = match ProxyInfo::from_node(first.node.as_ref()) {
        Ok(proxy) => proxy,
        Err(err) => {
            tracing::warn!(?peer, "refusing ADS stream: {err}");
            let _ = out
                .send(Err(Status::invalid_argument(err.to_string())))
                .await;
            return;
        }
    };
    tracing::info!(
        node = proxy.node_id,
        namespace = proxy.namespace,
        ?peer,
        "proxy connected"
    );
    let registration = registry.register(proxy.clone(), peer);
    let state = registration.entry.state.clone();
    let mut generation = cache.subscribe();
    generation.borrow_and_update();
    let mut snapshot = cache.snapshot(&proxy);
    let mut pending = Some(first);
    loop {
        if let Some(request) = pending.take() {
            handle_request(&proxy, &state, &registry, request);
        }
        let responses = state.lock().expect("stream lock").poll(&snapshot);
        for response in responses {
            tracing::debug!(
                node = proxy.node_id,
                type_url = %response.type_url,
                version = response.version,
                nonce = response.nonce,
                resources = response.resources.len(),
                "sending"
            );
            if out.send(Ok(discovery_response(response))).await.is_err() {
                tracing::info!(node = proxy.node_id, "proxy disconnected");
                return;
            }
        }
        tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(request)) => pending = Some(request),
                Ok(None) => {
                    tracing::info!(node = proxy.node_id, "proxy disconnected");
                    return;
                }
                Err(status) => {
                    tracing::info!(node = proxy.node_id, %status, "proxy stream ended");
                    return;
                }
            },
            changed = generation.changed() => {
                if changed.is_err() {
                    return;
                }
                generation.borrow_and_update();
                snapshot = cache.snapshot(&proxy);
            }
        }
    }
}

fn handle_request(
    proxy: &ProxyInfo,
    state: &std::sync::Mutex<super::stream::SotwStream>,
    registry: &Registry,
    request: DiscoveryRequest,
) {
    let request = Request {
        type_url: request.type_url,
        version_info: request.version_info,
        resource_names: request.resource_names,
        response_nonce: request.response_nonce,
        error_detail: request.error_detail.map(|e| e.message),
    };
    let kind = state.lock().expect("stream lock").on_request(&request);
    let node = &proxy.node_id;
    match kind {
        RequestKind::UnknownType => {
            tracing::debug!(
                node,
                type_url = request.type_url,
                "ignoring a request for a type Sextant does not serve"
            )
        }
        RequestKind::Nack(message) => {
            let type_url = TypeUrl::parse(&request.type_url).expect("known type");
            registry.count_nack(type_url);
            tracing::warn!(node, %type_url, nonce = request.response_nonce, "proxy NACKed: {message}");
        }
        kind => tracing::debug!(
            node,
            type_url = request.type_url,
            nonce = request.response_nonce,
            version = request.version_info,
            names = request.resource_names.len(),
            "{kind:?}"
        ),
    }
}

fn discovery_response(response: Response) -> DiscoveryResponse {
    let type_url = response.type_url.as_str();
    DiscoveryResponse {
        version_info: response.version,
        resources: response
            .resources
            .values()
            .map(|r| Any {
                type_url: type_url.to_string(),
                value: r.body.to_vec(),
            })
            .collect(),
        type_url: type_url.to_string(),
        nonce: response.nonce,
        control_plane: Some(ControlPlane {
            identifier: IDENTIFIER.to_string(),
        }),
        ..Default::default()
    }
}
