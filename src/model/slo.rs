use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Service level objectives of one service: the share of its responses that
/// must not be errors (`availability`) and the share that must be faster than
/// a threshold (`latency`), measured over the server's edge window
/// (`sextant serve --edge-window-seconds`, 60 s by default) from what the
/// calling sidecars report; shown on `/debug/slos`, the `/ui` page and
/// `/metrics`. Sextant's own kind (Istio has none); it changes no proxy
/// configuration.
///
/// Unknown fields are errors (see `source::parse`): an objective measured
/// with a field ignored would report the wrong budget without a word.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "telemetry.sextant.dev",
    version = "v1alpha1",
    kind = "ServiceLevelObjective",
    doc = "Availability and latency objectives of one service, with their error-budget burn rate.",
    namespaced,
    derive = "PartialEq",
    status = "super::ConfigStatus",
    shortname = "slo",
    category = "sextant",
    printcolumn(name = "Host", type_ = "string", json_path = ".spec.host"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceLevelObjectiveSpec {
    /// The service: a Service name in the object's namespace, `name.namespace`,
    /// the FQDN `name.namespace.svc.cluster.local`, or a ServiceEntry host.
    pub host: String,
    /// The availability objective; at least one of `availability` and
    /// `latency` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<AvailabilityObjective>,
    /// The latency objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyObjective>,
}

/// Share of responses that must not be errors (5xx responses, as the
/// edge signals count errors).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityObjective {
    /// Percent of responses that are not errors, strictly between 0 and 100
    /// (e.g. `99.9`).
    pub target: f64,
}

/// Share of responses that must be faster than `threshold`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencyObjective {
    /// A duration (`"250ms"`, `"1s"`) that is one of the bounds of Envoy's
    /// `upstream_rq_time` histogram buckets, the only thresholds that can
    /// be counted exactly: 0.5ms, 1ms, 5ms, 10ms, 25ms, 50ms, 100ms, 250ms,
    /// 500ms, 1s, 2.5s, 5s, 10s, 30s, 1m, 5m, 10m, 30m, 1h.
    pub threshold: String,
    /// Percent of responses (upstream request times, as Envoy measures
    /// them) at or below `threshold`, strictly between 0 and 100.
    pub target: f64,
}
