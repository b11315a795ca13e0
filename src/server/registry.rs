//! Connected proxies and their per-type xDS state, for the admin endpoint.

use super::delta_stream::DeltaStream;
use super::stream::{Nack, SotwStream, Subscription};
use crate::cache::ResourceMap;
use crate::envoy::TypeUrl;
use crate::model::ObjectKey;
use crate::proxy::ProxyInfo;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::watch;

/// The state machine of one stream.
#[derive(Debug)]
pub enum StreamState {
    /// State of the world.
    Sotw(SotwStream),
    /// Incremental.
    Delta(DeltaStream),
}

/// What the admin endpoint shows of one type on one stream, the same for
/// SotW and delta.
#[derive(Clone, Debug, Serialize)]
pub struct TypeStatus {
    /// `wildcard`, or the subscribed names.
    pub subscription: Subscription,
    /// Version of the latest response (SotW `version_info`, delta `system_version_info`).
    pub sent_version: Option<String>,
    /// Nonce of the latest response.
    pub sent_nonce: Option<String>,
    /// Names the proxy has if it accepts everything sent.
    pub sent_resources: Vec<String>,
    /// Encoded size of those resources, in bytes.
    pub sent_bytes: usize,
    /// Version of the latest ACKed response.
    pub acked_version: Option<String>,
    /// The resources the proxy ACKed, by name.
    #[serde(skip)]
    pub acked_resources: Option<Arc<ResourceMap>>,
    /// When the ACKed response was sent.
    #[serde(skip)]
    pub acked_at: Option<SystemTime>,
    /// The latest response is still waiting for an ACK or NACK.
    pub awaiting_answer: bool,
    /// The latest NACK, if the latest answered response was NACKed.
    pub last_nack: Option<Nack>,
    /// NACKs received on this stream.
    pub nack_count: u64,
}

/// Istio's proxy-status column values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SyncState {
    /// The latest response was ACKed.
    Synced,
    /// Nothing was sent yet.
    NotSent,
    /// The latest response is not answered yet.
    Stale,
    /// The latest response was NACKed.
    Nacked,
}

impl TypeStatus {
    /// Where this type stands, in proxy-status terms.
    pub fn sync_state(&self) -> SyncState {
        match (&self.sent_version, self.awaiting_answer, &self.last_nack) {
            (None, _, _) => SyncState::NotSent,
            (Some(_), true, _) => SyncState::Stale,
            (Some(_), false, Some(_)) => SyncState::Nacked,
            (Some(_), false, None) => SyncState::Synced,
        }
    }
}

impl StreamState {
    /// "SotW" or "delta".
    pub fn protocol(&self) -> &'static str {
        match self {
            StreamState::Sotw(_) => "SotW",
            StreamState::Delta(_) => "delta",
        }
    }

    /// Whether a response of any type is still waiting for an ACK or NACK.
    pub fn awaiting_answer(&self) -> bool {
        match self {
            StreamState::Sotw(stream) => stream
                .types
                .values()
                .any(super::stream::TypeState::awaiting_answer),
            StreamState::Delta(stream) => stream
                .types
                .values()
                .any(super::delta_stream::DeltaTypeState::awaiting_answer),
        }
    }

    /// The latest NACK of each type whose latest answered response was
    /// NACKed (cheaper than [`StreamState::status`]: nothing else is copied).
    pub fn nacks(&self) -> Vec<(TypeUrl, Nack)> {
        match self {
            StreamState::Sotw(stream) => stream
                .types
                .iter()
                .filter_map(|(t, s)| Some((*t, s.nack.clone()?)))
                .collect(),
            StreamState::Delta(stream) => stream
                .types
                .iter()
                .filter_map(|(t, s)| Some((*t, s.nack.clone()?)))
                .collect(),
        }
    }

    /// The status of every type the proxy asked for.
    pub fn status(&self) -> BTreeMap<TypeUrl, TypeStatus> {
        match self {
            StreamState::Sotw(stream) => stream
                .types
                .iter()
                .map(|(t, s)| {
                    let view = |x: &'_ super::stream::Sent| Response {
                        version: x.version.clone(),
                        nonce: x.nonce.clone(),
                        resources: x.resources.clone(),
                        at: x.at,
                    };
                    let status = TypeStatus::new(
                        s.subscription.clone(),
                        s.sent.as_ref().map(view),
                        s.acked.as_ref().map(view),
                        s.awaiting_answer(),
                        s.nack.clone(),
                        s.nack_count,
                    );
                    (*t, status)
                })
                .collect(),
            StreamState::Delta(stream) => stream
                .types
                .iter()
                .map(|(t, s)| {
                    let subscription = if s.wildcard {
                        Subscription::Wildcard
                    } else {
                        Subscription::Names(s.names.clone())
                    };
                    let view = |x: &'_ super::delta_stream::DeltaSent| Response {
                        version: x.system_version.clone(),
                        nonce: x.nonce.clone(),
                        resources: x.state.clone(),
                        at: x.at,
                    };
                    let status = TypeStatus::new(
                        subscription,
                        s.sent.as_ref().map(view),
                        s.acked.as_ref().map(view),
                        s.awaiting_answer(),
                        s.nack.clone(),
                        s.nack_count,
                    );
                    (*t, status)
                })
                .collect(),
        }
    }
}

/// A response as the status view needs it, SotW or delta.
struct Response {
    version: String,
    nonce: String,
    /// Everything the proxy has once it applies the response.
    resources: Arc<ResourceMap>,
    at: SystemTime,
}

impl TypeStatus {
    fn new(
        subscription: Subscription,
        sent: Option<Response>,
        acked: Option<Response>,
        awaiting_answer: bool,
        last_nack: Option<Nack>,
        nack_count: u64,
    ) -> Self {
        TypeStatus {
            subscription,
            sent_resources: sent
                .iter()
                .flat_map(|x| x.resources.keys().map(|n| n.to_string()))
                .collect(),
            sent_bytes: sent
                .iter()
                .flat_map(|x| x.resources.values())
                .map(|r| r.body.len())
                .sum(),
            sent_version: sent.as_ref().map(|x| x.version.clone()),
            sent_nonce: sent.map(|x| x.nonce),
            acked_version: acked.as_ref().map(|x| x.version.clone()),
            acked_at: acked.as_ref().map(|x| x.at),
            acked_resources: acked.map(|x| x.resources),
            awaiting_answer,
            last_nack,
            nack_count,
        }
    }
}

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
    pub state: Arc<Mutex<StreamState>>,
}

/// All connected streams, plus NACK counters that outlive streams.
#[derive(Debug)]
pub struct Registry {
    streams: Mutex<BTreeMap<u64, Arc<StreamEntry>>>,
    next_id: AtomicU64,
    nacks: Mutex<BTreeMap<TypeUrl, u64>>,
    /// The objects behind each proxy's latest NACK, by node id and type.
    nack_objects: Mutex<BTreeMap<(String, TypeUrl), Vec<ObjectKey>>>,
    /// Bumped on every ACK or NACK and when a stream ends (see [`Registry::answers`]).
    answers: watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            streams: Mutex::default(),
            next_id: AtomicU64::default(),
            nacks: Mutex::default(),
            nack_objects: Mutex::default(),
            answers: watch::channel(0).0,
        }
    }
}

/// A connected proxy's latest answer of one type that was a NACK, with the
/// objects the rejected resources were traced back to.
#[derive(Clone, Debug, PartialEq)]
pub struct CurrentNack {
    /// The proxy's node id.
    pub node_id: String,
    /// The rejected type.
    pub type_url: TypeUrl,
    /// Envoy's trimmed message (see [`super::stream::trim_nack_message`]).
    pub message: String,
    /// The objects behind the rejected resources (see
    /// [`crate::ir::Ir::origins_mentioned`]); empty when none was found.
    pub objects: Vec<ObjectKey>,
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
        // The stream's NACKs are gone with it.
        self.registry.answered();
    }
}

impl Registry {
    /// Records a new stream; it stays listed while the returned guard lives.
    pub fn register(
        self: &Arc<Self>,
        proxy: ProxyInfo,
        peer: Option<SocketAddr>,
        state: StreamState,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(StreamEntry {
            id,
            proxy,
            peer,
            connected_at: SystemTime::now(),
            state: Arc::new(Mutex::new(state)),
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

    /// Counts a NACK of `type_url` by `node_id`, and remembers the objects
    /// behind the resources it names.
    pub fn count_nack(&self, type_url: TypeUrl, node_id: &str, objects: Vec<ObjectKey>) {
        *self
            .nacks
            .lock()
            .expect("registry lock")
            .entry(type_url)
            .or_default() += 1;
        self.nack_objects
            .lock()
            .expect("registry lock")
            .insert((node_id.to_string(), type_url), objects);
        self.answered();
    }

    /// Records that some proxy answered (ACK or NACK) or went away, waking
    /// the receivers of [`Registry::answers`].
    pub fn answered(&self) {
        self.answers.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees a change after every ACK, NACK and stream end
    /// (the value is a counter; only its changes mean anything). Use it to
    /// look at [`Registry::current_nacks`] again.
    pub fn answers(&self) -> watch::Receiver<u64> {
        self.answers.subscribe()
    }

    /// Every connected proxy's types whose latest answered response was
    /// NACKed, oldest stream first, with the objects traced from each NACK.
    /// A type counts as NACKed until the proxy ACKs a later response (or
    /// its stream ends), also while a newer response is in flight.
    pub fn current_nacks(&self) -> Vec<CurrentNack> {
        let mut out = Vec::new();
        for entry in self.streams() {
            let nacks = entry.state.lock().expect("stream lock").nacks();
            for (type_url, nack) in nacks {
                out.push(CurrentNack {
                    node_id: entry.proxy.node_id.clone(),
                    type_url,
                    message: nack.message,
                    objects: self.nack_objects(&entry.proxy.node_id, type_url),
                });
            }
        }
        out
    }

    /// The objects behind the latest NACK of `type_url` by `node_id`.
    pub fn nack_objects(&self, node_id: &str, type_url: TypeUrl) -> Vec<ObjectKey> {
        let objects = self.nack_objects.lock().expect("registry lock");
        objects
            .get(&(node_id.to_string(), type_url))
            .cloned()
            .unwrap_or_default()
    }

    /// NACKs received since start, by type.
    pub fn nack_totals(&self) -> BTreeMap<TypeUrl, u64> {
        self.nacks.lock().expect("registry lock").clone()
    }
}
