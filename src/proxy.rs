//! Who a connected proxy is, from its Envoy `node`.
//!
//! `sextant bootstrap` writes these metadata keys; a hand-written bootstrap
//! may leave any of them out and gets the defaults below.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{value::Kind as ValueKind, Struct, Value};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Node metadata key: the workload's namespace (default `default`).
pub const META_NAMESPACE: &str = "NAMESPACE";
/// Node metadata key: the workload's labels, a string map.
pub const META_LABELS: &str = "LABELS";
/// Node metadata key: the workload's service account (default `default`).
pub const META_SERVICE_ACCOUNT: &str = "SERVICE_ACCOUNT";
/// Node metadata key: the workload's IPs, comma-separated (Istio's form).
pub const META_INSTANCE_IPS: &str = "INSTANCE_IPS";
/// Node metadata key: IP the outbound listener binds (default 127.0.0.1).
pub const META_OUTBOUND_ADDRESS: &str = "OUTBOUND_ADDRESS";
/// Node metadata key: `grpc` marks a proxyless gRPC client (Istio's convention).
pub const META_GENERATOR: &str = "GENERATOR";
/// Node metadata key: port of the outbound listener, as a string (default 15001).
pub const META_OUTBOUND_PORT: &str = "OUTBOUND_PORT";
/// Node metadata key: port of the inbound listener in front of the app, as
/// a string (default 15006, Istio's), bound on the first instance IP.
pub const META_INBOUND_PORT: &str = "INBOUND_PORT";
/// Node metadata key: port of Envoy's admin listener, as a string; no
/// listener is sent on it (absent: none is reserved).
pub const META_ADMIN_PORT: &str = "ADMIN_PORT";

/// Node metadata key: name of the bootstrap cluster that reaches Sextant's
/// gRPC access log service (`sextant bootstrap` writes it unless told
/// `--no-access-log-service`); absent: the proxy sends no access logs to Sextant.
pub const META_ACCESS_LOG_SERVICE: &str = "ACCESS_LOG_SERVICE";

/// Default outbound listener address: where apps send traffic (as `http_proxy`
/// or with a Host header).
pub const DEFAULT_OUTBOUND: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 15001);

/// A connected proxy's identity and settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProxyInfo {
    /// `node.id`, unique per workload (e.g. `<pod>.<namespace>`).
    pub node_id: String,
    /// `node.cluster`: the workload's service.
    pub cluster: String,
    /// Namespace of the workload.
    pub namespace: String,
    /// Labels of the workload.
    pub labels: BTreeMap<String, String>,
    /// Service account of the workload.
    pub service_account: String,
    /// IPs of the workload.
    pub instance_ips: Vec<IpAddr>,
    /// Address of the outbound HTTP listener.
    pub outbound: SocketAddr,
    /// Port of Envoy's admin listener, if the bootstrap says.
    pub admin_port: Option<u16>,
    /// Port of the inbound listener (on the first instance IP).
    pub inbound_port: u16,
    /// A gRPC application's own xDS client rather than an Envoy: it gets
    /// API listeners named after its targets instead of a socket listener.
    pub proxyless_grpc: bool,
    /// The bootstrap cluster that reaches Sextant's access log service, if
    /// the bootstrap has one: the proxy's HTTP listeners then stream their
    /// access logs to Sextant (for `sextant tap`).
    pub access_log_service: Option<String>,
}

/// A node that cannot be served, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The first request of a stream carried no node.
    #[error("the first request of the stream carries no node")]
    MissingNode,
    /// `node.id` is empty.
    #[error("node.id is empty")]
    MissingId,
    /// A metadata field has the wrong shape.
    #[error("node.metadata.{field}: {reason}")]
    BadMetadata {
        /// The metadata key.
        field: &'static str,
        /// Why it is wrong.
        reason: String,
    },
}

impl ProxyInfo {
    /// Reads a proxy's identity from its node.
    ///
    /// # Errors
    /// [`ProxyError`] when the node has no id or a metadata field has the wrong shape.
    pub fn from_node(node: Option<&Node>) -> Result<Self, ProxyError> {
        let node = node.ok_or(ProxyError::MissingNode)?;
        if node.id.is_empty() {
            return Err(ProxyError::MissingId);
        }
        let empty = Struct::default();
        let meta = node.metadata.as_ref().unwrap_or(&empty);
        let text = |key: &'static str| -> Result<Option<String>, ProxyError> {
            match meta.fields.get(key).and_then(|v| v.kind.as_ref()) {
                None | Some(ValueKind::NullValue(_)) => Ok(None),
                Some(ValueKind::StringValue(s)) => Ok(Some(s.clone())),
                Some(ValueKind::NumberValue(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(ProxyError::BadMetadata {
                    field: key,
                    reason: "expected a string".into(),
                }),
            }
        };
        let bad = |field: &'static str, reason: String| ProxyError::BadMetadata { field, reason };
        let labels = match meta.fields.get(META_LABELS).and_then(|v| v.kind.as_ref()) {
            None | Some(ValueKind::NullValue(_)) => BTreeMap::new(),
            Some(ValueKind::StructValue(s)) => s
                .fields
                .iter()
                .map(|(k, v)| match &v.kind {
                    Some(ValueKind::StringValue(s)) => Ok((k.clone(), s.clone())),
                    _ => Err(bad(META_LABELS, format!("label {k:?} is not a string"))),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad(META_LABELS, "expected a map of strings".into())),
        };
        let instance_ips = text(META_INSTANCE_IPS)?
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|_| bad(META_INSTANCE_IPS, format!("{s:?} is not an IP address")))
            })
            .collect::<Result<_, _>>()?;
        let address = match text(META_OUTBOUND_ADDRESS)? {
            Some(a) => a
                .parse()
                .map_err(|_| bad(META_OUTBOUND_ADDRESS, format!("{a:?} is not an IP address")))?,
            None => DEFAULT_OUTBOUND.ip(),
        };
        let port =
            match text(META_OUTBOUND_PORT)? {
                Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    bad(META_OUTBOUND_PORT, format!("{p:?} is not a port number"))
                })?,
                None => DEFAULT_OUTBOUND.port(),
            };
        let admin_port = match text(META_ADMIN_PORT)? {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad(META_ADMIN_PORT, format!("{p:?} is not a port number")))?,
            ),
            None => None,
        };
        let inbound_port = match text(META_INBOUND_PORT)? {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(META_INBOUND_PORT, format!("{p:?} is not a port number")))?,
            None => crate::ir::mesh::DEFAULT_INBOUND_PORT,
        };
        Ok(ProxyInfo {
            node_id: node.id.clone(),
            admin_port,
            inbound_port,
            cluster: node.cluster.clone(),
            namespace: text(META_NAMESPACE)?.unwrap_or_else(|| "default".into()),
            labels,
            service_account: text(META_SERVICE_ACCOUNT)?.unwrap_or_else(|| "default".into()),
            instance_ips,
            outbound: SocketAddr::new(address, port),
            access_log_service: text(META_ACCESS_LOG_SERVICE)?.filter(|c| !c.is_empty()),
            proxyless_grpc: text(META_GENERATOR)?.as_deref() == Some("grpc")
                || node
                    .user_agent_name
                    .to_ascii_lowercase()
                    .starts_with("grpc"),
        })
    }
}

/// Everything about a proxy that route, cluster and endpoint translation read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
///
/// Proxies of one class share those resources, computed once; the cache
/// derives the class from the proxy and the Sidecars of the IR. (Listeners
/// also depend on [`ProxyInfo::outbound`] and are built per proxy.)
pub struct ProxyClass {
    /// Namespace: short service names resolve in it, and `exportTo` is checked against it.
    pub namespace: String,
    /// `namespace/name` of the Sidecar that scopes the proxy, if any.
    pub sidecar: Option<String>,
    /// The proxy's labels that some route's `sourceLabels` names (only
    /// those, so that classes stay few): routes with source conditions are
    /// kept or left out per class.
    pub labels: BTreeMap<String, String>,
    /// Whether the proxy has a mesh certificate: its clusters to workloads
    /// with sidecars then originate mutual TLS.
    pub mtls: bool,
    /// The Telemetry whose selector picks the proxy's workload, if any (its
    /// access logs and tracer may differ from its namespace's).
    pub telemetry: Option<crate::model::ObjectKey>,
}

impl ProxyClass {
    /// The class of a workload in `namespace` with `labels`: the Sidecar
    /// that scopes it (see [`crate::ir::scope::sidecar_for`]) and the labels
    /// that routes of `ir` ask about.
    pub fn of(
        ir: &crate::ir::Ir,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        root_namespace: &str,
        mtls: bool,
    ) -> ProxyClass {
        let sidecar =
            crate::ir::scope::sidecar_for(&ir.sidecars, namespace, labels, root_namespace);
        ProxyClass {
            namespace: namespace.to_string(),
            sidecar: sidecar.map(|s| s.name.clone()),
            labels: labels
                .iter()
                .filter(|(k, _)| ir.source_label_keys.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            mtls,
            telemetry: crate::ir::telemetry::selecting(&ir.telemetries, namespace, labels)
                .map(|t| t.origin.clone()),
        }
    }

    /// The workload `proxy` claims to be, if the IR knows it: a Pod or
    /// WorkloadEntry at one of its instance IPs with its namespace and
    /// service account. The claim comes from node metadata and is not proven
    /// (no token review); see the README's trust model.
    pub fn workload<'a>(
        ir: &'a crate::ir::Ir,
        proxy: &ProxyInfo,
    ) -> Option<&'a crate::ir::mesh::Workload> {
        proxy
            .instance_ips
            .iter()
            .filter_map(|ip| ir.workloads.get(ip).map(|w| &**w))
            .find(|w| w.namespace == proxy.namespace && w.service_account == proxy.service_account)
    }

    /// Why `proxy` is not the workload it claims to be (so gets no mesh
    /// certificate), in words that name the claim and what the input says;
    /// `None` when [`ProxyClass::workload`] finds its workload.
    pub fn workload_mismatch(ir: &crate::ir::Ir, proxy: &ProxyInfo) -> Option<String> {
        if Self::workload(ir, proxy).is_some() {
            return None;
        }
        let claim = format!("ns/{}/sa/{}", proxy.namespace, proxy.service_account);
        if proxy.instance_ips.is_empty() {
            return Some(format!(
                "it claims {claim} but names no instance IP (node metadata INSTANCE_IPS), so no Pod or WorkloadEntry can vouch for it"
            ));
        }
        let found: Vec<String> = proxy
            .instance_ips
            .iter()
            .filter_map(|ip| ir.workloads.get(ip))
            .map(|w| format!("{} at {} is {}", w.origin, w.address, w.identity()))
            .collect();
        let ips = proxy
            .instance_ips
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Some(if found.is_empty() {
            format!("it claims {claim} at {ips}, but no Pod or WorkloadEntry has that IP")
        } else {
            format!("it claims {claim}, but {}", found.join("; "))
        })
    }
}

/// Builds a metadata `Value` holding a string.
pub fn string_value(s: impl Into<String>) -> Value {
    Value {
        kind: Some(ValueKind::StringValue(s.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::parse::parse_documents;
    use crate::store::Store;

    const WORLD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: default, labels: {app: reviews}}
spec: {serviceAccountName: reviews}
status: {podIP: 127.0.1.2}
"#;

    fn ir() -> crate::ir::Ir {
        let mut store = Store::new();
        store.apply("world.yaml", parse_documents("world.yaml", WORLD));
        crate::ir::build(&store.world().0)
    }

    fn proxy(service_account: &str, ips: &[&str]) -> ProxyInfo {
        let mut fields = BTreeMap::from([
            (META_NAMESPACE.to_string(), string_value("default")),
            (
                META_SERVICE_ACCOUNT.to_string(),
                string_value(service_account),
            ),
        ]);
        if !ips.is_empty() {
            fields.insert(META_INSTANCE_IPS.to_string(), string_value(ips.join(",")));
        }
        let node = Node {
            id: "reviews-v1.default".into(),
            metadata: Some(Struct {
                fields: fields.into_iter().collect(),
            }),
            ..Node::default()
        };
        ProxyInfo::from_node(Some(&node)).expect("valid node")
    }

    #[test]
    fn a_matching_claim_has_no_mismatch() {
        assert_eq!(
            ProxyClass::workload_mismatch(&ir(), &proxy("reviews", &["127.0.1.2"])),
            None
        );
    }

    #[test]
    fn a_mismatch_names_the_claim_and_what_the_input_says() {
        let ir = ir();
        let wrong_sa = ProxyClass::workload_mismatch(&ir, &proxy("ratings", &["127.0.1.2"]))
            .expect("mismatch");
        assert!(
            wrong_sa.contains("claims ns/default/sa/ratings")
                && wrong_sa
                    .contains("Pod default/reviews-v1 at 127.0.1.2 is ns/default/sa/reviews"),
            "{wrong_sa}"
        );
        let unknown_ip = ProxyClass::workload_mismatch(&ir, &proxy("reviews", &["127.0.1.9"]))
            .expect("mismatch");
        assert!(
            unknown_ip.contains("127.0.1.9") && unknown_ip.contains("no Pod or WorkloadEntry"),
            "{unknown_ip}"
        );
        let no_ip = ProxyClass::workload_mismatch(&ir, &proxy("reviews", &[])).expect("mismatch");
        assert!(no_ip.contains("INSTANCE_IPS"), "{no_ip}");
    }
}
