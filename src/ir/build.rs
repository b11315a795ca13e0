//! World → IR.

use super::cluster_policy::{self, ClusterPolicy};
use super::endpoints::Workloads;
use super::names::cluster_name;
use super::routes::{self, ServiceInfo};
use super::services::{self, Members};
use super::{Cluster, DnsTargets, Ir};
use crate::diagnostic::Diagnostic;
use crate::model::{DestinationRule, Object, ObjectKey};
use crate::store::World;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Resolves the world into the IR. Never fails: problems become
/// [`Ir::diagnostics`] and the affected part is left out or answered with a
/// fixed 503, while everything else is still produced.
pub fn build(world: &World) -> Ir {
    let mut diagnostics = Vec::new();
    let mut workloads = Workloads::new();
    let mut services = Vec::new();
    let mut virtual_services = Vec::new();
    let mut destination_rules = Vec::new();
    let mut sidecars = Vec::new();
    let mut entries = Vec::new();
    let mut peer_authentications = Vec::new();
    let mut authorization_policies: Vec<super::AuthzPolicy> = Vec::new();
    let mut telemetries = Vec::new();
    let mut slo_objects = Vec::new();
    for (key, object) in world {
        match object.as_ref() {
            Object::Service(svc) => services.push((key, svc.as_ref())),
            Object::EndpointSlice(slice) => {
                let labels = slice.metadata.labels.as_ref();
                if let Some(service) = labels.and_then(|l| l.get(super::SERVICE_NAME_LABEL)) {
                    let owner = (key.namespace.clone(), service.clone());
                    workloads
                        .slices
                        .entry(owner)
                        .or_default()
                        .push((key, slice.as_ref()));
                }
            }
            Object::Pod(pod) => {
                workloads
                    .pods
                    .insert((key.namespace.clone(), key.name.clone()), pod.as_ref());
            }
            Object::WorkloadEntry(entry) => workloads.workload_entries.push((key, entry.as_ref())),
            Object::VirtualService(vs) => virtual_services.push((key, vs.as_ref())),
            Object::DestinationRule(dr) => destination_rules.push((key, dr.as_ref())),
            Object::ServiceEntry(entry) => entries.push((key, entry.as_ref())),
            Object::PeerAuthentication(pa) => peer_authentications.push((key, pa.as_ref())),
            Object::AuthorizationPolicy(ap) => {
                authorization_policies.push(super::authz::resolve(key, ap, &mut diagnostics))
            }
            Object::Telemetry(t) => telemetries.push(super::telemetry::resolve(key, t)),
            Object::ServiceLevelObjective(slo) => slo_objects.push((key, slo.as_ref())),
            Object::Sidecar(sidecar) => sidecars.push(super::scope::SidecarScope {
                name: format!("{}/{}", key.namespace, key.name),
                namespace: key.namespace.clone(),
                selector: sidecar
                    .spec
                    .workload_selector
                    .as_ref()
                    .map(|s| s.labels.clone()),
                created: sidecar
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
                egress: sidecar
                    .spec
                    .egress
                    .iter()
                    .flat_map(|e| e.hosts.iter())
                    .filter_map(|h| h.split_once('/'))
                    .map(|(ns, host)| (ns.to_string(), host.to_ascii_lowercase()))
                    .collect(),
            }),
        }
    }
    // Endpoint resolution finds workloads by namespace and label.
    workloads.index();
    let mesh_workloads = super::mesh::workloads(
        &workloads.pods,
        &workloads.workload_entries,
        &mut diagnostics,
    );
    let registry = services::registry(&services, &entries, &mut diagnostics);
    let is_service = |fqdn: &str| registry.contains_key(fqdn);
    // The world iterates in key order: SLOs come out by namespace/name.
    let slos = slo_objects
        .iter()
        .filter_map(|(key, slo)| super::slo::resolve(key, &slo.spec, &is_service, &mut diagnostics))
        .collect();
    let rules = destination_rules_by_host(&destination_rules, &is_service, &mut diagnostics);

    let mut clusters = imbl::OrdMap::new();
    let mut infos = BTreeMap::new();
    for (fqdn, service) in &registry {
        let key = service.key;
        let (rule_key, rule) = match rules.get(fqdn) {
            Some((k, dr)) => (Some(*k), Some(*dr)),
            None => (None, None),
        };
        // The objects a cluster of this service comes from, for tracing NACKs back.
        let origins: Vec<ObjectKey> = std::iter::once(key.clone())
            .chain(rule_key.cloned())
            .collect();
        let policy = rule.and_then(|dr| dr.spec.traffic_policy.as_ref());
        let rule_export_to = match (rule_key, rule) {
            (Some(k), Some(dr)) => {
                super::ExportTo::parse(dr.spec.export_to.iter().map(String::as_str), &k.namespace)
            }
            _ => super::ExportTo::All,
        };
        let numbers: Vec<u16> = service.ports.iter().map(|p| p.number).collect();
        if let (Some(rule_key), Some(policy)) = (rule_key, policy) {
            for (i, setting) in policy.port_level_settings.iter().enumerate() {
                if !numbers.iter().any(|n| u32::from(*n) == setting.port.number) {
                    diagnostics.push(Diagnostic::warning(
                        rule_key,
                        format!("spec.trafficPolicy.portLevelSettings[{i}].port.number"),
                        format!(
                            "{key} has no port {}; these settings apply to nothing",
                            setting.port.number
                        ),
                    ));
                }
            }
        }
        // Subsets select workloads by label; an ExternalName service has none.
        let subsets: Vec<_> = rule
            .iter()
            .filter(|_| service.has_workloads())
            .flat_map(|dr| dr.spec.subsets.iter())
            .collect();
        for port in &service.ports {
            let all = service.members(port, &workloads, &mut diagnostics);
            let mut add = |subset: Option<&str>, policy: ClusterPolicy, members: Members| {
                let name = cluster_name(port.number, subset, fqdn);
                let (endpoints, dns) = match members {
                    Members::Eds(list) => {
                        let mut list: Vec<_> = list.into_iter().map(|e| e.endpoint).collect();
                        for e in &mut list {
                            super::mesh::through_sidecar(e, &mesh_workloads);
                        }
                        list.sort();
                        (list, None)
                    }
                    Members::Dns(lookup, targets) => (
                        Vec::new(),
                        Some(DnsTargets {
                            lookup,
                            targets: targets.into_iter().map(|(h, p, _)| (h, p)).collect(),
                        }),
                    ),
                };
                let cluster = Cluster {
                    name: name.clone(),
                    service: fqdn.clone(),
                    namespace: key.namespace.clone(),
                    export_to: service.export_to.clone(),
                    port: port.number,
                    subset: subset.map(str::to_string),
                    policy,
                    rule_export_to: rule_export_to.clone(),
                    endpoints,
                    dns,
                    protocol: port.protocol,
                    origins: origins.clone(),
                };
                clusters.insert(name, Arc::new(cluster));
            };
            for subset in &subsets {
                let resolved =
                    cluster_policy::resolve(policy, subset.traffic_policy.as_ref(), port.number);
                add(Some(&subset.name), resolved, all.select(&subset.labels));
            }
            add(
                None,
                cluster_policy::resolve(policy, None, port.number),
                all,
            );
        }
        let http_ports: Vec<u16> = service
            .ports
            .iter()
            .filter(|p| p.protocol.is_http())
            .map(|p| p.number)
            .collect();
        let default_port = if http_ports.contains(&80) {
            80
        } else {
            http_ports.iter().min().copied().unwrap_or(0)
        };
        if !service.has_workloads() && rule.is_some_and(|dr| !dr.spec.subsets.is_empty()) {
            diagnostics.push(Diagnostic::warning(
                rule_key.expect("a rule has a key"),
                "spec.subsets",
                format!("{key} is an ExternalName service: subsets select workloads by label and do not apply"),
            ));
        }
        infos.insert(
            fqdn.clone(),
            ServiceInfo {
                export_to: service.export_to.clone(),
                key: key.clone(),
                created: service.created.clone(),
                short_names: service.short_names,
                tcp_ports: service
                    .ports
                    .iter()
                    .filter(|p| !p.protocol.is_http())
                    .map(|p| p.number)
                    .collect(),
                http_ports,
                ports: numbers,
                default_port,
                subsets: subsets.iter().map(|s| s.name.clone()).collect(),
            },
        );
    }

    let owners = routes::owners(&infos, &virtual_services, &mut diagnostics);
    let virtual_hosts = routes::virtual_hosts(&infos, &owners, &mut diagnostics);
    let tcp_routes = routes::tcp_routes(&infos, &owners, &mut diagnostics);
    let source_label_keys = virtual_services
        .iter()
        .flat_map(|(_, vs)| vs.spec.http.iter())
        .flat_map(|h| h.matches.iter())
        .flat_map(|m| m.source_labels.keys().cloned())
        .collect();
    authorization_policies.sort_by(|a, b| a.name.cmp(&b.name));
    super::telemetry::sort(&mut telemetries);
    super::telemetry::shadowed(&telemetries, &mut diagnostics);
    diagnostics.sort();
    diagnostics.dedup();
    Ir {
        cluster_index: super::cluster_index::ClusterIndex::of(&clusters),
        crossings: super::crossings::Crossings::of(world),
        clusters,
        virtual_hosts: Arc::new(virtual_hosts),
        tcp_routes,
        source_label_keys,
        peer_authentications: super::mesh::peer_authentications(&peer_authentications),
        workloads: mesh_workloads,
        sidecars,
        authorization_policies,
        telemetries,
        slos,
        diagnostics,
    }
}

/// The DestinationRule of each service FQDN. When several rules name the same
/// host, the oldest (creation time, then namespace/name) applies and the
/// others get an error, as Istio resolves such conflicts for sidecars.
fn destination_rules_by_host<'a>(
    rules: &[(&'a ObjectKey, &'a DestinationRule)],
    is_service: &dyn Fn(&str) -> bool,
    diagnostics: &mut Vec<Diagnostic>,
) -> BTreeMap<String, (&'a ObjectKey, &'a DestinationRule)> {
    let mut ordered = rules.to_vec();
    ordered.sort_by_key(|(key, dr)| (dr.metadata.creation_timestamp.clone(), (*key).clone()));
    let mut by_host: BTreeMap<String, (&ObjectKey, &DestinationRule)> = BTreeMap::new();
    for (key, dr) in ordered {
        let host = super::resolve_host(&dr.spec.host, &key.namespace, is_service);
        if !is_service(&host) {
            diagnostics.push(Diagnostic::error(
                key,
                "spec.host",
                format!("no Service or ServiceEntry has host {host:?}"),
            ));
            continue;
        }
        if let Some((first, _)) = by_host.get(&host) {
            diagnostics.push(Diagnostic::error(
                key,
                "spec.host",
                format!(
                    "{host} already has {first}, which is older and applies; this rule is ignored"
                ),
            ));
            continue;
        }
        by_host.insert(host, (key, dr));
    }
    by_host
}
