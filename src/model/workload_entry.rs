use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A workload that is not a Pod (a VM, a local process): Istio's
/// `WorkloadEntry`. Services select it by labels like a Pod.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "networking.sextant.dev",
    version = "v1alpha1",
    kind = "WorkloadEntry",
    doc = "A workload that is not a Pod (a VM, a local process), selected by Services like a Pod (Istio's WorkloadEntry, field-compatible subset).",
    namespaced,
    derive = "PartialEq",
    status = "super::ConfigStatus",
    shortname = "we",
    category = "sextant",
    printcolumn(
        name = "Address",
        type_ = "string",
        json_path = ".spec.address",
        description = "IP address of the workload"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEntrySpec {
    /// IP address of the workload.
    pub address: String,
    /// Port per service port name: a service port named `http` reaches the
    /// workload on `ports.http`. Ports not listed use the service's target port.
    #[serde(default)]
    #[schemars(extend("additionalProperties" = {
        "type": "integer", "format": "int64", "minimum": 1, "maximum": 65535
    }))]
    pub ports: BTreeMap<String, u32>,
    /// Workload labels, matched by Service selectors and DestinationRule subsets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Service account the workload runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}
