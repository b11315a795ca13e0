//! Service level objectives measured: per [`SloPolicy`] (a resolved
//! `ServiceLevelObjective`), the share of good responses of its service
//! over the edge store's sliding window, and the error-budget burn rate.
//!
//! - Responses of a service: the window's [`Counts`] of every edge whose
//!   destination is the service (all calling workloads, all subsets), as
//!   the calling sidecars report them ([`crate::edges`]).
//! - Availability: good = responses that are not errors
//!   ([`Counts::errors`]), out of all responses.
//! - Latency: good = `upstream_rq_time` samples in the histogram buckets
//!   whose upper bound is at most the threshold (the threshold is one of
//!   [`crate::edges::LATENCY_BOUNDS_MS`], so this count is exact up to
//!   Envoy's own histogram resolution), out of all samples.
//! - Burn rate (Google's SRE workbook, "Alerting on SLOs"): the bad share
//!   observed divided by the bad share the target allows,
//!   `(bad / total) / (1 − target / 100)`. 1 spends the error budget
//!   exactly as fast as the objective allows; 10 would spend a 30-day
//!   budget in 3 days. Without traffic in the window there is none.
//!
//! Shown on `GET /debug/slos`, the `/ui` page's SLO panel and `/metrics`
//! ([`SloCollector`]).

mod collector;

pub use collector::SloCollector;

use crate::edges::{Counts, EdgeStore, LATENCY_BOUNDS_MS};
use crate::ir::slo::{ObjectiveKind, SloPolicy};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// Good and total events of one objective over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measured {
    /// Events that met the objective.
    pub good: u64,
    /// All events: responses (availability) or latency samples (latency).
    pub total: u64,
}

impl Measured {
    /// Events that did not meet the objective.
    pub fn bad(self) -> u64 {
        self.total.saturating_sub(self.good)
    }

    /// Share of good events (0 to 1); `None` without events.
    pub fn ratio(self) -> Option<f64> {
        (self.total > 0).then(|| self.good as f64 / self.total as f64)
    }

    /// The burn rate against `target_percent` (0 < target < 100): bad
    /// share observed / bad share allowed; `None` without events.
    pub fn burn_rate(self, target_percent: f64) -> Option<f64> {
        let allowed = (100.0 - target_percent) / 100.0;
        (self.total > 0).then(|| (self.bad() as f64 / self.total as f64) / allowed)
    }
}

/// Measures `kind` on a service's window `counts`.
pub fn measure(kind: ObjectiveKind, counts: &Counts) -> Measured {
    match kind {
        ObjectiveKind::Availability => {
            let total = counts.requests();
            Measured {
                good: total.saturating_sub(counts.errors()),
                total,
            }
        }
        ObjectiveKind::Latency { threshold_ms } => {
            // Buckets 0..=i hold the samples at or below bound i.
            let fast_buckets = LATENCY_BOUNDS_MS
                .iter()
                .take_while(|bound| **bound <= threshold_ms)
                .count();
            Measured {
                good: counts.latency.buckets[..fast_buckets].iter().sum(),
                total: counts.latency.count(),
            }
        }
    }
}

/// A burn rate this close above 1 is still on budget: decimal targets
/// (`99.9`) are not exact in binary, so a window exactly on budget computes
/// as 1.00000000000006.
const BURN_TOLERANCE: f64 = 1e-9;

/// How an objective stands over the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SloState {
    /// Burn rate at most 1: within the error budget.
    Ok,
    /// Burn rate above 1: spending the budget faster than allowed.
    Burning,
    /// No responses (or latency samples) in the window.
    NoTraffic,
}

/// One objective as `/debug/slos` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObjectiveView {
    /// `availability` or `latency`.
    pub objective: &'static str,
    /// Latency objectives: the threshold, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_ms: Option<f64>,
    /// Percent of events that must be good.
    pub target_percent: f64,
    /// Events in the window: responses (availability) or latency samples.
    pub total: u64,
    /// Of those, events that missed the objective (errors, slow responses).
    pub bad: u64,
    /// Percent of good events in the window; `None` without events.
    pub observed_percent: Option<f64>,
    /// Bad share observed / bad share allowed; `None` without events.
    pub burn_rate: Option<f64>,
    /// Share of the window's error budget left: `1 − burn_rate` (negative
    /// when overspent); `None` without events.
    pub budget_remaining: Option<f64>,
    /// `ok`, `burning` or `no-traffic`.
    pub state: SloState,
}

/// One ServiceLevelObjective as `/debug/slos` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SloView {
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The measured service, as edges name it (`reviews.default`).
    pub service: String,
    /// The host, resolved.
    pub host: String,
    /// Length of the window measured, in seconds.
    pub window_seconds: f64,
    /// Its objectives: availability, then latency.
    pub objectives: Vec<ObjectiveView>,
}

/// Everything `/debug/slos` shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlosView {
    /// Length of the window measured, in seconds (`--edge-window-seconds`).
    pub window_seconds: f64,
    /// The objectives, by namespace/name.
    pub slos: Vec<SloView>,
}

/// One objective measured on `counts`.
pub fn objective_view(kind: ObjectiveKind, target_percent: f64, counts: &Counts) -> ObjectiveView {
    let measured = measure(kind, counts);
    let burn_rate = measured.burn_rate(target_percent);
    ObjectiveView {
        objective: kind.name(),
        threshold_ms: match kind {
            ObjectiveKind::Latency { threshold_ms } => Some(threshold_ms),
            ObjectiveKind::Availability => None,
        },
        target_percent,
        total: measured.total,
        bad: measured.bad(),
        observed_percent: measured.ratio().map(|r| 100.0 * r),
        burn_rate,
        budget_remaining: burn_rate.map(|b| 1.0 - b),
        state: match burn_rate {
            None => SloState::NoTraffic,
            Some(b) if b > 1.0 + BURN_TOLERANCE => SloState::Burning,
            Some(_) => SloState::Ok,
        },
    }
}

/// Measures `slos` on the per-service window counts `by_service` (from
/// [`EdgeStore::window_by_service`]) of a window of `window_seconds`.
pub fn view(
    slos: &[SloPolicy],
    by_service: &BTreeMap<String, Counts>,
    window_seconds: f64,
) -> SlosView {
    let none = Counts::default();
    SlosView {
        window_seconds,
        slos: slos
            .iter()
            .map(|slo| {
                let counts = by_service.get(&slo.service).unwrap_or(&none);
                SloView {
                    namespace: slo.origin.namespace.clone(),
                    name: slo.origin.name.clone(),
                    service: slo.service.clone(),
                    host: slo.host.clone(),
                    window_seconds,
                    objectives: slo
                        .objectives
                        .iter()
                        .map(|o| objective_view(o.kind, o.target_percent, counts))
                        .collect(),
                }
            })
            .collect(),
    }
}

/// Measures `slos` on `edges` at `now`.
pub fn measure_all(slos: &[SloPolicy], edges: &EdgeStore, now: Instant) -> SlosView {
    view(
        slos,
        &edges.window_by_service(now),
        edges.window().as_secs_f64(),
    )
}

#[cfg(test)]
mod tests;
