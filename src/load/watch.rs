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
use envoy_types::pb::envoy::config::route::v3::{route, route_action, RouteConfiguration};
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
                let Ok(config) = RouteConfiguration::decode(bytes) else {
                    return false;
                };
                config
                    .virtual_hosts
                    .iter()
                    .flat_map(|vh| &vh.routes)
                    .filter_map(|r| match &r.action {
                        Some(route::Action::Route(a)) => a.cluster_specifier.as_ref(),
                        _ => None,
                    })
                    .filter_map(|s| match s {
                        route_action::ClusterSpecifier::WeightedClusters(w) => Some(&w.clusters),
                        _ => None,
                    })
                    .flatten()
                    .any(|c| {
                        &c.name == cluster && c.weight.as_ref().map(|w| w.value) == Some(*weight)
                    })
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
    /// Verdict per content version.
    verdicts: Mutex<HashMap<String, bool>>,
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
            let verdict = {
                let mut verdicts = e.verdicts.lock().expect("verdict lock");
                *verdicts
                    .entry(version.to_string())
                    .or_insert_with(|| e.check.passes(bytes))
            };
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
