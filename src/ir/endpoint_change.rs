//! Telling an endpoint-only change of the IR apart from any other: the
//! snapshot cache then rebuilds only the ClusterLoadAssignments (and the
//! clusters whose mutual-TLS peer identities come from their endpoints) of
//! the clusters it touches, and keeps every class's listeners, route
//! configuration and other clusters (see `cache::set_ir_changed_at`).
//!
//! The comparison destructures [`Ir`] and [`Cluster`] without `..`, so a
//! field added to either must be sorted here (compared, or known to follow
//! from endpoints) before the code compiles again.

use super::cluster_index::ClusterIndex;
use super::{Cluster, Ir};
use imbl::ordmap::DiffItem;
use std::net::IpAddr;
use std::sync::Arc;

/// When `old` and `new` differ only in clusters' endpoints and in the
/// workloads (Pods, WorkloadEntries) behind them: per cluster of `new`
/// (name order, the index the cache uses), whether its load assignment may
/// differ from `old`'s: its endpoints changed, or the workload at one of its
/// endpoint addresses did (the workload's labels decide the endpoint's
/// `tlsMode`). `None` for any other difference, including a cluster added,
/// removed or changed in anything but its endpoints.
pub fn endpoint_only_change(old: &Ir, new: &Ir) -> Option<Vec<bool>> {
    let Ir {
        clusters,
        cluster_index,
        virtual_hosts,
        tcp_routes,
        source_label_keys,
        workloads,
        // Follows from the world's workload objects (as `workloads` does)
        // and decides no configuration.
        crossings: _,
        peer_authentications,
        sidecars,
        authorization_policies,
        telemetries,
        slos,
        diagnostics,
    } = new;
    // A patched IR shares what it kept with the previous one.
    let same = (Arc::ptr_eq(virtual_hosts, &old.virtual_hosts)
        || *virtual_hosts == old.virtual_hosts)
        && *tcp_routes == old.tcp_routes
        && *source_label_keys == old.source_label_keys
        && *peer_authentications == old.peer_authentications
        && *sidecars == old.sidecars
        && *authorization_policies == old.authorization_policies
        && *telemetries == old.telemetries
        && *slos == old.slos
        && *diagnostics == old.diagnostics
        && clusters.len() == old.clusters.len();
    if !same {
        return None;
    }
    // Addresses whose workload appeared, went or changed, sorted (a patched
    // IR shares the map's unchanged parts, which the diff skips).
    let changed_workloads: Vec<IpAddr> = old
        .workloads
        .diff(workloads)
        .map(|item| match item {
            DiffItem::Add(ip, _) | DiffItem::Remove(ip, _) => *ip,
            DiffItem::Update { new: (ip, _), .. } => *ip,
        })
        .collect();
    debug_assert_eq!(*cluster_index, ClusterIndex::of(clusters), "a stale index");
    // The clusters with an endpoint at one of those addresses, found in the
    // index: not by reading every cluster's endpoints (180,000 at 10,000
    // services). The new IR's index is enough: a cluster whose endpoints
    // differ from the old one's is marked anyway, and one whose endpoints
    // are equal is at the same addresses in both.
    let mut touched = vec![false; clusters.len()];
    for ip in &changed_workloads {
        for position in cluster_index.at_address(ip) {
            touched[*position as usize] = true;
        }
    }
    clusters
        .iter()
        .zip(&old.clusters)
        .zip(touched)
        .map(|(((name, new), (old_name, old)), touched)| {
            if Arc::ptr_eq(new, old) {
                return Some(touched);
            }
            (name == old_name && same_but_endpoints(old, new))
                .then(|| touched || new.endpoints != old.endpoints)
        })
        .collect()
}

/// Whether two clusters agree in everything but their endpoints.
pub(super) fn same_but_endpoints(old: &Cluster, new: &Cluster) -> bool {
    let Cluster {
        name,
        service,
        namespace,
        export_to,
        port,
        subset,
        policy,
        rule_export_to,
        endpoints: _,
        protocol,
        dns,
        origins,
    } = new;
    *name == old.name
        && *service == old.service
        && *namespace == old.namespace
        && *export_to == old.export_to
        && *port == old.port
        && *subset == old.subset
        && *policy == old.policy
        && *rule_export_to == old.rule_export_to
        && *protocol == old.protocol
        && *dns == old.dns
        && *origins == old.origins
}
