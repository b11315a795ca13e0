//! Checks of a Telemetry on its own: providers Sextant knows with their
//! settings, sampling in 0-100, filters it can translate, custom tags.

use super::validate::header_name;
use crate::diagnostic::Diagnostic;
use crate::ir::telemetry::{access_log_provider, parse_filter, tracing_provider};
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
