use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether workloads accept plaintext, mutual TLS or both: Istio's
/// `PeerAuthentication` (<https://istio.io/latest/docs/reference/config/security/peer_authentication/>).
/// One in the root namespace without selector applies mesh-wide, one in a
/// namespace without selector to that namespace, one with a selector to
/// the workloads it picks; the most specific wins.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "security.sextant.dev",
    version = "v1alpha1",
    kind = "PeerAuthentication",
    doc = "Whether workloads accept plaintext, mutual TLS or both (Istio's PeerAuthentication).",
    namespaced,
    derive = "PartialEq",
    status = "super::ConfigStatus",
    shortname = "pa",
    category = "sextant",
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.mtls.mode",
        description = "Mutual TLS mode for every port"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PeerAuthenticationSpec {
    /// The workloads (by labels) it applies to; none: the whole namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The mode for every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
    /// Modes for single workload ports (the port the app listens on), keyed
    /// by port number; needs a selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_level_mtls: BTreeMap<String, MutualTls>,
}

/// Selects workloads by labels (Istio's `WorkloadSelector` of security kinds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels a workload must carry.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// Istio's `PeerAuthentication.MutualTLS`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MutualTls {
    /// The mode (default UNSET: inherit from the parent scope).
    #[serde(default)]
    pub mode: MtlsMode,
}

/// Istio's mutual TLS modes.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MtlsMode {
    /// Inherit from the parent scope (mesh default: PERMISSIVE).
    #[default]
    UNSET,
    /// Plaintext only.
    DISABLE,
    /// Mutual TLS and plaintext.
    PERMISSIVE,
    /// Mutual TLS only.
    STRICT,
}
