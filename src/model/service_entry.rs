use super::{WorkloadEntrySpec, WorkloadSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A service the platform does not know: an external API, a VM or a local
/// process, added to the mesh's registry. Istio's `ServiceEntry`, with its
/// field names and semantics
/// (<https://istio.io/latest/docs/reference/config/networking/service-entry/>).
///
/// Each host × port becomes a cluster `outbound|<port>||<host>`; HTTP ports
/// also become virtual hosts (`<host>` and `<host>:<port>`), TCP ports a TCP
/// listener like a Kubernetes Service's.
// Each `printcolumn(...)` repeats `type_`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "networking.sextant.dev",
    version = "v1alpha1",
    kind = "ServiceEntry",
    doc = "A service the platform does not know, added to the mesh registry (Istio's ServiceEntry, field-compatible subset).",
    namespaced,
    derive = "PartialEq",
    status = "super::ConfigStatus",
    shortname = "se",
    category = "sextant",
    printcolumn(
        name = "Hosts",
        type_ = "string",
        json_path = ".spec.hosts",
        description = "The hosts of the service"
    ),
    printcolumn(
        name = "Location",
        type_ = "string",
        json_path = ".spec.location",
        description = "Whether the service is part of the mesh"
    ),
    printcolumn(
        name = "Resolution",
        type_ = "string",
        json_path = ".spec.resolution",
        description = "How endpoints are found"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntrySpec {
    /// Host names: FQDNs or `*.suffix` wildcards (not with DNS resolution).
    #[schemars(length(min = 1))]
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDRs of the service; informational here, since
    /// proxies are addressed explicitly rather than by traffic capture.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Ports of the service (at least one; numbers and names unique).
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub ports: Vec<ServiceEntryPort>,
    /// Whether the service is part of the mesh (`MESH_INTERNAL`) or not
    /// (`MESH_EXTERNAL`, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How endpoints are found (default `NONE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// The service's endpoints (not with `workloadSelector` or `NONE`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntrySpec>,
    /// Pods and WorkloadEntries of the entry's namespace that serve it (not with `endpoints`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Namespaces that see the service (`*`, `.`, `~` or names; default all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Identities the service's workloads present (for mutual TLS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// One port of a ServiceEntry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntryPort {
    /// Port number clients use, 1-65535.
    #[schemars(range(min = 1, max = 65535))]
    pub number: u32,
    /// `HTTP`, `HTTP2`, `GRPC`, `HTTPS`, `TLS`, `TCP`, `MONGO`, `MYSQL`,
    /// `REDIS` (Istio's names, any case); default: chosen from the name's
    /// `<protocol>-` prefix, else TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port name, unique within the entry; endpoints map it to their own port.
    #[serde(default)]
    pub name: String,
    /// Port on the endpoints when they do not name one (default: `number`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub target_port: Option<u32>,
}

/// Istio's `ServiceEntry.Location`.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Location {
    /// Outside the mesh: no sidecar, no mesh identity.
    MESH_EXTERNAL,
    /// Inside the mesh (e.g. VMs with a sidecar).
    MESH_INTERNAL,
}

/// Istio's `ServiceEntry.Resolution`.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Resolution {
    /// Forward to the address the client asked for. Without traffic capture
    /// the proxy sees only the host name, so Sextant resolves that name by
    /// DNS (Envoy `LOGICAL_DNS`), which reaches the same address.
    NONE,
    /// Forward to the listed endpoint IPs (or the selected workloads), over EDS.
    STATIC,
    /// Resolve the endpoints' addresses (or the host itself) by DNS and use
    /// every address found (Envoy `STRICT_DNS`).
    DNS,
    /// Resolve by DNS and use the first address only (Envoy `LOGICAL_DNS`).
    DNS_ROUND_ROBIN,
}
