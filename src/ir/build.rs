//! World → IR.

use super::cluster_policy::{self, ClusterPolicy};
use super::endpoints::{self, LabeledEndpoint, Workloads};
use super::names::{cluster_name, service_fqdn};
use super::routes::{self, ServiceInfo};
use super::{Cluster, Ir};
use crate::diagnostic::Diagnostic;
use crate::model::{DestinationRule, Object, ObjectKey};
use crate::store::World;
use std::collections::BTreeMap;

/// Resolves the world into the IR. Never fails: problems become
/// [`Ir::diagnostics`] and the affected part is left out or answered with a
/// fixed 503, while everything else is still produced.
pub fn build(world: &World) -> Ir {
    let mut diagnostics = Vec::new();
    let mut workloads = Workloads {
        slices: BTreeMap::new(),
        pods: BTreeMap::new(),
        workload_entries: Vec::new(),
    };
    let mut services = Vec::new();
    let mut virtual_services = Vec::new();
    let mut destination_rules = Vec::new();
    let mut sidecars = Vec::new();
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
    let is_service = |fqdn: &str| {
        services
            .iter()
            .any(|(k, _)| service_fqdn(&k.name, &k.namespace) == fqdn)
    };
    let rules = destination_rules_by_host(&destination_rules, &is_service, &mut diagnostics);

    let mut clusters = BTreeMap::new();
    let mut infos = BTreeMap::new();
    for (key, svc) in services {
        let fqdn = service_fqdn(&key.name, &key.namespace);
        let spec = svc.spec.clone().unwrap_or_default();
        // An ExternalName service is a DNS name (validated on load); its
        // clusters resolve it instead of taking endpoints.
        let external_name = match spec.type_.as_deref() {
            Some("ExternalName") => match spec.external_name.as_deref() {
                Some(name) if !name.is_empty() => {
                    Some(name.trim_end_matches('.').to_ascii_lowercase())
                }
                _ => continue,
            },
            _ => None,
        };
        let ports: Vec<_> = spec
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| Some((u16::try_from(p.port).ok()?, p)))
            .collect();
        if ports.is_empty() {
            diagnostics.push(Diagnostic::warning(
                key,
                "spec.ports",
                "no TCP port: the service gets no cluster",
            ));
            continue;
        }
        let export_to = super::ExportTo::parse(
            svc.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(super::scope::EXPORT_TO_ANNOTATION))
                .map(|v| v.split(',').collect::<Vec<_>>())
                .unwrap_or_default(),
            &key.namespace,
        );
        let (rule_key, rule) = match rules.get(&fqdn) {
            Some((k, dr)) => (Some(*k), Some(*dr)),
            None => (None, None),
        };
        // The objects a cluster of this service comes from, for tracing NACKs back.
        let origins: Vec<ObjectKey> = std::iter::once(key.clone())
            .chain(rule_key.cloned())
            .collect();
        let policy = rule.and_then(|dr| dr.spec.traffic_policy.as_ref());
        let numbers: Vec<u16> = ports.iter().map(|(n, _)| *n).collect();
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
        for (number, port) in &ports {
            let all = match external_name {
                Some(_) => Vec::new(),
                None => endpoints::for_port(key, svc, port, &workloads, &mut diagnostics),
            };
            let mut add =
                |subset: Option<&str>, policy: ClusterPolicy, endpoints: Vec<LabeledEndpoint>| {
                    let name = cluster_name(*number, subset, &fqdn);
                    let endpoints = endpoints.into_iter().map(|e| e.endpoint).collect();
                    let cluster = Cluster {
                        name: name.clone(),
                        service: fqdn.clone(),
                        namespace: key.namespace.clone(),
                        export_to: export_to.clone(),
                        port: *number,
                        subset: subset.map(str::to_string),
                        policy,
                        endpoints,
                        external_name: external_name.clone(),
                        http2: speaks_http2(port),
                        origins: origins.clone(),
                    };
                    clusters.insert(name, cluster);
                };
            // Subsets select workloads by label; an ExternalName service has none.
            let subsets = rule
                .iter()
                .filter(|_| external_name.is_none())
                .flat_map(|dr| dr.spec.subsets.iter());
            for subset in subsets {
                let members = all
                    .iter()
                    .filter(|e| {
                        subset
                            .labels
                            .iter()
                            .all(|(k, v)| e.labels.get(k) == Some(v))
                    })
                    .cloned()
                    .collect();
                let resolved =
                    cluster_policy::resolve(policy, subset.traffic_policy.as_ref(), *number);
                add(Some(&subset.name), resolved, members);
            }
            add(None, cluster_policy::resolve(policy, None, *number), all);
        }
        let default_port = if numbers.contains(&80) {
            80
        } else {
            *numbers.iter().min().expect("ports is not empty")
        };
        if external_name.is_some() && rule.is_some_and(|dr| !dr.spec.subsets.is_empty()) {
            diagnostics.push(Diagnostic::warning(
                rule_key.expect("a rule has a key"),
                "spec.subsets",
                format!("{} is an ExternalName service: subsets select workloads by label and do not apply", key),
            ));
        }
        let subsets = rule
            .iter()
            .filter(|_| external_name.is_none())
            .flat_map(|dr| dr.spec.subsets.iter().map(|s| s.name.clone()))
            .collect();
        infos.insert(
            fqdn,
            ServiceInfo {
                export_to,
                key: key.clone(),
                ports: numbers,
                default_port,
                subsets,
            },
        );
    }

    let virtual_hosts = routes::virtual_hosts(&infos, &virtual_services, &mut diagnostics);
    diagnostics.sort();
    diagnostics.dedup();
    Ir {
        clusters,
        virtual_hosts,
        sidecars,
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
                format!("no Service has host {host:?}"),
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

/// Istio's protocol selection for a service port: `appProtocol` first, then
/// the port name (`grpc`, `http2` and `h2c`, alone or as a `<protocol>-<suffix>`
/// prefix; `grpc-web` stays HTTP/1.1).
fn speaks_http2(port: &k8s_openapi::api::core::v1::ServicePort) -> bool {
    let named = |p: &str| {
        let p = p.to_ascii_lowercase();
        let protocol = p.split('-').next().unwrap_or("");
        matches!(protocol, "grpc" | "http2" | "h2c") && !p.starts_with("grpc-web")
    };
    match port.app_protocol.as_deref() {
        Some(app) => named(app) || app.eq_ignore_ascii_case("kubernetes.io/h2c"),
        None => port.name.as_deref().is_some_and(named),
    }
}
