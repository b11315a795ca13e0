//! Checks of a Telemetry on its own: providers Sextant knows with their
//! settings, sampling in 0-100, filters it can translate, custom tags,
//! metric overrides it can apply.

use super::validate::header_name;
use crate::diagnostic::Diagnostic;
use crate::ir::telemetry::{
    access_log_provider, metric_name, metrics_provider, mode_covers_client, parse_filter,
    tracing_provider, MetricName,
};
use crate::model::{ObjectKey, TelemetrySpec};

/// Adds every problem of a Telemetry to `out`. Any error keeps the
/// Telemetry's last good version served.
pub(super) fn telemetry(key: &ObjectKey, spec: &TelemetrySpec, out: &mut Vec<Diagnostic>) {
    for (i, logging) in spec.access_logging.iter().enumerate() {
        let base = format!("spec.accessLogging[{i}]");
        if logging.providers.is_empty() && logging.disabled != Some(true) {
            out.push(Diagnostic::error(
                key,
                format!("{base}.providers"),
                "name at least one provider (`envoy` or `file`), or set `disabled: true`",
            ));
        }
        for (j, provider) in logging.providers.iter().enumerate() {
            if let Err(reason) = access_log_provider(provider) {
                out.push(Diagnostic::error(
                    key,
                    format!("{base}.providers[{j}]"),
                    reason,
                ));
            }
        }
        if let Some(filter) = &logging.filter {
            if let Err(reason) = parse_filter(&filter.expression) {
                out.push(Diagnostic::error(
                    key,
                    format!("{base}.filter.expression"),
                    reason,
                ));
            }
        }
    }
    if spec.tracing.len() > 1 {
        out.push(Diagnostic::error(
            key,
            "spec.tracing",
            "at most one tracing entry (Envoy has one tracer per listener)",
        ));
    }
    for (i, tracing) in spec.tracing.iter().enumerate() {
        let base = format!("spec.tracing[{i}]");
        match tracing.providers.as_slice() {
            [provider] => {
                if let Err(reason) = tracing_provider(provider) {
                    out.push(Diagnostic::error(
                        key,
                        format!("{base}.providers[0]"),
                        reason,
                    ));
                }
            }
            _ => out.push(Diagnostic::error(
                key,
                format!("{base}.providers"),
                "exactly one provider (`zipkin` or `opentelemetry`) is required",
            )),
        }
        if let Some(p) = tracing.random_sampling_percentage {
            if !(0.0..=100.0).contains(&p) {
                out.push(Diagnostic::error(
                    key,
                    format!("{base}.randomSamplingPercentage"),
                    format!("{p} is not a percentage (0-100)"),
                ));
            }
        }
        for (name, tag) in &tracing.custom_tags {
            let field = format!("{base}.customTags.{name}");
            if name.is_empty() {
                out.push(Diagnostic::error(
                    key,
                    &field,
                    "a tag name must not be empty",
                ));
            }
            match (&tag.literal, &tag.header) {
                (Some(_), None) => {}
                (None, Some(header)) => {
                    if let Err(reason) = header_name(&header.name) {
                        out.push(Diagnostic::error(
                            key,
                            format!("{field}.header.name"),
                            reason,
                        ));
                    }
                }
                _ => out.push(Diagnostic::error(
                    key,
                    &field,
                    "set exactly one of `literal` and `header` (`environment` is not supported)",
                )),
            }
        }
    }
    metrics(key, spec, out);
    if let Some(selector) = &spec.selector {
        if selector.match_labels.is_empty() {
            out.push(Diagnostic::warning(
                key,
                "spec.selector.matchLabels",
                "an empty selector selects every workload of the namespace",
            ));
        }
    }
}

fn metrics(key: &ObjectKey, spec: &TelemetrySpec, out: &mut Vec<Diagnostic>) {
    if spec.metrics.len() > 1 {
        out.push(Diagnostic::error(
            key,
            "spec.metrics",
            "at most one metrics entry (Sextant has one metrics provider, `prometheus`)",
        ));
    }
    for (i, metrics) in spec.metrics.iter().enumerate() {
        let base = format!("spec.metrics[{i}]");
        for (j, provider) in metrics.providers.iter().enumerate() {
            if let Err(reason) = metrics_provider(provider) {
                out.push(Diagnostic::error(
                    key,
                    format!("{base}.providers[{j}]"),
                    reason,
                ));
            }
        }
        if metrics.reporting_interval.is_some() {
            out.push(Diagnostic::error(
                key,
                format!("{base}.reportingInterval"),
                "not supported: how often a proxy reports is its stats flush interval, a \
                 bootstrap setting (`sextant bootstrap --stats-flush-interval-ms`)",
            ));
        }
        for (j, o) in metrics.overrides.iter().enumerate() {
            let field = format!("{base}.overrides[{j}]");
            if !o.tag_overrides.is_empty() {
                out.push(Diagnostic::error(
                    key,
                    format!("{field}.tagOverrides"),
                    "not supported: Sextant's edge labels are fixed (source_workload, \
                     destination_service, destination_subset, response_code_class)",
                ));
            }
            let selector = o.match_.clone().unwrap_or_default();
            if selector.custom_metric.is_some() {
                out.push(Diagnostic::error(
                    key,
                    format!("{field}.match.customMetric"),
                    "not supported: Sextant has no custom metrics",
                ));
            }
            let name = metric_name(selector.metric.as_deref());
            if let Err(reason) = &name {
                out.push(Diagnostic::error(
                    key,
                    format!("{field}.match.metric"),
                    reason,
                ));
            }
            let client = mode_covers_client(selector.mode.as_deref());
            if let Err(reason) = &client {
                out.push(Diagnostic::error(
                    key,
                    format!("{field}.match.mode"),
                    reason,
                ));
            }
            if o.disabled.is_none() && o.tag_overrides.is_empty() {
                out.push(Diagnostic::warning(
                    key,
                    &field,
                    "changes nothing: set `disabled`",
                ));
            }
            if name == Ok(MetricName::NotCollected) {
                out.push(Diagnostic::warning(
                    key,
                    format!("{field}.match.metric"),
                    format!(
                        "Sextant does not collect {}; this override changes nothing",
                        selector.metric.as_deref().unwrap_or_default()
                    ),
                ));
            }
            if client == Ok(false) {
                out.push(Diagnostic::warning(
                    key,
                    format!("{field}.match.mode"),
                    "Sextant counts each edge at the calling (client) sidecar; a SERVER \
                     override changes nothing",
                ));
            }
        }
    }
}
