use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `status` of each of our custom resources, written by Sextant in
/// Kubernetes mode through the `/status` subresource (users never write it;
/// the file source ignores it).
///
/// Conditions follow the Kubernetes API conventions
/// (`metav1.Condition`: `type`, `status` `True`/`False`/`Unknown`, `reason`,
/// `message`, `observedGeneration`, `lastTransitionTime`), one per `type`,
/// in the style of Gateway API and Istio's config status: `Accepted`
/// (the object passed validation; when `False`, `message` names the field
/// path and why) and `Programmed` (what was derived from it reached the
/// proxies; `False` when a proxy rejected it, with Envoy's trimmed message).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    /// Current conditions, at most one per `type` (a list map keyed by
    /// `type`, so server-side apply merges them by type).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["type"]
    ))]
    pub conditions: Vec<Condition>,
    /// `metadata.generation` of the spec these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
