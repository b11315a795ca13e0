//! Resource and snapshot builders shared by the SotW and delta state-machine
//! tests.

use crate::cache::{ProxySnapshot, Resource, ResourceMap};
use crate::envoy::builders;
use crate::envoy::TypeUrl;
use envoy_types::pb::envoy::config::cluster::v3::cluster::LbPolicy;
use envoy_types::pb::envoy::config::core::v3::HealthStatus;
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
