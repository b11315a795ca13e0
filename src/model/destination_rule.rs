use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Policies for traffic to one service after routing: Istio's
/// `DestinationRule` (the subset listed in the README).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "networking.sextant.dev",
    version = "v1alpha1",
    kind = "DestinationRule",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    /// The service host: short name (in the rule's namespace), `name.namespace` or FQDN.
    pub host: String,
    /// Policies for all subsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named groups of endpoints selected by workload labels.
    #[serde(default)]
    pub subsets: Vec<Subset>,
}

/// Traffic policy of a service or subset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Load-balancing algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
}

/// Istio's `LoadBalancerSettings` (only `simple` for now).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSettings {
    /// A simple algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple: Option<SimpleLb>,
}

/// Istio's `LoadBalancerSettings.SimpleLB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum SimpleLb {
    /// Let the control plane choose (round robin here, as Envoy's default).
    UNSPECIFIED,
    /// Round robin over healthy endpoints.
    ROUND_ROBIN,
    /// Envoy's least-request (power of two choices).
    LEAST_REQUEST,
    /// Deprecated Istio alias of `LEAST_REQUEST`.
    LEAST_CONN,
    /// Random choice.
    RANDOM,
}

/// A named group of a service's endpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    /// Subset name, used by `VirtualService` destinations.
    pub name: String,
    /// Workload labels an endpoint must carry to be in the subset.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Overrides the rule's policy for this subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}
