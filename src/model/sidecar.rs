use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which services a proxy may reach: Istio's `Sidecar` (egress hosts and
/// workload selector only). A Sidecar without selector applies to every
/// proxy of its namespace; one in the root namespace applies mesh-wide to
/// namespaces that have none.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "networking.sextant.dev",
    version = "v1alpha1",
    kind = "Sidecar",
    doc = "Which services the proxies it selects may reach (Istio's Sidecar: workloadSelector and egress hosts).",
    namespaced,
    derive = "PartialEq",
    status = "super::ConfigStatus",
    category = "sextant"
)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSpec {
    /// Proxies (by workload labels) this Sidecar applies to; none: the whole namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Egress listeners; their hosts together make the proxy's scope.
    #[serde(default)]
    pub egress: Vec<EgressListener>,
}

/// Selects workloads by labels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkloadSelector {
    /// Labels a workload must carry.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One egress listener of a Sidecar.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EgressListener {
    /// Reachable hosts as `namespace/dnsName`: namespace `*` (any), `.` (the
    /// Sidecar's own) or a name; dnsName `*`, `*.suffix` or an FQDN.
    #[serde(default)]
    pub hosts: Vec<String>,
}
