//! The classes of a new IR that differs from the old one in endpoints only
//! ([`crate::ir::endpoint_change`]): each keeps its listeners' inputs,
//! route configuration and untouched clusters and load assignments (the
//! same `Arc`s, so streams see the same hashes and send nothing for them),
//! and gets the touched ones rebuilt from the new IR. The bytes are the
//! same as a fresh translation's (a test compares them). Classes that
//! shared CDS and EDS maps (one [`ClusterPlan`]) share the updated ones:
//! the update runs once per plan, not once per class.

use super::shared::{ClusterMaps, ClusterPlan, SharedParts};
use super::{ClassResources, ResourceMap};
use crate::ir::{Cluster, Ir};
use crate::proxy::ProxyClass;
use crate::translate::TranslateOptions;
use std::collections::HashMap;
use std::sync::Arc;

/// Every class of `classes` for `ir`, whose clusters `dirty` marks (by
/// index in `ir.clusters`) as touched by the change; `parts` holds what
/// the change left and receives what is rebuilt (resources and each cluster
/// plan's maps), for all classes to share.
pub(super) fn update_classes(
    classes: &HashMap<ProxyClass, Arc<ClassResources>>,
    ir: &Ir,
    dirty: &[bool],
    parts: &SharedParts,
    options: &TranslateOptions,
) -> HashMap<ProxyClass, Arc<ClassResources>> {
    let by_index: Vec<&Cluster> = ir.clusters.values().map(|c| &**c).collect();
    classes
        .iter()
        .map(|(class, resources)| {
            let maps = parts.cluster_maps(&resources.cluster_plan, || {
                update_maps(resources, ir, &by_index, dirty, parts, options)
            });
            let updated = !Arc::ptr_eq(&maps.clusters, &resources.clusters)
                || !Arc::ptr_eq(&maps.endpoints, &resources.endpoints);
            let resources = if updated {
                Arc::new(ClassResources {
                    clusters: maps.clusters,
                    endpoints: maps.endpoints,
                    routes: resources.routes.clone(),
                    tcp: resources.tcp.clone(),
                    telemetry: resources.telemetry.clone(),
                    diagnostics: resources.diagnostics.clone(),
                    cluster_plan: resources.cluster_plan.clone(),
                    used: Default::default(),
                })
            } else {
                resources.clone()
            };
            (class.clone(), resources)
        })
        .collect()
}

/// The CDS and EDS maps of `class` with its touched clusters and load
/// assignments rebuilt: its own maps when the change touches none of its
/// clusters.
fn update_maps(
    class: &ClassResources,
    ir: &Ir,
    by_index: &[&Cluster],
    dirty: &[bool],
    parts: &SharedParts,
    options: &TranslateOptions,
) -> ClusterMaps {
    let plan: &ClusterPlan = &class.cluster_plan;
    let touched: Vec<(usize, bool)> = plan
        .clusters
        .iter()
        .copied()
        .filter(|(index, _)| dirty[*index])
        .collect();
    if touched.is_empty() {
        return ClusterMaps {
            clusters: class.clusters.clone(),
            endpoints: class.endpoints.clone(),
        };
    }
    // Most endpoint changes leave the clusters' bytes as they were (only
    // the peer identities of mutual TLS come from endpoints): then the map
    // is kept, not copied.
    let rebuilt: Vec<_> = touched
        .iter()
        .map(|&(index, with_rule)| {
            parts.cluster(index, by_index[index], with_rule, plan.mtls, options)
        })
        .collect();
    let clusters = if rebuilt
        .iter()
        .all(|r| class.clusters.get(&r.name) == Some(r))
    {
        class.clusters.clone()
    } else {
        // A copy of a persistent map: only the paths to the rebuilt
        // clusters are new, the rest is shared with the old map.
        let mut clusters: ResourceMap = (*class.clusters).clone();
        for r in rebuilt {
            clusters.insert(r.name.clone(), r);
        }
        Arc::new(clusters)
    };
    let mut endpoints: ResourceMap = (*class.endpoints).clone();
    for (index, _) in touched {
        let cluster = by_index[index];
        if cluster.dns.is_none() {
            let r = parts.load_assignment(index, cluster, ir, options);
            endpoints.insert(r.name.clone(), r);
        }
    }
    ClusterMaps {
        clusters,
        endpoints: Arc::new(endpoints),
    }
}
