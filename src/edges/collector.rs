//! The edges on `/metrics`: a prometheus-client [`Collector`] that reads
//! the [`EdgeStore`] at each scrape, so an edge's series exist exactly as
//! long as the edge.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `sextant_edge_requests_total` | counter | `source_workload`, `destination_service`, `destination_subset`, `response_code_class` (`1xx`...`5xx`; a class appears with its first response) |
//! | `sextant_edge_errors_total` | counter | `source_workload`, `destination_service`, `destination_subset`; failed requests: 5xx or gRPC non-OK, each once |
//! | `sextant_edge_grpc_responses_total` | counter | the same and `grpc_status_class` (`ok`: grpc-status 0, `error`: any other; gRPC edges only) |
//! | `sextant_edge_request_duration_milliseconds` | histogram | `source_workload`, `destination_service`, `destination_subset`; Envoy's `upstream_rq_time` buckets |
//! | `sextant_edge_active_connections` | gauge | the same; `upstream_cx_active` summed over the reporting sidecars |
//! | `sextant_edge_dropped_samples_total` | counter | samples of new edges dropped at the edge cap |

use super::{EdgeStore, CODE_CLASSES, GRPC_OUTCOMES, LATENCY_BOUNDS_MS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::sync::Arc;

/// Renders an [`EdgeStore`]; register it with
/// [`crate::metrics::Metrics::with_edges`].
#[derive(Clone, Debug)]
pub struct EdgeCollector {
    edges: Arc<EdgeStore>,
}

impl EdgeCollector {
    /// A collector of `edges`.
    pub fn new(edges: Arc<EdgeStore>) -> Self {
        EdgeCollector { edges }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EdgeLabels {
    source_workload: String,
    destination_service: String,
    destination_subset: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcLabels {
    source_workload: String,
    destination_service: String,
    destination_subset: String,
    grpc_status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    source_workload: String,
    destination_service: String,
    destination_subset: String,
    response_code_class: &'static str,
}

impl Collector for EdgeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (totals, dropped) = self.edges.totals();
        let labels: Vec<EdgeLabels> = totals
            .iter()
            .map(|t| EdgeLabels {
                source_workload: t.key.source_workload.clone(),
                destination_service: t.key.destination_service.clone(),
                destination_subset: t.key.destination_subset.clone(),
            })
            .collect();

        let mut requests = encoder.encode_descriptor(
            "sextant_edge_requests",
            "Responses per edge (source workload to destination service and subset) by \
             response code class, as the calling sidecars report them over Envoy's metrics \
             service",
            None,
            MetricType::Counter,
        )?;
        for (edge, labels) in totals.iter().zip(&labels) {
            for (class, n) in CODE_CLASSES.iter().zip(edge.total.responses) {
                if n == 0 {
                    continue;
                }
                let class_labels = ClassLabels {
                    source_workload: labels.source_workload.clone(),
                    destination_service: labels.destination_service.clone(),
                    destination_subset: labels.destination_subset.clone(),
                    response_code_class: class,
                };
                requests
                    .encode_family(&class_labels)?
                    .encode_counter::<NoLabelSet, u64, f64>(&n, None)?;
            }
        }

        let mut errors = encoder.encode_descriptor(
            "sextant_edge_errors",
            "Failed requests per edge: 5xx responses and gRPC calls with a non-OK grpc-status, \
             each counted once (on a port carrying gRPC and plain HTTP, plain 5xx in a flush \
             where an upstream itself answered UNAVAILABLE are missed)",
            None,
            MetricType::Counter,
        )?;
        for (edge, labels) in totals.iter().zip(&labels) {
            errors
                .encode_family(labels)?
                .encode_counter::<NoLabelSet, u64, f64>(&edge.total.errors(), None)?;
        }

        let mut grpc = encoder.encode_descriptor(
            "sextant_edge_grpc_responses",
            "gRPC calls per edge by outcome (grpc-status 0 or not), from Envoy's gRPC stats \
             filter on the calling sidecars",
            None,
            MetricType::Counter,
        )?;
        for (edge, labels) in totals.iter().zip(&labels) {
            if edge.total.grpc == [0, 0] {
                continue;
            }
            for (outcome, n) in GRPC_OUTCOMES.iter().zip(edge.total.grpc) {
                let grpc_labels = GrpcLabels {
                    source_workload: labels.source_workload.clone(),
                    destination_service: labels.destination_service.clone(),
                    destination_subset: labels.destination_subset.clone(),
                    grpc_status_class: outcome,
                };
                grpc.encode_family(&grpc_labels)?
                    .encode_counter::<NoLabelSet, u64, f64>(&n, None)?;
            }
        }

        let unit = Unit::Other("milliseconds".into());
        let mut latency = encoder.encode_descriptor(
            "sextant_edge_request_duration",
            "Upstream request time per edge (Envoy's upstream_rq_time, in its buckets)",
            Some(&unit),
            MetricType::Histogram,
        )?;
        for (edge, labels) in totals.iter().zip(&labels) {
            let histogram = &edge.total.latency;
            let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_MS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(histogram.buckets)
                .collect();
            latency
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(
                    histogram.sum_ms,
                    histogram.count(),
                    &buckets,
                    None,
                )?;
        }

        let mut active = encoder.encode_descriptor(
            "sextant_edge_active_connections",
            "Upstream connections open now per edge (Envoy's upstream_cx_active, summed over \
             the calling sidecars)",
            None,
            MetricType::Gauge,
        )?;
        for (edge, labels) in totals.iter().zip(&labels) {
            active
                .encode_family(labels)?
                .encode_gauge(&(edge.active_connections as i64))?;
        }

        let dropped_encoder = encoder.encode_descriptor(
            "sextant_edge_dropped_samples",
            "Metrics samples dropped because the edge store is at its cap",
            None,
            MetricType::Counter,
        )?;
        let mut dropped_encoder = dropped_encoder;
        dropped_encoder.encode_counter::<NoLabelSet, u64, f64>(&dropped, None)?;
        Ok(())
    }
}
