//! Per-edge golden signals: what sidecars report over Envoy's metrics
//! service (`envoy.service.metrics.v3.MetricsService`, the
//! `envoy.stat_sinks.metrics_service` stats sink that `sextant bootstrap`
//! configures), aggregated per edge: source workload → destination service
//! and subset.
//!
//! Per edge Sextant keeps responses by code class, the `upstream_rq_time`
//! latency histogram and the active connections, both since the edge was
//! first seen (Prometheus counters on `/metrics`) and over a sliding window
//! (`/debug/edges`, the `/ui` page: rate, success rate, p50/p90/p99).
//!
//! Only client sidecars' `outbound|...` clusters count, so each request is
//! counted once (by its caller).
//!
//! # Memory bound
//! At most [`MAX_EDGES`] edges. Each keeps [`WINDOW_SLOTS`] window slots
//! and one running total of [`Counts`] (5 classes, 2 gRPC outcomes, the
//! errors and 20 latency buckets with their sum: 232 bytes), about 3 KiB
//! per edge, 12 MiB at the cap; plus one
//! active-connections entry per reporting proxy, at most
//! [`MAX_ACTIVE_ENTRIES`] in all. Samples for a new edge beyond the cap are
//! dropped and counted ([`EdgesView::dropped_samples`]). An edge nobody
//! reported for [`IDLE_EDGE`] is forgotten (its counters start again at 0
//! if it comes back, which Prometheus reads as a counter reset).

mod collector;
mod parse;
mod service;
mod window;

pub use collector::EdgeCollector;
pub use parse::{
    cluster_samples, destination_of_cluster, ClusterSample, Latency, CODE_CLASSES,
    LATENCY_BOUNDS_MS, LATENCY_BUCKETS,
};
pub use service::MetricsSink;

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most edges kept.
pub const MAX_EDGES: usize = 4096;
/// Most (proxy, edge) active-connection entries kept.
pub const MAX_ACTIVE_ENTRIES: usize = 16_384;
/// Slots of the sliding window.
pub const WINDOW_SLOTS: usize = 12;
/// Default sliding window: [`WINDOW_SLOTS`] slots of 5 s (Envoy's default
/// stats flush interval).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// An edge no proxy reported for this long is forgotten.
pub const IDLE_EDGE: Duration = Duration::from_secs(600);

/// An edge: who calls whom.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EdgeKey {
    /// The calling workload, `<workload>.<namespace>`: the sidecar's
    /// `node.cluster` (`sextant bootstrap --cluster`, by default the node id
    /// up to its first '.') and its namespace.
    pub source_workload: String,
    /// The called service: `name.namespace` for a Kubernetes service, the
    /// host for a ServiceEntry host.
    pub destination_service: String,
    /// The DestinationRule subset, empty for none.
    pub destination_subset: String,
}

/// Responses and latency over some time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    /// Responses by class, in the order of [`CODE_CLASSES`].
    pub responses: [u64; 5],
    /// gRPC calls by outcome: grpc-status 0, other grpc-status.
    pub grpc: [u64; 2],
    /// Failed requests: 5xx or gRPC non-OK, each once
    /// ([`ClusterSample::errors`], summed per flush).
    pub errors: u64,
    /// Latency samples (`upstream_rq_time`).
    pub latency: Latency,
}

impl Counts {
    fn add(&mut self, sample: &ClusterSample) {
        for (mine, theirs) in self.responses.iter_mut().zip(sample.responses) {
            *mine += theirs;
        }
        self.grpc[0] += sample.grpc_ok;
        self.grpc[1] += sample.grpc_failed;
        self.errors += sample.errors();
        if let Some(latency) = &sample.latency {
            self.latency.add(latency);
        }
    }

    fn merge(&mut self, other: &Counts) {
        for (mine, theirs) in self.responses.iter_mut().zip(other.responses) {
            *mine += theirs;
        }
        self.grpc[0] += other.grpc[0];
        self.grpc[1] += other.grpc[1];
        self.errors += other.errors;
        self.latency.add(&other.latency);
    }

    /// All responses.
    pub fn requests(&self) -> u64 {
        self.responses.iter().sum()
    }

    /// Failed requests: 5xx responses and gRPC calls with a non-OK
    /// status, each counted once.
    pub fn errors(&self) -> u64 {
        self.errors
    }
}

#[derive(Debug)]
struct Edge {
    first_seen: Instant,
    last_seen: Instant,
    total: Counts,
    /// (slot number, counts), oldest first, at most [`WINDOW_SLOTS`].
    slots: VecDeque<(u64, Counts)>,
}

impl Edge {
    /// The counts of the window that ends in slot number `slot`.
    fn window(&self, slot: u64) -> Counts {
        let mut window = Counts::default();
        for (_, counts) in self
            .slots
            .iter()
            .filter(|(n, _)| *n + (WINDOW_SLOTS as u64) > slot)
        {
            window.merge(counts);
        }
        window
    }
}

#[derive(Debug, Default)]
struct Inner {
    edges: BTreeMap<EdgeKey, Edge>,
    /// Active connections by (edge, node id).
    active: BTreeMap<(EdgeKey, String), u64>,
    dropped_samples: u64,
}

/// The edges, shared behind an `Arc` by the metrics service streams, the
/// Prometheus collector and the admin endpoint; methods take `&self` and a
/// short lock.
#[derive(Debug)]
pub struct EdgeStore {
    inner: Mutex<Inner>,
    epoch: Instant,
    slot: Duration,
}

impl Default for EdgeStore {
    fn default() -> Self {
        EdgeStore::new(DEFAULT_WINDOW)
    }
}

/// One edge as `/debug/edges` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EdgeView {
    /// The edge.
    #[serde(flatten)]
    pub key: EdgeKey,
    /// Responses in the window.
    pub requests: u64,
    /// Failed requests in the window: 5xx responses and gRPC calls with a
    /// non-OK grpc-status, each once.
    pub errors: u64,
    /// Responses in the window by class (`1xx` ... `5xx`), classes seen only.
    pub responses_by_class: BTreeMap<&'static str, u64>,
    /// gRPC calls in the window by outcome (`ok`, `error`: a grpc-status
    /// other than 0), outcomes seen only; empty for plain HTTP.
    pub grpc_by_status: BTreeMap<&'static str, u64>,
    /// Share of the window's responses that did not fail (see `errors`);
    /// `None` without responses.
    pub success_rate: Option<f64>,
    /// Responses per second over the window (or since the edge was first
    /// seen, if that is shorter).
    pub rps: f64,
    /// Latency quantiles over the window, in ms (`p50`, `p90`, `p99`);
    /// empty without samples.
    pub latency_ms: BTreeMap<&'static str, f64>,
    /// Connections open now, summed over the reporting proxies.
    pub active_connections: u64,
    /// Responses since the edge was first seen.
    pub total_requests: u64,
    /// Failed requests (5xx or gRPC non-OK) since the edge was first seen.
    pub total_errors: u64,
}

/// Everything `/debug/edges` shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EdgesView {
    /// Length of the sliding window, in seconds.
    pub window_seconds: f64,
    /// The edges, sorted.
    pub edges: Vec<EdgeView>,
    /// Samples dropped because [`MAX_EDGES`] edges exist.
    pub dropped_samples: u64,
}

/// An edge's running totals and current connections, for the Prometheus collector.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeTotals {
    /// The edge.
    pub key: EdgeKey,
    /// Since the edge was first seen.
    pub total: Counts,
    /// Connections open now.
    pub active_connections: u64,
}

/// gRPC outcomes, in the order of [`Counts::grpc`].
pub const GRPC_OUTCOMES: [&str; 2] = ["ok", "error"];

/// The quantiles shown per edge.
const QUANTILES: [(&str, f64); 3] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)];

impl EdgeStore {
    /// An empty store with a sliding `window` (split in [`WINDOW_SLOTS`]
    /// slots; at least 1 ms each).
    pub fn new(window: Duration) -> Self {
        EdgeStore {
            inner: Mutex::new(Inner::default()),
            epoch: Instant::now(),
            slot: (window / WINDOW_SLOTS as u32).max(Duration::from_millis(1)),
        }
    }

    /// The sliding window's length.
    pub fn window(&self) -> Duration {
        self.slot * WINDOW_SLOTS as u32
    }

    fn slot_of(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.epoch).as_nanos() / self.slot.as_nanos()) as u64
    }

    /// Records one flush of the proxy `node_id` of workload
    /// `source_workload` at `now`. Samples of clusters that are not
    /// `outbound|...` are ignored.
    pub fn record(
        &self,
        source_workload: &str,
        node_id: &str,
        samples: &[ClusterSample],
        now: Instant,
    ) {
        let slot = self.slot_of(now);
        let mut guard = self.inner.lock().expect("edge store lock");
        let inner = &mut *guard;
        inner.forget_idle(now);
        for sample in samples {
            let Some((service, subset)) = destination_of_cluster(&sample.cluster) else {
                continue;
            };
            let key = EdgeKey {
                source_workload: source_workload.to_string(),
                destination_service: service,
                destination_subset: subset,
            };
            if !inner.edges.contains_key(&key) && inner.edges.len() >= MAX_EDGES {
                inner.dropped_samples += 1;
                continue;
            }
            let edge = inner.edges.entry(key.clone()).or_insert_with(|| Edge {
                first_seen: now,
                last_seen: now,
                total: Counts::default(),
                slots: VecDeque::new(),
            });
            edge.last_seen = now;
            edge.total.add(sample);
            match edge.slots.back_mut() {
                Some((n, counts)) if *n == slot => counts.add(sample),
                _ => {
                    let mut counts = Counts::default();
                    counts.add(sample);
                    edge.slots.push_back((slot, counts));
                }
            }
            while edge
                .slots
                .front()
                .is_some_and(|(n, _)| *n + (WINDOW_SLOTS as u64) <= slot)
            {
                edge.slots.pop_front();
            }
            if let Some(active) = sample.active_connections {
                let entry = (key, node_id.to_string());
                if inner.active.contains_key(&entry) || inner.active.len() < MAX_ACTIVE_ENTRIES {
                    inner.active.insert(entry, active);
                }
            }
        }
    }

    /// Forgets the active connections `node_id` reported (its stream ended).
    pub fn proxy_gone(&self, node_id: &str) {
        self.inner
            .lock()
            .expect("edge store lock")
            .active
            .retain(|(_, node), _| node != node_id);
    }

    /// The edges at `now`: window values and totals.
    pub fn view(&self, now: Instant) -> EdgesView {
        let slot = self.slot_of(now);
        let mut inner = self.inner.lock().expect("edge store lock");
        inner.forget_idle(now);
        let active = inner.active_by_edge();
        let edges = inner
            .edges
            .iter()
            .map(|(key, edge)| {
                let window = edge.window(slot);
                let requests = window.requests();
                let span = now
                    .saturating_duration_since(edge.first_seen)
                    .min(self.window())
                    .max(Duration::from_secs(1));
                EdgeView {
                    key: key.clone(),
                    requests,
                    errors: window.errors(),
                    responses_by_class: CODE_CLASSES
                        .iter()
                        .zip(window.responses)
                        .filter(|(_, n)| *n > 0)
                        .map(|(c, n)| (*c, n))
                        .collect(),
                    grpc_by_status: GRPC_OUTCOMES
                        .iter()
                        .zip(window.grpc)
                        .filter(|(_, n)| *n > 0)
                        .map(|(c, n)| (*c, n))
                        .collect(),
                    success_rate: (requests > 0)
                        .then(|| requests.saturating_sub(window.errors()) as f64 / requests as f64),
                    rps: requests as f64 / span.as_secs_f64(),
                    latency_ms: QUANTILES
                        .iter()
                        .filter_map(|(name, q)| Some((*name, window.latency.quantile(*q)?)))
                        .collect(),
                    active_connections: active.get(key).copied().unwrap_or(0),
                    total_requests: edge.total.requests(),
                    total_errors: edge.total.errors(),
                }
            })
            .collect();
        EdgesView {
            window_seconds: self.window().as_secs_f64(),
            edges,
            dropped_samples: inner.dropped_samples,
        }
    }

    /// Running totals of every edge, sorted, and the dropped sample count.
    pub fn totals(&self) -> (Vec<EdgeTotals>, u64) {
        let inner = self.inner.lock().expect("edge store lock");
        let active = inner.active_by_edge();
        let totals = inner
            .edges
            .iter()
            .map(|(key, edge)| EdgeTotals {
                key: key.clone(),
                total: edge.total.clone(),
                active_connections: active.get(key).copied().unwrap_or(0),
            })
            .collect();
        (totals, inner.dropped_samples)
    }
}

impl Inner {
    fn forget_idle(&mut self, now: Instant) {
        let before = self.edges.len();
        self.edges
            .retain(|_, edge| now.saturating_duration_since(edge.last_seen) < IDLE_EDGE);
        if self.edges.len() != before {
            let edges = &self.edges;
            self.active.retain(|(key, _), _| edges.contains_key(key));
        }
    }

    fn active_by_edge(&self) -> BTreeMap<EdgeKey, u64> {
        let mut sums = BTreeMap::new();
        for ((key, _), n) in &self.active {
            *sums.entry(key.clone()).or_insert(0) += n;
        }
        sums
    }
}

#[cfg(test)]
mod tests;
