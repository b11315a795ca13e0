//! The service registry routing works on: Kubernetes Services and the hosts
//! of ServiceEntries, each with its ports and where its endpoints come from.

use super::endpoints::{self, LabeledEndpoint, Labels, Workloads};
use super::names::service_fqdn;
use super::{DnsLookup, ExportTo, Protocol};
use crate::diagnostic::Diagnostic;
use crate::model::{ObjectKey, Resolution, ServiceEntry, ServiceEntryPort, ServiceEntrySpec};
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// One service as routing sees it.
pub(super) struct MeshService<'a> {
    /// The object it comes from.
    pub key: &'a ObjectKey,
    /// Lower-case FQDN (Service) or host as written (ServiceEntry).
    pub fqdn: String,
    /// Namespaces that see it.
    pub export_to: ExportTo,
    /// The object's creation time, for precedence.
    pub created: Option<Time>,
    /// Whether Kubernetes' short names reach it.
    pub short_names: bool,
    /// Ports in spec order.
    pub ports: Vec<MeshPort<'a>>,
    /// Where endpoints come from.
    pub backing: Backing<'a>,
}

/// One port of a [`MeshService`].
#[derive(Clone, Copy)]
pub(super) struct MeshPort<'a> {
    /// The port clients use.
    pub number: u16,
    /// What it speaks.
    pub protocol: Protocol,
    /// The Kubernetes port it comes from, if any.
    pub service_port: Option<&'a ServicePort>,
    /// The ServiceEntry port it comes from, if any.
    pub entry_port: Option<&'a ServiceEntryPort>,
}

/// Where a service's endpoints come from.
pub(super) enum Backing<'a> {
    /// EndpointSlices, or the Pods and WorkloadEntries its selector matches.
    Service(&'a Service),
    /// An ExternalName service: this DNS name.
    ExternalName(String),
    /// A ServiceEntry.
    Entry(&'a ServiceEntrySpec),
}

/// The endpoints of one port, before subsets narrow them (labels borrowed
/// from the world).
pub(super) enum Members<'a> {
    /// IP endpoints, sent over EDS.
    Eds(Vec<LabeledEndpoint<'a>>),
    /// Names Envoy resolves, each with the labels of its endpoint; `None`
    /// for the service's own host name (NONE, DNS without endpoints,
    /// ExternalName), which every subset keeps: it stands for wherever the
    /// client was going, as Istio's passthrough subsets do.
    Dns(DnsLookup, Vec<(String, u16, Option<&'a Labels>)>),
}

impl<'a> Members<'a> {
    /// The members whose labels carry every label of `selector`.
    pub fn select(&self, selector: &BTreeMap<String, String>) -> Members<'a> {
        let has = |labels: &Labels| selector.iter().all(|(k, v)| labels.get(k) == Some(v));
        match self {
            Members::Eds(all) => {
                Members::Eds(all.iter().filter(|e| has(e.labels)).cloned().collect())
            }
            Members::Dns(lookup, all) => {
                let keep = |t: &&(String, u16, Option<&Labels>)| t.2.is_none_or(has);
                Members::Dns(*lookup, all.iter().filter(keep).cloned().collect())
            }
        }
    }
}

/// Every Service and ServiceEntry host, by FQDN. A host defined twice keeps
/// its first definition: a Kubernetes Service before any ServiceEntry, then
/// the oldest ServiceEntry (creation time, then namespace/name); the others
/// get an error naming the owner.
pub(super) fn registry<'a>(
    services: &[(&'a ObjectKey, &'a Service)],
    entries: &[(&'a ObjectKey, &'a ServiceEntry)],
    diagnostics: &mut Vec<Diagnostic>,
) -> BTreeMap<String, MeshService<'a>> {
    let mut out: BTreeMap<String, MeshService<'a>> = BTreeMap::new();
    for (key, svc) in services {
        if let Some(service) = kubernetes_service(key, svc, diagnostics) {
            out.insert(service.fqdn.clone(), service);
        }
    }
    let mut ordered = entries.to_vec();
    ordered.sort_by_key(|(key, se)| (se.metadata.creation_timestamp.clone(), (*key).clone()));
    for (key, entry) in ordered {
        let spec = &entry.spec;
        let ports: Vec<MeshPort<'a>> = spec
            .ports
            .iter()
            .filter_map(|p| {
                let protocol = match &p.protocol {
                    Some(name) => Protocol::from_istio_name(name)?,
                    None => Protocol::from_port_name(&p.name).unwrap_or(Protocol::Tcp),
                };
                Some(MeshPort {
                    number: u16::try_from(p.number).ok().filter(|n| *n > 0)?,
                    protocol,
                    service_port: None,
                    entry_port: Some(p),
                })
            })
            .collect();
        for (i, host) in spec.hosts.iter().enumerate() {
            let fqdn = host.trim_end_matches('.').to_ascii_lowercase();
            if let Some(owner) = out.get(&fqdn) {
                diagnostics.push(Diagnostic::error(
                    key,
                    format!("spec.hosts[{i}]"),
                    format!(
                        "host {fqdn} is already defined by {}; this entry is ignored for it",
                        owner.key
                    ),
                ));
                continue;
            }
            let ports = ports.clone();
            out.insert(
                fqdn.clone(),
                MeshService {
                    key,
                    fqdn,
                    export_to: ExportTo::parse(
                        spec.export_to.iter().map(String::as_str),
                        &key.namespace,
                    ),
                    created: entry.metadata.creation_timestamp.clone(),
                    short_names: false,
                    ports,
                    backing: Backing::Entry(spec),
                },
            );
        }
    }
    out
}

fn kubernetes_service<'a>(
    key: &'a ObjectKey,
    svc: &'a Service,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<MeshService<'a>> {
    let spec = svc.spec.as_ref();
    // An ExternalName service is a DNS name (validated on load); its
    // clusters resolve it instead of taking endpoints.
    let backing = match spec.and_then(|s| s.type_.as_deref()) {
        Some("ExternalName") => {
            let name = spec
                .and_then(|s| s.external_name.as_deref())
                .filter(|n| !n.is_empty())?;
            Backing::ExternalName(name.trim_end_matches('.').to_ascii_lowercase())
        }
        _ => Backing::Service(svc),
    };
    let ports: Vec<MeshPort<'a>> = spec
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| {
            Some(MeshPort {
                number: u16::try_from(p.port).ok().filter(|n| *n > 0)?,
                protocol: Protocol::of_service_port(p.name.as_deref(), p.app_protocol.as_deref()),
                service_port: Some(p),
                entry_port: None,
            })
        })
        .collect();
    if ports.is_empty() {
        diagnostics.push(Diagnostic::warning(
            key,
            "spec.ports",
            "no TCP port: the service gets no cluster",
        ));
        return None;
    }
    let export_to = ExportTo::parse(
        svc.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(super::scope::EXPORT_TO_ANNOTATION))
            .map(|v| v.split(',').collect::<Vec<_>>())
            .unwrap_or_default(),
        &key.namespace,
    );
    Some(MeshService {
        key,
        fqdn: service_fqdn(&key.name, &key.namespace),
        export_to,
        created: svc.metadata.creation_timestamp.clone(),
        short_names: true,
        ports,
        backing,
    })
}

impl<'a> MeshService<'a> {
    /// The endpoints of `port`, before subsets.
    pub fn members(
        &self,
        port: &MeshPort<'a>,
        workloads: &Workloads<'a>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Members<'a> {
        match &self.backing {
            Backing::Service(svc) => {
                let service_port = port.service_port.expect("a Service port");
                Members::Eds(endpoints::for_port(
                    self.key,
                    svc,
                    service_port,
                    workloads,
                    diagnostics,
                ))
            }
            Backing::ExternalName(name) => Members::Dns(
                DnsLookup::StrictDns,
                vec![(name.clone(), port.number, None)],
            ),
            Backing::Entry(spec) => entry_members(
                self.key,
                &self.fqdn,
                spec,
                port.entry_port.expect("an entry port"),
                workloads,
            ),
        }
    }

    /// Whether DestinationRule subsets (label selections) apply.
    pub fn has_workloads(&self) -> bool {
        !matches!(self.backing, Backing::ExternalName(_))
    }
}

/// A ServiceEntry port's endpoints, by the entry's resolution (Istio's
/// semantics; see [`Resolution`] for NONE without traffic capture).
fn entry_members<'a>(
    key: &ObjectKey,
    host: &str,
    spec: &'a ServiceEntrySpec,
    port: &ServiceEntryPort,
    workloads: &Workloads<'a>,
) -> Members<'a> {
    let default_target = port.target_port.unwrap_or(port.number);
    let target = |ports: &BTreeMap<String, u32>| {
        let number = ports.get(&port.name).copied().unwrap_or(default_target);
        u16::try_from(number).unwrap_or(0)
    };
    let dns = |lookup| {
        let targets = if spec.endpoints.is_empty() {
            vec![(host.to_string(), target(&BTreeMap::new()), None)]
        } else {
            spec.endpoints
                .iter()
                .map(|e| {
                    (
                        e.address.to_ascii_lowercase(),
                        target(&e.ports),
                        Some(&e.labels),
                    )
                })
                .collect()
        };
        // A wildcard cannot be resolved (validation rejects it; never send it).
        let targets = targets
            .into_iter()
            .filter(|t| !t.0.starts_with('*') && t.1 > 0)
            .collect();
        Members::Dns(lookup, targets)
    };
    match spec.resolution.unwrap_or(Resolution::NONE) {
        Resolution::NONE => Members::Dns(
            DnsLookup::LogicalDns,
            vec![(host.to_string(), target(&BTreeMap::new()), None)]
                .into_iter()
                .filter(|t| !t.0.starts_with('*'))
                .collect(),
        ),
        Resolution::DNS => dns(DnsLookup::StrictDns),
        Resolution::DNS_ROUND_ROBIN => dns(DnsLookup::LogicalDns),
        Resolution::STATIC => match &spec.workload_selector {
            Some(selector) => {
                let service_port = ServicePort {
                    name: Some(port.name.clone()),
                    port: i32::from(u16::try_from(port.number).unwrap_or(0)),
                    target_port: Some(IntOrString::Int(default_target as i32)),
                    ..Default::default()
                };
                Members::Eds(endpoints::canonical(endpoints::selected(
                    &key.namespace,
                    &selector.labels,
                    &service_port,
                    workloads,
                )))
            }
            None => Members::Eds(endpoints::canonical(
                spec.endpoints
                    .iter()
                    .filter_map(|e| {
                        Some(LabeledEndpoint {
                            endpoint: super::Endpoint {
                                address: e.address.parse().ok()?,
                                port: Some(target(&e.ports)).filter(|p| *p > 0)?,
                                state: super::EndpointState::Ready,
                                mesh: None,
                            },
                            labels: &e.labels,
                        })
                    })
                    .collect(),
            )),
        },
    }
}
