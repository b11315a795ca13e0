//! The per-proxy outbound listener.

use super::OUTBOUND_ROUTE_CONFIG;
use crate::envoy::builders;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use std::net::SocketAddr;

/// Name of the outbound HTTP listener.
pub const OUTBOUND_LISTENER: &str = "outbound";

/// The outbound HTTP listener on `addr` (from the proxy's node metadata):
/// apps send requests to it (as `http_proxy`, or with a Host header) and its
/// route configuration [`OUTBOUND_ROUTE_CONFIG`] picks the service.
pub fn outbound_listener(addr: SocketAddr) -> Listener {
    builders::http_listener(
        OUTBOUND_LISTENER,
        addr,
        OUTBOUND_ROUTE_CONFIG,
        "outbound_http",
    )
}
