//! Resource and snapshot builders shared by the SotW and delta state-machine
//! tests.

use crate::cache::{ProxySnapshot, Resource, ResourceMap};
use crate::envoy::builders;
use crate::envoy::TypeUrl;
use envoy_types::pb::envoy::config::cluster::v3::cluster::LbPolicy;
use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub(super) const CDS: TypeUrl = TypeUrl::Cluster;
pub(super) const EDS: TypeUrl = TypeUrl::ClusterLoadAssignment;
pub(super) const LDS: TypeUrl = TypeUrl::Listener;
pub(super) const RDS: TypeUrl = TypeUrl::RouteConfiguration;

/// An EDS cluster; `timeout` stands for any cluster-level setting.
pub(super) fn cluster(name: &str, timeout: u64) -> Resource {
    let c = builders::eds_cluster(name, LbPolicy::RoundRobin, Duration::from_secs(timeout));
    Resource::encode(name, &c)
}

/// A ClusterLoadAssignment with one endpoint per port, on 10.0.0.1.
pub(super) fn endpoints(name: &str, ports: &[u16]) -> Resource {
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let cla = builders::cluster_load_assignment(
        name,
        ports.iter().map(|p| (ip, *p, HealthStatus::Healthy)),
    );
    Resource::encode(name, &cla)
}

pub(super) fn listener(name: &str, port: u16) -> Resource {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let l = builders::http_listener(name, addr, "outbound", "outbound_http", &Default::default());
    Resource::encode(name, &l)
}

/// A route configuration whose one route splits traffic between `clusters`.
pub(super) fn routes(name: &str, clusters: &[&str]) -> Resource {
    use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
    let weighted: Vec<(&str, u32)> = clusters.iter().map(|c| (*c, 1)).collect();
    let route = builders::forward_route("r", builders::route_match(None, vec![]), &weighted);
    let rc = RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![VirtualHost {
            name: "vh".into(),
            domains: vec!["*".into()],
            routes: vec![route],
            ..Default::default()
        }],
        ..Default::default()
    };
    Resource::encode(name, &rc)
}

/// A snapshot holding the given resources by type.
pub(super) fn snapshot(by_type: &[(TypeUrl, Vec<Resource>)]) -> ProxySnapshot {
    ProxySnapshot {
        generation: 1,
        changed_at: None,
        resources: by_type
            .iter()
            .map(|(t, rs)| {
                let map: ResourceMap = rs.iter().map(|r| (r.name.clone(), r.clone())).collect();
                (*t, Arc::new(map))
            })
            .collect(),
    }
}

/// A typical mesh: clusters a and b with endpoints, one listener, one route
/// configuration that uses both clusters.
pub(super) fn mesh() -> ProxySnapshot {
    snapshot(&[
        (CDS, vec![cluster("a", 1), cluster("b", 1)]),
        (EDS, vec![endpoints("a", &[8080]), endpoints("b", &[9090])]),
        (LDS, vec![listener("outbound", 15001)]),
        (RDS, vec![routes("outbound", &["a", "b"])]),
    ])
}

/// The name of the `i`th endpoint of [`ChangingEndpoints`].
pub(super) fn endpoint_name(i: u32) -> String {
    format!("c{i:02}")
}

/// ClusterLoadAssignments that change at random, each snapshot derived from
/// the previous map as the cache derives them (sharing structure), for the
/// model tests of both protocols.
pub(super) struct ChangingEndpoints {
    /// The current map: `c00`..`c39` to start with, names up to `c49` later.
    pub(super) eds: ResourceMap,
    rng: fastrand::Rng,
}

impl ChangingEndpoints {
    pub(super) fn new(seed: u64) -> Self {
        ChangingEndpoints {
            eds: (0..40)
                .map(|i| endpoints(&endpoint_name(i), &[8000]))
                .map(|r| (r.name.clone(), r))
                .collect(),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The random source, for the test's own choices.
    pub(super) fn rng(&mut self) -> &mut fastrand::Rng {
        &mut self.rng
    }

    /// One to three endpoints added, changed or removed; the snapshot of
    /// the result.
    pub(super) fn step(&mut self, generation: u64) -> ProxySnapshot {
        for _ in 0..self.rng.usize(1..4) {
            let n = endpoint_name(self.rng.u32(0..50));
            if self.rng.u8(0..3) == 0 {
                self.eds.remove(n.as_str());
            } else {
                let r = endpoints(&n, &[self.rng.u16(8000..8010)]);
                self.eds.insert(r.name.clone(), r);
            }
        }
        ProxySnapshot {
            generation,
            changed_at: None,
            resources: BTreeMap::from([(EDS, Arc::new(self.eds.clone()))]),
        }
    }

    /// The resources of `subscribed` names that exist now.
    pub(super) fn expected<'a>(
        &self,
        subscribed: impl IntoIterator<Item = &'a String>,
    ) -> BTreeMap<String, Resource> {
        subscribed
            .into_iter()
            .filter_map(|n| self.eds.get(n.as_str()))
            .map(|r| (r.name.to_string(), r.clone()))
            .collect()
    }
}

/// `map` with `String` keys, to compare with [`ChangingEndpoints::expected`].
pub(super) fn by_name(map: &ResourceMap) -> BTreeMap<String, Resource> {
    map.iter()
        .map(|(n, r)| (n.to_string(), r.clone()))
        .collect()
}

/// The version of a set of resources as sent in `version_info`, computed
/// from scratch (the streams keep it up to date from diffs).
pub(super) fn version_of(resources: &ResourceMap) -> String {
    crate::cache::SetVersion::of(resources).to_hex()
}
