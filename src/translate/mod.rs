//! IR → Envoy v3 resources: pure functions, deterministic output (sorted by
//! name), no clock, environment or globals.
//!
//! One file per resource family; each calls the builders in
//! [`crate::envoy::builders`]. [`http_rbac_filters`] and
//! [`network_rbac_filters`] turn a workload's AuthorizationPolicies into
//! the RBAC filters of its inbound listener.

mod cluster;
mod endpoint;
mod http_route;
pub mod inbound;
mod listener;
pub mod plan;
mod rbac;
pub(crate) use rbac::namespace_regex;
pub mod render;
mod route;
mod scope;
mod tcp;

pub use listener::{grpc_listeners, outbound_listener, sidecar_listeners, OUTBOUND_LISTENER};
pub use rbac::{http_rbac_filters, network_rbac_filters};
pub use route::{VirtualHostDomains, OUTBOUND_ROUTE_CONFIG};
pub use scope::ClusterReach;
pub use tcp::{tcp_listeners, TcpProxyRoute};

use crate::diagnostic::Diagnostic;
use crate::ir::Ir;
use crate::proxy::ProxyClass;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use std::time::Duration;

/// Settings of translation that are not part of the mesh config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranslateOptions {
    /// Upstream TCP connect timeout of every cluster (Istio's default: 10 s).
    pub connect_timeout: Duration,
    /// Namespace whose Sidecar without selector applies mesh-wide (Istio's
    /// root namespace, default `istio-system`).
    pub root_namespace: String,
    /// The mesh's SPIFFE trust domain (default `cluster.local`).
    pub trust_domain: String,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions {
            connect_timeout: Duration::from_secs(10),
            root_namespace: "istio-system".into(),
            trust_domain: crate::ca::spiffe::DEFAULT_TRUST_DOMAIN.into(),
        }
    }
}

/// The resources shared by every proxy of one [`ProxyClass`], each list
/// sorted by resource name. Listeners are per proxy: see [`outbound_listener`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Translation {
    /// CDS resources.
    pub clusters: Vec<Cluster>,
    /// EDS resources, one per EDS cluster, named like the cluster.
    pub endpoints: Vec<ClusterLoadAssignment>,
    /// RDS resources.
    pub route_configurations: Vec<RouteConfiguration>,
    /// TCP proxy listeners, by port (each proxy binds them on its own
    /// address: see [`tcp_listeners`]).
    pub tcp_proxies: Vec<TcpProxyRoute>,
    /// Access logs and tracing of the class's HTTP listeners (outbound and
    /// inbound), from its Telemetries; the tracer's collector cluster is in
    /// `clusters`.
    pub telemetry: crate::ir::telemetry::ProxyTelemetry,
    /// Problems found while translating (e.g. a domain claimed twice).
    pub diagnostics: Vec<Diagnostic>,
}

/// Translates the IR for proxies of `class`: [`plan::plan`], then every
/// resource of the plan.
pub fn translate(ir: &Ir, class: &ProxyClass, options: &TranslateOptions) -> Translation {
    let domains = VirtualHostDomains::new(ir);
    let reach = ClusterReach::new(ir);
    let mut plan = plan::plan(ir, &domains, &reach, class, options);
    let mut clusters: Vec<Cluster> = plan
        .clusters
        .iter()
        .map(|c| plan.cluster(c, options))
        .collect();
    if let Some(collector) = plan.collector_cluster(options) {
        clusters.push(collector);
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let endpoints = plan
        .clusters
        .iter()
        .filter(|c| c.cluster.dns.is_none())
        .map(|c| plan.load_assignment(c, options))
        .collect();
    let route_configurations = vec![route::outbound_route_configuration(&mut plan)];
    Translation {
        clusters,
        endpoints,
        route_configurations,
        tcp_proxies: plan.tcp_proxies,
        telemetry: plan.telemetry,
        diagnostics: plan.diagnostics,
    }
}

/// The diagnostics of translating for a proxy of every namespace the IR
/// names (and for the workloads each Sidecar selects): the problems that
/// appear only per proxy class, such as a domain or a TCP port that two
/// services claim. `sextant validate` reports them without a proxy.
///
/// The same as the diagnostics of [`translate`] for each of
/// [`classes_of_every_namespace`], without translating: those come only from
/// domains and TCP ports two virtual hosts or routes claim, so only the
/// virtual hosts and TCP routes that share one with another are checked per
/// class. The cost is one pass over the IR plus, per class, the contested
/// ones (none in a mesh without conflicts), not classes × services.
pub fn diagnostics_for_every_namespace(ir: &Ir, options: &TranslateOptions) -> Vec<Diagnostic> {
    let domains = VirtualHostDomains::new(ir);
    let vhosts: Vec<_> = domains
        .contested()
        .map(|i| (i, &ir.virtual_hosts[i]))
        .collect();
    let tcp_routes = tcp::contested_tcp_routes(ir);
    let mut out = Vec::new();
    if vhosts.is_empty() && tcp_routes.is_empty() {
        return out;
    }
    for class in classes_of_every_namespace(ir, options) {
        let scope = scope::Scope::new(ir, &class);
        route::claim_domains(vhosts.iter().copied(), &domains, &class, &scope, &mut out);
        tcp::tcp_proxy_routes(ir, tcp_routes.iter().copied(), &scope, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// One proxy class per namespace the IR names (and `default`), without
/// labels, and one per Sidecar with a selector (for the workloads it
/// selects), each distinct (namespace, Sidecar) once, without mutual TLS.
pub fn classes_of_every_namespace(ir: &Ir, options: &TranslateOptions) -> Vec<ProxyClass> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut classes = BTreeSet::new();
    let namespaces = ir
        .clusters
        .values()
        .map(|c| c.namespace.as_str())
        .chain(ir.virtual_hosts.iter().map(|v| v.namespace.as_str()))
        .chain(std::iter::once("default"))
        .collect::<BTreeSet<_>>();
    for namespace in namespaces {
        let class = ProxyClass::of(
            ir,
            namespace,
            &BTreeMap::new(),
            &options.root_namespace,
            false,
        );
        classes.insert((class.namespace.clone(), class.sidecar.clone()));
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let selected = ir
        .sidecars
        .iter()
        .map(|s| (s.namespace.clone(), s.selector.clone().unwrap_or_default()));
    let plain = classes.into_iter().map(|(ns, _)| (ns, BTreeMap::new()));
    for (namespace, labels) in plain.chain(selected) {
        let class = ProxyClass::of(ir, &namespace, &labels, &options.root_namespace, false);
        if seen.insert((class.namespace.clone(), class.sidecar.clone())) {
            out.push(class);
        }
    }
    out
}

#[cfg(test)]
mod tests;
