//! What a simulated proxy takes from its responses as they stream in:
//! bytes and responses per type, the names its SotW subscriptions follow
//! (the EDS clusters of CDS, the route configurations of LDS), and the
//! resources the [`Watches`](super::watch::Watches) look for.
//!
//! Only those last two ever need a resource whole; everything else is read
//! from the first bytes of each entry (see [`scan`](super::scan)).

use super::proxy::{Fleet, Protocol, TYPES};
use super::scan::{eds_cluster, Entry, Head, Sink};
use crate::envoy::TypeUrl;
use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::listener::v3::{filter, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use prost::Message;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// The names a SotW CDS or LDS response leads to, shared by the proxies
/// that receive the same version: sorted, without duplicates.
pub type NameList = Arc<Vec<String>>;

/// Who works out the names of a response version.
pub(super) enum Claim {
    /// This proxy: it publishes them when its response ends.
    Mine,
    /// Another proxy, which has them or is reading them.
    Other(Names),
}

/// The index in [`TYPES`] of a response's type URL.
///
/// # Errors
/// A type the simulated proxy did not subscribe to.
fn subscribed(type_url: &str) -> Result<usize, String> {
    let parsed = TypeUrl::parse(type_url).ok_or_else(|| format!("unexpected type {type_url}"))?;
    TYPES
        .iter()
        .position(|t| *t == parsed)
        .ok_or_else(|| format!("{parsed} sent unasked"))
}

/// The names a response leads to: known, or being read by another proxy.
pub(super) enum Names {
    Ready(NameList),
    Wait(watch::Receiver<Option<NameList>>),
}

impl Names {
    /// The names, waiting for the proxy that reads them if need be.
    ///
    /// # Errors
    /// That proxy's stream ended before it published them.
    pub async fn get(self) -> Result<NameList, String> {
        match self {
            Names::Ready(names) => Ok(names),
            Names::Wait(mut rx) => rx
                .wait_for(Option::is_some)
                .await
                .map(|names| names.clone().expect("waited for Some"))
                .map_err(|_| "the proxy reading the same response version stopped".into()),
        }
    }
}

/// A response that ended.
pub(super) struct Ended {
    /// Its fields other than `resources`.
    pub head: Head,
    /// Its type's index in [`TYPES`].
    pub t: usize,
    /// SotW CDS and LDS: the names the dependent type subscribes to.
    pub names: Option<Names>,
}

/// How a response's names are being found.
enum Collect {
    /// By this proxy; published under the key (`type/version`) if any.
    Mine {
        key: Option<String>,
        names: Vec<String>,
    },
    /// By another proxy.
    Other(Names),
}

/// The response being read.
struct Current {
    t: usize,
    collect: Option<Collect>,
    /// Watched resources received whole: name, delta version, value.
    whole: Vec<(String, Option<String>, Bytes)>,
    /// Watched resources whose version was judged already: name, version.
    judged: Vec<(String, String)>,
}

/// Why an entry was asked for whole.
#[derive(Clone, Copy, Default)]
struct Wanted {
    /// Its name was not in its first bytes.
    unnamed: bool,
    /// For the names of a SotW CDS or LDS response.
    names: bool,
    /// For a watch.
    watch: bool,
}

/// The [`Sink`] of one simulated proxy's stream.
pub(super) struct Receiver<'a> {
    proxy: usize,
    fleet: &'a Fleet,
    protocol: Protocol,
    current: Option<Current>,
    wanted: Wanted,
    ended: Vec<Ended>,
    error: Option<String>,
}

impl<'a> Receiver<'a> {
    /// Proxy `proxy` of `fleet`, speaking `protocol`.
    pub fn new(proxy: usize, fleet: &'a Fleet, protocol: Protocol) -> Self {
        Receiver {
            proxy,
            fleet,
            protocol,
            current: None,
            wanted: Wanted::default(),
            ended: Vec::new(),
            error: None,
        }
    }

    /// The responses that ended since the last call.
    ///
    /// # Errors
    /// The first thing that went wrong in a response: a type not
    /// subscribed to, entries of another type than their response, a
    /// resource without a name.
    pub fn take(&mut self) -> Result<Vec<Ended>, String> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut self.ended)),
        }
    }

    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message);
    }

    /// The response being read, started on its first entry (or its end)
    /// with the type `type_url`.
    fn current(&mut self, head: &Head, type_url: &str) -> Option<&mut Current> {
        if self.current.is_none() {
            let t = match subscribed(type_url) {
                Ok(t) => t,
                Err(e) => {
                    self.fail(e);
                    return None;
                }
            };
            let collect = match (self.protocol, TYPES[t]) {
                (Protocol::Sotw, TypeUrl::Cluster | TypeUrl::Listener) => {
                    // Without a version yet (fields in another order), no
                    // sharing: this proxy reads the names alone.
                    let key = (!head.version_info.is_empty())
                        .then(|| format!("{}/{}", TYPES[t].short_name(), head.version_info));
                    Some(match key.as_deref().map(|k| self.fleet.claim(k)) {
                        None | Some(Claim::Mine) => Collect::Mine {
                            key,
                            names: Vec::new(),
                        },
                        Some(Claim::Other(names)) => Collect::Other(names),
                    })
                }
                _ => None,
            };
            self.current = Some(Current {
                t,
                collect,
                whole: Vec::new(),
                judged: Vec::new(),
            });
        }
        self.current.as_mut()
    }

    /// Takes what it can from `entry`; says what it needs the whole entry
    /// for (nothing when `entry` is complete).
    fn classify(&mut self, head: &Head, entry: &Entry) -> Wanted {
        let collecting = matches!(
            self.current.as_ref().and_then(|c| c.collect.as_ref()),
            Some(Collect::Mine { .. })
        );
        if !collecting && !self.fleet.watches.active() {
            // Counted only: most entries of a cold sync.
            return Wanted::default();
        }
        let Some(name) = entry.name() else {
            if entry.complete {
                self.fail("a resource without a name".into());
            }
            return Wanted {
                unnamed: !entry.complete,
                ..Wanted::default()
            };
        };
        Wanted {
            unnamed: false,
            names: self.names_from(name, entry),
            watch: self.watch(head, name, entry),
        }
    }

    /// Adds the names `entry` leads to; true when it needs the whole entry.
    fn names_from(&mut self, name: &str, entry: &Entry) -> bool {
        let Some(current) = self.current.as_mut() else {
            return false;
        };
        let Some(Collect::Mine { names, .. }) = &mut current.collect else {
            return false;
        };
        match TYPES[current.t] {
            TypeUrl::Cluster => match eds_cluster(entry.value()) {
                Some(true) => names.push(name.to_string()),
                Some(false) => {}
                None if entry.complete => {
                    // Its first bytes did not tell; decode it.
                    if Cluster::decode(entry.value()).is_ok_and(|c| {
                        c.cluster_discovery_type
                            == Some(cluster::ClusterDiscoveryType::Type(
                                cluster::DiscoveryType::Eds as i32,
                            ))
                    }) {
                        names.push(name.to_string());
                    }
                }
                None => return true,
            },
            _ if entry.complete => names.extend(route_configuration_names(entry.value())),
            _ => return true,
        }
        false
    }

    /// Notes `entry` for the watches if they look for it; true when this
    /// proxy is to bring its content (see [`Watches::claim_content`]) and
    /// it is not complete.
    ///
    /// [`Watches::claim_content`]: super::watch::Watches::claim_content
    fn watch(&mut self, head: &Head, name: &str, entry: &Entry) -> bool {
        let proxy = self.proxy;
        let watches = &self.fleet.watches;
        let Some(current) = self.current.as_mut() else {
            return false;
        };
        let type_url = TYPES[current.t];
        if !watches.wants(proxy, type_url, name) {
            return false;
        }
        let version = match self.protocol {
            Protocol::Delta => entry.version().map(str::to_string),
            Protocol::Sotw => {
                (!head.version_info.is_empty()).then(|| sotw_version(&head.version_info, name))
            }
        };
        match version {
            Some(v) if !watches.claim_content(proxy, type_url, name, &v) => {
                current.judged.push((name.to_string(), v));
                false
            }
            _ if entry.complete => {
                current.whole.push((
                    name.to_string(),
                    entry.version().map(str::to_string),
                    entry.value_bytes(),
                ));
                false
            }
            _ => true,
        }
    }
}

/// A SotW resource's version for the watches: the response's version
/// covers the whole set, so with the name it names this content.
fn sotw_version(version_info: &str, name: &str) -> String {
    format!("{version_info}/{name}")
}

/// The route configurations an encoded Listener's HTTP connection
/// managers load over RDS.
fn route_configuration_names(value: &[u8]) -> Vec<String> {
    Listener::decode(value)
        .map(|l| l.filter_chains)
        .unwrap_or_default()
        .into_iter()
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
        .collect()
}

impl Drop for Receiver<'_> {
    /// A proxy stopping inside a response whose names it claimed releases
    /// the proxies waiting for them (with an error).
    fn drop(&mut self) {
        if let Some(Current {
            collect: Some(Collect::Mine { key: Some(key), .. }),
            ..
        }) = &self.current
        {
            self.fleet.abandon(key);
        }
    }
}

impl Sink for Receiver<'_> {
    fn entry(&mut self, head: &Head, entry: &Entry) -> bool {
        if self.error.is_some() {
            return false;
        }
        // The type comes from the response's first entry.
        let t = match &self.current {
            Some(current) => current.t,
            None => match self.current(head, entry.type_url().unwrap_or("")) {
                Some(current) => current.t,
                None => return false,
            },
        };
        let bytes = entry.value_len.unwrap_or(entry.len) as u64;
        self.fleet.stats[self.proxy].bytes[t].fetch_add(bytes, Ordering::Relaxed);
        self.wanted = self.classify(head, entry);
        self.wanted.unnamed || self.wanted.names || self.wanted.watch
    }

    fn whole(&mut self, head: &Head, entry: Entry) {
        let wanted = std::mem::take(&mut self.wanted);
        if wanted.unnamed {
            self.classify(head, &entry);
            return;
        }
        let name = entry.name().unwrap_or_default();
        if wanted.names {
            self.names_from(name, &entry);
        }
        if wanted.watch {
            // Claimed when its first bytes came: kept without asking again.
            if let Some(current) = self.current.as_mut() {
                current.whole.push((
                    name.to_string(),
                    entry.version().map(str::to_string),
                    entry.value_bytes(),
                ));
            }
        }
    }

    fn end(&mut self, head: Head, entries: usize) {
        if self.error.is_some() {
            return;
        }
        let t = match subscribed(&head.type_url) {
            Ok(t) => t,
            Err(e) => return self.fail(e),
        };
        if entries == 0 {
            self.current(&head, &head.type_url);
        }
        let Some(current) = self.current.take() else {
            return;
        };
        if current.t != t {
            return self.fail(format!(
                "{} resources in a {} response",
                TYPES[current.t], TYPES[t]
            ));
        }
        let stats = &self.fleet.stats[self.proxy];
        stats.responses[t].fetch_add(1, Ordering::Relaxed);
        let at = Instant::now();
        let type_url = TYPES[t];
        let watches = &self.fleet.watches;
        for (name, version, value) in &current.whole {
            let version = version
                .clone()
                .unwrap_or_else(|| sotw_version(&head.version_info, name));
            watches.on_resource(self.proxy, type_url, name, &version, Some(value), at);
        }
        for (name, version) in &current.judged {
            watches.on_resource(self.proxy, type_url, name, version, None, at);
        }
        let names = current.collect.map(|collect| match collect {
            Collect::Mine { key, mut names } => {
                names.sort();
                names.dedup();
                let names = Arc::new(names);
                if let Some(key) = key {
                    self.fleet.publish(&key, names.clone());
                }
                Names::Ready(names)
            }
            Collect::Other(names) => names,
        });
        self.ended.push(Ended { head, t, names });
    }
}

#[cfg(test)]
mod tests {
    use super::super::scan::{Layout, Scanner};
    use super::*;
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
    use envoy_types::pb::google::protobuf::Any;

    fn cluster(name: &str, kind: cluster::DiscoveryType) -> Any {
        Any {
            type_url: TypeUrl::Cluster.as_str().into(),
            value: Cluster {
                name: name.into(),
                cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(kind as i32)),
                // Longer than an entry's prefix.
                alt_stat_name: "s".repeat(1500),
                ..Default::default()
            }
            .encode_to_vec(),
        }
    }

    /// A framed SotW CDS response.
    fn cds(version: &str, resources: Vec<Any>) -> Bytes {
        let message = DiscoveryResponse {
            version_info: version.into(),
            resources,
            type_url: TypeUrl::Cluster.as_str().into(),
            nonce: "n".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let mut framed = vec![0];
        framed.extend((message.len() as u32).to_be_bytes());
        framed.extend(message);
        framed.into()
    }

    #[tokio::test]
    async fn proxies_of_one_cds_version_share_the_eds_names_one_of_them_read() {
        let fleet = Fleet::new(2);
        let clusters = vec![
            cluster("b-eds", cluster::DiscoveryType::Eds),
            cluster("static", cluster::DiscoveryType::Static),
            cluster("a-eds", cluster::DiscoveryType::Eds),
            cluster("dns", cluster::DiscoveryType::StrictDns),
        ];
        let value_bytes: usize = clusters.iter().map(|a| a.value.len()).sum();
        let response = cds("v1", clusters);
        let (mut first, mut second) = (
            Receiver::new(0, &fleet, Protocol::Sotw),
            Receiver::new(1, &fleet, Protocol::Sotw),
        );
        let (mut scan_first, mut scan_second) =
            (Scanner::new(Layout::Sotw), Scanner::new(Layout::Sotw));
        // Proxy 0 reads the first entry, so it reads this version's names;
        // proxy 1 then reads the whole response and waits for them.
        scan_first.feed(response.slice(..1200), &mut first).unwrap();
        scan_second.feed(response.clone(), &mut second).unwrap();
        let [waiting] = <[Ended; 1]>::try_from(second.take().unwrap()).ok().unwrap();
        assert!(matches!(waiting.names, Some(Names::Wait(_))));
        assert!(first.take().unwrap().is_empty(), "proxy 0 is mid-response");
        scan_first.feed(response.slice(1200..), &mut first).unwrap();
        let [read] = <[Ended; 1]>::try_from(first.take().unwrap()).ok().unwrap();
        let (read, waited) = (
            read.names.unwrap().get().await.unwrap(),
            waiting.names.unwrap().get().await.unwrap(),
        );
        assert_eq!(*read, ["a-eds", "b-eds"]);
        assert!(Arc::ptr_eq(&read, &waited));
        for stats in &fleet.stats {
            assert_eq!(stats.responses[0].load(Ordering::Relaxed), 1);
            assert_eq!(stats.bytes[0].load(Ordering::Relaxed), value_bytes as u64);
        }
        // A later proxy of the same version gets them at once.
        let mut third = Receiver::new(1, &fleet, Protocol::Sotw);
        Scanner::new(Layout::Sotw)
            .feed(response, &mut third)
            .unwrap();
        let [ready] = <[Ended; 1]>::try_from(third.take().unwrap()).ok().unwrap();
        assert!(matches!(ready.names, Some(Names::Ready(ref n)) if Arc::ptr_eq(n, &read)));
    }

    #[tokio::test]
    async fn proxies_waiting_for_names_are_released_when_their_reader_stops() {
        let fleet = Fleet::new(2);
        let response = cds("v1", vec![cluster("a", cluster::DiscoveryType::Eds)]);
        let mut reader = Receiver::new(0, &fleet, Protocol::Sotw);
        Scanner::new(Layout::Sotw)
            .feed(response.slice(..1200), &mut reader)
            .unwrap();
        let mut waiting = Receiver::new(1, &fleet, Protocol::Sotw);
        Scanner::new(Layout::Sotw)
            .feed(response.clone(), &mut waiting)
            .unwrap();
        let [ended] = <[Ended; 1]>::try_from(waiting.take().unwrap())
            .ok()
            .unwrap();
        drop(reader);
        let error = ended.names.unwrap().get().await.unwrap_err();
        assert!(error.contains("stopped"), "{error}");
        // The version is free to be read again.
        assert!(matches!(fleet.claim("CDS/v1"), Claim::Mine));
    }

    #[test]
    fn a_response_of_a_type_not_subscribed_to_is_an_error() {
        let fleet = Fleet::new(1);
        let mut receiver = Receiver::new(0, &fleet, Protocol::Delta);
        let message = DiscoveryResponse {
            type_url: TypeUrl::Secret.as_str().into(),
            ..Default::default()
        }
        .encode_to_vec();
        let mut framed = vec![0, 0, 0, 0, message.len() as u8];
        framed.extend(message);
        Scanner::new(Layout::Delta)
            .feed(framed.into(), &mut receiver)
            .unwrap();
        let error = receiver.take().err().unwrap();
        assert!(error.contains("sent unasked"), "{error}");
    }
}
