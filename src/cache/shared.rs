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
//! encoding the resources is shared, and the CDS and EDS maps themselves
//! when two classes plan the same clusters ([`ClusterPlan`]): classes that
//! differ only by namespace (no Sidecar, every service and DestinationRule
//! exported to both, the same tracing collector) see the same clusters, so
//! at 10,000 services and 100 namespaces one pair of maps of 60,000
//! resources serves every class instead of 100 pairs. The bytes are those of encoding
//! [`translate::translate`]'s output: a test compares them for every golden
//! input and several classes.

use super::body::{min_shared_run, BodyBuilder};
use super::rebase;
use super::route_version::{self, RouteVersion};
use super::slots::Slots;
use super::{Resource, ResourceMap};
use crate::ir::{Cluster, Ir};
use crate::translate::plan::{self, ClassPlan};
use crate::translate::{ClusterReach, TranslateOptions, VirtualHostDomains, OUTBOUND_ROUTE_CONFIG};
use bytes::Bytes;
use prost::encoding::{self, WireType};
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

/// The per-IR store of shared encoded parts, filled on demand, and the
/// domains of its virtual hosts (built with it). Every slot is keyed by
/// position in the IR (and belongs to one set of [`TranslateOptions`]);
/// slots carried into a later IR's store are put at that IR's positions,
/// and after an endpoint-only change the chunks of slots it left alone
/// are shared by both stores (their resources are the same under both).
#[derive(Debug, Default)]
pub(super) struct SharedParts {
    /// Per cluster of `ir.clusters` (name order): its CDS resource for each
    /// (DestinationRule applies, mutual TLS), at `2 * with_rule + mtls`.
    /// Chunks of slots no cluster of an endpoint-only change is in are
    /// shared with the previous generation ([`Slots::carry_over`]).
    clusters: Slots<[OnceLock<Resource>; 4]>,
    /// Per cluster: its ClusterLoadAssignment.
    endpoints: Slots<OnceLock<Resource>>,
    /// Per virtual host of `ir.virtual_hosts`, for each route list (default
    /// route at 0, the VirtualService's at 1): the virtual host encoded
    /// with that list's routes and the domains every class gets, or `None`
    /// when that list's routes differ between classes (see
    /// [`plan::routes_are_shared`]). Shared with the IRs an endpoint-only
    /// change derives from this one (routes read no endpoints).
    routes: Arc<Vec<[OnceLock<Option<EncodedVirtualHost>>; 2]>>,
    /// The records of `routes` the first class with any took, in one
    /// buffer: classes share those bytes instead of copying them (see
    /// [`super::Body`]). Shared like `routes`.
    assembled: Arc<OnceLock<Assembled>>,
    /// The domains of every virtual host, and which ones are contested;
    /// shared like `routes`.
    domains: Arc<VirtualHostDomains>,
    /// What every class can tell of each cluster's visibility; shared with
    /// the IRs an endpoint-only change derives from this one (it reads no
    /// endpoints, and such a change keeps the clusters and their order).
    reach: Arc<ClusterReach>,
    /// The CDS and EDS maps of each cluster plan some class of this IR
    /// has: the classes with that plan share them (the same `Arc`s).
    cluster_maps: Mutex<HashMap<Arc<ClusterPlan>, ClusterMaps>>,
}

/// What decides a class's CDS and EDS maps: two classes with equal plans
/// get equal maps. Hashed once, when built ([`ClusterPlan::new`]): at
/// 10,000 services a plan lists 60,000 clusters, and feeding all of them to
/// the map's hasher (SipHash) per class and per endpoint change, as a
/// derived `Hash` did, was a sixth of the server's CPU in an endpoint
/// change with 100 classes.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ClusterPlan {
    /// A hash of the fields below (first, so that unequal plans mostly
    /// differ here and compare no further).
    hash: u64,
    /// Whether the class has a mesh certificate (its clusters to sidecars
    /// originate mutual TLS).
    pub(super) mtls: bool,
    /// The IR clusters the class sees: (position in the IR's clusters,
    /// whether their DestinationRule applies), in name order.
    pub(super) clusters: Vec<(usize, bool)>,
    /// The tracing collector's cluster, when the class traces: (name,
    /// content hash).
    collector: Option<(Arc<str>, Arc<str>)>,
}

/// Hashes plans in [`ClusterPlan::new`]; fixed keys, as the hash never
/// leaves the process and a map of plans holds one entry per class.
static PLAN_HASHER: std::sync::LazyLock<ahash::RandomState> =
    std::sync::LazyLock::new(|| ahash::RandomState::with_seeds(1, 2, 3, 4));

impl ClusterPlan {
    /// The plan of these fields, with its hash.
    fn new(
        mtls: bool,
        clusters: Vec<(usize, bool)>,
        collector: Option<(Arc<str>, Arc<str>)>,
    ) -> Self {
        let mut state = PLAN_HASHER.build_hasher();
        mtls.hash(&mut state);
        // One word per cluster: its index and flag packed.
        state.write_usize(clusters.len());
        for &(index, with_rule) in &clusters {
            state.write_u64((index as u64) << 1 | u64::from(with_rule));
        }
        collector.hash(&mut state);
        ClusterPlan {
            hash: state.finish(),
            mtls,
            clusters,
            collector,
        }
    }
}

impl Hash for ClusterPlan {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A class's CDS and EDS maps, shared by the classes of one [`ClusterPlan`].
#[derive(Clone, Debug)]
pub(super) struct ClusterMaps {
    pub(super) clusters: Arc<ResourceMap>,
    pub(super) endpoints: Arc<ResourceMap>,
}

impl SharedParts {
    /// Empty slots for every cluster and virtual host of `ir`.
    pub(super) fn new(ir: &Ir) -> Self {
        SharedParts {
            clusters: Slots::new(ir.clusters.len()),
            endpoints: Slots::new(ir.clusters.len()),
            ..SharedParts::new_routes(ir)
        }
    }

    /// Empty route slots, the domains of `ir`'s virtual hosts and the
    /// reach of its clusters; no cluster slots.
    fn new_routes(ir: &Ir) -> Self {
        SharedParts {
            clusters: Slots::default(),
            endpoints: Slots::default(),
            routes: Arc::new(
                (0..ir.virtual_hosts.len())
                    .map(|_| Default::default())
                    .collect(),
            ),
            assembled: Arc::default(),
            domains: Arc::new(VirtualHostDomains::new(ir)),
            reach: Arc::new(ClusterReach::new(ir)),
            cluster_maps: Mutex::default(),
        }
    }

    /// The buffer of shared virtual host records classes' route
    /// configurations point into, once a class has assembled it.
    #[cfg(test)]
    pub(super) fn assembled_records(&self) -> Option<Bytes> {
        self.assembled.get().map(|a| a.body.clone())
    }

    /// The parts of `old` that an endpoint-only change leaves as they are:
    /// every cluster's resources but those `dirty` marks (by cluster
    /// index; see [`crate::ir::endpoint_change`]), every virtual host's
    /// routes and domains (they read no endpoints) and the clusters' reach.
    pub(super) fn carry_over(old: &SharedParts, dirty: &[bool]) -> Self {
        // Each slot of a cluster `dirty` does not mark, as it was (the
        // same resource under both IRs, so a slot shared with `old` may be
        // filled by either); the others empty, to be filled from the new IR.
        SharedParts {
            clusters: old.clusters.carry_over(dirty),
            endpoints: old.endpoints.carry_over(dirty),
            routes: old.routes.clone(),
            assembled: old.assembled.clone(),
            domains: old.domains.clone(),
            reach: old.reach.clone(),
            cluster_maps: Mutex::default(),
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
            clusters: Slots::from_vec(clusters),
            endpoints: Slots::from_vec(endpoints),
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

    /// What every class can tell of the IR's clusters, to plan classes with.
    pub(super) fn reach(&self) -> &ClusterReach {
        &self.reach
    }

    /// The encoded CDS, EDS and RDS resources of a planned class, by name,
    /// as [`super::Resource::encode`] of [`crate::translate::translate`]'s
    /// output would give them, and the class's cluster plan. The CDS and
    /// EDS maps are built on the class's maps of the same type in
    /// `previous` (its translation for an earlier IR), if any, so that they
    /// share what did not change (see [`rebase`]; the one-entry RDS map is
    /// built afresh, see below); they are those of an
    /// earlier class of this IR with the same plan, if there is one (built
    /// on that class's previous maps: a class whose plan changed with the
    /// IR then gets maps that share less with the ones its streams hold,
    /// and its streams diff more).
    pub(super) fn encode(
        &self,
        ir: &Ir,
        plan: &ClassPlan<'_>,
        options: &TranslateOptions,
        previous: Option<[&ResourceMap; 3]>,
    ) -> (Arc<ClusterPlan>, ClusterMaps, ResourceMap) {
        // The route configuration map is built afresh: it holds one
        // resource, and the previous one, when equal, would point into the
        // previous IR's buffer of shared records and keep it alive (a
        // stream still sends nothing for an unchanged version).
        let [old_clusters, old_endpoints, _] = previous.map_or([None; 3], |p| p.map(Some));
        // Last, as in `translate`: the collector wins a name clash.
        let collector = plan
            .collector_cluster(options)
            .map(|c| Resource::encode(c.name.as_str(), &c));
        let key = ClusterPlan::new(
            plan.mtls,
            plan.clusters
                .iter()
                .map(|c| (c.index, c.with_rule))
                .collect(),
            collector.as_ref().map(|c| (c.name.clone(), c.hash.clone())),
        );
        let routes = rebase::build_on(None, vec![self.route_configuration(ir, plan)]);
        let mut shared = self.cluster_maps.lock().expect("cluster maps lock");
        if let Some((key, maps)) = shared.get_key_value(&key) {
            return (key.clone(), maps.clone(), routes);
        }
        let mut clusters = Vec::with_capacity(plan.clusters.len() + 1);
        clusters.extend(
            plan.clusters
                .iter()
                .map(|c| self.cluster(c.index, c.cluster, c.with_rule, plan.mtls, options)),
        );
        clusters.extend(collector);
        let endpoints: Vec<Resource> = plan
            .clusters
            .iter()
            .filter(|c| c.cluster.dns.is_none())
            .map(|c| self.load_assignment(c.index, c.cluster, ir, options))
            .collect();
        let maps = ClusterMaps {
            clusters: Arc::new(rebase::build_on(old_clusters, clusters)),
            endpoints: Arc::new(rebase::build_on(old_endpoints, endpoints)),
        };
        let key = Arc::new(key);
        shared.insert(key.clone(), maps.clone());
        (key, maps, routes)
    }

    /// The CDS and EDS maps of the classes of this IR with cluster plan
    /// `key`: those an earlier class got, or else `build`'s (an
    /// endpoint-only change's update of a class's maps), then kept for the
    /// later classes with that plan.
    pub(super) fn cluster_maps(
        &self,
        key: &Arc<ClusterPlan>,
        build: impl FnOnce() -> ClusterMaps,
    ) -> ClusterMaps {
        self.cluster_maps
            .lock()
            .expect("cluster maps lock")
            .entry(key.clone())
            .or_insert_with(build)
            .clone()
    }

    /// The outbound route configuration, encoded as prost encodes
    /// `RouteConfiguration { name, virtual_hosts }` (fields 1 and 2, the
    /// only ones `translate` sets) whose `VirtualHost`s set `name`,
    /// `domains` and `routes` (fields 1, 2, 3) only: each field in that
    /// order. A virtual host whose routes are shared between classes
    /// ([`ClassPlan::shared_routes`], [`plan::routes_are_shared`]) is
    /// encoded once per IR with the domains every class gets, and copied
    /// when the class claims exactly those (it is not in the service's
    /// namespace, or the service has no short names, and no domain was
    /// left out for another virtual host); the others are encoded for the
    /// class, with the shared routes' bytes where there are some. Its
    /// version is computed alongside (see [`route_version`]) from digests
    /// kept per IR for shared routes (per class for the others), not from
    /// hashing the whole configuration per class.
    ///
    /// The first class to get here that would share a run of 16 KB or more
    /// of shared records puts them in one buffer, in order (`assembled`; one route list per virtual host,
    /// the one that class takes, and those it answers with more domains
    /// too); every class's body then shares the runs of 16 KB or more of
    /// that buffer that hold records it takes as they are (same route
    /// list), and copies the rest: its own virtual hosts (more domains, or
    /// routes of its own), records of the other route list, shorter runs.
    /// See [`super::Body`].
    fn route_configuration(&self, ir: &Ir, plan: &ClassPlan<'_>) -> Resource {
        let name = OUTBOUND_ROUTE_CONFIG.to_string();
        let mut version = RouteVersion::new();
        let mut head = Vec::new();
        encoding::string::encode(1, &name, &mut head);
        version.field(&head);
        // Each virtual host, with the shared record of its routes (and that
        // record's route list) when there is one.
        let vhosts: Vec<EncodedPlanned<'_>> = plan
            .virtual_hosts
            .iter()
            .map(|v| {
                let shared = plan.shared_routes(v.vhost).and_then(|own| {
                    self.routes[v.index][usize::from(own)]
                        .get_or_init(|| {
                            let list = plan::route_list(v.vhost, own);
                            plan::routes_are_shared(list, ir).then(|| {
                                EncodedVirtualHost::new(
                                    &v.vhost.name,
                                    self.domains.everywhere(v.index),
                                    &encode_routes(&plan.routes(v.vhost)),
                                    None,
                                )
                            })
                        })
                        .as_ref()
                        .map(|shared| (own, shared))
                });
                let encoded = match shared {
                    Some((_, shared)) if *v.domains == *self.domains.everywhere(v.index) => {
                        Cow::Borrowed(shared)
                    }
                    Some((_, shared)) => Cow::Owned(EncodedVirtualHost::new(
                        &v.vhost.name,
                        &v.domains,
                        shared.routes(),
                        Some(&shared.routes_digest),
                    )),
                    None => Cow::Owned(EncodedVirtualHost::new(
                        &v.vhost.name,
                        &v.domains,
                        &encode_routes(&plan.routes(v.vhost)),
                        None,
                    )),
                };
                (encoded, shared)
            })
            .collect();
        for (v, _) in &vhosts {
            version.virtual_host(&v.digest);
        }
        let min_run = min_shared_run();
        let assembled = match self.assembled.get() {
            Some(assembled) => Some(assembled),
            // Laid out only when this class would share some run of it: with
            // every run short it would copy them all, and nothing would point
            // into the buffer (a later class may still lay it out).
            None if longest_shared_run(&vhosts) >= min_run.max(1) => {
                let assembled = Assembled::of(ir.virtual_hosts.len(), &plan.virtual_hosts, &vhosts);
                // Another class may have set one meanwhile: either serves.
                Some(self.assembled.get_or_init(|| assembled))
            }
            None => None,
        };
        let Some(assembled) = assembled else {
            let len = head.len() + vhosts.iter().map(|(v, _)| v.record.len()).sum::<usize>();
            let mut body = Vec::with_capacity(len);
            body.extend_from_slice(&head);
            for (v, _) in &vhosts {
                body.extend_from_slice(&v.record);
            }
            return Resource::new(name, body, version.finish());
        };
        let mut body = BodyBuilder::new(&assembled.body, min_run);
        body.copy(&head);
        for ((v, shared), planned) in vhosts.iter().zip(&plan.virtual_hosts) {
            match (v, shared, &assembled.records[planned.index]) {
                (Cow::Borrowed(_), Some((own, _)), Some((same, range))) if own == same => {
                    body.share(range.clone())
                }
                _ => body.copy(&v.record),
            }
        }
        let body = body.finish();
        Resource::new(name, body, version.finish())
    }
}

/// A planned virtual host encoded for a class, with the shared record of
/// its routes (and that record's route list) when there is one.
type EncodedPlanned<'a> = (
    Cow<'a, EncodedVirtualHost>,
    Option<(bool, &'a EncodedVirtualHost)>,
);

/// The longest run of records, in bytes, that a class would share if it laid
/// out the buffer of shared records itself ([`Assembled::of`]): consecutive
/// virtual hosts it takes as shared records, as they are. 0 when there is
/// none.
fn longest_shared_run(vhosts: &[EncodedPlanned<'_>]) -> usize {
    let (mut longest, mut run) = (0, 0);
    for (v, shared) in vhosts {
        match (v, shared) {
            (Cow::Borrowed(_), Some((_, s))) => run += s.record.len(),
            // Records of its own are copied; one it answers with more domains
            // lies in the buffer but is not taken from it: the run ends.
            _ => run = 0,
        }
        longest = longest.max(run);
    }
    longest
}

/// The shared virtual host records of an IR in one buffer, in the IR's
/// order, and where each lies in it (see
/// [`SharedParts::route_configuration`]).
#[derive(Debug)]
struct Assembled {
    body: Bytes,
    /// Per virtual host of the IR: the route list (as `routes` is indexed)
    /// and the range of `body` holding that record, when `body` holds it.
    records: Vec<Option<(bool, Range<usize>)>>,
}

impl Assembled {
    /// The shared records of the route configuration of one class
    /// (`planned`, each with its encoding and its shared record): every
    /// virtual host the class sees with shared routes, including those the
    /// class itself answers with more domains (those of its namespace),
    /// which the other classes take as they are. `count` is the number of
    /// the IR's virtual hosts.
    fn of(
        count: usize,
        planned: &[plan::PlannedVirtualHost<'_>],
        vhosts: &[EncodedPlanned<'_>],
    ) -> Self {
        let len = vhosts
            .iter()
            .filter_map(|(_, shared)| shared.map(|(_, s)| s.record.len()))
            .sum();
        let mut body = Vec::with_capacity(len);
        let mut records = vec![None; count];
        for (v, (_, shared)) in planned.iter().zip(vhosts) {
            if let Some((own, shared)) = shared {
                records[v.index] = Some((*own, body.len()..body.len() + shared.record.len()));
                body.extend_from_slice(&shared.record);
            }
        }
        Assembled {
            body: body.into(),
            records,
        }
    }
}

/// One virtual host of a route configuration, encoded: its whole record
/// (field 2 of `RouteConfiguration`: key, length, then `name`, `domains`
/// and `routes`), with the digests its route configuration's version is
/// built from.
#[derive(Clone, Debug)]
struct EncodedVirtualHost {
    record: Bytes,
    /// Where the `routes` records start in `record`.
    routes_at: usize,
    /// [`route_version::routes_digest`] of the `routes` records.
    routes_digest: [u8; 32],
    /// [`route_version::virtual_host_digest`] of the virtual host.
    digest: [u8; 32],
}

impl EncodedVirtualHost {
    /// The virtual host `name` with `domains` and the encoded `routes`
    /// records, whose digest is `routes_digest` when it is known.
    fn new(
        name: &str,
        domains: &[String],
        routes: &[u8],
        routes_digest: Option<&[u8; 32]>,
    ) -> Self {
        let name_len = if name.is_empty() {
            0
        } else {
            encoding::string::encoded_len(1, &name.to_string())
        };
        let len = name_len + encoding::string::encoded_len_repeated(2, domains) + routes.len();
        let mut record = Vec::with_capacity(len + 1 + encoding::encoded_len_varint(len as u64));
        encoding::encode_key(2, WireType::LengthDelimited, &mut record);
        encoding::encode_varint(len as u64, &mut record);
        let head = record.len();
        if name_len > 0 {
            encoding::string::encode(1, &name.to_string(), &mut record);
        }
        encoding::string::encode_repeated(2, domains, &mut record);
        let routes_digest = routes_digest
            .copied()
            .unwrap_or_else(|| route_version::routes_digest(routes));
        let digest = route_version::virtual_host_digest(&record[head..], &routes_digest);
        let routes_at = record.len();
        record.extend_from_slice(routes);
        EncodedVirtualHost {
            record: Bytes::from(record),
            routes_at,
            routes_digest,
            digest,
        }
    }

    /// The encoded `routes` records.
    fn routes(&self) -> &[u8] {
        &self.record[self.routes_at..]
    }
}

/// The `routes` field of a `VirtualHost` (field 3, repeated message).
fn encode_routes(routes: &[envoy_types::pb::envoy::config::route::v3::Route]) -> Vec<u8> {
    let mut out = Vec::new();
    encoding::message::encode_repeated(3, routes, &mut out);
    out
}
