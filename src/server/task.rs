//! The task that runs one ADS stream, SotW or delta: it reads the node from
//! the first request, registers the stream, and then alternates between
//! applying requests, re-reading the snapshot when the cache changes, and
//! sending what the protocol's state machine says.

use super::convergence::Convergence;
use super::grpc::{RequestError, RequestMessage, RequestStream};
use super::registry::StreamState;
use super::stream::RequestKind;
use super::wire::WireResponse;
use super::Shared;
use crate::cache::ProxySnapshot;
use crate::envoy::TypeUrl;
use crate::metrics::XdsProtocol;
use crate::proxy::ProxyInfo;
use envoy_types::pb::envoy::config::core::v3::Node;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tonic::Status;

/// `control_plane.identifier` of every response.
pub(super) const IDENTIFIER: &str = concat!("sextant/", env!("CARGO_PKG_VERSION"));

/// What differs between SotW and delta streams.
pub(super) trait Protocol: Send + 'static {
    /// The request message.
    type Request: RequestMessage + Send + 'static;
    /// Name in logs: "SotW" or "delta".
    const NAME: &'static str;
    /// The `protocol` label of the metrics.
    const PROTOCOL: XdsProtocol;

    /// The node of a request, if it carries one.
    fn node(request: &Self::Request) -> Option<&Node>;
    /// A fresh state machine, as stored in the registry.
    fn new_state() -> StreamState;
    /// Applies a request to the state machine; returns what it was (for logs).
    fn on_request(state: &mut StreamState, request: Self::Request) -> Seen;
    /// Responses to send now.
    fn poll(state: &mut StreamState, snapshot: &ProxySnapshot) -> Vec<WireResponse>;
    /// BENCHMARK ONLY (the naive baseline): makes the next poll send every
    /// subscribed type in full, changed or not.
    fn resend_all(state: &mut StreamState);
}

/// What a request was, for logs and NACK tracing.
pub(super) struct Seen {
    pub kind: RequestKind,
    pub type_url: String,
    pub nonce: String,
    /// `error_detail.message` as Envoy sent it (untrimmed: it may name the
    /// rejected resources).
    pub error: Option<String>,
}

/// Who opened a stream.
pub(super) struct Peer {
    /// The remote address, when the transport knows it.
    pub addr: Option<SocketAddr>,
    /// The `authorization` metadata of the stream, if any.
    pub authorization: Option<String>,
}

/// Runs one stream until the proxy goes away or the response channel closes.
pub(super) async fn run<P: Protocol>(
    mut inbound: RequestStream<P::Request>,
    out: mpsc::Sender<Result<WireResponse, Status>>,
    shared: Arc<Shared>,
    Peer {
        addr: peer,
        authorization,
    }: Peer,
) {
    let (cache, registry) = (&shared.cache, &shared.registry);
    let first = match inbound.message().await {
        Ok(Some(first)) => first,
        Ok(None) => return,
        Err(RequestError::Transport(status)) => {
            tracing::debug!(peer = %PeerAddr(peer), %status, "ADS stream failed before its first request");
            return;
        }
        Err(RequestError::Refused(status)) => {
            tracing::warn!(peer = %PeerAddr(peer), "refusing {} ADS stream: {}", P::NAME, status.message());
            shared.metrics.stream_refused();
            let _ = out.send(Err(status)).await;
            return;
        }
    };
    let proxy = match ProxyInfo::from_node(P::node(&first)) {
        Ok(proxy) => proxy,
        Err(err) => {
            let reason = clip(err.to_string());
            tracing::warn!(peer = %PeerAddr(peer), "refusing {} ADS stream: {reason}", P::NAME);
            shared.metrics.stream_refused();
            let _ = out.send(Err(Status::invalid_argument(reason))).await;
            return;
        }
    };
    if let Some(tokens) = &shared.tokens {
        if let Err(err) = tokens.check(
            authorization.as_deref(),
            &proxy.namespace,
            &proxy.service_account,
        ) {
            let reason = clip(err.to_string());
            tracing::warn!(
                node = proxy.node_id,
                peer = %PeerAddr(peer),
                "refusing {} ADS stream: {reason}",
                P::NAME
            );
            shared.metrics.stream_refused();
            let _ = out.send(Err(Status::unauthenticated(reason))).await;
            return;
        }
    }
    tracing::info!(
        node = proxy.node_id,
        namespace = proxy.namespace,
        peer = %PeerAddr(peer),
        protocol = P::NAME,
        "proxy connected"
    );
    if let Some(problem) = cache.identity_problem(&proxy) {
        tracing::warn!(
            node = proxy.node_id,
            "no mesh certificate for this proxy (its traffic stays plaintext and sidecars that require mTLS refuse it): {problem}"
        );
    }
    let registration = registry.register(proxy.clone(), peer, P::new_state());
    let _connected = shared.metrics.proxy_connected(P::PROTOCOL);
    let state = registration.entry.state.clone();
    let mut generation = cache.subscribe();
    generation.borrow_and_update();
    let mut snapshot = cache.snapshot(&proxy);
    let mut convergence = Convergence::default();
    let mut pending = Some(first);
    loop {
        if let Some(request) = pending.take() {
            let seen = P::on_request(&mut state.lock().expect("stream lock"), request);
            if matches!(seen.kind, RequestKind::Nack(_)) {
                convergence.nacked();
            }
            log_request(&proxy, &shared, seen);
        }
        let (mut responses, awaiting) = {
            let _permit = shared
                .push_permits
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let mut state = state.lock().expect("stream lock");
            let responses = P::poll(&mut state, &snapshot);
            (responses, state.awaiting_answer())
        };
        if !shared.cache.is_naive_baseline() {
            for response in &mut responses {
                response.share_section(&snapshot);
            }
        }
        if let Some(took) = convergence.polled(responses.len(), awaiting, Instant::now()) {
            shared.metrics.observe_convergence(took);
        }
        for mut response in responses {
            shared
                .metrics
                .pushed(P::PROTOCOL, response.type_url(), response.resource_bytes());
            if out.send(Ok(response)).await.is_err() {
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
                Err(RequestError::Refused(status)) => {
                    tracing::warn!(
                        node = proxy.node_id,
                        code = ?status.code(),
                        "ending the ADS stream: {}",
                        status.message()
                    );
                    let _ = out.send(Err(status)).await;
                    return;
                }
                Err(RequestError::Transport(status)) => {
                    // An Envoy that exits resets the stream (h2 "broken
                    // pipe" or "connection reset"): a disconnect, not a fault.
                    tracing::info!(
                        node = proxy.node_id,
                        code = ?status.code(),
                        cause = status.message(),
                        "proxy disconnected without ending its stream"
                    );
                    return;
                }
            },
            changed = generation.changed() => {
                if changed.is_err() {
                    return;
                }
                generation.borrow_and_update();
                snapshot = cache.snapshot(&proxy);
                if cache.is_naive_baseline() {
                    P::resend_all(&mut state.lock().expect("stream lock"));
                }
                convergence.changed(snapshot.changed_at);
            }
        }
    }
}

fn log_request(proxy: &ProxyInfo, shared: &Shared, seen: Seen) {
    let Seen {
        kind,
        type_url,
        nonce,
        error,
    } = seen;
    let (type_url, nonce) = (type_url.as_str(), nonce.as_str());
    let node = &proxy.node_id;
    match kind {
        RequestKind::UnknownType => {
            tracing::warn!(
                node,
                type_url,
                "ignoring a request for a type Sextant does not serve (the proxy waits for it until its initial_fetch_timeout)"
            )
        }
        RequestKind::Nack(message) => {
            let type_url = TypeUrl::parse(type_url).expect("a NACK is of a served type");
            let objects = shared
                .cache
                .ir()
                .origins_mentioned(error.as_deref().unwrap_or(&message));
            let named: Vec<String> = objects.iter().map(ToString::to_string).collect();
            shared
                .registry
                .count_nack(type_url, &proxy.node_id, objects);
            shared.metrics.nacked(type_url);
            tracing::warn!(node, %type_url, nonce, objects = named.join(", "), "proxy NACKed: {message}");
        }
        RequestKind::Ack => {
            shared.registry.answered();
            tracing::debug!(node, type_url, nonce, "Ack")
        }
        kind => tracing::debug!(node, type_url, nonce, "{kind:?}"),
    }
}

/// Longest reason (bytes) a refusal quotes in its status and log line: a
/// refusal may quote the proxy's own input (its node metadata), which must
/// not make a megabyte trailer or log line.
const MAX_REASON_BYTES: usize = 1024;

/// `reason`, cut to [`MAX_REASON_BYTES`] (at a character boundary) with a
/// note of its full length.
fn clip(reason: String) -> String {
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &reason[..end], reason.len())
}

/// Renders an optional peer address as the address or `unknown`.
struct PeerAddr(Option<SocketAddr>);

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_reason_is_clipped_at_a_character_with_its_length() {
        let long = "é".repeat(2_000);
        let clipped = clip(long.clone());
        assert!(clipped.len() < MAX_REASON_BYTES + 40, "{}", clipped.len());
        assert!(clipped.ends_with("… (4000 bytes in all)"), "{clipped}");
        assert!(long.starts_with(clipped.trim_end_matches("… (4000 bytes in all)")));
        assert_eq!(clip("short".into()), "short");
    }
}
