//! Connected proxies and their per-type xDS state, for the admin endpoint.

use super::stream::SotwStream;
use crate::envoy::TypeUrl;
use crate::proxy::ProxyInfo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One connected ADS stream.
#[derive(Debug)]
pub struct StreamEntry {
    /// Stream id, unique within this process.
    pub id: u64,
    /// The proxy on the other end.
    pub proxy: ProxyInfo,
    /// Its address, if known.
    pub peer: Option<SocketAddr>,
    /// When the stream opened.
    pub connected_at: SystemTime,
    /// The stream's state machine; the stream task holds the lock only
    /// briefly, per request or push.
    pub state: Arc<Mutex<SotwStream>>,
}

/// All connected streams, plus NACK counters that outlive streams.
#[derive(Debug, Default)]
pub struct Registry {
    streams: Mutex<BTreeMap<u64, Arc<StreamEntry>>>,
    next_id: AtomicU64,
    nacks: Mutex<BTreeMap<TypeUrl, u64>>,
}

/// Removes its stream from the registry when dropped (the stream ended).
#[derive(Debug)]
pub struct Registration {
    registry: Arc<Registry>,
    /// The registered entry.
    pub entry: Arc<StreamEntry>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry
            .streams
            .lock()
            .expect("registry lock")
            .remove(&self.entry.id);
    }
}

impl Registry {
    /// Records a new stream; it stays listed while the returned guard lives.
    pub fn register(self: &Arc<Self>, proxy: ProxyInfo, peer: Option<SocketAddr>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(StreamEntry {
            id,
            proxy,
            peer,
            connected_at: SystemTime::now(),
            state: Arc::new(Mutex::new(SotwStream::new())),
        });
        self.streams
            .lock()
            .expect("registry lock")
            .insert(id, entry.clone());
        Registration {
            registry: self.clone(),
            entry,
        }
    }

    /// Every connected stream, oldest first.
    pub fn streams(&self) -> Vec<Arc<StreamEntry>> {
        self.streams
            .lock()
            .expect("registry lock")
            .values()
            .cloned()
            .collect()
    }

    /// The newest stream of the proxy with `node_id`.
    pub fn find(&self, node_id: &str) -> Option<Arc<StreamEntry>> {
        self.streams
            .lock()
            .expect("registry lock")
            .values()
            .rev()
            .find(|e| e.proxy.node_id == node_id)
            .cloned()
    }

    /// Counts a NACK of `type_url`.
    pub fn count_nack(&self, type_url: TypeUrl) {
        *self
            .nacks
            .lock()
            .expect("registry lock")
            .entry(type_url)
            .or_default() += 1;
    }

    /// NACKs received since start, by type.
    pub fn nack_totals(&self) -> BTreeMap<TypeUrl, u64> {
        self.nacks.lock().expect("registry lock").clone()
    }
}
