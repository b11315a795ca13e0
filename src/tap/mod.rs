//! Live tap: HTTP access log entries that sidecars stream to Sextant over
//! Envoy's gRPC access log service (`envoy.service.accesslog.v3`), kept in
//! a bounded ring per destination service and fanned out to live
//! subscribers (`GET /debug/tap`, `sextant tap`).
//!
//! Memory is bounded: at most [`RING_CAPACITY`] entries per service and
//! [`MAX_SERVICES`] services (entries for further services are only sent
//! to live subscribers, not kept); a subscriber that falls more than
//! [`LIVE_BUFFER`] entries behind skips the ones it missed.

mod filter;
mod service;

pub use filter::{TapFilter, MAX_FILTER_LEN};
pub use service::AccessLogSink;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Entries kept per destination service.
pub const RING_CAPACITY: usize = 100;
/// Destination services with a ring.
pub const MAX_SERVICES: usize = 1024;
/// Entries buffered for each live subscriber.
pub const LIVE_BUFFER: usize = 1024;

/// One request, as a sidecar's access log reported it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TapEntry {
    /// Destination service as `name.namespace` (a Kubernetes service), or
    /// the host (a ServiceEntry host); empty when no cluster was picked.
    pub service: String,
    /// The upstream cluster (`outbound|<port>|<subset>|<fqdn>`).
    pub cluster: String,
    /// Request start, RFC 3339 (UTC), when Envoy reported it.
    pub start_time: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Request path (with query).
    pub path: String,
    /// `:authority` (Host).
    pub authority: String,
    /// Response status; `None` when no response was sent.
    pub status: Option<u32>,
    /// From the first request byte to the last response byte, in milliseconds.
    pub duration_ms: Option<f64>,
    /// The client: the SPIFFE ID of the sending sidecar's workload when it
    /// has one, else its node id.
    pub source: String,
    /// Node id of the sidecar that reported it.
    pub node: String,
    /// Trace ID (from B3 `x-b3-traceid` or W3C `traceparent`), if any.
    pub trace_id: Option<String>,
    /// `x-request-id`.
    pub request_id: String,
}

/// The destination service of an upstream cluster name:
/// `outbound|80||reviews.shop.svc.cluster.local` → `reviews.shop`;
/// a ServiceEntry host stays whole; anything else is returned as is.
pub fn service_of_cluster(cluster: &str) -> String {
    let host = match cluster.split('|').collect::<Vec<_>>().as_slice() {
        ["outbound", _, _, host] => *host,
        _ => return cluster.to_string(),
    };
    let suffix = format!(".{}", crate::ir::DOMAIN_SUFFIX);
    host.strip_suffix(&suffix).unwrap_or(host).to_string()
}

/// The rings and the live fan-out. Shared behind an `Arc`; methods take `&self`.
#[derive(Debug)]
pub struct TapHub {
    rings: Mutex<BTreeMap<String, VecDeque<TapEntry>>>,
    live: broadcast::Sender<Arc<TapEntry>>,
}

impl Default for TapHub {
    fn default() -> Self {
        TapHub {
            rings: Mutex::new(BTreeMap::new()),
            live: broadcast::channel(LIVE_BUFFER).0,
        }
    }
}

impl TapHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `entry` in its service's ring (dropping the oldest beyond
    /// [`RING_CAPACITY`]) and sends it to live subscribers.
    pub fn record(&self, entry: TapEntry) {
        {
            let mut rings = self.rings.lock().expect("tap lock");
            let known = rings.contains_key(&entry.service);
            if known || rings.len() < MAX_SERVICES {
                let ring = rings.entry(entry.service.clone()).or_default();
                if ring.len() == RING_CAPACITY {
                    ring.pop_front();
                }
                ring.push_back(entry.clone());
            }
        }
        // No subscriber is not an error.
        let _ = self.live.send(Arc::new(entry));
    }

    /// The kept entries of `service` (`name.namespace` or host), oldest first.
    pub fn recent(&self, service: &str) -> Vec<TapEntry> {
        self.rings
            .lock()
            .expect("tap lock")
            .get(service)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every entry recorded from now on, for every service.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<TapEntry>> {
        self.live.subscribe()
    }
}

#[cfg(test)]
mod tests;
