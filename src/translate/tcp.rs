//! IR TCP routes → the TCP proxy listeners of a proxy.
//!
//! Without traffic capture a proxy cannot tell TCP connections for two
//! services apart, so each TCP service port gets its own listener on the
//! proxy's outbound address and that port (as Istio does for sidecars that
//! do not capture traffic). Two services with the same TCP port: the older
//! one gets the listener.

use super::scope::Scope;
use crate::diagnostic::Diagnostic;
use crate::envoy::builders;
use crate::ir::{self, Ir};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// A TCP proxy listener of a proxy class, before the proxy's address is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpProxyRoute {
    /// The service port, also the listener's port.
    pub port: u16,
    /// `outbound|<port>||<host>`: the TCP proxy's stat prefix.
    pub stat_prefix: String,
    /// Destination clusters with relative weights (all > 0, at least one).
    pub clusters: Vec<(String, u32)>,
    /// Hash the client's IP to pick the endpoint (a DestinationRule's
    /// `consistentHash.useSourceIp`, as Istio sets the TCP proxy's hash policy).
    pub hash_source_ip: bool,
}

/// The TCP service ports the class sees among `routes` (the IR's, or the
/// [`contested_tcp_routes`]), one per port (see the module doc).
/// A route with a destination the class cannot see, or with none, gets no
/// listener: connections to the port are refused (as an HTTP route to an
/// invisible destination answers 503, and weights are never moved).
pub(super) fn tcp_proxy_routes<'r>(
    ir: &Ir,
    routes: impl Iterator<Item = &'r ir::TcpRoute>,
    scope: &Scope<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<TcpProxyRoute> {
    let mut taken: BTreeMap<u16, &str> = BTreeMap::new();
    let mut out = Vec::new();
    for route in routes.filter(|r| scope.tcp_route(r)) {
        let clusters = scope.tcp_clusters(route);
        let visible = |name: &String| ir.clusters.get(name).filter(|c| scope.cluster(c));
        if clusters.is_empty() || !clusters.iter().all(|(name, _)| visible(name).is_some()) {
            continue;
        }
        let hash_source_ip = clusters
            .first()
            .and_then(|(name, _)| visible(name))
            .filter(|c| scope.applies_rule(c))
            .and_then(|c| c.policy.hash.as_ref())
            .is_some_and(|(key, _)| *key == crate::ir::cluster_policy::HashKey::SourceIp);
        if let Some(owner) = taken.get(&route.port) {
            diagnostics.push(Diagnostic::error(
                route.origins.first().expect("a route has an origin"),
                "spec.ports",
                format!(
                    "TCP port {} of {} is already proxied for {owner}, which is older; {} gets no listener",
                    route.port, route.host, route.host
                ),
            ));
            continue;
        }
        taken.insert(route.port, &route.host);
        out.push(TcpProxyRoute {
            port: route.port,
            stat_prefix: crate::ir::cluster_name(route.port, None, &route.host),
            clusters: clusters.to_vec(),
            hash_source_ip,
        });
    }
    out
}

/// The TCP routes of ports that several routes name, in IR order: the only
/// ones [`tcp_proxy_routes`] can find a conflict between.
pub(super) fn contested_tcp_routes(ir: &Ir) -> Vec<&ir::TcpRoute> {
    let mut per_port: BTreeMap<u16, usize> = BTreeMap::new();
    for route in &ir.tcp_routes {
        *per_port.entry(route.port).or_default() += 1;
    }
    ir.tcp_routes
        .iter()
        .filter(|r| per_port[&r.port] > 1)
        .collect()
}

/// The listeners of `routes` on `ip`, named `<ip>_<port>` (Istio's form);
/// ports in `reserved` (the proxy's own listeners) are left out.
pub fn tcp_listeners(routes: &[TcpProxyRoute], ip: IpAddr, reserved: &[u16]) -> Vec<Listener> {
    routes
        .iter()
        .filter(|r| !reserved.contains(&r.port))
        .map(|r| {
            let addr = SocketAddr::new(ip, r.port);
            builders::tcp_listener(
                &format!("{ip}_{}", r.port),
                addr,
                &r.stat_prefix,
                &r.clusters,
                r.hash_source_ip,
            )
        })
        .collect()
}
