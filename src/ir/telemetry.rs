//! Resolved Telemetry objects, and the telemetry of one proxy: which access
//! logs it writes and how it traces, as Istio selects them (workload, then
//! namespace, then the root namespace's mesh-wide Telemetry).

use crate::model::{MetricsOverrides, ObjectKey, ProviderRef, Telemetry};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Istio's default `randomSamplingPercentage` when a tracer is configured.
pub const DEFAULT_SAMPLING_PERCENT: f64 = 1.0;
/// Where the `envoy` provider (and `file` without `path`) writes.
pub const STDOUT: &str = "/dev/stdout";

/// One Telemetry, resolved (settings validated and defaults filled).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TelemetryPolicy {
    /// The object.
    pub origin: ObjectKey,
    /// `matchLabels` of its selector; `None`: the whole namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
    /// Creation time (RFC 3339, empty when unknown): the oldest wins a tie.
    pub created: String,
    /// Access logs; `None`: not set here (inherited); `Some(empty)`: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_logs: Option<Vec<AccessLogSink>>,
    /// Tracing; `None`: not set here (inherited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingSettings>,
    /// Per-edge metrics; `None`: not set here (inherited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSettings>,
}

/// A per-edge metric ([`crate::edges`]) a Telemetry can turn off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeMetric {
    /// Responses by class, errors and gRPC outcomes (Istio's `REQUEST_COUNT`).
    RequestCount,
    /// The latency histogram (Istio's `REQUEST_DURATION`).
    RequestDuration,
    /// Active connections (only `ALL_METRICS` turns them off).
    ActiveConnections,
}

/// Which per-edge metrics a proxy's metrics service reports feed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MetricsSettings {
    /// Dropped when a report arrives; empty: everything counts.
    pub disabled: BTreeSet<EdgeMetric>,
}

/// What an Istio metric name means here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricName {
    /// Metrics Sextant collects.
    Collected(Vec<EdgeMetric>),
    /// An Istio metric Sextant does not collect: overriding it changes nothing.
    NotCollected,
}

/// Istio's standard metric names that Sextant does not collect.
const NOT_COLLECTED: [&str; 8] = [
    "REQUEST_SIZE",
    "RESPONSE_SIZE",
    "TCP_OPENED_CONNECTIONS",
    "TCP_CLOSED_CONNECTIONS",
    "TCP_SENT_BYTES",
    "TCP_RECEIVED_BYTES",
    "GRPC_REQUEST_MESSAGES",
    "GRPC_RESPONSE_MESSAGES",
];

/// An Istio `MetricSelector.metric` (absent: `ALL_METRICS`). Error: a name
/// Istio does not have.
pub fn metric_name(name: Option<&str>) -> Result<MetricName, String> {
    match name.unwrap_or("ALL_METRICS") {
        "ALL_METRICS" => Ok(MetricName::Collected(vec![
            EdgeMetric::RequestCount,
            EdgeMetric::RequestDuration,
            EdgeMetric::ActiveConnections,
        ])),
        "REQUEST_COUNT" => Ok(MetricName::Collected(vec![EdgeMetric::RequestCount])),
        "REQUEST_DURATION" => Ok(MetricName::Collected(vec![EdgeMetric::RequestDuration])),
        other if NOT_COLLECTED.contains(&other) => Ok(MetricName::NotCollected),
        other => Err(format!(
            "unknown metric {other:?}; Istio's are ALL_METRICS, REQUEST_COUNT, REQUEST_DURATION, {}",
            NOT_COLLECTED.join(", ")
        )),
    }
}

/// Whether an Istio `MetricSelector.mode` (absent: `CLIENT_AND_SERVER`)
/// covers the client side, where Sextant counts edges. Error: another mode.
pub fn mode_covers_client(mode: Option<&str>) -> Result<bool, String> {
    match mode.unwrap_or("CLIENT_AND_SERVER") {
        "CLIENT_AND_SERVER" | "CLIENT" => Ok(true),
        "SERVER" => Ok(false),
        other => Err(format!(
            "unknown mode {other:?}; one of CLIENT_AND_SERVER, CLIENT, SERVER"
        )),
    }
}

/// A metrics provider: `prometheus` (Istio's default provider's name) is
/// Sextant's per-edge metrics. Error: any other name or setting.
pub fn metrics_provider(p: &ProviderRef) -> Result<(), String> {
    if p.name != "prometheus" {
        return Err(format!(
            "unknown metrics provider {:?}; Sextant's per-edge metrics (on /metrics) are `prometheus`",
            p.name
        ));
    }
    if p.path.is_some() || p.address.is_some() {
        return Err("`prometheus` takes no `path` or `address`".into());
    }
    Ok(())
}

/// The settings of a `metrics` entry's overrides, in order (a later one
/// overrides an earlier one); invalid overrides (reported by validation)
/// are skipped.
fn metrics_settings(overrides: &[MetricsOverrides]) -> MetricsSettings {
    let mut disabled = BTreeSet::new();
    for o in overrides {
        let selector = o.match_.clone().unwrap_or_default();
        let (Ok(MetricName::Collected(metrics)), Ok(true)) = (
            metric_name(selector.metric.as_deref()),
            mode_covers_client(selector.mode.as_deref()),
        ) else {
            continue;
        };
        if selector.custom_metric.is_some() {
            continue;
        }
        match o.disabled {
            Some(true) => disabled.extend(metrics),
            Some(false) => {
                for m in metrics {
                    disabled.remove(&m);
                }
            }
            None => {}
        }
    }
    MetricsSettings { disabled }
}

/// One access log: JSON lines written by Envoy to a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessLogSink {
    /// File path on the proxy's host (`/dev/stdout` for the `envoy` provider).
    pub path: String,
    /// Only requests whose response code passes are logged; `None`: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<StatusFilter>,
}

/// A condition on the response code, in the form Envoy's access log
/// `status_code_filter` takes (`>=`, `==`, `<=` an integer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StatusFilter {
    /// How the code compares.
    pub op: Comparison,
    /// The code compared with.
    pub code: u32,
}

/// Envoy's `ComparisonFilter.Op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Comparison {
    /// Greater or equal.
    Ge,
    /// Equal.
    Eq,
    /// Less or equal.
    Le,
}

/// Tracing of a proxy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TracingSettings {
    /// The collector spans go to.
    pub provider: TracingProvider,
    /// Percentage (0-100) of requests without a sampling decision that are sampled.
    pub sampling_percent: f64,
    /// Trace context is kept and propagated, but no span is reported.
    pub disable_span_reporting: bool,
    /// Tags on every span, by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, TagValue>,
}

/// A collector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TracingProvider {
    /// The protocol.
    pub kind: TracerKind,
    /// Collector host (IP or DNS name).
    pub host: String,
    /// Collector port.
    pub port: u16,
}

impl TracingProvider {
    /// Name of the cluster that reaches the collector: `tracing|<kind>|<host>|<port>`.
    pub fn cluster_name(&self) -> String {
        format!("tracing|{}|{}|{}", self.kind.as_str(), self.host, self.port)
    }
}

/// The tracers Sextant configures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TracerKind {
    /// Envoy's Zipkin tracer: B3 headers, Zipkin v2 JSON spans over HTTP
    /// POST to `/api/v2/spans`.
    Zipkin,
    /// Envoy's OpenTelemetry tracer: W3C `traceparent`, OTLP over gRPC.
    OpenTelemetry,
}

impl TracerKind {
    /// The provider name that selects it.
    pub fn as_str(self) -> &'static str {
        match self {
            TracerKind::Zipkin => "zipkin",
            TracerKind::OpenTelemetry => "opentelemetry",
        }
    }
}

/// A custom tag's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TagValue {
    /// A fixed value.
    Literal(String),
    /// A request header, with a value for when it is absent.
    Header {
        /// Header name.
        name: String,
        /// Value when the header is absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        default: Option<String>,
    },
}

/// The telemetry of one proxy, resolved from the Telemetries that apply to it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProxyTelemetry {
    /// Access logs (empty: none, the default).
    pub access_logs: Vec<AccessLogSink>,
    /// Tracing (`None`: no tracer; request IDs and incoming trace headers
    /// are still forwarded).
    pub tracing: Option<TracingSettings>,
    /// The bootstrap cluster of Sextant's gRPC access log service, when the
    /// proxy has one (set per proxy, not by Telemetry): every request is
    /// also streamed there, unfiltered, for `sextant tap`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_service: Option<String>,
}

/// Parses an access log filter expression. Accepted: `response.code <op> <n>`
/// with op `>=`, `>`, `==`, `<=`, `<` and n an integer in 0..=999.
///
/// # Errors
/// The reason, for anything else (Sextant translates no other CEL).
pub fn parse_filter(expression: &str) -> Result<StatusFilter, String> {
    let unsupported = || {
        format!(
            "{expression:?} is not supported: Sextant translates only `response.code <op> <integer>` (op one of >=, >, ==, <=, <) into Envoy's status code filter"
        )
    };
    let rest = expression
        .trim()
        .strip_prefix("response.code")
        .ok_or_else(unsupported)?
        .trim_start();
    let ops = [(">=", 0), ("<=", 1), ("==", 2), (">", 3), ("<", 4)];
    let (op, index) = ops
        .iter()
        .find(|(op, _)| rest.starts_with(op))
        .ok_or_else(unsupported)?;
    let number: i64 = rest[op.len()..].trim().parse().map_err(|_| unsupported())?;
    if !(0..=999).contains(&number) {
        return Err(format!(
            "{expression:?}: {number} is not an HTTP status code (0-999)"
        ));
    }
    let code = number as u32;
    let (op, code) = match index {
        0 => (Comparison::Ge, code),
        1 => (Comparison::Le, code),
        2 => (Comparison::Eq, code),
        3 => (Comparison::Ge, code + 1),
        _ if code == 0 => return Err(format!("{expression:?} never holds")),
        _ => (Comparison::Le, code - 1),
    };
    Ok(StatusFilter { op, code })
}

/// Parses `host:port` of a collector.
///
/// # Errors
/// The reason, when the port is missing or out of range or the host empty.
pub fn parse_address(address: &str) -> Result<(String, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{address:?} is not host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{address:?}: the port must be 1-65535"))?;
    if host.is_empty() {
        return Err(format!("{address:?}: the host is empty"));
    }
    Ok((host.to_string(), port))
}

/// The access log sink of a provider reference.
///
/// # Errors
/// The reason (named from the `providers[]` entry) when the provider is not
/// an access log provider.
pub fn access_log_provider(p: &ProviderRef) -> Result<String, String> {
    match p.name.as_str() {
        "envoy" if p.path.is_some() => {
            Err("the `envoy` provider writes to stdout; use `file` with a `path`".into())
        }
        "envoy" => Ok(STDOUT.into()),
        "file" => match p.path.as_deref() {
            Some("") => Err("path must not be empty".into()),
            Some(path) => Ok(path.into()),
            None => Ok(STDOUT.into()),
        },
        other => Err(format!(
            "unknown access log provider {other:?}; Sextant's are `envoy` (JSON on stdout) and `file` (JSON to `path`)"
        )),
    }
}

/// The tracer of a provider reference.
///
/// # Errors
/// The reason when the provider is unknown or its address is missing or bad.
pub fn tracing_provider(p: &ProviderRef) -> Result<TracingProvider, String> {
    let kind = match p.name.as_str() {
        "zipkin" => TracerKind::Zipkin,
        "opentelemetry" => TracerKind::OpenTelemetry,
        other => {
            return Err(format!(
                "unknown tracing provider {other:?}; Sextant's are `zipkin` and `opentelemetry` (each with `address: host:port`)"
            ))
        }
    };
    if p.path.is_some() {
        return Err(format!("`path` is not a setting of {}", p.name));
    }
    let address = p
        .address
        .as_deref()
        .ok_or_else(|| format!("{} needs `address` (the collector's host:port)", p.name))?;
    let (host, port) = parse_address(address)?;
    Ok(TracingProvider { kind, host, port })
}

/// Resolves a validated Telemetry. Parts that fail to resolve (validation
/// keeps them out of the store) are left unset.
pub fn resolve(key: &ObjectKey, telemetry: &Telemetry) -> TelemetryPolicy {
    let spec = &telemetry.spec;
    let access_logs = (!spec.access_logging.is_empty()).then(|| {
        spec.access_logging
            .iter()
            .filter(|a| a.disabled != Some(true))
            .flat_map(|a| {
                let filter = a
                    .filter
                    .as_ref()
                    .and_then(|f| parse_filter(&f.expression).ok());
                a.providers
                    .iter()
                    .filter_map(|p| access_log_provider(p).ok())
                    .map(move |path| AccessLogSink { path, filter })
            })
            .collect()
    });
    let tracing = spec.tracing.first().and_then(|t| {
        let provider = tracing_provider(t.providers.first()?).ok()?;
        Some(TracingSettings {
            provider,
            sampling_percent: t
                .random_sampling_percentage
                .unwrap_or(DEFAULT_SAMPLING_PERCENT),
            disable_span_reporting: t.disable_span_reporting == Some(true),
            custom_tags: t
                .custom_tags
                .iter()
                .filter_map(|(name, tag)| {
                    let value = match (&tag.literal, &tag.header) {
                        (Some(l), None) => TagValue::Literal(l.value.clone()),
                        (None, Some(h)) => TagValue::Header {
                            name: h.name.to_ascii_lowercase(),
                            default: h.default_value.clone(),
                        },
                        _ => return None,
                    };
                    Some((name.clone(), value))
                })
                .collect(),
        })
    });
    let metrics = spec.metrics.first().map(|m| metrics_settings(&m.overrides));
    TelemetryPolicy {
        origin: key.clone(),
        selector: spec.selector.as_ref().map(|s| s.match_labels.clone()),
        created: telemetry
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        access_logs,
        tracing,
        metrics,
    }
}

/// Sorts resolved Telemetries oldest first (creation time, then key), the
/// order in which a tie between two of one scope is decided.
pub fn sort(all: &mut [TelemetryPolicy]) {
    all.sort_by(|a, b| (&a.created, &a.origin).cmp(&(&b.created, &b.origin)));
}

/// A warning on each Telemetry without selector that an older one of the
/// same namespace makes unused (Istio leaves that case undefined; Sextant
/// uses the oldest). `all` must be sorted with [`sort`].
pub fn shadowed(all: &[TelemetryPolicy], diagnostics: &mut Vec<crate::diagnostic::Diagnostic>) {
    let mut first: BTreeMap<&str, &ObjectKey> = BTreeMap::new();
    for t in all.iter().filter(|t| t.selector.is_none()) {
        match first.get(t.origin.namespace.as_str()) {
            Some(older) => diagnostics.push(crate::diagnostic::Diagnostic::warning(
                &t.origin,
                "",
                format!(
                    "{older} also applies to the whole namespace and is older: it is used, this one is not"
                ),
            )),
            None => {
                first.insert(&t.origin.namespace, &t.origin);
            }
        }
    }
}

/// The Telemetry with a selector that picks a workload in `namespace` with
/// `labels`: the oldest one, as Istio does for several.
pub fn selecting<'a>(
    all: &'a [TelemetryPolicy],
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Option<&'a TelemetryPolicy> {
    all.iter()
        .filter(|t| t.origin.namespace == namespace)
        .find(|t| {
            t.selector
                .as_ref()
                .is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
        })
}

/// The Telemetries that may apply to a proxy in `namespace`, most specific
/// first: its `workload`'s, the namespace's (without selector), the
/// mesh-wide one in `root_namespace`.
fn scopes<'a>(
    all: &'a [TelemetryPolicy],
    namespace: &str,
    workload: Option<&'a TelemetryPolicy>,
    root_namespace: &str,
) -> [Option<&'a TelemetryPolicy>; 3] {
    let namespace_wide = all
        .iter()
        .find(|t| t.origin.namespace == namespace && t.selector.is_none());
    let mesh_wide = all
        .iter()
        .find(|t| t.origin.namespace == root_namespace && t.selector.is_none());
    [workload, namespace_wide, mesh_wide]
}

/// The telemetry of a proxy in `namespace` selected by `workload` (the
/// result of [`selecting`], looked up by key): for access logs and for
/// tracing each, the workload's Telemetry if it sets them, else the
/// namespace's (without selector), else the mesh-wide one in
/// `root_namespace`; nothing set: no access logs, no tracer.
pub fn for_proxy(
    all: &[TelemetryPolicy],
    namespace: &str,
    workload: Option<&ObjectKey>,
    root_namespace: &str,
) -> ProxyTelemetry {
    let workload = workload.and_then(|key| all.iter().find(|t| &t.origin == key));
    let chain = scopes(all, namespace, workload, root_namespace);
    ProxyTelemetry {
        access_logs: chain
            .iter()
            .flatten()
            .find_map(|t| t.access_logs.clone())
            .unwrap_or_default(),
        tracing: chain.iter().flatten().find_map(|t| t.tracing.clone()),
        access_log_service: None,
    }
}

/// The per-edge metrics settings of a proxy in `namespace` with `labels`:
/// the workload's Telemetry if it sets `metrics`, else the namespace's,
/// else the mesh-wide one in `root_namespace`; none: everything counts.
pub fn metrics_for_proxy(
    all: &[TelemetryPolicy],
    namespace: &str,
    labels: &BTreeMap<String, String>,
    root_namespace: &str,
) -> MetricsSettings {
    let workload = selecting(all, namespace, labels);
    scopes(all, namespace, workload, root_namespace)
        .iter()
        .flatten()
        .find_map(|t| t.metrics.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
