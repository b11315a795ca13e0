//! Resolved ServiceLevelObjectives: the service each one measures, named as
//! the edge store names destinations, and its objectives with their
//! targets and thresholds parsed.

use crate::diagnostic::Diagnostic;
use crate::edges::LATENCY_BOUNDS_MS;
use crate::model::{ObjectKey, ServiceLevelObjectiveSpec};
use serde::Serialize;

/// One ServiceLevelObjective, resolved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SloPolicy {
    /// The object.
    pub origin: ObjectKey,
    /// The host resolved to a lower-case FQDN (or the ServiceEntry host).
    pub host: String,
    /// The service as edges name their destination
    /// ([`crate::edges::EdgeKey::destination_service`]): `name.namespace`
    /// for a Kubernetes service, the host for a ServiceEntry host.
    pub service: String,
    /// Its objectives: availability first, then latency (at least one).
    pub objectives: Vec<Objective>,
}

/// One objective of a [`SloPolicy`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Objective {
    /// What counts as a good response.
    pub kind: ObjectiveKind,
    /// Percent of responses that must be good, strictly between 0 and 100.
    pub target_percent: f64,
}

/// What a good response is.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "objective")]
pub enum ObjectiveKind {
    /// Not an error ([`crate::edges::Counts::errors`]).
    Availability,
    /// An upstream request time at or below `threshold_ms`, one of
    /// [`LATENCY_BOUNDS_MS`].
    Latency {
        /// The threshold, in milliseconds.
        threshold_ms: f64,
    },
}

impl ObjectiveKind {
    /// `availability` or `latency`, as labels and `/debug/slos` name it.
    pub fn name(self) -> &'static str {
        match self {
            ObjectiveKind::Availability => "availability",
            ObjectiveKind::Latency { .. } => "latency",
        }
    }
}

/// A target percent, checked to be strictly between 0 and 100.
///
/// # Errors
/// A message saying why it is not one.
pub fn target(percent: f64) -> Result<f64, String> {
    if percent.is_finite() && percent > 0.0 && percent < 100.0 {
        Ok(percent)
    } else if percent == 100.0 {
        Err("100 is not a percentage strictly between 0 and 100: it would leave no error budget (use e.g. 99.99)".to_string())
    } else {
        Err(format!(
            "{percent} is not a percentage strictly between 0 and 100 (e.g. 99.9)"
        ))
    }
}

/// A latency threshold (a duration such as `"250ms"`) in milliseconds,
/// checked to be one of Envoy's histogram bucket bounds.
///
/// # Errors
/// A message when it is not a duration, or not a bound (listing the bounds).
pub fn threshold_ms(text: &str) -> Result<f64, String> {
    let duration = super::policy::parse_duration(text)?;
    // Exact for every bound: nanoseconds / 1e6 rounds once.
    let ms = duration.as_nanos() as f64 / 1e6;
    if LATENCY_BOUNDS_MS.contains(&ms) {
        return Ok(ms);
    }
    let bounds: Vec<String> = LATENCY_BOUNDS_MS.iter().map(|b| format_ms(*b)).collect();
    Err(format!(
        "{text:?} is not a bucket bound of Envoy's upstream_rq_time histogram, the only \
         thresholds that can be counted exactly; use one of {}",
        bounds.join(", ")
    ))
}

/// A bound as a duration a user would write: `0.5ms`, `250ms`, `2.5s`, `1h`.
fn format_ms(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms}ms")
    } else if ms < 60_000.0 {
        format!("{}s", ms / 1000.0)
    } else if ms < 3_600_000.0 {
        format!("{}m", ms / 60_000.0)
    } else {
        format!("{}h", ms / 3_600_000.0)
    }
}

/// Resolves one ServiceLevelObjective; `is_service` says whether an FQDN
/// (or ServiceEntry host) is a service of the configuration. A host that
/// names none gets a warning (the objective stays, reporting no traffic).
/// `None` when the spec is invalid (validation reported it already).
pub fn resolve(
    key: &ObjectKey,
    spec: &ServiceLevelObjectiveSpec,
    is_service: &dyn Fn(&str) -> bool,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<SloPolicy> {
    let mut objectives = Vec::new();
    if let Some(availability) = &spec.availability {
        objectives.push(Objective {
            kind: ObjectiveKind::Availability,
            target_percent: target(availability.target).ok()?,
        });
    }
    if let Some(latency) = &spec.latency {
        objectives.push(Objective {
            kind: ObjectiveKind::Latency {
                threshold_ms: threshold_ms(&latency.threshold).ok()?,
            },
            target_percent: target(latency.target).ok()?,
        });
    }
    if objectives.is_empty() || spec.host.trim().is_empty() {
        return None;
    }
    let host = super::resolve_host(&spec.host, &key.namespace, is_service);
    if !is_service(&host) {
        diagnostics.push(Diagnostic::warning(
            key,
            "spec.host",
            format!("no Service or ServiceEntry has host {host:?}; the objective sees no traffic"),
        ));
    }
    let suffix = format!(".{}", super::DOMAIN_SUFFIX);
    let service = host.strip_suffix(&suffix).unwrap_or(&host).to_string();
    Some(SloPolicy {
        origin: key.clone(),
        host,
        service,
        objectives,
    })
}
