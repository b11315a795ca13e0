//! Where the workloads of one namespace meet another's: an address that
//! several Pods or WorkloadEntries hold, and an EndpointSlice that names a
//! Pod of another namespace. A well-formed mesh has neither; the patch
//! ([`super::patch`]) reads them to show that a change of workloads stays
//! inside the namespaces it touched, without reading every workload and
//! slice of the world.

use crate::model::{Kind, Object, ObjectKey};
use crate::store::World;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

/// The crossings of a world (see the module docs). Derived from the
/// world's Pods, WorkloadEntries and EndpointSlices alone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Crossings {
    /// Addresses two or more workloads hold, with the namespaces of all
    /// of them (an address with one holder is in [`super::Ir::workloads`]).
    pub shared_addresses: BTreeMap<IpAddr, BTreeSet<String>>,
    /// EndpointSlices with an endpoint whose `targetRef` names a Pod of
    /// another namespace, with those namespaces.
    pub slices_naming_pods_elsewhere: BTreeMap<ObjectKey, BTreeSet<String>>,
}

impl Crossings {
    /// The crossings of `world`.
    pub fn of(world: &World) -> Crossings {
        let holders: Vec<(IpAddr, &str)> = of_kind(world, Kind::Pod)
            .chain(of_kind(world, Kind::WorkloadEntry))
            .filter_map(|(key, object)| Some((address(object)?, key.namespace.as_str())))
            .collect();
        let mut counts: HashMap<IpAddr, u32, ahash::RandomState> = HashMap::default();
        for (address, _) in &holders {
            *counts.entry(*address).or_default() += 1;
        }
        let mut shared_addresses: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
        for (address, namespace) in holders {
            if counts[&address] > 1 {
                let namespaces = shared_addresses.entry(address).or_default();
                if !namespaces.contains(namespace) {
                    namespaces.insert(namespace.to_string());
                }
            }
        }
        let slices_naming_pods_elsewhere = of_kind(world, Kind::EndpointSlice)
            .filter_map(|(key, object)| {
                let elsewhere: BTreeSet<String> = pod_namespaces_elsewhere(key, object)
                    .map(String::from)
                    .collect();
                (!elsewhere.is_empty()).then(|| (key.clone(), elsewhere))
            })
            .collect();
        Crossings {
            shared_addresses,
            slices_naming_pods_elsewhere,
        }
    }
}

/// The address of a Pod (`status.podIP`) or WorkloadEntry (`spec.address`),
/// as the IR reads it; `None` for one without a valid address and for any
/// other object.
pub(super) fn address(object: &Object) -> Option<IpAddr> {
    match object {
        Object::Pod(pod) => pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok(),
        Object::WorkloadEntry(entry) => entry.spec.address.parse().ok(),
        _ => None,
    }
}

/// The objects of `world` of `kind`, read as a range of the map (it orders
/// by kind first).
pub(super) fn of_kind(
    world: &World,
    kind: Kind,
) -> impl Iterator<Item = (&ObjectKey, &Arc<Object>)> {
    let first = ObjectKey {
        kind,
        namespace: String::new(),
        name: String::new(),
    };
    world
        .range(first..)
        .take_while(move |(key, _)| key.kind == kind)
}

/// The namespaces other than its own of the Pods an EndpointSlice's
/// endpoints name (their labels decide its subsets). A reference of
/// another kind is ignored ([`super::endpoints::pod_reference`], as the
/// build reads them). Empty for any other object.
pub(super) fn pod_namespaces_elsewhere<'a>(
    key: &'a ObjectKey,
    object: &'a Object,
) -> impl Iterator<Item = &'a str> + 'a {
    let slice = match object {
        Object::EndpointSlice(slice) => Some(slice),
        _ => None,
    };
    slice
        .into_iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter_map(super::endpoints::pod_reference)
        .filter_map(|r| r.namespace.as_deref())
        .filter(move |namespace| *namespace != key.namespace)
}
