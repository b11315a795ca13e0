//! What the proxies look for after a config change, and when each one saw it.
//!
//! A scenario registers an [`Expectation`] per changed resource: its type
//! and name, what its content must show (a [`Check`]), and when the tool
//! rewrote the file. Every proxy hands each resource it receives to
//! [`Watches::on_resource`]; the first time a proxy receives that resource
//! with content that passes the check, its time is recorded. Content is
//! decoded once per distinct version (versions are content hashes), not
//! once per proxy.

use crate::envoy::TypeUrl;
use envoy_types::pb::envoy::config::core::v3::address;
use envoy_types::pb::envoy::config::endpoint::v3::{lb_endpoint, ClusterLoadAssignment};
use prost::Message;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// What a changed resource must show.
#[derive(Clone, Debug)]
pub enum Check {
    /// A ClusterLoadAssignment with an endpoint at each of these addresses.
    EndpointsAt(Vec<IpAddr>),
    /// A RouteConfiguration whose weighted routes give `cluster` this weight.
    ClusterWeight {
        /// Cluster name (`outbound|80|v1|...`).
        cluster: String,
        /// The weight it must have.
        weight: u32,
    },
}

impl Check {
    fn passes(&self, bytes: &[u8]) -> bool {
        match self {
            Check::EndpointsAt(wanted) => {
                let Ok(cla) = ClusterLoadAssignment::decode(bytes) else {
                    return false;
                };
                let have: Vec<IpAddr> = cla
                    .endpoints
                    .iter()
                    .flat_map(|l| &l.lb_endpoints)
                    .filter_map(|e| match &e.host_identifier {
                        Some(lb_endpoint::HostIdentifier::Endpoint(ep)) => ep.address.as_ref(),
                        _ => None,
                    })
                    .filter_map(|a| match &a.address {
                        Some(address::Address::SocketAddress(s)) => s.address.parse().ok(),
                        _ => None,
                    })
                    .collect();
                wanted.iter().all(|w| have.contains(w))
            }
            Check::ClusterWeight { cluster, weight } => {
                let Ok(config) = weights::RouteConfiguration::decode(bytes) else {
                    return false;
                };
                config
                    .virtual_hosts
                    .iter()
                    .flat_map(|vh| &vh.routes)
                    .filter_map(|r| r.route.as_ref()?.weighted_clusters.as_ref())
                    .flat_map(|w| &w.clusters)
                    .any(|c| &c.name == cluster && c.weight.map(|w| w.value) == Some(*weight))
            }
        }
    }
}

/// One change to look for.
#[derive(Debug)]
pub struct Expectation {
    type_url: TypeUrl,
    check: Check,
    written_at: Instant,
    /// Verdict per content version, decided once.
    verdicts: Mutex<HashMap<String, Verdict>>,
    /// When each proxy (by index) first received the change.
    seen: Vec<OnceLock<Instant>>,
}

/// Whether one content version passes an expectation's check.
#[derive(Debug, Default)]
struct Verdict {
    /// A proxy has undertaken to bring the content.
    claimed: bool,
    /// Decided.
    passes: Option<bool>,
    /// Proxies that received this version before it was decided, and when.
    waiting: Vec<(usize, Instant)>,
}

impl Expectation {
    /// Records that `proxy` saw the change at `at`.
    fn seen_by(&self, proxy: usize, at: Instant, missing: &AtomicUsize) {
        if self.seen[proxy].set(at).is_ok() {
            missing.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The expectations of the scenario running now.
#[derive(Debug)]
pub struct Watches {
    proxies: usize,
    active: AtomicBool,
    by_name: RwLock<HashMap<String, Vec<Arc<Expectation>>>>,
    all: RwLock<Vec<Arc<Expectation>>>,
    /// (expectation, proxy) pairs not seen yet.
    missing: AtomicUsize,
}

impl Watches {
    /// No expectations, for `proxies` proxies.
    pub fn new(proxies: usize) -> Self {
        Watches {
            proxies,
            active: AtomicBool::new(false),
            by_name: RwLock::default(),
            all: RwLock::default(),
            missing: AtomicUsize::new(0),
        }
    }

    /// Starts looking for `check` on resource `name` of `type_url`, changed
    /// on disk at `written_at`.
    pub fn expect(&self, type_url: TypeUrl, name: &str, check: Check, written_at: Instant) {
        let expectation = Arc::new(Expectation {
            type_url,
            check,
            written_at,
            verdicts: Mutex::default(),
            seen: (0..self.proxies).map(|_| OnceLock::new()).collect(),
        });
        self.missing.fetch_add(self.proxies, Ordering::SeqCst);
        self.by_name
            .write()
            .expect("watch lock")
            .entry(name.to_string())
            .or_default()
            .push(expectation.clone());
        self.all.write().expect("watch lock").push(expectation);
        self.active.store(true, Ordering::SeqCst);
    }

    /// Whether a scenario is looking for changes.
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// The expectations on resource `name` of `type_url`.
    fn on(&self, type_url: TypeUrl, name: &str) -> Vec<Arc<Expectation>> {
        if !self.active.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let by_name = self.by_name.read().expect("watch lock");
        by_name.get(name).map_or_else(Vec::new, |expectations| {
            expectations
                .iter()
                .filter(|e| e.type_url == type_url)
                .cloned()
                .collect()
        })
    }

    /// The expectations on resource `name` of `type_url` that `proxy` has
    /// not seen met yet.
    fn open_for(&self, proxy: usize, type_url: TypeUrl, name: &str) -> Vec<Arc<Expectation>> {
        let mut open = self.on(type_url, name);
        open.retain(|e| e.seen[proxy].get().is_none());
        open
    }

    /// Whether `proxy` looks for resource `name` of `type_url`: an
    /// expectation on it that the proxy has not seen met yet.
    pub fn wants(&self, proxy: usize, type_url: TypeUrl, name: &str) -> bool {
        !self.open_for(proxy, type_url, name).is_empty()
    }

    /// Whether `proxy` is to bring the content of this resource version
    /// to [`Watches::on_resource`]: true for the first proxy to ask about a
    /// version not judged yet (so one proxy, not every proxy, holds a large
    /// resource whole); false when it is judged or another proxy brings it.
    pub fn claim_content(
        &self,
        proxy: usize,
        type_url: TypeUrl,
        name: &str,
        version: &str,
    ) -> bool {
        let mut claimed = false;
        for e in self.open_for(proxy, type_url, name) {
            let mut verdicts = e.verdicts.lock().expect("verdict lock");
            let verdict = verdicts.entry(version.to_string()).or_default();
            if verdict.passes.is_none() && !verdict.claimed {
                verdict.claimed = true;
                claimed = true;
            }
        }
        claimed
    }

    /// Records that `proxy` received resource `name` of `type_url` at `at`,
    /// with content whose version (content hash) is `version`: `bytes`, or
    /// None when [`Watches::claim_content`] said another proxy brings them
    /// (the receipt then counts once that proxy's bytes are judged).
    pub fn on_resource(
        &self,
        proxy: usize,
        type_url: TypeUrl,
        name: &str,
        version: &str,
        bytes: Option<&[u8]>,
        at: Instant,
    ) {
        // With the bytes, every undecided verdict on this version is
        // judged, also of expectations this proxy saw met meanwhile (by a
        // version another proxy brought): others wait for this one.
        for e in self.on(type_url, name) {
            let open = e.seen[proxy].get().is_none();
            let decided = e
                .verdicts
                .lock()
                .expect("verdict lock")
                .get(version)
                .and_then(|v| v.passes);
            let passes = match (decided, bytes) {
                (Some(passes), _) => passes,
                (None, Some(bytes)) => {
                    // Decoded outside the lock: a large route configuration
                    // takes tens of ms.
                    let passes = e.check.passes(bytes);
                    let waiting = {
                        let mut verdicts = e.verdicts.lock().expect("verdict lock");
                        let verdict = verdicts.entry(version.to_string()).or_default();
                        verdict.passes = Some(passes);
                        std::mem::take(&mut verdict.waiting)
                    };
                    if passes {
                        for (other, at) in waiting {
                            e.seen_by(other, at, &self.missing);
                        }
                    }
                    passes
                }
                (None, None) if !open => continue,
                (None, None) => {
                    let mut verdicts = e.verdicts.lock().expect("verdict lock");
                    let verdict = verdicts.entry(version.to_string()).or_default();
                    match verdict.passes {
                        Some(passes) => passes,
                        None => {
                            verdict.waiting.push((proxy, at));
                            continue;
                        }
                    }
                }
            };
            if passes && open {
                e.seen_by(proxy, at, &self.missing);
            }
        }
    }

    /// (expectation, proxy) pairs still waiting.
    pub fn missing(&self) -> usize {
        self.missing.load(Ordering::SeqCst)
    }

    /// Time from each change on disk to each proxy's receipt, of those seen.
    pub fn latencies(&self) -> Vec<Duration> {
        self.all
            .read()
            .expect("watch lock")
            .iter()
            .flat_map(|e| {
                e.seen
                    .iter()
                    .filter_map(|s| s.get())
                    .map(|at| at.saturating_duration_since(e.written_at))
            })
            .collect()
    }

    /// Forgets every expectation (between scenarios).
    pub fn clear(&self) {
        self.active.store(false, Ordering::SeqCst);
        self.by_name.write().expect("watch lock").clear();
        self.all.write().expect("watch lock").clear();
        self.missing.store(0, Ordering::SeqCst);
    }
}

/// Just the part of a `RouteConfiguration` that [`Check::ClusterWeight`]
/// reads, with the field numbers of Envoy's v3 protos; decoding skips every
/// other field, so a route configuration of 10,000 virtual hosts is not
/// built as messages, string by string, to read one weight.
mod weights {
    /// `envoy.config.route.v3.RouteConfiguration`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RouteConfiguration {
        #[prost(message, repeated, tag = "2")]
        pub virtual_hosts: Vec<VirtualHost>,
    }

    /// `envoy.config.route.v3.VirtualHost`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VirtualHost {
        #[prost(message, repeated, tag = "3")]
        pub routes: Vec<Route>,
    }

    /// `envoy.config.route.v3.Route`: `route` is the `action` one-of's
    /// `RouteAction`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Route {
        #[prost(message, optional, tag = "2")]
        pub route: Option<RouteAction>,
    }

    /// `envoy.config.route.v3.RouteAction`: `weighted_clusters` of the
    /// `cluster_specifier` one-of.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RouteAction {
        #[prost(message, optional, tag = "3")]
        pub weighted_clusters: Option<WeightedCluster>,
    }

    /// `envoy.config.route.v3.WeightedCluster`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WeightedCluster {
        #[prost(message, repeated, tag = "1")]
        pub clusters: Vec<ClusterWeight>,
    }

    /// `google.protobuf.UInt32Value`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Weight {
        #[prost(uint32, tag = "1")]
        pub value: u32,
    }

    /// `envoy.config.route.v3.WeightedCluster.ClusterWeight`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ClusterWeight {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub weight: Option<Weight>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::builders::{forward_route, route_match};
    use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};

    /// A route configuration as Envoy's full message: a plain route, then a
    /// weighted one, in the second of two virtual hosts.
    fn route_configuration(weights: &[(&str, u32)]) -> Vec<u8> {
        let virtual_host = |name: &str, clusters: &[(&str, u32)]| VirtualHost {
            name: name.into(),
            domains: vec![name.into()],
            routes: vec![forward_route("r", route_match(None, vec![]), clusters)],
            ..Default::default()
        };
        RouteConfiguration {
            name: "80".into(),
            virtual_hosts: vec![virtual_host("a", &[("a", 1)]), virtual_host("b", weights)],
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// An encoded load assignment of `cluster` with one endpoint at `ip`.
    fn assignment(cluster: &str, ip: [u8; 4]) -> Vec<u8> {
        use crate::envoy::builders::cluster_load_assignment;
        use envoy_types::pb::envoy::config::core::v3::HealthStatus;
        cluster_load_assignment(cluster, [(IpAddr::from(ip), 80, HealthStatus::Healthy)])
            .encode_to_vec()
    }

    #[test]
    fn one_proxy_brings_a_versions_content_and_the_others_count_from_their_own_receipt() {
        let watches = Watches::new(3);
        let t0 = Instant::now();
        let type_url = TypeUrl::ClusterLoadAssignment;
        watches.expect(
            type_url,
            "c",
            Check::EndpointsAt(vec![IpAddr::from([11, 0, 0, 1])]),
            t0,
        );
        assert!(watches.wants(0, type_url, "c"));
        assert!(!watches.wants(0, type_url, "other"));
        assert!(!watches.wants(0, TypeUrl::Cluster, "c"));
        // Version "old" does not pass: proxy 0 brings it, proxy 1 waits.
        assert!(watches.claim_content(0, type_url, "c", "old"));
        assert!(!watches.claim_content(1, type_url, "c", "old"));
        watches.on_resource(1, type_url, "c", "old", None, t0 + Duration::from_millis(1));
        let old = assignment("c", [10, 0, 0, 1]);
        watches.on_resource(
            0,
            type_url,
            "c",
            "old",
            Some(&old),
            t0 + Duration::from_millis(2),
        );
        assert_eq!(watches.missing(), 3);
        // Version "new" passes. Proxy 1 receives it before proxy 0's bytes
        // are judged, proxy 2 after: each counts from its own receipt.
        assert!(watches.claim_content(0, type_url, "c", "new"));
        assert!(!watches.claim_content(1, type_url, "c", "new"));
        watches.on_resource(1, type_url, "c", "new", None, t0 + Duration::from_millis(5));
        assert_eq!(
            watches.missing(),
            3,
            "counted before the content was judged"
        );
        let new = assignment("c", [11, 0, 0, 1]);
        watches.on_resource(
            0,
            type_url,
            "c",
            "new",
            Some(&new),
            t0 + Duration::from_millis(7),
        );
        assert!(
            !watches.claim_content(2, type_url, "c", "new"),
            "judged already"
        );
        watches.on_resource(2, type_url, "c", "new", None, t0 + Duration::from_millis(9));
        assert_eq!(watches.missing(), 0);
        let mut latencies = watches.latencies();
        latencies.sort();
        assert_eq!(
            latencies,
            [5, 7, 9].map(Duration::from_millis),
            "each proxy's own receipt time"
        );
        assert!(
            !watches.wants(1, type_url, "c"),
            "seen: no longer looked for"
        );
    }

    /// A proxy that claimed a version and was then seen (through another
    /// version it waited for) still judges the version it claimed: the
    /// proxies waiting on that one are not left waiting.
    #[test]
    fn a_claimed_version_is_judged_even_when_its_claimer_was_seen_meanwhile() {
        let watches = Watches::new(3);
        let t0 = Instant::now();
        let type_url = TypeUrl::ClusterLoadAssignment;
        let ms = |n| t0 + Duration::from_millis(n);
        watches.expect(
            type_url,
            "c",
            Check::EndpointsAt(vec![IpAddr::from([11, 0, 0, 1])]),
            t0,
        );
        let passing = assignment("c", [11, 0, 0, 1]);
        let also_passing = assignment("c", [11, 0, 0, 1]);
        // Proxy 1 brings version A; proxy 0 received A and waits for it.
        assert!(watches.claim_content(1, type_url, "c", "A"));
        assert!(!watches.claim_content(0, type_url, "c", "A"));
        watches.on_resource(0, type_url, "c", "A", None, ms(1));
        // Proxy 0 brings version B, which proxy 2 receives and waits for.
        assert!(watches.claim_content(0, type_url, "c", "B"));
        assert!(!watches.claim_content(2, type_url, "c", "B"));
        watches.on_resource(2, type_url, "c", "B", None, ms(2));
        // A is judged: proxies 1 and 0 have seen the change.
        watches.on_resource(1, type_url, "c", "A", Some(&passing), ms(3));
        assert_eq!(watches.missing(), 1);
        // Proxy 0's B ends: judged although proxy 0 was seen already.
        watches.on_resource(0, type_url, "c", "B", Some(&also_passing), ms(4));
        assert_eq!(watches.missing(), 0, "proxy 2 still waits for B");
        let mut latencies = watches.latencies();
        latencies.sort();
        assert_eq!(latencies, [1, 2, 3].map(Duration::from_millis));
    }

    #[test]
    fn a_cluster_weight_is_read_from_envoys_encoding() {
        let bytes = route_configuration(&[("b-v1", 30), ("b-v2", 70)]);
        let check = |cluster: &str, weight| {
            Check::ClusterWeight {
                cluster: cluster.into(),
                weight,
            }
            .passes(&bytes)
        };
        assert!(check("b-v1", 30));
        assert!(check("b-v2", 70));
        assert!(!check("b-v1", 70));
        assert!(!check("a", 30));
    }
}
