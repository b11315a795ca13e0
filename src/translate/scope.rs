//! What a proxy class may see: `exportTo` of services and VirtualServices,
//! and the egress hosts of the Sidecar that scopes it.

use crate::ir::{self, Ir, SidecarScope};
use crate::proxy::ProxyClass;

/// Per cluster of an IR (in name order), what every class without a
/// Sidecar can tell without reading the cluster: whether it sees the
/// cluster (exported everywhere, and a subset's DestinationRule too) and
/// whether the cluster's DestinationRule applies (exported everywhere).
/// Built once per IR, so that planning a class reads two bits per cluster
/// instead of each cluster (one cache miss each: 60,000 at 10,000
/// services) where those bits decide.
#[derive(Clone, Debug, Default)]
pub struct ClusterReach {
    /// Per cluster: seen by every class without a Sidecar.
    everywhere: Vec<bool>,
    /// Per cluster: its DestinationRule applies to every class.
    rule_everywhere: Vec<bool>,
}

impl ClusterReach {
    /// The reach of every cluster of `ir`.
    pub fn new(ir: &Ir) -> Self {
        let (everywhere, rule_everywhere) = ir
            .clusters
            .values()
            .map(|c| {
                let rule = c.rule_export_to.is_all();
                (c.export_to.is_all() && (c.subset.is_none() || rule), rule)
            })
            .unzip();
        ClusterReach {
            everywhere,
            rule_everywhere,
        }
    }
}

/// The visibility rules of one proxy class.
#[derive(Debug)]
pub(super) struct Scope<'a> {
    namespace: &'a str,
    labels: &'a std::collections::BTreeMap<String, String>,
    sidecar: Option<&'a SidecarScope>,
}

impl<'a> Scope<'a> {
    pub(super) fn new(ir: &'a Ir, class: &'a ProxyClass) -> Self {
        let sidecar = class
            .sidecar
            .as_ref()
            .and_then(|name| ir.sidecars.iter().find(|s| &s.name == name));
        Scope {
            namespace: &class.namespace,
            labels: &class.labels,
            sidecar,
        }
    }

    fn reaches(&self, namespace: &str, host: &str, export_to: &ir::ExportTo) -> bool {
        export_to.allows(self.namespace) && self.sidecar.is_none_or(|s| s.allows(namespace, host))
    }

    /// [`Scope::cluster`] and [`Scope::applies_rule`] of the cluster at
    /// `index` of the IR's clusters, read from `reach` (built for the same
    /// IR) where it decides: `None` when the class does not see it, else
    /// whether its DestinationRule applies.
    pub(super) fn planned_cluster(
        &self,
        reach: &ClusterReach,
        index: usize,
        cluster: &ir::Cluster,
    ) -> Option<bool> {
        let seen = (self.sidecar.is_none() && reach.everywhere[index]) || self.cluster(cluster);
        seen.then(|| reach.rule_everywhere[index] || self.applies_rule(cluster))
    }

    /// Whether the class gets this cluster (and its endpoints): a subset
    /// cluster only where its DestinationRule is exported.
    pub(super) fn cluster(&self, cluster: &ir::Cluster) -> bool {
        self.reaches(&cluster.namespace, &cluster.service, &cluster.export_to)
            && (cluster.subset.is_none() || self.applies_rule(cluster))
    }

    /// Whether the cluster's DestinationRule applies to the class.
    pub(super) fn applies_rule(&self, cluster: &ir::Cluster) -> bool {
        cluster.rule_export_to.allows(self.namespace)
    }

    /// Whether the class gets this virtual host at all.
    pub(super) fn virtual_host(&self, vhost: &ir::VirtualHost) -> bool {
        self.reaches(&vhost.namespace, &vhost.host, &vhost.export_to)
    }

    /// Whether the class's workloads are the clients a match condition's
    /// `sourceLabels` and `sourceNamespace` ask for.
    pub(super) fn is_source(&self, m: &ir::Match) -> bool {
        m.source_namespace
            .as_deref()
            .is_none_or(|ns| ns == self.namespace)
            && m.source_labels
                .iter()
                .all(|(k, v)| self.labels.get(k) == Some(v))
    }

    /// Whether the class gets a listener for this TCP service port.
    pub(super) fn tcp_route(&self, route: &ir::TcpRoute) -> bool {
        self.reaches(&route.namespace, &route.host, &route.export_to)
    }

    /// The weighted clusters the class uses for a TCP service port: the
    /// VirtualService's if it is exported to the class's namespace, else the
    /// service's own.
    pub(super) fn tcp_clusters<'r>(&self, route: &'r ir::TcpRoute) -> &'r [(String, u32)] {
        if route.routes_export_to.allows(self.namespace) || route.fallback.is_empty() {
            &route.clusters
        } else {
            &route.fallback
        }
    }

    /// The routes the class uses for a virtual host: the VirtualService's if
    /// it is exported to the class's namespace, else the default route.
    pub(super) fn routes<'v>(&self, vhost: &'v ir::VirtualHost) -> &'v [ir::Route] {
        super::plan::route_list(vhost, self.uses_own_routes(vhost))
    }

    /// Whether [`Scope::routes`] are the VirtualService's (else the default route).
    pub(super) fn uses_own_routes(&self, vhost: &ir::VirtualHost) -> bool {
        vhost.routes_export_to.allows(self.namespace) || vhost.fallback_routes.is_empty()
    }

    /// Whether a Sidecar scopes the class.
    pub(super) fn has_sidecar(&self) -> bool {
        self.sidecar.is_some()
    }
}
