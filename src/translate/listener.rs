//! The per-proxy outbound listener.

use super::route::domains_of;
use super::scope::Scope;
use super::tcp::{tcp_listeners, TcpProxyRoute};
use super::OUTBOUND_ROUTE_CONFIG;
use crate::envoy::builders;
use crate::ir::telemetry::ProxyTelemetry;
use crate::ir::Ir;
use crate::proxy::ProxyClass;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use std::collections::BTreeSet;
use std::net::SocketAddr;

/// Name of the outbound HTTP listener.
pub const OUTBOUND_LISTENER: &str = "outbound";

/// The outbound HTTP listener on `addr` (from the proxy's node metadata):
/// apps send requests to it (as `http_proxy`, or with a Host header) and its
/// route configuration [`OUTBOUND_ROUTE_CONFIG`] picks the service. Its
/// access logs and tracer come from `telemetry`.
pub fn outbound_listener(addr: SocketAddr, telemetry: &ProxyTelemetry) -> Listener {
    builders::http_listener(
        OUTBOUND_LISTENER,
        addr,
        OUTBOUND_ROUTE_CONFIG,
        "outbound_http",
        telemetry,
    )
}

/// Every listener of an Envoy sidecar whose outbound HTTP listener is at
/// `outbound`: that listener, then one TCP proxy listener per route in
/// `tcp` on the same IP. A route on the HTTP listener's own port or on a
/// port in `reserved` (Envoy's admin port) is left out.
pub fn sidecar_listeners(
    outbound: SocketAddr,
    reserved: &[u16],
    tcp: &[TcpProxyRoute],
    telemetry: &ProxyTelemetry,
) -> Vec<Listener> {
    let mut all = vec![outbound_listener(outbound, telemetry)];
    let taken: Vec<u16> = std::iter::once(outbound.port())
        .chain(reserved.iter().copied())
        .collect();
    all.extend(tcp_listeners(tcp, outbound.ip(), &taken));
    all
}

/// API listeners for a proxyless gRPC client of `class`: one per
/// `host:port` its targets may name (`xds:///reviews.default.svc.cluster.local:9080`,
/// `xds:///reviews:9080`, ...), each routing through [`OUTBOUND_ROUTE_CONFIG`].
/// Only the hosts the class may see are listed; sorted by name.
pub fn grpc_listeners(ir: &Ir, class: &ProxyClass) -> Vec<Listener> {
    let scope = Scope::new(ir, class);
    let names: BTreeSet<String> = ir
        .virtual_hosts
        .iter()
        .filter(|v| v.service.is_some() && scope.virtual_host(v))
        .flat_map(|v| domains_of(v, class))
        .filter(|d| d.contains(':'))
        .collect();
    names
        .iter()
        .map(|name| builders::api_listener(name, OUTBOUND_ROUTE_CONFIG))
        .collect()
}
