//! The service level objectives on `/metrics`: a prometheus-client
//! [`Collector`] of one measurement ([`SlosView`]), registered for one
//! scrape (see [`crate::metrics::Metrics::render_with`]), so an
//! objective's series exist exactly as long as the objective.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `sextant_slo_target_ratio` | gauge | `slo` (`namespace/name`), `service`, `objective` (`availability`, `latency`): the target as a ratio (0.999 for 99.9 %) |
//! | `sextant_slo_observed_ratio` | gauge | the same: share of good responses over the window; absent without traffic |
//! | `sextant_slo_burn_rate` | gauge | the same: bad share observed / bad share allowed over the window; absent without traffic |
//! | `sextant_slo_window_seconds` | gauge | | the window measured |

use super::SlosView;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// Renders one [`SlosView`].
#[derive(Clone, Debug)]
pub struct SloCollector {
    view: SlosView,
}

impl SloCollector {
    /// A collector of the measurement `view`.
    pub fn new(view: SlosView) -> Self {
        SloCollector { view }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SloLabels {
    slo: String,
    service: String,
    objective: &'static str,
}

impl Collector for SloCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows: Vec<(SloLabels, &super::ObjectiveView)> = self
            .view
            .slos
            .iter()
            .flat_map(|slo| {
                slo.objectives.iter().map(|o| {
                    let labels = SloLabels {
                        slo: format!("{}/{}", slo.namespace, slo.name),
                        service: slo.service.clone(),
                        objective: o.objective,
                    };
                    (labels, o)
                })
            })
            .collect();
        let ratio = Unit::Other("ratio".into());

        let mut target = encoder.encode_descriptor(
            "sextant_slo_target",
            "Target of a service level objective: the share of responses that must be good",
            Some(&ratio),
            MetricType::Gauge,
        )?;
        for (labels, o) in &rows {
            target
                .encode_family(labels)?
                .encode_gauge(&ratio_of(o.target_percent))?;
        }

        let mut observed = encoder.encode_descriptor(
            "sextant_slo_observed",
            "Share of good responses of a service level objective over the edge window",
            Some(&ratio),
            MetricType::Gauge,
        )?;
        for (labels, o) in &rows {
            if let Some(percent) = o.observed_percent {
                observed
                    .encode_family(labels)?
                    .encode_gauge(&ratio_of(percent))?;
            }
        }

        let mut burn = encoder.encode_descriptor(
            "sextant_slo_burn_rate",
            "Error-budget burn rate of a service level objective over the edge window: bad \
             share observed / bad share allowed (1: spending the budget exactly as fast as \
             allowed)",
            None,
            MetricType::Gauge,
        )?;
        for (labels, o) in &rows {
            if let Some(rate) = o.burn_rate {
                burn.encode_family(labels)?.encode_gauge(&rate)?;
            }
        }

        let mut window = encoder.encode_descriptor(
            "sextant_slo_window",
            "Length of the window service level objectives are measured over",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        window.encode_gauge(&self.view.window_seconds)?;
        Ok(())
    }
}

/// `percent` as a ratio, rounded to 12 decimals: `99.9 / 100` is
/// 0.9990000000000001 in binary, which Prometheus would show as is.
pub(super) fn ratio_of(percent: f64) -> f64 {
    (percent / 100.0 * 1e12).round() / 1e12
}
