//! IR endpoints → ClusterLoadAssignments.

use crate::envoy::builders;
use crate::ir::{self, EndpointState};
use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

/// The ClusterLoadAssignment of a cluster, named like it.
///
/// Only endpoints that should take new requests are sent, all HEALTHY: the
/// ready ones; or, when none is ready, the ones still serving while they
/// terminate (Kubernetes' guidance for terminating endpoints). Not-ready
/// endpoints are left out rather than sent as UNHEALTHY or DRAINING, because
/// Envoy's panic threshold (50 % by default) would otherwise spread traffic
/// over them once they are the majority.
pub(super) fn cluster_load_assignment(c: &ir::Cluster) -> ClusterLoadAssignment {
    let any_ready = c.endpoints.iter().any(|e| e.state == EndpointState::Ready);
    let wanted = if any_ready {
        EndpointState::Ready
    } else {
        EndpointState::ServingTerminating
    };
    let endpoints = c
        .endpoints
        .iter()
        .filter(|e| e.state == wanted)
        .map(|e| (e.address, e.port, HealthStatus::Healthy));
    builders::cluster_load_assignment(&c.name, endpoints)
}
