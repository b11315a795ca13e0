//! VirtualServices → virtual hosts and routes.

use super::names::{cluster_name, resolve_host};
use super::route_parts;
use super::{
    Action, ExportTo, HeaderChanges, Route, RoutePolicy, ServiceRef, TcpRoute, VirtualHost,
    WeightedCluster,
};
use crate::diagnostic::Diagnostic;
use crate::model::{HttpRoute, ObjectKey, VirtualService};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::{BTreeMap, BTreeSet};

/// What routing needs to know about a service.
pub(super) struct ServiceInfo {
    pub key: ObjectKey,
    /// The object's creation time, for precedence between TCP services.
    pub created: Option<Time>,
    /// Whether Kubernetes' short names reach it.
    pub short_names: bool,
    /// Namespaces that see the service.
    pub export_to: ExportTo,
    /// Service ports, in spec order.
    pub ports: Vec<u16>,
    /// The ports routed as HTTP, in spec order.
    pub http_ports: Vec<u16>,
    /// The ports proxied as TCP, in spec order.
    pub tcp_ports: Vec<u16>,
    /// HTTP port meant by a Host header without a port (0 when none).
    pub default_port: u16,
    /// Subsets its DestinationRule defines.
    pub subsets: BTreeSet<String>,
}

/// Body of the fixed 503 that replaces a route whose destination is invalid.
pub const INVALID_ROUTE_BODY: &str =
    "sextant: this route has an invalid destination; see sextant's config errors\n";

/// The VirtualService that routes each host. A host claimed by several
/// VirtualServices is routed by the oldest (creation time, then
/// namespace/name); the others get an error naming both objects.
pub(super) fn owners<'a>(
    services: &BTreeMap<String, ServiceInfo>,
    virtual_services: &[(&'a ObjectKey, &'a VirtualService)],
    diagnostics: &mut Vec<Diagnostic>,
) -> Owners<'a> {
    let is_service = |h: &str| services.contains_key(h);
    let mut ordered = virtual_services.to_vec();
    ordered.sort_by_key(|(key, vs)| (vs.metadata.creation_timestamp.clone(), (*key).clone()));
    let mut owners: Owners<'a> = BTreeMap::new();
    for (key, vs) in ordered {
        for (i, host) in vs.spec.hosts.iter().enumerate() {
            let host = resolve_host(host, &key.namespace, is_service);
            if let Some((owner, _)) = owners.get(&host) {
                if *owner != key {
                    diagnostics.push(Diagnostic::error(
                        key,
                        format!("spec.hosts[{i}]"),
                        format!("host {host} is already routed by {owner}, which is older; this VirtualService is ignored for it"),
                    ));
                }
                continue;
            }
            owners.insert(host, (key, vs));
        }
    }
    owners
}

/// VirtualServices by the host they route.
pub(super) type Owners<'a> = BTreeMap<String, (&'a ObjectKey, &'a VirtualService)>;

/// Builds one virtual host per HTTP service port and one per VirtualService
/// host that names no service.
pub(super) fn virtual_hosts(
    services: &BTreeMap<String, ServiceInfo>,
    owners: &Owners<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<VirtualHost> {
    let mut out = Vec::new();
    for (fqdn, info) in services {
        for port in &info.http_ports {
            let default = vec![Route {
                name: "default".into(),
                matches: Vec::new(),
                action: Action::Forward(vec![WeightedCluster {
                    cluster: cluster_name(*port, None, fqdn),
                    weight: 1,
                    headers: HeaderChanges::default(),
                }]),
                policy: Default::default(),
            }];
            let (routes, routes_export_to, fallback_routes) = match owners.get(fqdn) {
                Some((key, vs)) => (
                    vs_routes(key, vs, Some(*port), services, diagnostics),
                    vs_export_to(key, vs),
                    default,
                ),
                None => (default, ExportTo::All, Vec::new()),
            };
            out.push(VirtualHost {
                name: format!("{fqdn}:{port}"),
                host: fqdn.clone(),
                service: Some(ServiceRef {
                    name: info.key.name.clone(),
                    namespace: info.key.namespace.clone(),
                    port: *port,
                    default_port: *port == info.default_port,
                    short_names: info.short_names,
                }),
                namespace: info.key.namespace.clone(),
                export_to: info.export_to.clone(),
                routes,
                routes_export_to,
                fallback_routes,
                origins: std::iter::once(info.key.clone())
                    .chain(owners.get(fqdn).map(|(key, _)| (*key).clone()))
                    .collect(),
            });
        }
    }
    for (host, (key, vs)) in owners {
        if !services.contains_key(host) {
            out.push(VirtualHost {
                name: host.clone(),
                host: host.clone(),
                service: None,
                namespace: key.namespace.clone(),
                export_to: vs_export_to(key, vs),
                routes: vs_routes(key, vs, None, services, diagnostics),
                routes_export_to: ExportTo::All,
                fallback_routes: Vec::new(),
                origins: vec![(*key).clone()],
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// One [`TcpRoute`] per TCP service port, oldest service first: the
/// VirtualService's first `tcp` route whose match names the port (or has no
/// match), else the service's own cluster.
pub(super) fn tcp_routes(
    services: &BTreeMap<String, ServiceInfo>,
    owners: &Owners<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<TcpRoute> {
    let mut out = Vec::new();
    let mut ordered: Vec<_> = services
        .iter()
        .filter(|(_, i)| !i.tcp_ports.is_empty())
        .collect();
    ordered.sort_by(|a, b| (&a.1.created, a.0).cmp(&(&b.1.created, b.0)));
    for (fqdn, info) in ordered {
        for port in &info.tcp_ports {
            let own = vec![(cluster_name(*port, None, fqdn), 1)];
            let owner = owners.get(fqdn.as_str());
            let chosen = owner.and_then(|(key, vs)| {
                let (i, route) = vs.spec.tcp.iter().enumerate().find(|(_, r)| {
                    r.matches.is_empty()
                        || r.matches
                            .iter()
                            .any(|m| m.port.is_none_or(|p| p == u32::from(*port)))
                })?;
                Some((
                    *key,
                    vs,
                    tcp_destinations(key, i, route, *port, services, diagnostics),
                ))
            });
            let (clusters, routes_export_to, fallback, vs_key) = match chosen {
                Some((key, vs, clusters)) => {
                    (clusters, vs_export_to(key, vs), own, Some(key.clone()))
                }
                None => (own, ExportTo::All, Vec::new(), None),
            };
            out.push(TcpRoute {
                name: format!("{fqdn}:{port}"),
                host: fqdn.clone(),
                port: *port,
                namespace: info.key.namespace.clone(),
                export_to: info.export_to.clone(),
                clusters,
                routes_export_to,
                fallback,
                origins: std::iter::once(info.key.clone()).chain(vs_key).collect(),
            });
        }
    }
    out
}

/// The weighted clusters of a `tcp` route; empty (connections are closed)
/// when a destination does not resolve or every weight is 0.
fn tcp_destinations(
    key: &ObjectKey,
    index: usize,
    route: &crate::model::TcpRoute,
    port: u16,
    services: &BTreeMap<String, ServiceInfo>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<(String, u32)> {
    let mut weighted: Vec<(String, u32)> = Vec::new();
    for (j, dest) in route.route.iter().enumerate() {
        let field = format!("spec.tcp[{index}].route[{j}].destination");
        let Some(cluster) = destination_cluster(
            key,
            &field,
            &dest.destination,
            Some(port),
            services,
            diagnostics,
        ) else {
            return Vec::new();
        };
        let weight = if route.route.len() == 1 {
            1
        } else {
            dest.weight.unwrap_or(0).max(0) as u32
        };
        match weighted.iter_mut().find(|(c, _)| *c == cluster) {
            Some((_, w)) => *w = w.saturating_add(weight),
            None => weighted.push((cluster, weight)),
        }
    }
    weighted.retain(|(_, w)| *w > 0);
    let total: u64 = weighted.iter().map(|(_, w)| u64::from(*w)).sum();
    if total > u64::from(u32::MAX) {
        diagnostics.push(Diagnostic::error(
            key,
            format!("spec.tcp[{index}].route"),
            format!("the weights add up to {total}, more than Envoy accepts ({}); connections to this port are refused", u32::MAX),
        ));
        return Vec::new();
    }
    if weighted.is_empty() {
        diagnostics.push(Diagnostic::warning(
            key,
            format!("spec.tcp[{index}].route"),
            "no destination with a weight above 0: connections to this port are refused",
        ));
    }
    weighted
}

fn vs_export_to(key: &ObjectKey, vs: &VirtualService) -> ExportTo {
    ExportTo::parse(vs.spec.export_to.iter().map(String::as_str), &key.namespace)
}

fn vs_routes(
    key: &ObjectKey,
    vs: &VirtualService,
    port: Option<u16>,
    services: &BTreeMap<String, ServiceInfo>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Route> {
    vs.spec
        .http
        .iter()
        .enumerate()
        .filter_map(|(i, http)| {
            let matches: Vec<_> = http
                .matches
                .iter()
                .filter_map(|m| route_parts::condition(m, port))
                .collect();
            // Every condition names another port: the route never applies here.
            if matches.is_empty() && !http.matches.is_empty() {
                return None;
            }
            Some(Route {
                name: format!(
                    "{}/{}.{}",
                    key.namespace,
                    key.name,
                    http.name.clone().unwrap_or_else(|| i.to_string())
                ),
                matches,
                action: action(key, i, http, port, services, diagnostics),
                policy: RoutePolicy {
                    mirrors: mirrors(key, i, http, port, services, diagnostics),
                    ..route_parts::policy(http)
                },
            })
        })
        .collect()
}

/// The cluster a destination names: its host resolved to a Service, its
/// port (given, or the virtual host's, or the service's only one) and subset
/// checked. `None`, with an error on `field`, when any does not resolve.
fn destination_cluster(
    key: &ObjectKey,
    field: &str,
    dest: &crate::model::Destination,
    vhost_port: Option<u16>,
    services: &BTreeMap<String, ServiceInfo>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<String> {
    let host = resolve_host(&dest.host, &key.namespace, |h| services.contains_key(h));
    let Some(info) = services.get(&host) else {
        diagnostics.push(Diagnostic::error(
            key,
            format!("{field}.host"),
            format!("no Service or ServiceEntry has host {host:?}"),
        ));
        return None;
    };
    let port = match (&dest.port, vhost_port) {
        (Some(p), _) => u16::try_from(p.number)
            .ok()
            .filter(|n| info.ports.contains(n)),
        (None, Some(p)) if info.ports.contains(&p) => Some(p),
        (None, _) if info.ports.len() == 1 => Some(info.ports[0]),
        (None, _) => None,
    };
    let Some(port) = port else {
        let message = match &dest.port {
            Some(p) => format!("{} has no port {}", info.key, p.number),
            None => format!(
                "{} has several ports; set destination.port.number",
                info.key
            ),
        };
        diagnostics.push(Diagnostic::error(key, format!("{field}.port"), message));
        return None;
    };
    if let Some(subset) = dest.subset.as_ref().filter(|s| !info.subsets.contains(*s)) {
        diagnostics.push(Diagnostic::error(
            key,
            format!("{field}.subset"),
            format!("no DestinationRule for {host} defines subset {subset:?}"),
        ));
        return None;
    }
    Some(cluster_name(port, dest.subset.as_deref(), &host))
}

/// Mirror targets of a route (`mirror` with `mirrorPercentage`, and
/// `mirrors`): cluster and percentage. One that does not resolve is left out
/// with an error; the route itself still serves.
fn mirrors(
    key: &ObjectKey,
    index: usize,
    http: &HttpRoute,
    vhost_port: Option<u16>,
    services: &BTreeMap<String, ServiceInfo>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<(String, f64)> {
    let single = http.mirror.iter().map(|d| {
        (
            format!("spec.http[{index}].mirror"),
            d,
            http.mirror_percentage.as_ref().map_or(100.0, |p| p.value),
        )
    });
    let many = http.mirrors.iter().enumerate().map(|(j, m)| {
        (
            format!("spec.http[{index}].mirrors[{j}].destination"),
            &m.destination,
            m.percentage.as_ref().map_or(100.0, |p| p.value),
        )
    });
    single
        .chain(many)
        .filter_map(|(field, dest, percent)| {
            Some((
                destination_cluster(key, &field, dest, vhost_port, services, diagnostics)?,
                percent,
            ))
        })
        .collect()
}

fn action(
    key: &ObjectKey,
    index: usize,
    http: &HttpRoute,
    vhost_port: Option<u16>,
    services: &BTreeMap<String, ServiceInfo>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Action {
    let invalid = || Action::DirectResponse {
        status: 503,
        body: INVALID_ROUTE_BODY.into(),
    };
    if let Some(redirect) = &http.redirect {
        return Action::Redirect(route_parts::redirect(redirect));
    }
    if let Some(direct) = &http.direct_response {
        let body = direct
            .body
            .as_ref()
            .and_then(|b| b.string.clone())
            .unwrap_or_default();
        return Action::DirectResponse {
            status: direct.status as u16,
            body,
        };
    }
    let mut weighted: Vec<WeightedCluster> = Vec::new();
    let mut valid = true;
    for (j, route) in http.route.iter().enumerate() {
        let field = format!("spec.http[{index}].route[{j}].destination");
        let Some(cluster) = destination_cluster(
            key,
            &field,
            &route.destination,
            vhost_port,
            services,
            diagnostics,
        ) else {
            valid = false;
            continue;
        };
        // One destination takes all traffic; with several, an omitted weight is 0.
        let weight = if http.route.len() == 1 {
            1
        } else {
            route.weight.unwrap_or(0).max(0) as u32
        };
        match weighted.iter_mut().find(|w| w.cluster == cluster) {
            Some(existing) => existing.weight = existing.weight.saturating_add(weight),
            None => weighted.push(WeightedCluster {
                cluster,
                weight,
                headers: route_parts::header_changes(route.headers.as_ref()),
            }),
        }
    }
    if !valid {
        return invalid();
    }
    weighted.retain(|w| w.weight > 0);
    // Envoy rejects a route whose weights add up to more than u32::MAX.
    let total: u64 = weighted.iter().map(|w| u64::from(w.weight)).sum();
    if total > u64::from(u32::MAX) {
        diagnostics.push(Diagnostic::error(
            key,
            format!("spec.http[{index}].route"),
            format!("the weights add up to {total}, more than Envoy accepts ({}); the route answers 503", u32::MAX),
        ));
        return invalid();
    }
    if weighted.is_empty() {
        diagnostics.push(Diagnostic::warning(
            key,
            format!("spec.http[{index}].route"),
            "every destination has weight 0: the route answers 503",
        ));
        return Action::DirectResponse {
            status: 503,
            body: "sextant: every destination of this route has weight 0\n".into(),
        };
    }
    Action::Forward(weighted)
}
