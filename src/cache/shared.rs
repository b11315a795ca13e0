//! What the proxy classes of one IR share: the encoded clusters, load
//! assignments and virtual-host routes that come out the same for every
//! class, each built and encoded at most once per IR by the first class
//! that needs it, then reused (the bytes are reference-counted). The parts
//! a change leaves equal are carried into the next IR's store
//! ([`SharedParts::carry_over`] for an endpoint-only change,
//! [`SharedParts::carry_over_unchanged`] for any other).
//!
//! A class is still planned on its own ([`translate::plan`]: which clusters
//! and virtual hosts it sees, the domains each claims); only building and
//! encoding the resources is shared. The bytes are those of encoding
//! [`translate::translate`]'s output: a test compares them for every golden
//! input and several classes.

use super::rebase;
use super::route_version::{self, RouteVersion};
use super::{Resource, ResourceMap};
use crate::ir::{Cluster, Ir};
use crate::translate::plan::{self, ClassPlan};
use crate::translate::{TranslateOptions, VirtualHostDomains, OUTBOUND_ROUTE_CONFIG};
use bytes::Bytes;
use prost::encoding::{self, WireType};
use std::sync::{Arc, OnceLock};

/// The per-IR store of shared encoded parts, filled on demand, and the
/// domains of its virtual hosts (built with it). Every slot is keyed by
/// position in the IR, so it belongs to one IR (and one set of
/// [`TranslateOptions`]); slots carried into a later IR's store are put at
/// that IR's positions.
#[derive(Debug, Default)]
pub(super) struct SharedParts {
    /// Per cluster of `ir.clusters` (name order): its CDS resource for each
    /// (DestinationRule applies, mutual TLS), at `2 * with_rule + mtls`.
    clusters: Vec<[OnceLock<Resource>; 4]>,
    /// Per cluster: its ClusterLoadAssignment.
    endpoints: Vec<OnceLock<Resource>>,
    /// Per virtual host of `ir.virtual_hosts`: the encoded `routes` field
    /// (field 3 of `VirtualHost`, every route) and its digest, for each route list (default
    /// route at 0, the VirtualService's at 1), or `None` when that list's
    /// routes differ between classes (see [`plan::routes_are_shared`]).
    /// Shared with the IRs an endpoint-only change derives from this one
    /// (routes read no endpoints).
    routes: Arc<Vec<[OnceLock<Option<EncodedRoutes>>; 2]>>,
    /// The domains of every virtual host, and which ones are contested;
    /// shared like `routes`.
    domains: Arc<VirtualHostDomains>,
}

impl SharedParts {
    /// Empty slots for every cluster and virtual host of `ir`.
    pub(super) fn new(ir: &Ir) -> Self {
        SharedParts {
            clusters: (0..ir.clusters.len()).map(|_| Default::default()).collect(),
            endpoints: (0..ir.clusters.len()).map(|_| Default::default()).collect(),
            ..SharedParts::new_routes(ir)
        }
    }

    /// Empty route slots and the domains of `ir`'s virtual hosts; no
    /// cluster slots.
    fn new_routes(ir: &Ir) -> Self {
        SharedParts {
            clusters: Vec::new(),
            endpoints: Vec::new(),
            routes: Arc::new(
                (0..ir.virtual_hosts.len())
                    .map(|_| Default::default())
                    .collect(),
            ),
            domains: Arc::new(VirtualHostDomains::new(ir)),
        }
    }

    /// The parts of `old` that an endpoint-only change leaves as they are:
    /// every cluster's resources but those `dirty` marks (by cluster
    /// index; see [`crate::ir::endpoint_change`]), and every virtual host's
    /// routes and domains (they read no endpoints).
    pub(super) fn carry_over(old: &SharedParts, dirty: &[bool]) -> Self {
        // Each slot of a cluster `dirty` does not mark, as it was; the
        // others empty, to be filled from the new IR.
        fn kept<T: Clone + Default>(slots: &[T], dirty: &[bool]) -> Vec<T> {
            slots
                .iter()
                .enumerate()
                .map(|(i, slot)| {
                    if dirty.get(i).copied().unwrap_or(true) {
                        T::default()
                    } else {
                        slot.clone()
                    }
                })
                .collect()
        }
        SharedParts {
            clusters: kept(&old.clusters, dirty),
            endpoints: kept(&old.endpoints, dirty),
            routes: old.routes.clone(),
            domains: old.domains.clone(),
        }
    }

    /// The parts of `old` (built for `old_ir`) that any other change from
    /// `old_ir` to `ir` leaves right, re-indexed for `ir`: the CDS resources
    /// of every cluster equal in both (matched by name; they follow from the
    /// cluster and the options alone), and its load assignment too when the
    /// workload at each of its endpoints and the PeerAuthentications are
    /// unchanged (the load assignment's `tlsMode` reads them). Routes and
    /// domains start empty: virtual hosts may have changed, and routes read
    /// other clusters. After a VirtualService weight change, classes thus
    /// encode their route configurations again, and only the clusters and
    /// load assignments no class had encoded before.
    pub(super) fn carry_over_unchanged(old: &SharedParts, old_ir: &Ir, ir: &Ir) -> Self {
        let same_peer_authentications = old_ir.peer_authentications == ir.peer_authentications;
        let same_workload =
            |address| match (old_ir.workloads.get(address), ir.workloads.get(address)) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                (None, None) => true,
                _ => false,
            };
        let mut clusters = Vec::with_capacity(ir.clusters.len());
        let mut endpoints = Vec::with_capacity(ir.clusters.len());
        // Both maps are in name order: one walk matches them.
        let mut previous = old_ir.clusters.iter().enumerate().peekable();
        for (name, cluster) in &ir.clusters {
            while previous.next_if(|(_, (n, _))| *n < name).is_some() {}
            let kept = previous
                .peek()
                .filter(|(_, (n, c))| *n == name && (Arc::ptr_eq(c, cluster) || c == &cluster))
                .map(|(i, _)| *i)
                .filter(|i| *i < old.clusters.len());
            match kept {
                Some(i) => {
                    clusters.push(old.clusters[i].clone());
                    let load_assignment_kept = same_peer_authentications
                        && cluster.endpoints.iter().all(|e| same_workload(&e.address));
                    endpoints.push(if load_assignment_kept {
                        old.endpoints[i].clone()
                    } else {
                        OnceLock::new()
                    });
                }
                None => {
                    clusters.push(Default::default());
                    endpoints.push(OnceLock::new());
                }
            }
        }
        SharedParts {
            clusters,
            endpoints,
            ..SharedParts::new_routes(ir)
        }
    }

    /// The encoded CDS resource of `cluster` (at `index` of the IR's
    /// clusters) for a class that applies its DestinationRule (`with_rule`)
    /// and has a mesh certificate (`mtls`), built once per IR.
    pub(super) fn cluster(
        &self,
        index: usize,
        cluster: &Cluster,
        with_rule: bool,
        mtls: bool,
        options: &TranslateOptions,
    ) -> Resource {
        self.clusters[index][2 * usize::from(with_rule) + usize::from(mtls)]
            .get_or_init(|| {
                Resource::encode(
                    cluster.name.as_str(),
                    &plan::outbound_cluster(cluster, with_rule, mtls, options),
                )
            })
            .clone()
    }

    /// The encoded ClusterLoadAssignment of the EDS `cluster` (at `index`
    /// of `ir`'s clusters), built once per IR.
    pub(super) fn load_assignment(
        &self,
        index: usize,
        cluster: &Cluster,
        ir: &Ir,
        options: &TranslateOptions,
    ) -> Resource {
        self.endpoints[index]
            .get_or_init(|| {
                Resource::encode(
                    cluster.name.as_str(),
                    &plan::load_assignment(cluster, ir, options),
                )
            })
            .clone()
    }

    /// The domains of the IR's virtual hosts, to plan classes with.
    pub(super) fn domains(&self) -> &VirtualHostDomains {
        &self.domains
    }

    /// The encoded CDS, EDS and RDS resources of a planned class, by name,
    /// as [`super::Resource::encode`] of [`crate::translate::translate`]'s
    /// output would give them; each map built on the class's map of the
    /// same type in `previous` (its translation for an earlier IR), if any,
    /// so that they share what did not change (see [`rebase`]).
    pub(super) fn encode(
        &self,
        ir: &Ir,
        plan: &ClassPlan<'_>,
        options: &TranslateOptions,
        previous: Option<[&ResourceMap; 3]>,
    ) -> [ResourceMap; 3] {
        let [old_clusters, old_endpoints, old_routes] = previous.map_or([None; 3], |p| p.map(Some));
        let mut clusters = Vec::with_capacity(plan.clusters.len() + 1);
        clusters.extend(
            plan.clusters
                .iter()
                .map(|c| self.cluster(c.index, c.cluster, c.with_rule, plan.mtls, options)),
        );
        // Last, as in `translate`: the collector wins a name clash.
        if let Some(collector) = plan.collector_cluster(options) {
            clusters.push(Resource::encode(collector.name.as_str(), &collector));
        }
        let endpoints: Vec<Resource> = plan
            .clusters
            .iter()
            .filter(|c| c.cluster.dns.is_none())
            .map(|c| self.load_assignment(c.index, c.cluster, ir, options))
            .collect();
        let routes = self.route_configuration(ir, plan);
        [
            rebase::build_on(old_clusters, clusters),
            rebase::build_on(old_endpoints, endpoints),
            rebase::build_on(old_routes, vec![routes]),
        ]
    }

    /// The outbound route configuration, encoded as prost encodes
    /// `RouteConfiguration { name, virtual_hosts }` (fields 1 and 2, the
    /// only ones `translate` sets) whose `VirtualHost`s set `name`,
    /// `domains` and `routes` (fields 1, 2, 3) only: each field in that
    /// order, the routes' bytes shared between classes where they can be.
    /// Its version is computed alongside (see [`route_version`]): the
    /// shared routes are hashed once per IR, not once per class.
    fn route_configuration(&self, ir: &Ir, plan: &ClassPlan<'_>) -> Resource {
        let name = OUTBOUND_ROUTE_CONFIG.to_string();
        let mut body = Vec::new();
        let mut version = RouteVersion::new();
        encoding::string::encode(1, &name, &mut body);
        version.field(&body);
        for v in &plan.virtual_hosts {
            let shared = plan.shared_routes(v.vhost).and_then(|own| {
                self.routes[v.index][usize::from(own)]
                    .get_or_init(|| {
                        let list = plan::route_list(v.vhost, own);
                        plan::routes_are_shared(list, ir)
                            .then(|| EncodedRoutes::new(encode_routes(&plan.routes(v.vhost))))
                    })
                    .as_ref()
            });
            let own;
            let routes = match shared {
                Some(shared) => shared,
                None => {
                    own = EncodedRoutes::new(encode_routes(&plan.routes(v.vhost)));
                    &own
                }
            };
            let vhost_name = if v.vhost.name.is_empty() {
                0
            } else {
                encoding::string::encoded_len(1, &v.vhost.name)
            };
            let len = vhost_name
                + encoding::string::encoded_len_repeated(2, &v.domains)
                + routes.bytes.len();
            encoding::encode_key(2, WireType::LengthDelimited, &mut body);
            encoding::encode_varint(len as u64, &mut body);
            let head = body.len();
            if vhost_name > 0 {
                encoding::string::encode(1, &v.vhost.name, &mut body);
            }
            encoding::string::encode_repeated(2, &v.domains, &mut body);
            version.virtual_host(&route_version::virtual_host_digest(
                &body[head..],
                &routes.digest,
            ));
            body.extend_from_slice(&routes.bytes);
        }
        Resource::new(name, Bytes::from(body), version.finish())
    }
}

/// The encoded `routes` of a virtual host, with the digest its route
/// configuration's version is built from.
#[derive(Clone, Debug)]
struct EncodedRoutes {
    bytes: Bytes,
    /// [`route_version::routes_digest`] of `bytes`.
    digest: [u8; 32],
}

impl EncodedRoutes {
    fn new(bytes: Vec<u8>) -> Self {
        EncodedRoutes {
            digest: route_version::routes_digest(&bytes),
            bytes: Bytes::from(bytes),
        }
    }
}

/// The `routes` field of a `VirtualHost` (field 3, repeated message).
fn encode_routes(routes: &[envoy_types::pb::envoy::config::route::v3::Route]) -> Vec<u8> {
    let mut out = Vec::new();
    encoding::message::encode_repeated(3, routes, &mut out);
    out
}
