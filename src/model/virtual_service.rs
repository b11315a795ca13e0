use super::StringMatch;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Routing rules for one or more hosts: Istio's `VirtualService` (the subset
/// listed in the README), same field names and semantics.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "networking.sextant.dev",
    version = "v1alpha1",
    kind = "VirtualService",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// Hosts the rules apply to: short service names (resolved in the
    /// object's namespace), `name.namespace`, or FQDNs. Compared case-insensitively.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// HTTP routes, evaluated in order; the first match wins.
    #[serde(default)]
    pub http: Vec<HttpRoute>,
    /// Namespaces whose proxies use these rules: `*` (default: all), `.` (this
    /// one), `~` (none) or namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
}

/// One HTTP route: conditions and where matching requests go.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Name used in generated route names and error messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions, ORed; each condition's fields are ANDed. Empty matches all.
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<HttpRouteDestination>,
}

/// One match condition of an HTTP route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// Name of the condition, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Path match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// Request header matches, keyed by header name (lower-case).
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
}

/// A destination with its share of traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteDestination {
    /// Where the traffic goes.
    pub destination: Destination,
    /// Relative weight. With one destination it may be omitted (all traffic);
    /// with several, an omitted weight is 0. Weights need not add up to 100:
    /// each destination receives `weight / sum` of the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

/// A service (and optionally subset and port) that receives traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Service host: short name (in the VirtualService's namespace), `name.namespace` or FQDN.
    pub host: String,
    /// Subset name defined by a DestinationRule for the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Service port; may be omitted when the service has exactly one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// Selects a service port by number.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PortSelector {
    /// The service port number.
    pub number: u32,
}
