//! A simulated proxy: one ADS stream, SotW or delta, that subscribes as
//! Envoy does and ACKs every response, counting what it receives.
//!
//! SotW: CDS and LDS as wildcards, then EDS for the EDS clusters received
//! and RDS for the route configurations the listeners name (each request
//! repeats the full name list, as Envoy's do). Delta: `*` on all four types.
//! Resources are not kept; each is only measured and shown to the
//! [`Watches`].

use super::watch::Watches;
use super::LoadError;
use crate::envoy::TypeUrl;
use crate::proxy::{META_LABELS, META_NAMESPACE, META_OUTBOUND_ADDRESS, META_SERVICE_ACCOUNT};
use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::{filter, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use prost::Message;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// The four types a sidecar subscribes to, in push order.
pub const TYPES: [TypeUrl; 4] = [
    TypeUrl::Cluster,
    TypeUrl::ClusterLoadAssignment,
    TypeUrl::Listener,
    TypeUrl::RouteConfiguration,
];

/// The type of a response and its position in [`TYPES`]; an error for a
/// type the simulated proxy did not subscribe to.
fn subscribed_type(type_url: &str) -> Result<(TypeUrl, usize), String> {
    let parsed = TypeUrl::parse(type_url).ok_or_else(|| format!("unexpected type {type_url}"))?;
    let t = TYPES
        .iter()
        .position(|t| *t == parsed)
        .ok_or_else(|| format!("{parsed} sent unasked"))?;
    Ok((parsed, t))
}

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
    /// SotW: names to subscribe to, by the version of the CDS or LDS
    /// response they come from (proxies of one class share versions, so
    /// each distinct response is decoded once).
    names: Mutex<HashMap<String, Arc<Vec<String>>>>,
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

/// The name of an encoded Cluster, ClusterLoadAssignment, Listener or
/// RouteConfiguration without decoding it: each has its name as field 1,
/// which prost writes first.
fn leading_name(bytes: &[u8]) -> Option<&str> {
    let (&tag, mut rest) = bytes.split_first()?;
    if tag != 0x0a {
        return None;
    }
    let mut len = 0usize;
    for shift in (0..35).step_by(7) {
        let (&b, r) = rest.split_first()?;
        rest = r;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return std::str::from_utf8(rest.get(..len)?).ok();
        }
    }
    None
}

/// Runs proxy `i` until the stream ends or fails.
///
/// # Errors
/// [`LoadError::Stream`] when the stream cannot open or ends with an error.
pub async fn run(
    i: usize,
    node: Node,
    channel: Channel,
    protocol: Protocol,
    fleet: Arc<Fleet>,
) -> Result<(), LoadError> {
    let id = node.id.clone();
    let fail = |message: String| LoadError::Stream {
        proxy: id.clone(),
        message,
    };
    let client = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(crate::server::MAX_RESPONSE_BYTES);
    match protocol {
        Protocol::Sotw => sotw(i, node, client, &fleet).await.map_err(fail),
        Protocol::Delta => delta(i, node, client, &fleet).await.map_err(fail),
    }
}

/// Per type, what a SotW proxy last sent and received.
#[derive(Default)]
struct SotwType {
    names: Arc<Vec<String>>,
    version: String,
    nonce: String,
    acked: bool,
    /// A request changed the names and no response came since.
    pending: bool,
}

async fn sotw(
    i: usize,
    node: Node,
    mut client: AggregatedDiscoveryServiceClient<Channel>,
    fleet: &Fleet,
) -> Result<(), String> {
    let (tx, rx) = mpsc::unbounded_channel();
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
    let send = |r: DiscoveryRequest| tx.send(r).map_err(|_| "request channel closed".to_string());
    send(request(TypeUrl::Cluster, &types[0], Some(node)))?;
    send(request(TypeUrl::Listener, &types[2], None))?;
    let mut inbound = client
        .stream_aggregated_resources(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await
        .map_err(|s| format!("opening the SotW stream: {s}"))?
        .into_inner();
    let stats = &fleet.stats[i];
    loop {
        let response = match inbound.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(status) => return Err(format!("SotW stream: {status}")),
        };
        let at = Instant::now();
        let (type_url, t) = subscribed_type(&response.type_url)?;
        record(fleet, i, t, &response, at);
        let state = &mut types[t];
        state.version = response.version_info.clone();
        state.nonce = response.nonce.clone();
        state.pending = false;
        send(request(type_url, state, None))?;
        state.acked = true;
        // Subscribe to what CDS and LDS responses name.
        let dependent = match type_url {
            TypeUrl::Cluster => Some((1, TypeUrl::ClusterLoadAssignment)),
            TypeUrl::Listener => Some((3, TypeUrl::RouteConfiguration)),
            _ => None,
        };
        if let Some((d, dependent_url)) = dependent {
            let names = fleet.names_of(type_url, &response);
            if names != types[d].names {
                types[d].names = names;
                types[d].pending = true;
                send(request(dependent_url, &types[d], None))?;
            }
        }
        if types.iter().all(|s| s.acked && !s.pending) {
            let _ = stats.synced_at.set(Instant::now());
        }
    }
}

/// Counts a SotW response of the `t`-th of [`TYPES`] for proxy `i`.
fn record(fleet: &Fleet, i: usize, t: usize, response: &DiscoveryResponse, at: Instant) {
    let stats = &fleet.stats[i];
    let bytes: usize = response.resources.iter().map(|a| a.value.len()).sum();
    stats.bytes[t].fetch_add(bytes as u64, Ordering::Relaxed);
    stats.responses[t].fetch_add(1, Ordering::Relaxed);
    for any in &response.resources {
        if let Some(name) = leading_name(&any.value) {
            // The SotW version covers the set, so it names this content too.
            let version = format!("{}/{name}", response.version_info);
            fleet
                .watches
                .on_resource(i, TYPES[t], name, &version, &any.value, at);
        }
    }
}

impl Fleet {
    /// SotW: the EDS names of a CDS response (its EDS clusters) or the RDS
    /// names of an LDS response (the route configurations its HTTP
    /// connection managers load), sorted, decoded once per response version.
    fn names_of(&self, type_url: TypeUrl, response: &DiscoveryResponse) -> Arc<Vec<String>> {
        let key = format!("{}/{}", type_url.short_name(), response.version_info);
        if let Some(names) = self.names.lock().expect("names lock").get(&key) {
            return names.clone();
        }
        let mut names: Vec<String> = match type_url {
            TypeUrl::Cluster => response
                .resources
                .iter()
                .filter_map(|a| Cluster::decode(a.value.as_slice()).ok())
                .filter(|c| {
                    c.cluster_discovery_type
                        == Some(cluster::ClusterDiscoveryType::Type(
                            cluster::DiscoveryType::Eds as i32,
                        ))
                })
                .map(|c| c.name)
                .collect(),
            _ => response
                .resources
                .iter()
                .filter_map(|a| Listener::decode(a.value.as_slice()).ok())
                .flat_map(|l| l.filter_chains)
                .flat_map(|c| c.filters)
                .filter_map(|f| match f.config_type {
                    Some(filter::ConfigType::TypedConfig(any)) => {
                        HttpConnectionManager::decode(any.value.as_slice()).ok()
                    }
                    _ => None,
                })
                .filter_map(|h| match h.route_specifier {
                    Some(RouteSpecifier::Rds(rds)) => Some(rds.route_config_name),
                    _ => None,
                })
                .collect(),
        };
        names.sort();
        names.dedup();
        let names = Arc::new(names);
        self.names
            .lock()
            .expect("names lock")
            .insert(key, names.clone());
        names
    }
}

async fn delta(
    i: usize,
    node: Node,
    mut client: AggregatedDiscoveryServiceClient<Channel>,
    fleet: &Fleet,
) -> Result<(), String> {
    let (tx, rx) = mpsc::unbounded_channel();
    let send =
        |r: DeltaDiscoveryRequest| tx.send(r).map_err(|_| "request channel closed".to_string());
    let mut node = Some(node);
    for t in TYPES {
        send(DeltaDiscoveryRequest {
            node: node.take(),
            type_url: t.as_str().to_string(),
            resource_names_subscribe: vec!["*".to_string()],
            ..Default::default()
        })?;
    }
    let mut inbound = client
        .delta_aggregated_resources(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await
        .map_err(|s| format!("opening the delta stream: {s}"))?
        .into_inner();
    let stats = &fleet.stats[i];
    let mut acked = [false; 4];
    loop {
        let response = match inbound.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(status) => return Err(format!("delta stream: {status}")),
        };
        let at = Instant::now();
        let (type_url, t) = subscribed_type(&response.type_url)?;
        let mut bytes = 0;
        for r in &response.resources {
            if let Some(any) = &r.resource {
                bytes += any.value.len();
                fleet
                    .watches
                    .on_resource(i, type_url, &r.name, &r.version, &any.value, at);
            }
        }
        stats.bytes[t].fetch_add(bytes as u64, Ordering::Relaxed);
        stats.responses[t].fetch_add(1, Ordering::Relaxed);
        send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        })?;
        acked[t] = true;
        if acked.iter().all(|a| *a) {
            let _ = stats.synced_at.set(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_name_reads_field_one() {
        let cluster = Cluster {
            name: "outbound|80||a.ns.svc.cluster.local".into(),
            ..Default::default()
        };
        let bytes = cluster.encode_to_vec();
        assert_eq!(leading_name(&bytes), Some(cluster.name.as_str()));
        let long = "x".repeat(300);
        let listener = Listener {
            name: long.clone(),
            ..Default::default()
        };
        assert_eq!(leading_name(&listener.encode_to_vec()), Some(long.as_str()));
        assert_eq!(leading_name(&[0x12, 0x01, b'a']), None);
    }
}
