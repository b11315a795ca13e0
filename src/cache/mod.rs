//! The snapshot cache: the current IR, its translation per proxy class, and
//! every resource encoded once, with a content hash for versions.
//!
//! The cache never knows about streams. The server asks it for a proxy's
//! [`ProxySnapshot`] and subscribes to its generation counter to learn when
//! to ask again.

mod body;
mod endpoint_update;
mod per_proxy;
mod rebase;
mod route_version;
mod shared;
mod slots;

pub use body::Body;
pub use route_version::route_configuration_hash;

use crate::ca::WorkloadCerts;
use crate::diagnostic::Diagnostic;
use crate::envoy::TypeUrl;
use crate::ir::Ir;
use crate::metrics::{Metrics, TranslationStage};
use crate::proxy::{ProxyClass, ProxyInfo};
use crate::translate::{self, TranslateOptions};
use bytes::Bytes;
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime};
use tokio::sync::watch;

/// One encoded resource: the message bytes (the `value` of its `Any`) and a
/// hash of them. Cheap to clone (three reference counts), so maps of them
/// can be copied and shared between proxy classes and streams.
#[derive(Clone, Debug)]
pub struct Resource {
    /// Resource name.
    pub name: Arc<str>,
    /// Encoded message (in parts for a class's route configuration: see
    /// [`Body`]).
    pub body: Body,
    /// Content hash, the resource's version: the first 16 hex digits of the
    /// SHA-256 of `body` ([`short_hash`]), except for a route configuration
    /// ([`Resource::route_configuration`]), whose hash is built from the
    /// hashes of its virtual hosts ([`route_configuration_hash`]).
    pub hash: Arc<str>,
    /// This resource's share of a set's version ([`SetVersion`]): 64 bits
    /// of the SHA-256 of its name and hash.
    digest: u64,
}

/// Two resources are equal when their names and content hashes are: the
/// hash stands for the bytes (comparing it, not the bodies, keeps diffs of
/// large maps cheap).
impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest && self.hash == other.hash && self.name == other.name
    }
}

impl Eq for Resource {}

impl Resource {
    /// A resource of `body` named `name` whose version is `hash`.
    pub fn new(
        name: impl Into<Arc<str>>,
        body: impl Into<Body>,
        hash: impl Into<Arc<str>>,
    ) -> Self {
        let name = name.into();
        let body = body.into();
        let hash = hash.into();
        let mut hasher = Sha256::new();
        hasher.update((name.len() as u64).to_be_bytes());
        hasher.update(name.as_bytes());
        hasher.update(hash.as_bytes());
        let digest = u64::from_be_bytes(hasher.finalize()[..8].try_into().expect("8 bytes"));
        Resource {
            name,
            body,
            hash,
            digest,
        }
    }

    /// Encodes a message once.
    pub fn encode(name: impl Into<Arc<str>>, message: &impl Message) -> Self {
        let body = Bytes::from(message.encode_to_vec());
        let hash = short_hash(&[&body]);
        Resource::new(name, body, hash)
    }

    /// Encodes a route configuration once, with the version
    /// [`route_configuration_hash`] gives its bytes (what the snapshot
    /// cache computes from the shared parts it assembles it from).
    pub fn route_configuration(
        name: impl Into<Arc<str>>,
        message: &envoy_types::pb::envoy::config::route::v3::RouteConfiguration,
    ) -> Self {
        let body = Bytes::from(message.encode_to_vec());
        let hash = route_configuration_hash(&body);
        Resource::new(name, body, hash)
    }
}

/// Resources of one type, keyed by name: a persistent B-tree ([`imbl`]),
/// so a copy costs one reference count, a copy with a few resources
/// changed shares every untouched node with the original, and
/// [`imbl::OrdMap::diff`] of two such maps visits only what differs.
pub type ResourceMap = imbl::OrdMap<Arc<str>, Resource>;

/// The version of a set of resources, kept up to date as resources come
/// and go: the wrapping sum of the members' digests (each 64 bits of the
/// SHA-256 of a name and content hash), so it depends on the set only, not
/// on the order or on how the set was built. Streams update it from the
/// diff between what they sent and what they send next, instead of hashing
/// every resource on every push.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetVersion(u64);

impl SetVersion {
    /// The version of every resource of `map` (reads each once).
    pub fn of(map: &ResourceMap) -> Self {
        let mut version = SetVersion::default();
        for r in map.values() {
            version.add(r);
        }
        version
    }

    /// `resource` joined the set.
    pub fn add(&mut self, resource: &Resource) {
        self.0 = self.0.wrapping_add(resource.digest);
    }

    /// `resource` left the set.
    pub fn remove(&mut self, resource: &Resource) {
        self.0 = self.0.wrapping_sub(resource.digest);
    }

    /// As sent in `version_info`: 16 lower-case hex digits.
    pub fn to_hex(self) -> String {
        hex16(&self.0.to_be_bytes())
    }
}

/// Every cluster, ClusterLoadAssignment and route configuration of a
/// translation encoded, as CDS, EDS and RDS maps by name: the reference the
/// shared encoding of [`shared`] must equal byte for byte (its tests), and
/// the encode stage of the benches.
pub fn encode_translation(t: &translate::Translation) -> [ResourceMap; 3] {
    [
        t.clusters
            .iter()
            .map(|c| Resource::encode(c.name.as_str(), c))
            .map(|r| (r.name.clone(), r))
            .collect(),
        t.endpoints
            .iter()
            .map(|e| Resource::encode(e.cluster_name.as_str(), e))
            .map(|r| (r.name.clone(), r))
            .collect(),
        t.route_configurations
            .iter()
            .map(|rc| Resource::route_configuration(rc.name.as_str(), rc))
            .map(|r| (r.name.clone(), r))
            .collect(),
    ]
}

/// The first 16 hex digits of the SHA-256 of the concatenated parts.
pub fn short_hash(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex16(&hasher.finalize())
}

/// The first 8 bytes of `digest` (at least 8) in lower-case hex.
fn hex16(digest: &[u8]) -> String {
    // Hex by hand: every encoded resource is hashed, and `write!` per byte
    // cost as much as the hash of a small resource.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(16);
    for b in &digest[..8] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// Everything one proxy should have, by type.
#[derive(Clone, Debug, Default)]
pub struct ProxySnapshot {
    /// Generation of the IR this was built from.
    pub generation: u64,
    /// When the config change behind that generation was observed (the
    /// first file event of its debounced burst); `None` for generation 0.
    pub changed_at: Option<Instant>,
    /// Resources by type; shared (`Arc`) between proxies of one class except listeners.
    pub resources: BTreeMap<TypeUrl, Arc<ResourceMap>>,
}

impl ProxySnapshot {
    /// The resources of one type (empty if none).
    pub fn of(&self, type_url: TypeUrl) -> &ResourceMap {
        static EMPTY: std::sync::LazyLock<ResourceMap> = std::sync::LazyLock::new(ResourceMap::new);
        self.resources
            .get(&type_url)
            .map(Arc::as_ref)
            .unwrap_or(&*EMPTY)
    }
}

/// Encoded resources of one proxy class.
#[derive(Debug)]
struct ClassResources {
    clusters: Arc<ResourceMap>,
    endpoints: Arc<ResourceMap>,
    routes: Arc<ResourceMap>,
    /// TCP proxy listeners, bound per proxy on its outbound address.
    tcp: Vec<translate::TcpProxyRoute>,
    /// Access logs and tracer of the class's HTTP listeners.
    telemetry: crate::ir::telemetry::ProxyTelemetry,
    /// Problems found while translating for this class.
    diagnostics: Vec<Diagnostic>,
    /// What decided `clusters` and `endpoints` (the IR clusters the class
    /// sees and whether their DestinationRules apply, whether it has a mesh
    /// certificate, its tracing collector), for endpoint-only updates;
    /// classes with equal plans share the maps.
    cluster_plan: Arc<shared::ClusterPlan>,
    /// Whether a proxy asked for this class's snapshot since the IR last
    /// changed: an endpoint-only change carries only such classes over
    /// (the others are translated again if a proxy of them comes back).
    used: AtomicBool,
}

impl ClassResources {
    /// Its CDS, EDS and RDS maps, for a later translation to build on.
    fn maps(&self) -> [&ResourceMap; 3] {
        [&self.clusters, &self.endpoints, &self.routes]
    }
}

#[derive(Debug)]
struct State {
    ir: Arc<Ir>,
    /// The inbound index of `ir`, built by the first proxy with a sidecar
    /// that needs it and shared by the rest until the IR changes.
    inbound: Arc<OnceLock<translate::inbound::InboundIndex>>,
    /// The encoded resources the classes of `ir` share, filled by the
    /// classes as they are translated, until the IR changes.
    parts: Arc<OnceLock<shared::SharedParts>>,
    generation: u64,
    changed_at: Option<Instant>,
    classes: HashMap<ProxyClass, Arc<ClassResources>>,
    /// The classes translated before the latest change that was not
    /// endpoint-only (or before an earlier one, when no class was
    /// translated in between): a class translated again is built on its
    /// maps ([`rebase`]), so streams diff only what changed.
    previous: HashMap<ProxyClass, Arc<ClassResources>>,
}

impl State {
    /// For a change that is not endpoint-only: the translated classes
    /// become `previous` and what that held is returned, to be freed. When
    /// no class was translated since the last such change (two changes
    /// within one push), `previous` stays: the maps streams hold are still
    /// those.
    fn retire_classes(&mut self) -> HashMap<ProxyClass, Arc<ClassResources>> {
        let classes = std::mem::take(&mut self.classes);
        if classes.is_empty() {
            return classes;
        }
        std::mem::replace(&mut self.previous, classes)
    }
}

/// What a new IR generation replaces: the old IR, classes and shared parts.
type Replaced = (
    Arc<Ir>,
    HashMap<ProxyClass, Arc<ClassResources>>,
    Arc<OnceLock<shared::SharedParts>>,
);

/// The cache. Cheap to share behind an `Arc`; methods take `&self`.
#[derive(Debug)]
pub struct SnapshotCache {
    options: TranslateOptions,
    /// Resources added to every class's snapshot; only a test hook sets them.
    injected: Vec<(TypeUrl, Resource)>,
    state: Mutex<State>,
    generation: watch::Sender<u64>,
    /// Where translation times go, if anywhere.
    metrics: Option<Arc<Metrics>>,
    /// The CA's workload certificates; without them no proxy gets SDS
    /// secrets, and no mutual TLS is configured.
    certs: Option<Arc<WorkloadCerts>>,
    /// BENCHMARK ONLY (see [`SnapshotCache::with_naive_baseline`]).
    naive_baseline: bool,
}

impl SnapshotCache {
    /// An empty cache (generation 0, empty IR).
    pub fn new(options: TranslateOptions) -> Self {
        SnapshotCache {
            options,
            injected: Vec::new(),
            state: Mutex::new(State {
                ir: Arc::new(Ir::default()),
                inbound: Arc::default(),
                parts: Arc::default(),
                generation: 0,
                changed_at: None,
                classes: HashMap::new(),
                previous: HashMap::new(),
            }),
            generation: watch::channel(0).0,
            metrics: None,
            certs: None,
            naive_baseline: false,
        }
    }

    /// BENCHMARK ONLY: the naive baseline that `sextant-load --baseline`
    /// compares against (reachable from the hidden `serve --naive-baseline`
    /// flag). Every [`SnapshotCache::snapshot`] translates and encodes for
    /// its one proxy, sharing nothing between proxies, and the server
    /// re-sends every type in full to every stream on every change (see
    /// [`SnapshotCache::is_naive_baseline`]). Correct, but it does all the
    /// work the normal mode avoids; never use it to serve a mesh.
    pub fn with_naive_baseline(mut self) -> Self {
        self.naive_baseline = true;
        self
    }

    /// Whether this cache runs the benchmark-only naive baseline: the
    /// server then re-sends every type in full on each change. This is the
    /// one switch both halves of the baseline read.
    pub fn is_naive_baseline(&self) -> bool {
        self.naive_baseline
    }

    /// Serves workload certificates from `certs` over SDS and turns on
    /// mutual TLS between sidecars.
    pub fn with_certs(mut self, certs: Arc<WorkloadCerts>) -> Self {
        self.certs = Some(certs);
        self
    }

    /// The workload certificates, if the cache serves any.
    pub fn certs(&self) -> Option<&Arc<WorkloadCerts>> {
        self.certs.as_ref()
    }

    /// The SPIFFE ID `proxy` gets a certificate for, if any.
    pub fn identity_of(&self, proxy: &ProxyInfo) -> Option<String> {
        let certs = self.certs.as_ref()?;
        let ir = self.ir();
        per_proxy::identity(&ir, proxy, certs).map(|(_, id)| id.to_string())
    }

    /// Why `proxy` gets no mesh certificate although the CA is on: its
    /// claimed identity matches no workload of the input (see
    /// [`ProxyClass::workload_mismatch`]). `None` when it gets one, or
    /// when mTLS is off.
    pub fn identity_problem(&self, proxy: &ProxyInfo) -> Option<String> {
        self.certs.as_ref()?;
        ProxyClass::workload_mismatch(&self.ir(), proxy)
    }

    /// Makes every stream compute its snapshot again without an IR change
    /// (after certificates rotated): only what changed is sent.
    pub fn refresh(&self) {
        let generation = {
            let mut state = self.state.lock().expect("cache lock");
            state.generation += 1;
            state.generation
        };
        self.generation.send_replace(generation);
    }

    /// Records the time of each class translation in `metrics`
    /// (`sextant_translation_duration_seconds{stage="translate"}`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// TEST HOOK: adds `resource` to every snapshot, whatever the input, so
    /// that a test can make a real Envoy NACK. Reachable only from the hidden
    /// `serve --test-inject-invalid-cluster` flag, never from config files.
    pub fn inject_for_tests(&mut self, type_url: TypeUrl, resource: Resource) {
        self.injected.push((type_url, resource));
    }

    /// Replaces the IR and wakes every subscriber. An IR equal to the current
    /// one changes nothing (no generation bump, no push).
    pub fn set_ir(&self, ir: Ir) {
        self.set_ir_changed_at(ir, Instant::now());
    }

    /// [`SnapshotCache::set_ir`] for a change that was observed at
    /// `changed_at`; the snapshots of the new generation carry that time, so
    /// the server can measure how long proxies took to converge.
    ///
    /// A change of endpoints only ([`crate::ir::endpoint_change`]) keeps the
    /// translated classes and rebuilds just the load assignments (and
    /// clusters) it touches; any other change drops them, and each class is
    /// translated again when a proxy of it next asks, reusing the encoded
    /// clusters and load assignments the change left equal.
    pub fn set_ir_changed_at(&self, ir: impl Into<Arc<Ir>>, changed_at: Instant) {
        let ir: Arc<Ir> = ir.into();
        let (generation, old) = {
            let mut state = self.state.lock().expect("cache lock");
            // One comparison of the two IRs tells an unchanged one (no
            // cluster's endpoints differ, nor the workloads), an
            // endpoint-only change and any other.
            let dirty = crate::ir::endpoint_change::endpoint_only_change(&state.ir, &ir);
            if dirty.as_ref().is_some_and(|d| !d.contains(&true))
                && state.ir.workloads == ir.workloads
            {
                return;
            }
            let mut replaced: Replaced = Default::default();
            let dirty = dirty.filter(|_| !self.naive_baseline);
            match (dirty, state.parts.get()) {
                (Some(dirty), Some(old)) => {
                    let started = Instant::now();
                    let parts = shared::SharedParts::carry_over(old, &dirty);
                    // Classes no proxy asked for during the last generation
                    // (their proxies left, or were relabelled) are dropped,
                    // not updated forever.
                    let used: HashMap<ProxyClass, Arc<ClassResources>> = state
                        .classes
                        .iter()
                        .filter(|(_, c)| c.used.load(Ordering::Relaxed))
                        .map(|(class, c)| (class.clone(), c.clone()))
                        .collect();
                    let classes =
                        endpoint_update::update_classes(&used, &ir, &dirty, &parts, &self.options);
                    for c in classes.values() {
                        c.used.store(false, Ordering::Relaxed);
                    }
                    replaced.1 = std::mem::replace(&mut state.classes, classes);
                    replaced.2 =
                        std::mem::replace(&mut state.parts, Arc::new(OnceLock::from(parts)));
                    if let Some(metrics) = &self.metrics {
                        metrics.observe_translation(TranslationStage::Endpoints, started.elapsed());
                    }
                }
                (None, Some(old)) if !self.naive_baseline => {
                    // Any other change: what it left equal is carried over,
                    // every class is translated again when a proxy asks.
                    let parts = shared::SharedParts::carry_over_unchanged(old, &state.ir, &ir);
                    replaced.2 =
                        std::mem::replace(&mut state.parts, Arc::new(OnceLock::from(parts)));
                    replaced.1 = state.retire_classes();
                }
                _ => {
                    replaced.2 = std::mem::take(&mut state.parts);
                    replaced.1 = state.retire_classes();
                }
            }
            replaced.0 = std::mem::replace(&mut state.ir, ir);
            state.inbound = Arc::default();
            state.generation += 1;
            state.changed_at = Some(changed_at);
            (state.generation, replaced)
        };
        // What the new generation replaced is freed off this path (at 10k
        // services, freeing an IR and its classes' maps costs as much as an
        // endpoint update): proxies get the new snapshots first.
        let _ = std::thread::Builder::new()
            .name("sextant-free".into())
            .spawn(move || drop(old));
        self.generation.send_replace(generation);
    }

    /// The current IR.
    pub fn ir(&self) -> Arc<Ir> {
        self.state.lock().expect("cache lock").ir.clone()
    }

    /// The root namespace (mesh-wide Telemetry and Sidecar live there).
    pub fn root_namespace(&self) -> &str {
        &self.options.root_namespace
    }

    /// Problems found while translating for the proxy classes seen since the
    /// IR last changed (e.g. a domain two virtual hosts claim), deduplicated.
    pub fn translation_diagnostics(&self) -> Vec<Diagnostic> {
        let state = self.state.lock().expect("cache lock");
        let mut all: Vec<Diagnostic> = state
            .classes
            .values()
            .flat_map(|c| c.diagnostics.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// A receiver that changes whenever the IR does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The resources `proxy` should have now. Translation runs at most once
    /// per proxy class and IR generation (every time, in the benchmark-only
    /// naive baseline); the listener is built per proxy.
    pub fn snapshot(&self, proxy: &ProxyInfo) -> ProxySnapshot {
        let (ir, inbound_index, spiffe_id, class, generation, changed_at, shared, diagnostics) = {
            let mut state = self.state.lock().expect("cache lock");
            let (ir, generation, changed_at) =
                (state.ir.clone(), state.generation, state.changed_at);
            let (spiffe_id, class) = self.classify(&ir, proxy);
            let cached = (!self.naive_baseline)
                .then(|| state.classes.get(&class).cloned())
                .flatten();
            let (shared, diagnostics, inbound_index) = match cached {
                Some(shared) => {
                    shared.used.store(true, Ordering::Relaxed);
                    (shared, Vec::new(), state.inbound.clone())
                }
                // The benchmark-only naive baseline shares nothing: it
                // translates per proxy, outside the lock, with a fresh
                // inbound index and nothing shared with other classes.
                None if self.naive_baseline => {
                    drop(state);
                    let parts = shared::SharedParts::new(&ir);
                    let (shared, diagnostics) = self.translate_class(&ir, &class, &parts, None);
                    (Arc::new(shared), diagnostics, Arc::default())
                }
                None => {
                    let parts = state.parts.clone();
                    let parts = parts.get_or_init(|| shared::SharedParts::new(&ir));
                    let previous = state.previous.get(&class).map(|c| c.maps());
                    let (shared, diagnostics) = self.translate_class(&ir, &class, parts, previous);
                    let shared = Arc::new(shared);
                    shared.used.store(true, Ordering::Relaxed);
                    state.classes.insert(class.clone(), shared.clone());
                    (shared, diagnostics, state.inbound.clone())
                }
            };
            (
                ir,
                inbound_index,
                spiffe_id,
                class,
                generation,
                changed_at,
                shared,
                diagnostics,
            )
        };
        for d in diagnostics {
            tracing::warn!(namespace = class.namespace, "{d}");
        }
        let secrets = match (&self.certs, &spiffe_id) {
            (Some(certs), Some(id)) => per_proxy::secrets(certs, id, SystemTime::now()),
            _ => ResourceMap::new(),
        };
        // The inbound side: for a proxy whose workload has a sidecar
        // (`security.istio.io/tlsMode: istio`), at its first instance IP.
        let workload = ProxyClass::workload(&ir, proxy).filter(|w| w.sidecar_port.is_some());
        let inbound = match (workload, proxy.instance_ips.first()) {
            (Some(w), Some(ip)) if !proxy.proxyless_grpc => translate::inbound::inbound(
                &ir,
                inbound_index.get_or_init(|| translate::inbound::InboundIndex::new(&ir)),
                w,
                std::net::SocketAddr::new(*ip, proxy.inbound_port),
                spiffe_id.is_some().then(|| {
                    self.certs
                        .as_ref()
                        .map_or(crate::ca::spiffe::DEFAULT_TRUST_DOMAIN, |c| {
                            c.trust_domain().as_str()
                        })
                }),
                &translate::inbound::authz_filters(&ir, w, &self.options),
                &shared.telemetry,
                &self.options,
            ),
            _ => None,
        };
        let mut inbound_clusters = ResourceMap::new();
        let mut inbound_listener = None;
        if let Some((listener, clusters)) = inbound {
            for c in &clusters {
                let r = Resource::encode(c.name.as_str(), c);
                inbound_clusters.insert(r.name.clone(), r);
            }
            inbound_listener = Some(listener);
        }
        let listeners = if proxy.proxyless_grpc {
            translate::grpc_listeners(&ir, &class)
        } else {
            let reserved: Vec<u16> = proxy.admin_port.into_iter().collect();
            let taken = |p: u16| p == proxy.outbound.port() || reserved.contains(&p);
            if let Some(r) = shared.tcp.iter().find(|r| taken(r.port)) {
                tracing::warn!(
                    node = proxy.node_id,
                    "TCP service port {} ({}) is this proxy's outbound HTTP or admin port; it gets no TCP listener",
                    r.port,
                    r.stat_prefix
                );
            }
            // Only the outbound listener streams to Sextant's access log
            // service: each request is reported once, by its client's sidecar.
            let telemetry = match &proxy.access_log_service {
                Some(cluster) => std::borrow::Cow::Owned(crate::ir::telemetry::ProxyTelemetry {
                    access_log_service: Some(cluster.clone()),
                    ..shared.telemetry.clone()
                }),
                None => std::borrow::Cow::Borrowed(&shared.telemetry),
            };
            let mut all =
                translate::sidecar_listeners(proxy.outbound, &reserved, &shared.tcp, &telemetry);
            all.extend(inbound_listener);
            all
        };
        let listeners: ResourceMap = listeners
            .iter()
            .map(|l| Resource::encode(l.name.as_str(), l))
            .map(|r| (r.name.clone(), r))
            .collect();
        ProxySnapshot {
            generation,
            changed_at,
            resources: BTreeMap::from([
                (
                    TypeUrl::Cluster,
                    per_proxy::with_extra(&shared.clusters, inbound_clusters),
                ),
                (TypeUrl::ClusterLoadAssignment, shared.endpoints.clone()),
                (TypeUrl::Listener, Arc::new(listeners)),
                (TypeUrl::RouteConfiguration, shared.routes.clone()),
                (TypeUrl::Secret, Arc::new(secrets)),
            ]),
        }
    }
}

impl SnapshotCache {
    /// Adds the test hook's resources (see [`SnapshotCache::inject_for_tests`]).
    fn inject(&self, shared: &mut ClassResources) {
        for (type_url, resource) in &self.injected {
            let map = match type_url {
                TypeUrl::Cluster => &mut shared.clusters,
                TypeUrl::ClusterLoadAssignment => &mut shared.endpoints,
                TypeUrl::RouteConfiguration => &mut shared.routes,
                TypeUrl::Listener | TypeUrl::Secret => continue,
            };
            Arc::make_mut(map).insert(resource.name.clone(), resource.clone());
        }
    }

    /// The mesh identity of `proxy` (it decides the class: mTLS or not,
    /// and the SDS secrets) and its class in `ir`.
    fn classify(&self, ir: &Ir, proxy: &ProxyInfo) -> (Option<crate::ca::SpiffeId>, ProxyClass) {
        let spiffe_id = self
            .certs
            .as_ref()
            .and_then(|c| per_proxy::identity(ir, proxy, c))
            .map(|(_, id)| id);
        let class = ProxyClass::of(
            ir,
            &proxy.namespace,
            &proxy.labels,
            &self.options.root_namespace,
            spiffe_id.is_some(),
        );
        (spiffe_id, class)
    }

    /// Translates and encodes `class` (timed in the metrics), with the test
    /// injections, reusing and filling `parts`, its maps built on
    /// `previous` (the class's maps for an earlier IR), if any, or taken
    /// from an earlier class of this IR with the same cluster plan.
    fn translate_class(
        &self,
        ir: &Ir,
        class: &ProxyClass,
        parts: &shared::SharedParts,
        previous: Option<[&ResourceMap; 3]>,
    ) -> (ClassResources, Vec<Diagnostic>) {
        let started = Instant::now();
        let (mut shared, diagnostics) = encode_class(ir, class, &self.options, parts, previous);
        if let Some(metrics) = &self.metrics {
            metrics.observe_translation(TranslationStage::Translate, started.elapsed());
        }
        self.inject(&mut shared);
        (shared, diagnostics)
    }
}

/// The encoded resources of `class`: the same bytes as encoding
/// [`translate::translate`]'s output, with what other classes of the IR
/// already built taken from `parts`, and the maps built on `previous`.
fn encode_class(
    ir: &Ir,
    class: &ProxyClass,
    options: &TranslateOptions,
    parts: &shared::SharedParts,
    previous: Option<[&ResourceMap; 3]>,
) -> (ClassResources, Vec<Diagnostic>) {
    let plan = translate::plan::plan(ir, parts.domains(), parts.reach(), class, options);
    let (cluster_plan, maps, routes) = parts.encode(ir, &plan, options, previous);
    let resources = ClassResources {
        clusters: maps.clusters,
        endpoints: maps.endpoints,
        routes: Arc::new(routes),
        tcp: plan.tcp_proxies,
        telemetry: plan.telemetry,
        diagnostics: plan.diagnostics.clone(),
        cluster_plan,
        used: AtomicBool::new(false),
    };
    (resources, plan.diagnostics)
}

#[cfg(test)]
mod tests;
