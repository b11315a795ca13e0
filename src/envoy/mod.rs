//! Envoy-facing helpers: xDS type URLs, small proto builders, and canonical
//! JSON rendering. Free of tokio and tonic.

pub mod address;
pub mod builders;
pub mod inbound_builders;
pub mod json;
pub mod rbac_builders;
pub mod route_builders;
pub mod telemetry_builders;
pub mod tls;

use serde::Serialize;
use std::fmt;

/// The xDS resource types Sextant serves, in the order a push sends them
/// (make before break: clusters and their endpoints before the listeners and
/// routes that reference them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum TypeUrl {
    /// CDS: `envoy.config.cluster.v3.Cluster`.
    Cluster,
    /// EDS: `envoy.config.endpoint.v3.ClusterLoadAssignment`.
    ClusterLoadAssignment,
    /// LDS: `envoy.config.listener.v3.Listener`.
    Listener,
    /// RDS: `envoy.config.route.v3.RouteConfiguration`.
    RouteConfiguration,
    /// SDS: `envoy.extensions.transport_sockets.tls.v3.Secret` (the
    /// workload's certificate `default` and the trust bundle `ROOTCA`).
    Secret,
}

impl TypeUrl {
    /// Every type, in push order.
    pub const ALL: [TypeUrl; 5] = [
        TypeUrl::Cluster,
        TypeUrl::ClusterLoadAssignment,
        TypeUrl::Listener,
        TypeUrl::RouteConfiguration,
        TypeUrl::Secret,
    ];

    /// The full type URL, e.g. `type.googleapis.com/envoy.config.cluster.v3.Cluster`.
    pub fn as_str(self) -> &'static str {
        match self {
            TypeUrl::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            TypeUrl::ClusterLoadAssignment => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            TypeUrl::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            TypeUrl::RouteConfiguration => {
                "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
            }
            TypeUrl::Secret => {
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            }
        }
    }

    /// The xDS service's short name: CDS, EDS, LDS, RDS or SDS.
    pub fn short_name(self) -> &'static str {
        match self {
            TypeUrl::Cluster => "CDS",
            TypeUrl::ClusterLoadAssignment => "EDS",
            TypeUrl::Listener => "LDS",
            TypeUrl::RouteConfiguration => "RDS",
            TypeUrl::Secret => "SDS",
        }
    }

    /// Parses a full type URL; `None` for types Sextant does not serve.
    pub fn parse(url: &str) -> Option<TypeUrl> {
        TypeUrl::ALL.into_iter().find(|t| t.as_str() == url)
    }

    /// Whether an empty subscription means "all resources" (LDS and CDS, per
    /// the xDS protocol's wildcard rules).
    pub fn is_wildcard_capable(self) -> bool {
        matches!(self, TypeUrl::Cluster | TypeUrl::Listener)
    }
}

impl fmt::Display for TypeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}
