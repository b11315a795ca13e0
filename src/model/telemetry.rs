use super::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Access logging, tracing and metrics of the proxies it selects: a subset of Istio's
/// `Telemetry` (<https://istio.io/latest/docs/reference/config/telemetry/>)
/// with Istio's field names. One in the root namespace without selector
/// applies mesh-wide, one in a namespace without selector to that
/// namespace, one with `selector.matchLabels` to the workloads it picks;
/// for `accessLogging`, `tracing` and `metrics` each, the most specific
/// Telemetry that sets it wins (workload, then namespace, then root).
///
/// Istio's providers are defined in MeshConfig `extensionProviders` and
/// named here; Sextant reads no MeshConfig, so a provider reference names
/// one of Sextant's built-in provider types and carries its settings
/// (`path`, `address`) inline. Unknown fields are errors (see
/// `source::parse`): an ignored field would change what is logged or traced
/// without a word.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "telemetry.sextant.dev",
    version = "v1alpha1",
    kind = "Telemetry",
    doc = "Access logging, tracing and per-edge metrics of the proxies it selects (a subset of Istio's Telemetry).",
    namespaced,
    derive = "PartialEq",
    status = "super::ConfigStatus",
    shortname = "telemetry",
    category = "sextant",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TelemetrySpec {
    /// The workloads (by labels) it applies to; none: the whole namespace
    /// (the mesh, in the root namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Access log settings; empty: inherited from the less specific scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<AccessLogging>,
    /// Tracing settings; empty: inherited from the less specific scope.
    /// At most one entry (Envoy has one tracer per HTTP connection manager).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<Tracing>,
    /// Which per-edge metrics the selected proxies' reports feed; empty:
    /// inherited from the less specific scope. At most one entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metrics>,
}

/// Istio's `Metrics`: here, which of Sextant's per-edge metrics (`/metrics`
/// `sextant_edge_*`, `/debug/edges`, `/ui`) the selected proxies' reports
/// feed. Sextant drops what is disabled when a report arrives; the sidecar
/// still sends it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// `prometheus` (Istio's name for the default provider: Sextant's edge
    /// metrics, exposed on `/metrics`); empty: the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// What to turn off, by metric and mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<MetricsOverrides>,
    /// Not supported (an error): the proxy's stats flush interval is a
    /// bootstrap setting (`sextant bootstrap --stats-flush-interval-ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_interval: Option<String>,
}

/// Istio's `MetricsOverrides`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsOverrides {
    /// Which metric and mode; absent: every metric, client and server.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<MetricSelector>,
    /// Turns the matched metrics off (`false`: on, overriding nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Not supported (an error): Sextant's edge labels are fixed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tag_overrides: BTreeMap<String, TagOverride>,
}

/// Istio's `MetricSelector`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSelector {
    /// Istio's metric name: `ALL_METRICS`, `REQUEST_COUNT` (Sextant's
    /// requests, errors and gRPC outcomes per edge), `REQUEST_DURATION`
    /// (the latency histogram), or one Sextant does not collect
    /// (`REQUEST_SIZE`, `RESPONSE_SIZE`, `TCP_OPENED_CONNECTIONS`,
    /// `TCP_CLOSED_CONNECTIONS`, `TCP_SENT_BYTES`, `TCP_RECEIVED_BYTES`,
    /// `GRPC_REQUEST_MESSAGES`, `GRPC_RESPONSE_MESSAGES`: a warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Not supported (an error): Sextant has no custom metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_metric: Option<String>,
    /// `CLIENT_AND_SERVER` (default), `CLIENT` or `SERVER`. Sextant counts
    /// edges at the calling sidecar, so a `SERVER` override changes nothing
    /// (a warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// Istio's `MetricsOverrides.TagOverride` (read to refuse it by name).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagOverride {
    /// `UPSERT` or `REMOVE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The CEL value of an `UPSERT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A reference to a provider: Istio's `ProviderRef` (`name`) plus the
/// settings that Istio keeps in MeshConfig.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    /// The provider type: `envoy` (Istio's built-in name: JSON access log
    /// on the proxy's stdout) or `file` (JSON access log to `path`) for
    /// access logs; `zipkin` (Zipkin v2 JSON over HTTP to `address`) or
    /// `opentelemetry` (OTLP over gRPC to `address`) for tracing.
    pub name: String,
    /// `file`: the path Envoy writes to, on the proxy's host (default
    /// `/dev/stdout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `zipkin`, `opentelemetry`: the collector as `host:port` (an IP or a
    /// DNS name Envoy resolves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// Istio's `AccessLogging`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogging {
    /// Where to log; each provider gets every logged request.
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    /// Turns access logs off for the selected proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Which requests are logged (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<AccessLogFilter>,
}

/// Istio's `AccessLogging.Filter`: a CEL expression. Sextant translates
/// only `response.code <op> <integer>` (op `>=`, `>`, `==`, `<=`, `<`)
/// into Envoy's status code filter; anything else is an error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogFilter {
    /// The expression, e.g. `response.code >= 400`.
    pub expression: String,
}

/// Istio's `Tracing`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    /// The tracer: exactly one provider.
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    /// Percentage (0-100) of requests sampled; default 1 (Istio's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_sampling_percentage: Option<f64>,
    /// Trace context is created and propagated, but no span is reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_span_reporting: Option<bool>,
    /// Tags added to every span, by tag name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, CustomTag>,
}

/// Istio's `Tracing.CustomTag` (`literal` or `header`; `environment` is not supported).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomTag {
    /// A fixed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<LiteralTag>,
    /// The value of a request header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderTag>,
}

/// Istio's `Tracing.Literal`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LiteralTag {
    /// The tag value.
    pub value: String,
}

/// Istio's `Tracing.RequestHeader`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderTag {
    /// The request header whose value is the tag.
    pub name: String,
    /// The value when the header is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
}
