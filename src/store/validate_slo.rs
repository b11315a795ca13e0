//! Checks of a ServiceLevelObjective on its own: a host, at least one
//! objective, targets strictly between 0 and 100, a latency threshold that
//! is one of Envoy's histogram bucket bounds. (Whether the host names a
//! service is checked against the whole configuration, in `ir::slo`.)

use crate::diagnostic::Diagnostic;
use crate::ir::slo::{target, threshold_ms};
use crate::model::{ObjectKey, ServiceLevelObjectiveSpec};

/// Adds every problem of a ServiceLevelObjective to `out`. Any error keeps
/// the object's last good version measured.
pub(super) fn service_level_objective(
    key: &ObjectKey,
    spec: &ServiceLevelObjectiveSpec,
    out: &mut Vec<Diagnostic>,
) {
    if spec.host.trim().is_empty() {
        out.push(Diagnostic::error(
            key,
            "spec.host",
            "name the service: a Service name, name.namespace, its FQDN or a ServiceEntry host",
        ));
    }
    let host = spec.host.trim();
    let dns = host.strip_prefix("*.").unwrap_or(host);
    if !dns
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        out.push(Diagnostic::error(
            key,
            "spec.host",
            format!(
                "{host:?} is not a host name: letters, digits, '-' and '.' only (a ServiceEntry \
                 host may start with \"*.\")"
            ),
        ));
    }
    if spec.availability.is_none() && spec.latency.is_none() {
        out.push(Diagnostic::error(
            key,
            "spec",
            "set at least one objective: `availability` or `latency`",
        ));
    }
    if let Some(availability) = &spec.availability {
        if let Err(reason) = target(availability.target) {
            out.push(Diagnostic::error(key, "spec.availability.target", reason));
        }
    }
    if let Some(latency) = &spec.latency {
        if let Err(reason) = threshold_ms(&latency.threshold) {
            out.push(Diagnostic::error(key, "spec.latency.threshold", reason));
        }
        if let Err(reason) = target(latency.target) {
            out.push(Diagnostic::error(key, "spec.latency.target", reason));
        }
    }
}
