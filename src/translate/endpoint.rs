//! IR endpoints → ClusterLoadAssignments.

use super::TranslateOptions;
use crate::envoy::builders;
use crate::ir::mesh::{peer_mode, PeerMode};
use crate::ir::{self, EndpointState};
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Metadata};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

/// The ClusterLoadAssignment of a cluster, named like it.
///
/// Only endpoints that should take new requests are sent, all HEALTHY: the
/// ready ones; or, when none is ready, the ones still serving while they
/// terminate (Kubernetes' guidance for terminating endpoints). Not-ready
/// endpoints are left out rather than sent as UNHEALTHY or DRAINING, because
/// Envoy's panic threshold (50 % by default) would otherwise spread traffic
/// over them once they are the majority.
///
/// An endpoint behind a sidecar that takes mutual TLS (PeerAuthentication
/// other than DISABLE on its app port) carries `tlsMode: istio` in its
/// `envoy.transport_socket_match` metadata, as Istio marks it.
pub(super) fn cluster_load_assignment(
    c: &ir::Cluster,
    ir: &ir::Ir,
    options: &TranslateOptions,
) -> ClusterLoadAssignment {
    let any_ready = c.endpoints.iter().any(|e| e.state == EndpointState::Ready);
    let wanted = if any_ready {
        EndpointState::Ready
    } else {
        EndpointState::ServingTerminating
    };
    let chosen: Vec<&ir::Endpoint> = c.endpoints.iter().filter(|e| e.state == wanted).collect();
    let mut out = builders::cluster_load_assignment(
        &c.name,
        chosen
            .iter()
            .map(|e| (e.address, e.port, HealthStatus::Healthy)),
    );
    let lb_endpoints = out
        .endpoints
        .iter_mut()
        .flat_map(|l| l.lb_endpoints.iter_mut());
    for (lb, e) in lb_endpoints.zip(&chosen) {
        let Some(mesh) = &e.mesh else { continue };
        let Some(w) = ir.workloads.get(&e.address) else {
            continue;
        };
        let mode = peer_mode(
            &ir.peer_authentications,
            &w.namespace,
            &w.labels,
            mesh.target_port,
            &options.root_namespace,
        );
        if mode != PeerMode::Disable {
            lb.metadata = Some(Metadata {
                filter_metadata: [(
                    TRANSPORT_SOCKET_MATCH.to_string(),
                    builders::string_struct(&[(TLS_MODE_KEY, "istio")]),
                )]
                .into(),
                ..Default::default()
            });
        }
    }
    out
}

/// Metadata namespace Envoy reads transport socket matches from.
pub(super) const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";
/// Key of the endpoint's TLS mode in that metadata (Istio's).
pub(super) const TLS_MODE_KEY: &str = "tlsMode";
