//! Reading the cluster stats Sextant needs out of one flush of Envoy's
//! metrics service (`StreamMetricsMessage.envoy_metrics`, Prometheus
//! `MetricFamily` protos).
//!
//! Envoy names a cluster stat `cluster.<cluster name>.<stat>` (full names:
//! `sextant bootstrap` does not set `emit_tags_as_labels`). Our outbound
//! clusters are `outbound|<port>|<subset>|<host>`, and hosts contain dots,
//! so the split between cluster and stat is found by first collecting the
//! clusters that report a stat only Envoy's top-level cluster scope has
//! (`membership_total`, `upstream_cx_total`, `upstream_rq_total`,
//! `upstream_cx_active`), then reading `<known cluster>.<stat>`. This keeps
//! out Envoy's second copies of response-code stats under `external.`,
//! `internal.` and `canary.` (`cluster.<c>.external.upstream_rq_2xx`), which
//! would otherwise count every request twice.
//!
//! gRPC calls are also counted by the gRPC stats filter the outbound HTTP
//! connection managers carry (`envoy.filters.http.grpc_stats`, all methods
//! in one stat): `cluster.<cluster name>.grpc.success` and `.failure`
//! (a failure is a grpc-status other than 0, or an HTTP error the filter
//! maps to one), and per status, of which `.14` (UNAVAILABLE) is read.

use envoy_types::pb::io::prometheus::client::{Histogram, MetricFamily};
use std::collections::{BTreeMap, BTreeSet};

/// Upper bounds (milliseconds) of Envoy's default histogram buckets
/// (`Stats::HistogramSettingsImpl::defaultBuckets`), which latency samples
/// are kept in. A sample from an Envoy with other bucket settings is counted
/// in the first of these bounds at or above its own bound.
pub const LATENCY_BOUNDS_MS: [f64; 19] = [
    0.5,
    1.0,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1_000.0,
    2_500.0,
    5_000.0,
    10_000.0,
    30_000.0,
    60_000.0,
    300_000.0,
    600_000.0,
    1_800_000.0,
    3_600_000.0,
];

/// Buckets of a latency histogram: one per [`LATENCY_BOUNDS_MS`] bound, then
/// one above the last bound (`+Inf`).
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// Response code classes, in the order of [`ClusterSample::responses`].
pub const CODE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Stats that only the top-level scope of a cluster has: their presence
/// names a cluster.
const CLUSTER_MARKERS: [&str; 4] = [
    "membership_total",
    "upstream_cx_total",
    "upstream_rq_total",
    "upstream_cx_active",
];

/// The gRPC stats filter's counters read, under `cluster.<c>.grpc.`:
/// outcomes, and calls that ended UNAVAILABLE (14).
const GRPC_STATS: [&str; 3] = ["success", "failure", "14"];

/// A latency histogram of one flush interval: per-bucket (not cumulative)
/// counts on [`LATENCY_BOUNDS_MS`], and the sum of the samples in ms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latency {
    /// Samples per bucket: `buckets[i]` counts samples in
    /// `(LATENCY_BOUNDS_MS[i-1], LATENCY_BOUNDS_MS[i]]`, the last above every bound.
    pub buckets: [u64; LATENCY_BUCKETS],
    /// Sum of the samples, in milliseconds.
    pub sum_ms: f64,
}

impl Latency {
    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Adds `other`'s samples to these.
    pub fn add(&mut self, other: &Latency) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_ms += other.sum_ms;
    }

    /// The `q` quantile (0 < q ≤ 1) in milliseconds, interpolated linearly
    /// inside its bucket as Prometheus' `histogram_quantile` does (a rank in
    /// the `+Inf` bucket gives the highest bound); `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = q * count as f64;
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let Some(&upper) = LATENCY_BOUNDS_MS.get(i) else {
                    return Some(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1]);
                };
                let lower = if i == 0 {
                    0.0
                } else {
                    LATENCY_BOUNDS_MS[i - 1]
                };
                let into = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                return Some(lower + (upper - lower) * into);
            }
            below += n;
        }
        Some(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1])
    }

    /// From an Envoy histogram (Prometheus shape: cumulative bucket counts
    /// by upper bound, and the total count).
    pub fn from_histogram(histogram: &Histogram) -> Latency {
        let mut latency = Latency {
            sum_ms: histogram.sample_sum.unwrap_or(0.0),
            ..Latency::default()
        };
        let mut below = 0u64;
        let mut bounds: Vec<(f64, u64)> = histogram
            .bucket
            .iter()
            .filter_map(|b| Some((b.upper_bound?, b.cumulative_count?)))
            .collect();
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (bound, cumulative) in bounds {
            let n = cumulative.saturating_sub(below);
            below = below.max(cumulative);
            let slot = LATENCY_BOUNDS_MS
                .iter()
                .position(|b| *b >= bound)
                .unwrap_or(LATENCY_BUCKETS - 1);
            latency.buckets[slot] += n;
        }
        let total = histogram.sample_count.unwrap_or(below);
        latency.buckets[LATENCY_BUCKETS - 1] += total.saturating_sub(below);
        latency
    }
}

/// What one flush says about one outbound cluster of the sending proxy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterSample {
    /// The cluster, `outbound|<port>|<subset>|<host>`.
    pub cluster: String,
    /// Responses in the flush interval by class (order of [`CODE_CLASSES`]),
    /// from `upstream_rq_1xx` ... `upstream_rq_5xx` (Envoy counts a local
    /// reply such as an upstream timeout's 504 under its class too).
    pub responses: [u64; 5],
    /// `upstream_cx_active`: connections open now, if reported.
    pub active_connections: Option<u64>,
    /// `upstream_rq_time` of the flush interval, if reported.
    pub latency: Option<Latency>,
    /// gRPC calls that ended with grpc-status 0 (`grpc.success`).
    pub grpc_ok: u64,
    /// gRPC calls that ended with another grpc-status (`grpc.failure`).
    pub grpc_failed: u64,
    /// Of those, the calls that ended UNAVAILABLE (`grpc.14`): what Envoy's
    /// local replies to gRPC calls (503, 504: no upstream, reset, timeout)
    /// become.
    pub grpc_unavailable: u64,
}

impl ClusterSample {
    /// Failed requests: 5xx responses and gRPC calls with a non-OK status,
    /// each counted once. Envoy charges every gRPC call one HTTP class too:
    /// 200 for a call the upstream answered (whatever its grpc-status), the
    /// HTTP code of a local reply (503 for no upstream or a reset, 504 for a
    /// timeout), which the call's client sees as UNAVAILABLE. So the 5xx of
    /// plain HTTP requests are taken as the 5xx beyond the UNAVAILABLE
    /// calls, and at most the requests that were not gRPC calls. Exact when
    /// a cluster carries only gRPC or only other HTTP in a flush interval,
    /// and when it carries both unless an upstream itself answered
    /// UNAVAILABLE (then plain HTTP 5xx of that interval may be missed).
    pub fn errors(&self) -> u64 {
        let responses: u64 = self.responses.iter().sum();
        let not_grpc = responses.saturating_sub(self.grpc_ok + self.grpc_failed);
        let http_5xx = self.responses[4]
            .saturating_sub(self.grpc_unavailable)
            .min(not_grpc);
        self.grpc_failed + http_5xx
    }

    /// Whether the sample says anything (a used cluster reports zero deltas too).
    pub fn is_empty(&self) -> bool {
        self.responses == [0; 5]
            && self.grpc_ok == 0
            && self.grpc_failed == 0
            && self.active_connections.is_none()
            && self.latency.as_ref().is_none_or(|l| l.count() == 0)
    }
}

/// The per-cluster samples of the outbound clusters in one flush, sorted by
/// cluster. Counter values are taken as the deltas of the interval (the
/// sink's `report_counters_as_deltas`), histograms as the interval's
/// samples (Envoy's metrics service sends interval statistics).
pub fn cluster_samples(families: &[MetricFamily]) -> Vec<ClusterSample> {
    let split = |family: &MetricFamily| -> Option<(String, String)> {
        let name = family.name.as_deref()?;
        let rest = name.strip_prefix("cluster.")?;
        if !rest.starts_with("outbound|") {
            return None;
        }
        let (cluster, stat) = rest.rsplit_once('.')?;
        // `cluster.<c>.grpc.success` (the gRPC stats filter's scope).
        if let Some(cluster) = cluster
            .strip_suffix(".grpc")
            .filter(|_| GRPC_STATS.contains(&stat))
        {
            return Some((cluster.to_string(), format!("grpc.{stat}")));
        }
        Some((cluster.to_string(), stat.to_string()))
    };
    let known: BTreeSet<String> = families
        .iter()
        .filter_map(split)
        .filter(|(_, stat)| CLUSTER_MARKERS.contains(&stat.as_str()))
        .map(|(cluster, _)| cluster)
        .collect();
    let mut samples: BTreeMap<String, ClusterSample> = BTreeMap::new();
    for family in families {
        let Some((cluster, stat)) = split(family) else {
            continue;
        };
        if !known.contains(&cluster) {
            continue;
        }
        let sample = samples
            .entry(cluster.clone())
            .or_insert_with(|| ClusterSample {
                cluster,
                ..ClusterSample::default()
            });
        let counter = || -> u64 {
            let total: f64 = family
                .metric
                .iter()
                .filter_map(|m| m.counter.as_ref()?.value)
                .sum();
            total.max(0.0) as u64
        };
        if let Some(class) = stat
            .strip_prefix("upstream_rq_")
            .and_then(|s| CODE_CLASSES.iter().position(|c| *c == s))
        {
            sample.responses[class] += counter();
        } else if stat == "grpc.success" {
            sample.grpc_ok += counter();
        } else if stat == "grpc.failure" {
            sample.grpc_failed += counter();
        } else if stat == "grpc.14" {
            sample.grpc_unavailable += counter();
        } else if stat == "upstream_cx_active" {
            let total: f64 = family
                .metric
                .iter()
                .filter_map(|m| m.gauge.as_ref()?.value)
                .sum();
            sample.active_connections = Some(total.max(0.0) as u64);
        } else if stat == "upstream_rq_time" {
            for histogram in family.metric.iter().filter_map(|m| m.histogram.as_ref()) {
                sample
                    .latency
                    .get_or_insert_with(Latency::default)
                    .add(&Latency::from_histogram(histogram));
            }
        }
    }
    samples.into_values().filter(|s| !s.is_empty()).collect()
}

/// Destination of an outbound cluster: service (`name.namespace` for a
/// Kubernetes service, the host otherwise, as [`crate::tap::service_of_cluster`])
/// and subset (empty for none); `None` for a cluster of another shape.
pub fn destination_of_cluster(cluster: &str) -> Option<(String, String)> {
    match cluster.split('|').collect::<Vec<_>>().as_slice() {
        ["outbound", _, subset, host] if !host.is_empty() => Some((
            crate::tap::service_of_cluster(cluster),
            (*subset).to_string(),
        )),
        _ => None,
    }
}
