//! What one proxy class gets, decided before any Envoy resource is built:
//! the clusters it sees, the virtual hosts with the domains each claims,
//! its TCP proxies, telemetry and diagnostics.
//!
//! [`super::translate`] builds every resource of a plan. The snapshot cache
//! builds them one by one instead, so that the ones that come out the same
//! for every class (see [`ClassPlan::shared_routes`]) are built and encoded
//! once per IR; both build each resource with the same functions here.

use super::scope::Scope;
use super::{cluster, endpoint, http_route, route, tcp, TcpProxyRoute, TranslateOptions};
use crate::diagnostic::Diagnostic;
use crate::ir::telemetry::ProxyTelemetry;
use crate::ir::{self, Ir};
use crate::proxy::ProxyClass;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::Route;
use std::borrow::Cow;

/// An IR cluster the class sees.
#[derive(Clone, Copy, Debug)]
pub struct PlannedCluster<'ir> {
    /// Position of the cluster in `ir.clusters` (in name order): a key for
    /// what is shared per IR.
    pub index: usize,
    /// The cluster.
    pub cluster: &'ir ir::Cluster,
    /// Whether its DestinationRule's policy applies to the class.
    pub with_rule: bool,
}

/// A virtual host of the outbound route configuration of the class.
#[derive(Clone, Debug)]
pub struct PlannedVirtualHost<'ir> {
    /// Position of the virtual host in `ir.virtual_hosts`.
    pub index: usize,
    /// The virtual host.
    pub vhost: &'ir ir::VirtualHost,
    /// The domains it claims for this class, in order (never empty):
    /// borrowed from the IR's [`super::VirtualHostDomains`] unless a
    /// domain was left out for another virtual host.
    pub domains: Cow<'ir, [String]>,
}

/// The translation of one class before its resources are built.
#[derive(Debug)]
pub struct ClassPlan<'ir> {
    ir: &'ir Ir,
    scope: Scope<'ir>,
    /// Whether the class's proxies have a mesh certificate.
    pub mtls: bool,
    /// The IR clusters the class sees, in name order; each gets a CDS
    /// cluster, and the EDS ones (no `dns`) a ClusterLoadAssignment.
    pub clusters: Vec<PlannedCluster<'ir>>,
    /// The virtual hosts of the outbound route configuration, in IR order.
    pub virtual_hosts: Vec<PlannedVirtualHost<'ir>>,
    /// TCP proxy listeners, by port.
    pub tcp_proxies: Vec<TcpProxyRoute>,
    /// Access logs and tracing of the class's HTTP listeners.
    pub telemetry: ProxyTelemetry,
    /// Problems found (domains and TCP ports claimed twice).
    pub diagnostics: Vec<Diagnostic>,
}

/// Plans the translation of `ir` for proxies of `class`; `domains` are the
/// domains of `ir`'s virtual hosts (`VirtualHostDomains::new(ir)`) and
/// `reach` what every class can tell of its clusters
/// (`ClusterReach::new(ir)`), both built once per IR by whoever plans
/// several classes.
pub fn plan<'ir>(
    ir: &'ir Ir,
    domains: &'ir super::VirtualHostDomains,
    reach: &super::ClusterReach,
    class: &'ir ProxyClass,
    options: &TranslateOptions,
) -> ClassPlan<'ir> {
    let mut diagnostics = Vec::new();
    let scope = Scope::new(ir, class);
    let virtual_hosts = route::claim_domains(
        ir.virtual_hosts.iter().enumerate(),
        domains,
        class,
        &scope,
        &mut diagnostics,
    )
    .into_iter()
    .map(|(index, vhost, domains)| PlannedVirtualHost {
        index,
        vhost,
        domains,
    })
    .collect();
    let tcp_proxies = tcp::tcp_proxy_routes(ir, ir.tcp_routes.iter(), &scope, &mut diagnostics);
    let telemetry = crate::ir::telemetry::for_proxy(
        &ir.telemetries,
        &class.namespace,
        class.telemetry.as_ref(),
        &options.root_namespace,
    );
    let clusters = ir
        .clusters
        .values()
        .enumerate()
        .filter_map(|(index, cluster)| {
            let with_rule = scope.planned_cluster(reach, index, cluster)?;
            Some(PlannedCluster {
                index,
                cluster,
                with_rule,
            })
        })
        .collect();
    ClassPlan {
        ir,
        scope,
        mtls: class.mtls,
        clusters,
        virtual_hosts,
        tcp_proxies,
        telemetry,
        diagnostics,
    }
}

impl<'ir> ClassPlan<'ir> {
    /// The CDS cluster of `c` for this class.
    pub fn cluster(&self, c: &PlannedCluster<'_>, options: &TranslateOptions) -> Cluster {
        outbound_cluster(c.cluster, c.with_rule, self.mtls, options)
    }

    /// The cluster of the class's tracing collector, if it traces.
    pub fn collector_cluster(&self, options: &TranslateOptions) -> Option<Cluster> {
        self.telemetry.tracing.as_ref().map(|tracing| {
            crate::envoy::telemetry_builders::collector_cluster(tracing, options.connect_timeout)
        })
    }

    /// The ClusterLoadAssignment of an EDS cluster (the same for every class).
    pub fn load_assignment(
        &self,
        c: &PlannedCluster<'_>,
        options: &TranslateOptions,
    ) -> ClusterLoadAssignment {
        load_assignment(c.cluster, self.ir, options)
    }

    /// The Envoy routes of a virtual host for this class.
    pub fn routes(&self, vhost: &ir::VirtualHost) -> Vec<Route> {
        self.scope
            .routes(vhost)
            .iter()
            .flat_map(|r| http_route::routes_of(r, self.ir, &self.scope))
            .collect()
    }

    /// Which of a virtual host's two route lists the class uses, when
    /// [`ClassPlan::routes`] depends on nothing else for this class:
    /// `Some(true)` for the VirtualService's routes, `Some(false)` for the
    /// default route, each then the same for every class that is scoped by
    /// no Sidecar and uses that list, provided [`routes_are_shared`] holds
    /// for it. `None` for a class scoped by a Sidecar (its egress hosts
    /// decide which clusters its routes may reach).
    pub fn shared_routes(&self, vhost: &ir::VirtualHost) -> Option<bool> {
        if self.scope.has_sidecar() {
            return None;
        }
        Some(self.scope.uses_own_routes(vhost))
    }
}

/// The CDS cluster of `c` for a class that applies its DestinationRule
/// (`with_rule`) and has a mesh certificate (`mtls`), as
/// [`ClassPlan::cluster`] builds it.
pub fn outbound_cluster(
    c: &ir::Cluster,
    with_rule: bool,
    mtls: bool,
    options: &TranslateOptions,
) -> Cluster {
    cluster::outbound_cluster(c, with_rule, mtls, options)
}

/// The ClusterLoadAssignment of the EDS cluster `c` of `ir`, the same for
/// every class.
pub fn load_assignment(
    c: &ir::Cluster,
    ir: &Ir,
    options: &TranslateOptions,
) -> ClusterLoadAssignment {
    endpoint::cluster_load_assignment(c, ir, options)
}

/// Whether the Envoy routes of `routes` come out the same for every proxy
/// class without a Sidecar: no match asks for a client (`sourceLabels`,
/// `sourceNamespace`), and every cluster they forward or mirror to is
/// exported, with its DestinationRule, to every namespace (or does not
/// exist, which answers 503 for every class). These are all the class's
/// decisions in [`http_route::routes_of`].
pub fn routes_are_shared(routes: &[ir::Route], ir: &Ir) -> bool {
    let everywhere = |name: &String| {
        ir.clusters
            .get(name)
            .is_none_or(|c| c.export_to.is_all() && c.rule_export_to.is_all())
    };
    routes.iter().all(|r| {
        let clients = r
            .matches
            .iter()
            .all(|m| m.source_namespace.is_none() && m.source_labels.is_empty());
        let forwards = match &r.action {
            ir::Action::Forward(clusters) => clusters.iter().all(|w| everywhere(&w.cluster)),
            _ => true,
        };
        clients && forwards && r.policy.mirrors.iter().all(|(c, _)| everywhere(c))
    })
}

/// The route list [`ClassPlan::shared_routes`] names: the VirtualService's
/// (`true`) or the default route (`false`).
pub fn route_list(vhost: &ir::VirtualHost, own: bool) -> &[ir::Route] {
    if own {
        &vhost.routes
    } else {
        &vhost.fallback_routes
    }
}
