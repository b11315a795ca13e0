//! Which workloads have a sidecar (are "in the mesh"), who they are, and
//! how their inbound side takes connections (PeerAuthentication).

use super::endpoints::Labels;
use super::Endpoint;
use crate::model::{MtlsMode, ObjectKey, PeerAuthentication, WorkloadEntry};
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Label that marks a workload with a sidecar that speaks mutual TLS
/// (Istio's: its injector sets `security.istio.io/tlsMode: istio`).
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
/// Annotation with the port of a workload's sidecar inbound listener.
pub const INBOUND_PORT_ANNOTATION: &str = "sidecar.sextant.dev/inbound-port";
/// The inbound listener's port when the annotation is absent (Istio's).
pub const DEFAULT_INBOUND_PORT: u16 = 15006;

/// A Pod or WorkloadEntry: an identity and addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// The object.
    pub origin: ObjectKey,
    /// Its namespace.
    pub namespace: String,
    /// Its service account (`default` when unset).
    pub service_account: String,
    /// Its IP.
    pub address: IpAddr,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The inbound port of its sidecar, when it has one (label
    /// [`TLS_MODE_LABEL`] = `istio`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar_port: Option<u16>,
}

impl Workload {
    /// `ns/<namespace>/sa/<service account>`: the path of its SPIFFE ID.
    pub fn identity(&self) -> String {
        format!("ns/{}/sa/{}", self.namespace, self.service_account)
    }
}

/// An endpoint's sidecar: traffic goes to its inbound port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MeshEndpoint {
    /// `ns/<namespace>/sa/<service account>` of the workload.
    pub identity: String,
    /// The application's own port behind the sidecar (the target port).
    pub target_port: u16,
}

/// How a workload's inbound side takes connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PeerMode {
    /// Plaintext only.
    Disable,
    /// Mutual TLS and plaintext (the default, as in Istio).
    Permissive,
    /// Mutual TLS only.
    Strict,
}

/// A resolved PeerAuthentication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerAuthn {
    /// The object.
    pub origin: ObjectKey,
    /// Labels it selects; `None`: its whole namespace.
    pub selector: Option<BTreeMap<String, String>>,
    /// Mode for all ports; `None` (UNSET) inherits.
    pub mode: Option<PeerMode>,
    /// Modes by workload port.
    pub ports: BTreeMap<u16, PeerMode>,
    /// Creation time, for precedence among equals.
    pub created: String,
}

fn mode(m: MtlsMode) -> Option<PeerMode> {
    match m {
        MtlsMode::UNSET => None,
        MtlsMode::DISABLE => Some(PeerMode::Disable),
        MtlsMode::PERMISSIVE => Some(PeerMode::Permissive),
        MtlsMode::STRICT => Some(PeerMode::Strict),
    }
}

/// Resolves PeerAuthentications (already validated).
pub(super) fn peer_authentications(list: &[(&ObjectKey, &PeerAuthentication)]) -> Vec<PeerAuthn> {
    let mut out: Vec<PeerAuthn> = list
        .iter()
        .map(|(key, pa)| PeerAuthn {
            origin: (*key).clone(),
            selector: pa.spec.selector.as_ref().map(|s| s.match_labels.clone()),
            mode: pa.spec.mtls.as_ref().and_then(|m| mode(m.mode)),
            ports: pa
                .spec
                .port_level_mtls
                .iter()
                .filter_map(|(p, m)| Some((p.parse().ok()?, mode(m.mode)?)))
                .collect(),
            created: pa
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
        })
        .collect();
    out.sort_by(|a, b| (&a.created, &a.origin).cmp(&(&b.created, &b.origin)));
    out
}

/// The mode of `port` of a workload in `namespace` with `labels`, as Istio
/// decides it: the oldest policy selecting the workload (its port-level
/// mode first), then the namespace's policy, then the mesh-wide one in
/// `root_namespace`; UNSET inherits; PERMISSIVE when nothing says.
pub fn peer_mode(
    all: &[PeerAuthn],
    namespace: &str,
    labels: &BTreeMap<String, String>,
    port: u16,
    root_namespace: &str,
) -> PeerMode {
    let selects = |p: &&PeerAuthn| {
        p.selector
            .as_ref()
            .is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    };
    let workload = all
        .iter()
        .filter(|p| p.origin.namespace == namespace)
        .find(selects);
    let namespace_wide = all
        .iter()
        .find(|p| p.origin.namespace == namespace && p.selector.is_none());
    let mesh_wide = all
        .iter()
        .find(|p| p.origin.namespace == root_namespace && p.selector.is_none());
    workload
        .and_then(|p| p.ports.get(&port).copied().or(p.mode))
        .or_else(|| namespace_wide.and_then(|p| p.mode))
        .or_else(|| mesh_wide.and_then(|p| p.mode))
        .unwrap_or(PeerMode::Permissive)
}

/// Workloads by address, in a persistent map (an IR patched for a change
/// of workloads shares the unchanged part with the IR before).
pub type ByAddress = imbl::OrdMap<IpAddr, Arc<Workload>>;

/// Every Pod (with an IP) and WorkloadEntry, by address. Two workloads with
/// one address are an error on the later one; the one with a sidecar is kept
/// (so a second entry can never route traffic around a sidecar).
pub(super) fn workloads(
    pods: &BTreeMap<(String, String), &Pod>,
    entries: &[(&ObjectKey, &WorkloadEntry)],
    diagnostics: &mut Vec<crate::diagnostic::Diagnostic>,
) -> ByAddress {
    let sidecar = |labels: &Labels, annotations: Option<&BTreeMap<String, String>>| {
        (labels.get(TLS_MODE_LABEL).map(String::as_str) == Some("istio")).then(|| {
            annotations
                .and_then(|a| a.get(INBOUND_PORT_ANNOTATION))
                .and_then(|p| p.parse().ok())
                .filter(|p| *p > 0)
                .unwrap_or(DEFAULT_INBOUND_PORT)
        })
    };
    let mut out = ByAddress::new();
    for ((namespace, name), pod) in pods {
        let Some(address) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok())
        else {
            continue;
        };
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        out.insert(
            address,
            Arc::new(Workload {
                origin: ObjectKey {
                    kind: crate::model::Kind::Pod,
                    namespace: namespace.clone(),
                    name: name.clone(),
                },
                namespace: namespace.clone(),
                service_account: pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.clone())
                    .unwrap_or_else(|| "default".into()),
                address,
                sidecar_port: sidecar(&labels, pod.metadata.annotations.as_ref()),
                labels,
            }),
        );
    }
    for (key, entry) in entries {
        let Ok(address) = entry.spec.address.parse() else {
            continue;
        };
        let workload = Workload {
            origin: (*key).clone(),
            namespace: key.namespace.clone(),
            service_account: entry
                .spec
                .service_account
                .clone()
                .unwrap_or_else(|| "default".into()),
            address,
            sidecar_port: sidecar(&entry.spec.labels, entry.metadata.annotations.as_ref()),
            labels: entry.spec.labels.clone(),
        };
        match out.get(&address) {
            None => {
                out.insert(address, Arc::new(workload));
            }
            Some(existing) => {
                diagnostics.push(crate::diagnostic::Diagnostic::error(
                    key,
                    "spec.address",
                    format!(
                        "{address} is already the address of {}; two workloads cannot share an IP (the one with a sidecar is kept)",
                        existing.origin
                    ),
                ));
                if existing.sidecar_port.is_none() && workload.sidecar_port.is_some() {
                    out.insert(address, Arc::new(workload));
                }
            }
        }
    }
    out
}

/// Points an endpoint of a workload with a sidecar at the sidecar's
/// inbound port, remembering the application port and the identity.
pub(super) fn through_sidecar(endpoint: &mut Endpoint, workloads: &ByAddress) {
    let Some(w) = workloads.get(&endpoint.address) else {
        return;
    };
    let Some(inbound) = w.sidecar_port else {
        return;
    };
    endpoint.mesh = Some(MeshEndpoint {
        identity: w.identity(),
        target_port: endpoint.port,
    });
    endpoint.port = inbound;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    fn policy(
        namespace: &str,
        name: &str,
        selector: Option<&[(&str, &str)]>,
        mode: Option<PeerMode>,
        ports: &[(u16, PeerMode)],
    ) -> PeerAuthn {
        PeerAuthn {
            origin: ObjectKey {
                kind: Kind::PeerAuthentication,
                namespace: namespace.into(),
                name: name.into(),
            },
            selector: selector.map(|s| {
                s.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            mode,
            ports: ports.iter().copied().collect(),
            created: String::new(),
        }
    }

    #[test]
    fn the_most_specific_peer_authentication_decides_and_unset_inherits() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "db".to_string())].into();
        let mode = |all: &[PeerAuthn], port| peer_mode(all, "shop", &labels, port, "istio-system");
        assert_eq!(mode(&[], 80), PeerMode::Permissive, "Istio's default");
        let mesh = policy("istio-system", "default", None, Some(PeerMode::Strict), &[]);
        assert_eq!(mode(std::slice::from_ref(&mesh), 80), PeerMode::Strict);
        let namespace = policy("shop", "default", None, Some(PeerMode::Disable), &[]);
        assert_eq!(
            mode(&[mesh.clone(), namespace.clone()], 80),
            PeerMode::Disable
        );
        // A workload policy with UNSET mode inherits, except on its own ports.
        let workload = policy(
            "shop",
            "db",
            Some(&[("app", "db")]),
            None,
            &[(5432, PeerMode::Strict)],
        );
        let all = [mesh.clone(), namespace.clone(), workload];
        assert_eq!(mode(&all, 80), PeerMode::Disable);
        assert_eq!(mode(&all, 5432), PeerMode::Strict);
        // A selector that does not match, or another namespace's policy, does nothing.
        let other = policy(
            "shop",
            "web",
            Some(&[("app", "web")]),
            Some(PeerMode::Strict),
            &[],
        );
        let elsewhere = policy("other", "default", None, Some(PeerMode::Strict), &[]);
        assert_eq!(mode(&[namespace, other, elsewhere], 80), PeerMode::Disable);
    }
}
