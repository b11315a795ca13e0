//! A simulated proxy: one ADS stream, SotW or delta, that subscribes as
//! Envoy does and ACKs every response, counting what it receives.
//!
//! SotW: CDS and LDS as wildcards, then EDS for the EDS clusters received
//! and RDS for the route configurations the listeners name (each request
//! repeats the full name list, as Envoy's do). Delta: `*` on all four types.
//! Responses are read as they arrive ([`AdsStream`]); resources are not
//! kept, only measured and shown to the [`Watches`] (see [`Receiver`]).

use super::ads::AdsStream;
use super::receive::{Claim, NameList, Names, Receiver};
use super::watch::Watches;
use super::LoadError;
use crate::envoy::TypeUrl;
use crate::proxy::{META_LABELS, META_NAMESPACE, META_OUTBOUND_ADDRESS, META_SERVICE_ACCOUNT};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tokio::sync::watch;

/// The four types a sidecar subscribes to, in push order.
pub const TYPES: [TypeUrl; 4] = [
    TypeUrl::Cluster,
    TypeUrl::ClusterLoadAssignment,
    TypeUrl::Listener,
    TypeUrl::RouteConfiguration,
];

/// The ADS flavour the proxies speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// State of the world.
    Sotw,
    /// Incremental.
    Delta,
}

/// What one proxy has received so far.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Encoded resource bytes received (the `value` of each `Any`), by [`TYPES`] index.
    pub bytes: [AtomicU64; 4],
    /// Responses received, by [`TYPES`] index.
    pub responses: [AtomicU64; 4],
    /// When the proxy had ACKed a response of every type, with no
    /// subscription change unanswered.
    pub synced_at: OnceLock<Instant>,
}

/// What all proxies of a run share.
#[derive(Debug)]
pub struct Fleet {
    /// Per proxy, by index.
    pub stats: Vec<ProxyStats>,
    /// What the running scenario looks for.
    pub watches: Watches,
    /// SotW: names to subscribe to, by the type and version of the CDS or
    /// LDS response they come from (`CDS/<version>`): proxies of one class
    /// share versions, so one proxy reads each version's names and the
    /// others wait for them.
    names: Mutex<HashMap<String, watch::Sender<Option<NameList>>>>,
}

impl Fleet {
    /// A fleet of `n` proxies that have received nothing.
    pub fn new(n: usize) -> Self {
        Fleet {
            stats: (0..n).map(|_| ProxyStats::default()).collect(),
            watches: Watches::new(n),
            names: Mutex::default(),
        }
    }

    /// Bytes received by all proxies, by [`TYPES`] index.
    pub fn bytes(&self) -> [u64; 4] {
        let mut total = [0; 4];
        for s in &self.stats {
            for (t, b) in s.bytes.iter().enumerate() {
                total[t] += b.load(Ordering::Relaxed);
            }
        }
        total
    }

    /// Responses received by all proxies.
    pub fn responses(&self) -> u64 {
        self.stats
            .iter()
            .flat_map(|s| &s.responses)
            .map(|r| r.load(Ordering::Relaxed))
            .sum()
    }
}

/// The identity of simulated proxy `i`: node id `load-<i>.<namespace>`,
/// namespace `namespaces[i mod len]`, labels `app: load-<i>`, and its own
/// outbound listener address `127.64.x.y`.
pub fn node(i: usize, namespace: &str) -> Node {
    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.to_string())),
    };
    let labels = Struct {
        fields: [("app".to_string(), string(&format!("load-{i}")))].into(),
    };
    let [_, _, a, b] = (i as u32).to_be_bytes();
    Node {
        id: format!("load-{i}.{namespace}"),
        cluster: format!("load-{i}"),
        metadata: Some(Struct {
            fields: [
                (META_NAMESPACE.to_string(), string(namespace)),
                (
                    META_LABELS.to_string(),
                    Value {
                        kind: Some(Kind::StructValue(labels)),
                    },
                ),
                (
                    META_SERVICE_ACCOUNT.to_string(),
                    string(&format!("load-{i}")),
                ),
                (
                    META_OUTBOUND_ADDRESS.to_string(),
                    string(&Ipv4Addr::new(127, 64, a, b).to_string()),
                ),
            ]
            .into(),
        }),
        ..Default::default()
    }
}

impl Fleet {
    /// Who reads the names of the response version `key`: the first proxy
    /// to ask; the others get them, or wait for them.
    pub(super) fn claim(&self, key: &str) -> Claim {
        let mut names = self.names.lock().expect("names lock");
        match names.get(key) {
            Some(sender) => match sender.borrow().clone() {
                Some(list) => Claim::Other(Names::Ready(list)),
                None => Claim::Other(Names::Wait(sender.subscribe())),
            },
            None => {
                names.insert(key.to_string(), watch::Sender::new(None));
                Claim::Mine
            }
        }
    }

    /// Gives up the claim on `key` of a proxy that stopped before it
    /// published the names: the proxies waiting for them get an error.
    pub(super) fn abandon(&self, key: &str) {
        let mut names = self.names.lock().expect("names lock");
        if names
            .get(key)
            .is_some_and(|sender| sender.borrow().is_none())
        {
            names.remove(key);
        }
    }

    /// The names of the response version `key`, read by its claimer.
    pub(super) fn publish(&self, key: &str, list: NameList) {
        if let Some(sender) = self.names.lock().expect("names lock").get(key) {
            sender.send_replace(Some(list));
        }
    }
}

/// Runs proxy `i` on `stream` until the stream ends or fails.
///
/// # Errors
/// [`LoadError::Stream`] when the stream ends with an error, or a response
/// is one the proxy cannot take (see [`Receiver::take`]).
pub async fn run(
    i: usize,
    node: Node,
    stream: AdsStream,
    protocol: Protocol,
    fleet: Arc<Fleet>,
) -> Result<(), LoadError> {
    let id = node.id.clone();
    let result = match protocol {
        Protocol::Sotw => sotw(i, node, stream, &fleet).await,
        Protocol::Delta => delta(i, node, stream, &fleet).await,
    };
    result.map_err(|message| LoadError::Stream { proxy: id, message })
}

/// Per type, what a SotW proxy last sent and received.
#[derive(Default)]
struct SotwType {
    names: NameList,
    version: String,
    nonce: String,
    acked: bool,
    /// A request changed the names and no response came since.
    pending: bool,
}

async fn sotw(i: usize, node: Node, mut stream: AdsStream, fleet: &Fleet) -> Result<(), String> {
    let request = |t: TypeUrl, s: &SotwType, node: Option<Node>| DiscoveryRequest {
        node,
        type_url: t.as_str().to_string(),
        version_info: s.version.clone(),
        resource_names: s.names.to_vec(),
        response_nonce: s.nonce.clone(),
        ..Default::default()
    };
    let mut types: [SotwType; 4] = Default::default();
    types[0].pending = true;
    types[2].pending = true;
    stream.send(&request(TypeUrl::Cluster, &types[0], Some(node)))?;
    stream.send(&request(TypeUrl::Listener, &types[2], None))?;
    let stats = &fleet.stats[i];
    let mut receiver = Receiver::new(i, fleet, Protocol::Sotw);
    while stream.read(&mut receiver).await? {
        for ended in receiver.take()? {
            let type_url = TYPES[ended.t];
            let state = &mut types[ended.t];
            state.version = ended.head.version_info;
            state.nonce = ended.head.nonce;
            state.pending = false;
            stream.send(&request(type_url, state, None))?;
            state.acked = true;
            // Subscribe to what CDS and LDS responses name.
            let dependent = match type_url {
                TypeUrl::Cluster => Some((1, TypeUrl::ClusterLoadAssignment)),
                TypeUrl::Listener => Some((3, TypeUrl::RouteConfiguration)),
                _ => None,
            };
            if let (Some((d, dependent_url)), Some(names)) = (dependent, ended.names) {
                // Until the proxy reading this version's names has read the
                // same response: this stream is not read meanwhile.
                let names = names.get().await?;
                if names != types[d].names {
                    types[d].names = names;
                    types[d].pending = true;
                    stream.send(&request(dependent_url, &types[d], None))?;
                }
            }
            if types.iter().all(|s| s.acked && !s.pending) {
                let _ = stats.synced_at.set(Instant::now());
            }
        }
    }
    Ok(())
}

async fn delta(i: usize, node: Node, mut stream: AdsStream, fleet: &Fleet) -> Result<(), String> {
    let mut node = Some(node);
    for t in TYPES {
        stream.send(&DeltaDiscoveryRequest {
            node: node.take(),
            type_url: t.as_str().to_string(),
            resource_names_subscribe: vec!["*".to_string()],
            ..Default::default()
        })?;
    }
    let stats = &fleet.stats[i];
    let mut receiver = Receiver::new(i, fleet, Protocol::Delta);
    let mut acked = [false; 4];
    while stream.read(&mut receiver).await? {
        for ended in receiver.take()? {
            stream.send(&DeltaDiscoveryRequest {
                type_url: ended.head.type_url,
                response_nonce: ended.head.nonce,
                ..Default::default()
            })?;
            acked[ended.t] = true;
            if acked.iter().all(|a| *a) {
                let _ = stats.synced_at.set(Instant::now());
            }
        }
    }
    Ok(())
}
