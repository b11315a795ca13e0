//! Where to find clusters without walking all of them: by namespace, and by
//! the addresses of their endpoints. At 10,000 services the IR holds about
//! 60,000 clusters and 180,000 endpoints; a change of one workload reaches
//! a few of them. The patch ([`super::patch`]) looks them up here instead
//! of reading every cluster, and the endpoint-only check
//! ([`super::endpoint_change`]) instead of reading every cluster's
//! endpoints.
//!
//! A cluster is named by its position in [`super::Ir::clusters`] (name
//! order), the index the snapshot cache uses. Which clusters exist never
//! depends on workloads, so a patched IR keeps the positions and the
//! by-namespace part (shared, not copied) and updates only the addresses of
//! the clusters whose endpoints it replaced.

use super::{Cluster, Endpoint};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

/// Clusters of an IR by namespace and by endpoint address. Derived from
/// [`super::Ir::clusters`] alone: [`ClusterIndex::of`] builds it, and code
/// that replaces a cluster's endpoints keeps it in step with
/// [`ClusterIndex::replace_endpoints`]. Two IRs with equal clusters have
/// equal indexes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterIndex {
    /// Per namespace (the cluster's service's), its clusters' positions
    /// and names, in name order.
    by_namespace: Arc<BTreeMap<String, Vec<(u32, String)>>>,
    /// Per endpoint address, the positions of the clusters with an endpoint
    /// there, ascending and without duplicates; an address no cluster has
    /// an endpoint at is absent.
    by_address: ByAddress,
}

/// Cluster positions by endpoint address; hashed with aHash, seeded at
/// random per process as SipHash is (SipHash was most of the index's build
/// time).
type ByAddress = imbl::GenericHashMap<
    IpAddr,
    Arc<[u32]>,
    ahash::RandomState,
    imbl::shared_ptr::DefaultSharedPtr,
>;

impl ClusterIndex {
    /// The index of `clusters` (the IR's map, whose iteration order gives
    /// positions).
    pub fn of(clusters: &imbl::OrdMap<String, Arc<Cluster>>) -> ClusterIndex {
        let mut by_namespace: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
        let mut by_address: HashMap<IpAddr, Vec<u32>, ahash::RandomState> = HashMap::default();
        for (position, (name, cluster)) in (0u32..).zip(clusters) {
            let entry = (position, name.clone());
            match by_namespace.get_mut(&cluster.namespace) {
                Some(clusters) => clusters.push(entry),
                None => drop(by_namespace.insert(cluster.namespace.clone(), vec![entry])),
            }
            for endpoint in &cluster.endpoints {
                let positions = by_address.entry(endpoint.address).or_default();
                // Positions come in ascending order: a repeat is the same
                // cluster's.
                if positions.last() != Some(&position) {
                    positions.push(position);
                }
            }
        }
        ClusterIndex {
            by_namespace: Arc::new(by_namespace),
            by_address: by_address
                .into_iter()
                .map(|(address, positions)| (address, positions.into()))
                .collect(),
        }
    }

    /// Positions and names of the clusters of `namespace`, in name order.
    pub fn in_namespace(&self, namespace: &str) -> &[(u32, String)] {
        self.by_namespace.get(namespace).map_or(&[], Vec::as_slice)
    }

    /// Positions of the clusters with an endpoint at `address`, ascending.
    pub fn at_address(&self, address: &IpAddr) -> &[u32] {
        self.by_address.get(address).map_or(&[], |p| p)
    }

    /// Records that the cluster at `position` now has endpoints `new`
    /// instead of `old`.
    pub fn replace_endpoints(&mut self, position: u32, old: &[Endpoint], new: &[Endpoint]) {
        for endpoint in old {
            if let Some(positions) = self.by_address.get(&endpoint.address) {
                if positions.binary_search(&position).is_ok() {
                    let left: Arc<[u32]> = positions
                        .iter()
                        .copied()
                        .filter(|p| *p != position)
                        .collect();
                    if left.is_empty() {
                        self.by_address.remove(&endpoint.address);
                    } else {
                        self.by_address.insert(endpoint.address, left);
                    }
                }
            }
        }
        for endpoint in new {
            let positions = self.at_address(&endpoint.address);
            if let Err(at) = positions.binary_search(&position) {
                let mut more = positions.to_vec();
                more.insert(at, position);
                self.by_address.insert(endpoint.address, more.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The synthetic mesh's index, and the same after one cluster's
    /// endpoints move: equal to the index built from the changed clusters.
    #[test]
    fn replacing_endpoints_gives_the_index_of_the_changed_clusters() {
        let store = crate::synth::store(&crate::synth::WorldSpec::with_services(30));
        let ir = super::super::resolve(&store).0;
        let index = ClusterIndex::of(&ir.clusters);
        assert_eq!(index, ir.cluster_index, "the build's index");
        let (position, name, cluster) = (0u32..)
            .zip(&ir.clusters)
            .find(|(_, (_, c))| c.endpoints.len() >= 2)
            .map(|(p, (n, c))| (p, n.clone(), c.clone()))
            .expect("a cluster with two endpoints");
        let first = cluster.endpoints[0].address;
        assert!(index.at_address(&first).contains(&position));
        assert_eq!(
            index
                .in_namespace(&cluster.namespace)
                .iter()
                .find(|(p, _)| *p == position),
            Some(&(position, name.clone()))
        );

        // The first endpoint moves to a new address; the second one is
        // repeated (a second port at one address).
        let mut moved = (*cluster).clone();
        moved.endpoints[0].address = "11.0.0.1".parse().unwrap();
        let again = moved.endpoints[1].clone();
        moved.endpoints.push(again);
        let mut clusters = ir.clusters.clone();
        clusters.insert(name, Arc::new(moved.clone()));
        let mut patched = index.clone();
        patched.replace_endpoints(position, &cluster.endpoints, &moved.endpoints);
        assert_eq!(patched, ClusterIndex::of(&clusters));
        assert!(!patched.at_address(&first).contains(&position));
        assert_eq!(patched.at_address(&"11.0.0.1".parse().unwrap()), [position]);
        // And back.
        patched.replace_endpoints(position, &moved.endpoints, &cluster.endpoints);
        assert_eq!(patched, index);
    }
}
