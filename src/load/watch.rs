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
    verdicts: Mutex<HashMap<String, Arc<OnceLock<bool>>>>,
    /// When each proxy (by index) first received the change.
    seen: Vec<OnceLock<Instant>>,
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

    /// Records that `proxy` received resource `name` of `type_url` at `at`,
    /// with content `bytes` whose version (content hash) is `version`.
    pub fn on_resource(
        &self,
        proxy: usize,
        type_url: TypeUrl,
        name: &str,
        version: &str,
        bytes: &[u8],
        at: Instant,
    ) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        let by_name = self.by_name.read().expect("watch lock");
        let Some(expectations) = by_name.get(name) else {
            return;
        };
        for e in expectations.iter().filter(|e| e.type_url == type_url) {
            if e.seen[proxy].get().is_some() {
                continue;
            }
            // Decoded outside the map's lock (a large route configuration
            // takes tens of ms): only proxies that received this very
            // version wait for its verdict.
            let cell = e
                .verdicts
                .lock()
                .expect("verdict lock")
                .entry(version.to_string())
                .or_default()
                .clone();
            let verdict = *cell.get_or_init(|| e.check.passes(bytes));
            if verdict && e.seen[proxy].set(at).is_ok() {
                self.missing.fetch_sub(1, Ordering::SeqCst);
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
