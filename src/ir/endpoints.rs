//! Endpoints of a service port, from EndpointSlices or, when a Service has
//! none, from the Pods and WorkloadEntries its selector matches (what the
//! Kubernetes endpoints controller would produce).

use super::{Endpoint, EndpointState};
use crate::diagnostic::Diagnostic;
use crate::model::{ObjectKey, WorkloadEntry};
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// Workload labels (Pod or WorkloadEntry labels).
pub(super) type Labels = BTreeMap<String, String>;

/// No labels, for endpoints without a workload.
pub(super) static NO_LABELS: Labels = BTreeMap::new();

/// An endpoint with the labels of the workload behind it (for subsets),
/// borrowed from the world.
#[derive(Clone, Debug)]
pub(super) struct LabeledEndpoint<'a> {
    pub endpoint: Endpoint,
    pub labels: &'a Labels,
}

/// The objects endpoint resolution reads, for one namespace's services.
pub(super) struct Workloads<'a> {
    /// EndpointSlices by (namespace, service name), each with its key.
    pub slices: BTreeMap<(String, String), Vec<(&'a ObjectKey, &'a EndpointSlice)>>,
    /// Pods by (namespace, name).
    pub pods: BTreeMap<(String, String), &'a Pod>,
    /// WorkloadEntries with their keys, sorted by key (so by namespace).
    pub workload_entries: Vec<(&'a ObjectKey, &'a WorkloadEntry)>,
    /// Pods and WorkloadEntries by namespace and label, for selectors
    /// (built by [`Workloads::index`]).
    by_namespace: HashMap<String, NamespaceWorkloads<'a>>,
}

/// A Pod or WorkloadEntry that a selector may pick.
#[derive(Clone, Copy)]
enum Member<'a> {
    Pod(&'a Pod),
    Entry(&'a WorkloadEntry),
}

/// The workloads of one namespace in the order selection yields them (Pods
/// by name, then WorkloadEntries by name), with an index of their labels.
#[derive(Default)]
struct NamespaceWorkloads<'a> {
    members: Vec<Member<'a>>,
    /// Positions in `members` of the workloads with each label, ascending.
    by_label: HashMap<(&'a str, &'a str), Vec<usize>>,
}

impl<'a> Workloads<'a> {
    /// No objects yet.
    pub fn new() -> Self {
        Workloads {
            slices: BTreeMap::new(),
            pods: BTreeMap::new(),
            workload_entries: Vec::new(),
            by_namespace: HashMap::new(),
        }
    }

    /// Sorts the WorkloadEntries and indexes every workload by namespace
    /// and label: call once, after adding every object. A selector then
    /// costs the workloads that carry its rarest label, not a scan of the
    /// namespace per service port.
    pub fn index(&mut self) {
        self.workload_entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut by_namespace: HashMap<String, NamespaceWorkloads<'a>> = HashMap::new();
        let pods = self
            .pods
            .iter()
            .map(|((namespace, _), pod)| (namespace, Member::Pod(pod)));
        let entries = self
            .workload_entries
            .iter()
            .map(|(key, entry)| (&key.namespace, Member::Entry(entry)));
        for (namespace, member) in pods.chain(entries) {
            let workloads = match by_namespace.get_mut(namespace.as_str()) {
                Some(w) => w,
                None => by_namespace.entry(namespace.clone()).or_default(),
            };
            let position = workloads.members.len();
            workloads.members.push(member);
            for (k, v) in member.labels().into_iter().flatten() {
                workloads
                    .by_label
                    .entry((k.as_str(), v.as_str()))
                    .or_default()
                    .push(position);
            }
        }
        self.by_namespace = by_namespace;
    }

    /// The workloads of `namespace` whose labels carry every label of
    /// `selector`, in namespace order (Pods by name, then WorkloadEntries).
    fn selecting(&self, namespace: &str, selector: &BTreeMap<String, String>) -> Vec<Member<'a>> {
        let Some(workloads) = self.by_namespace.get(namespace) else {
            return Vec::new();
        };
        let matching = |m: &&Member<'a>| selects(selector, m.labels());
        // Only the workloads with the selector's rarest label need a check.
        let mut rarest: Option<&Vec<usize>> = None;
        for (k, v) in selector {
            match workloads.by_label.get(&(k.as_str(), v.as_str())) {
                None => return Vec::new(),
                Some(list) if rarest.is_none_or(|r| list.len() < r.len()) => rarest = Some(list),
                Some(_) => {}
            }
        }
        match rarest {
            Some(positions) => positions
                .iter()
                .map(|i| &workloads.members[*i])
                .filter(matching)
                .copied()
                .collect(),
            None => workloads.members.iter().filter(matching).copied().collect(),
        }
    }
}

impl<'a> Member<'a> {
    fn labels(self) -> Option<&'a Labels> {
        match self {
            Member::Pod(pod) => pod.metadata.labels.as_ref(),
            Member::Entry(entry) => Some(&entry.spec.labels),
        }
    }
}

/// Resolves the endpoints of `port` of service `svc` (key `svc_key`).
pub(super) fn for_port<'a>(
    svc_key: &ObjectKey,
    svc: &Service,
    port: &ServicePort,
    workloads: &Workloads<'a>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<LabeledEndpoint<'a>> {
    let slices = workloads
        .slices
        .get(&(svc_key.namespace.clone(), svc_key.name.clone()));
    let out = match slices {
        Some(slices) => from_slices(svc_key, port, slices, workloads, diagnostics),
        None => match svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .filter(|s| !s.is_empty())
        {
            Some(selector) => selected(&svc_key.namespace, selector, port, workloads),
            None => Vec::new(),
        },
    };
    canonical(out)
}

/// Sorted by address and port, one endpoint per address and port; the
/// healthiest state wins (Ready sorts first).
pub(super) fn canonical(mut out: Vec<LabeledEndpoint<'_>>) -> Vec<LabeledEndpoint<'_>> {
    out.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    out.dedup_by(|b, a| {
        (a.endpoint.address, a.endpoint.port) == (b.endpoint.address, b.endpoint.port)
    });
    out
}

fn same_port_name(a: Option<&str>, b: Option<&str>) -> bool {
    a.unwrap_or("") == b.unwrap_or("")
}

fn from_slices<'a>(
    svc_key: &ObjectKey,
    port: &ServicePort,
    slices: &[(&ObjectKey, &EndpointSlice)],
    workloads: &Workloads<'a>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<LabeledEndpoint<'a>> {
    let mut out = Vec::new();
    for (slice_key, slice) in slices {
        // The slice's port for this service port: same name (unnamed = "").
        let slice_port = slice
            .ports
            .iter()
            .flatten()
            .find(|p| same_port_name(p.name.as_deref(), port.name.as_deref()))
            .and_then(|p| p.port);
        let Some(target) = slice_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
        else {
            continue;
        };
        for (i, endpoint) in slice.endpoints.iter().flatten().enumerate() {
            let labels = pod_reference(endpoint)
                .and_then(|r| {
                    let ns = r
                        .namespace
                        .clone()
                        .unwrap_or_else(|| svc_key.namespace.clone());
                    workloads.pods.get(&(ns, r.name.clone()?))
                })
                .and_then(|pod| pod.metadata.labels.as_ref())
                .unwrap_or(&NO_LABELS);
            let state = slice_state(endpoint.conditions.as_ref());
            for (j, address) in endpoint.addresses.iter().enumerate() {
                match address.parse::<IpAddr>() {
                    Ok(address) => out.push(LabeledEndpoint {
                        endpoint: Endpoint {
                            address,
                            port: target,
                            state,
                            mesh: None,
                        },
                        labels,
                    }),
                    Err(_) => diagnostics.push(Diagnostic::warning(
                        slice_key,
                        format!("endpoints[{i}].addresses[{j}]"),
                        format!("{address:?} is not an IP address; the endpoint is ignored (FQDN slices are not supported)"),
                    )),
                }
            }
        }
    }
    out
}

/// The Pod an EndpointSlice endpoint names, if its `targetRef` is a Pod
/// (a reference of any other kind decides nothing: its labels are not
/// read).
pub(super) fn pod_reference(
    endpoint: &k8s_openapi::api::discovery::v1::Endpoint,
) -> Option<&k8s_openapi::api::core::v1::ObjectReference> {
    endpoint
        .target_ref
        .as_ref()
        .filter(|r| r.kind.as_deref() == Some("Pod"))
}

/// Kubernetes' EndpointSlice conditions: `ready` absent means ready;
/// `serving` absent means the same as `ready`.
fn slice_state(conditions: Option<&EndpointConditions>) -> EndpointState {
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
    if ready {
        EndpointState::Ready
    } else if serving {
        EndpointState::ServingTerminating
    } else {
        EndpointState::NotServing
    }
}

fn selects(selector: &BTreeMap<String, String>, labels: Option<&Labels>) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The Pods and WorkloadEntries of `namespace` whose labels carry every
/// label of `selector`, as endpoints of `port` (what the Kubernetes
/// endpoints controller derives from a Service's selector).
pub(super) fn selected<'a>(
    namespace: &str,
    selector: &BTreeMap<String, String>,
    port: &ServicePort,
    workloads: &Workloads<'a>,
) -> Vec<LabeledEndpoint<'a>> {
    let mut out = Vec::new();
    // Only the namespace's workloads that carry the selector's labels, from
    // the index (a scan per service port made the IR build quadratic).
    for member in workloads.selecting(namespace, selector) {
        match member {
            Member::Pod(pod) => {
                let Some(address) = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.as_deref())
                    .and_then(|ip| ip.parse().ok())
                else {
                    continue;
                };
                let Some(target) = pod_target_port(pod, port) else {
                    continue;
                };
                out.push(LabeledEndpoint {
                    endpoint: Endpoint {
                        address,
                        port: target,
                        state: pod_state(pod),
                        mesh: None,
                    },
                    labels: pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS),
                });
            }
            Member::Entry(entry) => {
                let Ok(address) = entry.spec.address.parse() else {
                    continue;
                };
                let by_name =
                    |name: Option<&str>| name.and_then(|n| entry.spec.ports.get(n)).copied();
                let target = by_name(port.name.as_deref())
                    .or_else(|| match &port.target_port {
                        Some(IntOrString::String(name)) => by_name(Some(name)),
                        Some(IntOrString::Int(n)) => u32::try_from(*n).ok(),
                        None => None,
                    })
                    .or_else(|| u32::try_from(port.port).ok());
                let Some(target) = target.and_then(|p| u16::try_from(p).ok()) else {
                    continue;
                };
                out.push(LabeledEndpoint {
                    endpoint: Endpoint {
                        address,
                        port: target,
                        state: EndpointState::Ready,
                        mesh: None,
                    },
                    labels: &entry.spec.labels,
                });
            }
        }
    }
    out
}

/// The Pod's port for a service port: a numeric targetPort as is, a named one
/// looked up in the Pod's container ports, none → the service port.
fn pod_target_port(pod: &Pod, port: &ServicePort) -> Option<u16> {
    let number = match &port.target_port {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(name)) => {
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name.as_str()))?
                .container_port
        }
        None => port.port,
    };
    u16::try_from(number).ok().filter(|p| *p > 0)
}

/// A Pod's state as the endpoints controller derives it: its Ready condition
/// (absent → ready, for hand-written Pods), and terminating once
/// `deletionTimestamp` is set.
fn pod_state(pod: &Pod) -> EndpointState {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_none_or(|c| c.status == "True");
    match (ready, pod.metadata.deletion_timestamp.is_some()) {
        (true, false) => EndpointState::Ready,
        (true, true) => EndpointState::ServingTerminating,
        (false, _) => EndpointState::NotServing,
    }
}
