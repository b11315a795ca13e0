//! The resolved world: services with their ports, clusters with endpoints,
//! and virtual hosts with routes, with defaults filled, names canonical and
//! references resolved. Serde-serializable, so it is golden-testable and
//! readable on the admin endpoint.
//!
//! The IR does not depend on the proxy that will receive it; per-proxy
//! choices (which short names resolve, listener addresses) are made by
//! [`crate::translate`].

pub mod authz;
mod build;
pub mod cluster_index;
pub mod cluster_policy;
pub mod crossings;
pub mod endpoint_change;
mod endpoints;
pub mod mesh;
mod names;
pub mod patch;
pub mod policy;
mod protocol;
mod route_parts;
mod routes;
pub mod scope;
mod services;
pub mod slo;
pub mod telemetry;

pub use authz::{policies_for, AuthzPolicy};
pub use build::build;
pub use policy::{HeaderChanges, HeaderOps, Redirect, RoutePolicy};

impl Ir {
    /// The objects behind the clusters and virtual hosts that `message` (an
    /// Envoy NACK) names, behind the virtual hosts with a route regex it
    /// quotes (Envoy's regex errors say `regex '<regex>' ...`), and the
    /// AuthorizationPolicies whose RBAC policies it names, sorted and
    /// without duplicates; empty when it names none.
    pub fn origins_mentioned(&self, message: &str) -> Vec<crate::model::ObjectKey> {
        let clusters = self
            .clusters
            .values()
            .filter(|c| message.contains(&c.name))
            .flat_map(|c| &c.origins);
        let hosts = self
            .virtual_hosts
            .iter()
            .filter(|v| {
                message.contains(&v.name)
                    || message.contains(&v.host)
                    || v.regexes()
                        .any(|r| message.contains(&format!("regex '{r}'")))
            })
            .flat_map(|v| &v.origins);
        // RBAC policy names: `ns[<namespace>]-policy[<name>]-rule[<i>]`.
        let policies = self
            .authorization_policies
            .iter()
            .filter(|p| message.contains(&format!("ns[{}]-policy[{}]", p.namespace, p.origin.name)))
            .map(|p| &p.origin);
        let mut all: Vec<_> = clusters.chain(hosts).chain(policies).cloned().collect();
        all.sort();
        all.dedup();
        all
    }
}

/// Builds the IR of everything `store` serves, and returns it with every
/// current diagnostic (parse and validation, duplicate definitions, and
/// reference resolution), each naming its file where one is known.
pub fn resolve(store: &crate::store::Store) -> (Ir, Vec<Diagnostic>) {
    let (world, world_diagnostics) = store.world();
    let mut ir = build(&world);
    store.locate(&mut ir.diagnostics);
    let mut all = store.diagnostics();
    all.extend(world_diagnostics);
    all.extend(ir.diagnostics.iter().cloned());
    (ir, all)
}

/// Resolves successive states of one store, as the server does per config
/// event: a change of workloads only (Pods, EndpointSlices,
/// WorkloadEntries) is patched into the previous IR ([`patch::patch`]),
/// which rebuilds just the services it can reach; any other change, the
/// first, and a change the patch cannot prove equal build in full. Both
/// give the IR and diagnostics [`resolve`] gives.
#[derive(Default)]
pub struct Resolver {
    /// The last world and its IR.
    last: Option<(crate::store::World, Arc<Ir>)>,
    /// Whether the last IR was patched rather than built.
    patched: bool,
}

impl Resolver {
    /// The IR of `store` with every current diagnostic, as [`resolve`].
    pub fn resolve(&mut self, store: &crate::store::Store) -> (Arc<Ir>, Vec<Diagnostic>) {
        let (world, world_diagnostics) = store.world();
        let patched = self
            .last
            .as_ref()
            .and_then(|(last_world, last)| patch::patch(last, last_world, &world));
        self.patched = patched.is_some();
        let mut ir = patched.unwrap_or_else(|| build(&world));
        store.locate(&mut ir.diagnostics);
        let mut all = store.diagnostics();
        all.extend(world_diagnostics);
        all.extend(ir.diagnostics.iter().cloned());
        let ir = Arc::new(ir);
        self.last = Some((world, ir.clone()));
        (ir, all)
    }

    /// Whether the last [`Resolver::resolve`] patched the IR before it
    /// (rather than building it in full).
    pub fn patched(&self) -> bool {
        self.patched
    }
}

pub use names::{cluster_name, resolve_host, DOMAIN_SUFFIX};
pub use protocol::Protocol;
pub use scope::{ExportTo, SidecarScope};

use crate::diagnostic::Diagnostic;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Label that ties an EndpointSlice to its Service (Kubernetes' own).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The resolved mesh.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Ir {
    /// Outbound clusters keyed by name (`outbound|<port>|<subset>|<fqdn>`),
    /// in a persistent map: the IR of a later change shares the map's
    /// unchanged parts and every cluster it leaves as it is.
    pub clusters: imbl::OrdMap<String, Arc<Cluster>>,
    /// The clusters by namespace and by endpoint address, in step with
    /// `clusters` (what a change of one workload reaches, found without
    /// reading every cluster). Code that edits `clusters` in place must
    /// build it again ([`cluster_index::ClusterIndex::of`]); debug builds
    /// check it where the endpoint-only check reads it. Not serialized: it
    /// says nothing `clusters` does not.
    #[serde(skip)]
    pub cluster_index: cluster_index::ClusterIndex,
    /// Virtual hosts of the outbound route configuration, ordered by name
    /// (shared between IRs that differ only in workloads).
    pub virtual_hosts: Arc<Vec<VirtualHost>>,
    /// TCP ports of services, in precedence order for a listener port two
    /// of them share: the older service first (creation time, then host).
    pub tcp_routes: Vec<TcpRoute>,
    /// Label keys that some route's `sourceLabels` names: proxy classes
    /// differ by the values of these labels only.
    #[serde(skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub source_label_keys: std::collections::BTreeSet<String>,
    /// Pods and WorkloadEntries by address: who may get a certificate, and
    /// whose sidecar an inbound listener serves.
    pub workloads: mesh::ByAddress,
    /// Addresses several workloads hold and EndpointSlices naming Pods of
    /// other namespaces (what the patch must know of workloads outside a
    /// change's namespaces). Not serialized: no proxy's configuration
    /// depends on it beyond `workloads` and `clusters`.
    #[serde(skip)]
    pub crossings: crossings::Crossings,
    /// PeerAuthentications, oldest first.
    pub peer_authentications: Vec<mesh::PeerAuthn>,
    /// Sidecars that scope proxies, ordered by name.
    pub sidecars: Vec<SidecarScope>,
    /// AuthorizationPolicies, ordered by name (`namespace/name`); the ones of
    /// a workload: [`policies_for`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorization_policies: Vec<AuthzPolicy>,
    /// Telemetries, oldest first; a proxy's: [`telemetry::for_proxy`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub telemetries: Vec<telemetry::TelemetryPolicy>,
    /// ServiceLevelObjectives, ordered by namespace/name (they change no
    /// proxy configuration; `/debug/slos` measures them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slos: Vec<slo::SloPolicy>,
    /// Problems found while resolving references, in a stable order.
    pub diagnostics: Vec<Diagnostic>,
}

/// Load-balancing policy of a cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LbPolicy {
    /// Envoy `ROUND_ROBIN` (also Istio's `UNSPECIFIED`).
    #[default]
    RoundRobin,
    /// Envoy `LEAST_REQUEST` (Istio `LEAST_REQUEST` and `LEAST_CONN`).
    LeastRequest,
    /// Envoy `RANDOM`.
    Random,
}

/// One upstream cluster: a service port, optionally narrowed to a subset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cluster {
    /// `outbound|<port>|<subset>|<fqdn>`; also the EDS `service_name` and the
    /// ClusterLoadAssignment's `cluster_name`.
    pub name: String,
    /// Service FQDN, e.g. `reviews.default.svc.cluster.local`.
    pub service: String,
    /// Namespace of the service.
    pub namespace: String,
    /// Namespaces that see the service.
    pub export_to: ExportTo,
    /// Service port (not target port).
    pub port: u16,
    /// Subset name, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Load balancing, limits and outlier detection from the DestinationRule.
    pub policy: cluster_policy::ClusterPolicy,
    /// Namespaces the DestinationRule is exported to (all when there is
    /// none). Proxies elsewhere get the cluster without the rule's policy,
    /// and no subset clusters.
    #[serde(skip_serializing_if = "ExportTo::is_all")]
    pub rule_export_to: ExportTo,
    /// Endpoints, sorted by address and port, without duplicates.
    pub endpoints: Vec<Endpoint>,
    /// What the port speaks (by `appProtocol`, port name or a ServiceEntry
    /// port's `protocol`, as Istio selects it).
    pub protocol: Protocol,
    /// Names Envoy resolves by DNS instead of taking endpoints over EDS (an
    /// ExternalName service, a ServiceEntry with DNS or NONE resolution).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsTargets>,
    /// The objects it comes from: its Service or ServiceEntry, and its
    /// DestinationRule if any.
    pub origins: Vec<crate::model::ObjectKey>,
}

/// Names a DNS cluster resolves, and how it uses the answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DnsTargets {
    /// Envoy's cluster type: every address of every name (`STRICT_DNS`), or
    /// the first address of the first name (`LOGICAL_DNS`).
    pub lookup: DnsLookup,
    /// Host names (or IPs) and ports, in the order written.
    pub targets: Vec<(String, u16)>,
}

/// How a DNS cluster uses resolved addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DnsLookup {
    /// Every address is an endpoint (Envoy `STRICT_DNS`).
    StrictDns,
    /// One connection target, re-resolved asynchronously (Envoy `LOGICAL_DNS`).
    LogicalDns,
}

/// Whether an endpoint should receive new requests, from Kubernetes'
/// EndpointSlice conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    /// `ready` is true or absent (Kubernetes treats absent as ready).
    Ready,
    /// Not ready, but `serving` while `terminating`: used only when no
    /// endpoint of the cluster is ready.
    ServingTerminating,
    /// Neither ready nor serving: never receives traffic.
    NotServing,
}

/// One endpoint of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Endpoint {
    /// Workload IP address.
    pub address: IpAddr,
    /// Port on the workload (the target port, as found in the EndpointSlice
    /// or resolved from the Pod / WorkloadEntry).
    pub port: u16,
    /// Condition of the endpoint.
    pub state: EndpointState,
    /// The workload's sidecar, when it has one: then `port` is the
    /// sidecar's inbound port and traffic may use mutual TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh: Option<mesh::MeshEndpoint>,
}

/// A virtual host of the outbound route configuration: one per service port,
/// or one per VirtualService host that names no service.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VirtualHost {
    /// Unique name: `<fqdn>:<port>` for a service port, the host otherwise.
    pub name: String,
    /// Lower-case host: the service FQDN, or the VirtualService host as written.
    pub host: String,
    /// The service behind the host, if any (its aliases depend on the proxy's namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// Namespace of the service, or of the VirtualService for a host that names no service.
    pub namespace: String,
    /// Namespaces that see the host at all.
    pub export_to: ExportTo,
    /// Routes in match order: the first match wins.
    pub routes: Vec<Route>,
    /// Namespaces whose proxies use `routes` (the VirtualService's `exportTo`).
    pub routes_export_to: ExportTo,
    /// Routes for the other namespaces: the service's default route.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallback_routes: Vec<Route>,
    /// The objects it comes from: its Service and/or VirtualService.
    pub origins: Vec<crate::model::ObjectKey>,
}

impl VirtualHost {
    /// Every regex its routes match paths, headers or query parameters with.
    fn regexes(&self) -> impl Iterator<Item = &str> {
        self.routes
            .iter()
            .chain(&self.fallback_routes)
            .flat_map(|r| &r.matches)
            .flat_map(|m| {
                let headers = m.headers.iter().map(|(_, s)| Some(s));
                let absent = m.without_headers.iter().map(|(_, s)| s.as_ref());
                let query = m.query_params.iter().map(|(_, s)| Some(s));
                std::iter::once(m.path.as_ref())
                    .chain(headers)
                    .chain(absent)
                    .chain(query)
                    .flatten()
            })
            .filter_map(|s| match s {
                StringMatch::Regex(r) => Some(r.as_str()),
                _ => None,
            })
    }
}

/// A service port that a virtual host serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceRef {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// Service port.
    pub port: u16,
    /// Whether requests without a port in the Host header mean this port
    /// (port 80 when the service has it, else its lowest HTTP port).
    pub default_port: bool,
    /// Whether Kubernetes' short names (`name`, `name.ns`, `name.ns.svc`)
    /// also reach it; false for a ServiceEntry host.
    pub short_names: bool,
}

/// Where connections to one TCP service port go: a TCP proxy listener on
/// that port of each proxy that sees the service.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TcpRoute {
    /// `<fqdn>:<port>`.
    pub name: String,
    /// The service FQDN or ServiceEntry host.
    pub host: String,
    /// The service port, also the listener's port.
    pub port: u16,
    /// Namespace of the service.
    pub namespace: String,
    /// Namespaces that see the service.
    pub export_to: ExportTo,
    /// Destination clusters with relative weights (all > 0), from the
    /// VirtualService's `tcp` route, or the service's own cluster. Empty
    /// when the route's destinations are invalid: connections are closed.
    pub clusters: Vec<(String, u32)>,
    /// Namespaces whose proxies use `clusters` (the VirtualService's `exportTo`).
    pub routes_export_to: ExportTo,
    /// For the other namespaces: the service's own cluster.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<(String, u32)>,
    /// The objects it comes from.
    pub origins: Vec<crate::model::ObjectKey>,
}

/// One route: conditions (any of) and an action.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Route {
    /// Name for stats and debugging, e.g. `default/reviews.0` or `default`.
    pub name: String,
    /// Conditions, ORed; empty means "every request".
    pub matches: Vec<Match>,
    /// What to do with a matching request.
    pub action: Action,
    /// Timeout, retries, faults, rewrites and header changes.
    #[serde(skip_serializing_if = "RoutePolicy::is_empty")]
    pub policy: RoutePolicy,
}

/// A condition on path and headers (all must hold).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Match {
    /// Path condition; `None` matches every path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<StringMatch>,
    /// Header conditions by lower-case header name (the method, scheme and
    /// authority as the pseudo-headers `:method`, `:scheme`, `:authority`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, StringMatch)>,
    /// Headers that must not match; `None`: must be absent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub without_headers: Vec<(String, Option<StringMatch>)>,
    /// Query parameter conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<(String, StringMatch)>,
    /// Match the path case-insensitively.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignore_case: bool,
    /// Labels the client workload must carry (decided per proxy class, not by Envoy).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Namespace the client workload must be in (decided per proxy class).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

/// A validated string condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatch {
    /// Equal to.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Matches the RE2 expression (checked at load time).
    Regex(String),
}

/// What a route does.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Forward to clusters with relative weights (all > 0, at least one).
    Forward(Vec<WeightedCluster>),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer directly, without an upstream.
    DirectResponse {
        /// HTTP status.
        status: u16,
        /// Body text.
        body: String,
    },
}

/// A cluster and its relative weight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WeightedCluster {
    /// Cluster name.
    pub cluster: String,
    /// Relative weight (> 0).
    pub weight: u32,
    /// Header changes for traffic to this destination.
    #[serde(skip_serializing_if = "HeaderChanges::is_empty")]
    pub headers: HeaderChanges,
}

#[cfg(test)]
mod tests;
