//! The classes of a new IR that differs from the old one in endpoints only
//! ([`crate::ir::endpoint_change`]): each keeps its listeners' inputs,
//! route configuration and untouched clusters and load assignments (the
//! same `Arc`s, so streams see the same hashes and send nothing for them),
//! and gets the touched ones rebuilt from the new IR. The bytes are the
//! same as a fresh translation's (a test compares them).

use super::shared::SharedParts;
use super::{ClassResources, ResourceMap};
use crate::ir::{Cluster, Ir};
use crate::proxy::ProxyClass;
use crate::translate::TranslateOptions;
use std::collections::HashMap;
use std::sync::Arc;

/// Every class of `classes` for `ir`, whose clusters `dirty` marks (by
/// index in `ir.clusters`) as touched by the change; `parts` holds what
/// the change left and receives what is rebuilt, for all classes to share.
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
            let updated = update_class(resources, ir, &by_index, dirty, parts, options);
            (
                class.clone(),
                updated.map_or_else(|| resources.clone(), Arc::new),
            )
        })
        .collect()
}

/// `class` with its touched clusters and load assignments rebuilt; `None`
/// when the change touches none of its clusters.
fn update_class(
    class: &ClassResources,
    ir: &Ir,
    by_index: &[&Cluster],
    dirty: &[bool],
    parts: &SharedParts,
    options: &TranslateOptions,
) -> Option<ClassResources> {
    let touched: Vec<(usize, bool)> = class
        .planned
        .iter()
        .copied()
        .filter(|(index, _)| dirty[*index])
        .collect();
    if touched.is_empty() {
        return None;
    }
    // Most endpoint changes leave the clusters' bytes as they were (only
    // the peer identities of mutual TLS come from endpoints): then the map
    // is kept, not copied.
    let rebuilt: Vec<_> = touched
        .iter()
        .map(|&(index, with_rule)| {
            parts.cluster(index, by_index[index], with_rule, class.mtls, options)
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
    Some(ClassResources {
        clusters,
        endpoints: Arc::new(endpoints),
        routes: class.routes.clone(),
        tcp: class.tcp.clone(),
        telemetry: class.telemetry.clone(),
        diagnostics: class.diagnostics.clone(),
        planned: class.planned.clone(),
        mtls: class.mtls,
        used: Default::default(),
    })
}
