//! The SotW ADS state machine of one stream, free of tonic and I/O: requests
//! go in, responses to send come out.
//!
//! Rules (see the xDS protocol and `design.md`):
//! - A NACK is a request whose nonce is the latest one we sent and that
//!   carries `error_detail`; an ACK is the same without it. We never compare
//!   versions to detect either.
//! - A request with an older nonce is stale: its `resource_names` are still
//!   applied, but it triggers no response by itself.
//! - A request with an empty nonce (first request, or a reconnect) is always
//!   answered.
//! - We send a type whenever what the proxy should have differs from what we
//!   last *sent* (not what it ACKed), so a roll-back to the running config is
//!   still pushed after a NACK.
//! - After a CDS (LDS) response that modified clusters (listeners), the next
//!   EDS (RDS) request is answered even if nothing changed, unless an EDS
//!   (RDS) response went out after it: Envoy re-requests the endpoints of a
//!   modified cluster and keeps it warming until they come.
//! - Make before break: LDS and RDS are held while a CDS or EDS response is
//!   unanswered, and clusters (with their endpoints) that the snapshot no
//!   longer has are kept until the proxy has ACKed the routes that replace
//!   the ones using them.
//! - LDS and CDS responses carry everything the proxy should have (absence
//!   means removal). EDS and RDS responses are incremental even in SotW: a
//!   push nobody asked for carries only the changed resources, an answer to
//!   a request carries all subscribed ones.

use super::names::NameSet;
pub use super::sotw_request::RequestNames;
use crate::cache::{ProxySnapshot, Resource, ResourceMap, SetVersion};
use crate::envoy::TypeUrl;
use imbl::ordmap::DiffItem;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

/// What a proxy subscribed to for one type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Subscription {
    /// Every resource of the type (LDS/CDS with no names, or `*`).
    Wildcard,
    /// These resource names (shared by the streams subscribed to them).
    Names(NameSet),
}

impl Subscription {
    fn from_request(type_url: TypeUrl, names: &RequestNames) -> Self {
        let wildcard =
            names.iter().any(|n| n == "*") || (names.is_empty() && type_url.is_wildcard_capable());
        if wildcard {
            Subscription::Wildcard
        } else {
            Subscription::Names(names.iter().map(str::to_string).collect())
        }
    }

    /// Whether a request of `type_url` naming `names` asks for exactly
    /// this subscription. Envoy repeats every subscribed name on each ACK
    /// (thousands for EDS), so this compares in place instead of building
    /// a set per request.
    fn is_requested_by(&self, type_url: TypeUrl, names: &RequestNames) -> bool {
        let wildcard =
            names.iter().any(|n| n == "*") || (names.is_empty() && type_url.is_wildcard_capable());
        let set = match self {
            Subscription::Wildcard => return wildcard,
            Subscription::Names(_) if wildcard => return false,
            Subscription::Names(set) => set,
        };
        if names.len() < set.len() {
            return false;
        }
        let mut sorted: Vec<&str> = names.iter().collect();
        if sorted.windows(2).all(|w| w[0] < w[1]) {
            return sorted.len() == set.len() && sorted.iter().zip(set).all(|(a, b)| *a == b);
        }
        sorted.sort_unstable();
        sorted.dedup();
        sorted.len() == set.len() && sorted.iter().zip(set).all(|(a, b)| *a == b)
    }

    fn includes(&self, name: &str) -> bool {
        match self {
            Subscription::Wildcard => true,
            Subscription::Names(names) => names.contains(name),
        }
    }
}

/// One response we sent.
#[derive(Clone, Debug, Serialize)]
pub struct Sent {
    /// `version_info`: [`SetVersion`] of the resources, in hex.
    pub version: String,
    /// The same, to update from the next push's diff.
    #[serde(skip)]
    set_version: SetVersion,
    /// The response's nonce.
    pub nonce: String,
    /// The resources it carried, by name.
    #[serde(skip)]
    pub resources: Arc<ResourceMap>,
    /// When it was sent.
    pub at: SystemTime,
}

/// A rejected response.
#[derive(Clone, Debug, Serialize)]
pub struct Nack {
    /// Version of the rejected response.
    pub version: String,
    /// Nonce of the rejected response.
    pub nonce: String,
    /// Envoy's message, trimmed (see [`trim_nack_message`]).
    pub message: String,
    /// When the NACK arrived.
    pub at: SystemTime,
}

/// The state of one type on one stream.
#[derive(Clone, Debug, Serialize)]
pub struct TypeState {
    /// Current subscription.
    pub subscription: Subscription,
    /// The latest response sent.
    pub sent: Option<Sent>,
    /// The latest response the proxy ACKed.
    pub acked: Option<Sent>,
    /// The latest NACK, if the latest answered response was NACKed.
    pub nack: Option<Nack>,
    /// NACKs received on this stream.
    pub nack_count: u64,
    /// Nonce of the latest response the proxy answered (ACK or NACK).
    #[serde(skip)]
    answered_nonce: Option<String>,
    /// The next poll must send this type even if unchanged.
    #[serde(skip)]
    respond: bool,
    /// The next non-stale request must be answered even if unchanged (set
    /// after a CDS/LDS response that modified a resource).
    #[serde(skip)]
    owed: bool,
    /// A stale request changed the subscription: nothing is sent until the
    /// proxy answers the response in flight (that answer is then served).
    #[serde(skip)]
    names_pending: bool,
    /// Counts subscription changes, so that `selection` knows when it is
    /// out of date without comparing name sets.
    #[serde(skip)]
    epoch: u64,
    /// [`RequestNames::digest`] of the latest request's names, all of
    /// which `subscription` holds: a request with this digest names
    /// exactly the subscription (no need to read its thousands of names).
    #[serde(skip)]
    names_digest: Option<u128>,
    /// The named resources picked from the snapshot's map at the latest
    /// push, kept up to date from the diff of that map and the next.
    #[serde(skip)]
    selection: Selection,
}

/// The subscribed part of a snapshot map, for a subscription by names,
/// kept from one push to the next (SotW and delta).
#[derive(Clone, Debug, Default)]
pub(super) struct Selection {
    /// The snapshot's map it was picked from, the subscription epoch it
    /// was picked for, and what it picked.
    picked: Option<(ResourceMap, u64, ResourceMap)>,
}

impl Selection {
    /// The resources of `all` that are `subscribed`, for the subscription
    /// numbered `epoch` (callers count their subscription changes). The
    /// previous pick, when it was for the same epoch, is updated from the
    /// diff of its map and `all`, so a push that changed a few resources
    /// costs a few lookups, and the result shares its structure with the
    /// previous one (and so with what was sent). A pick of the whole map
    /// stays the whole (shared) map while everything added is subscribed.
    pub(super) fn pick(
        &mut self,
        all: &ResourceMap,
        epoch: u64,
        subscribed: impl Fn(&str) -> bool,
    ) -> ResourceMap {
        match &mut self.picked {
            Some((source, picked_epoch, selected)) if *picked_epoch == epoch => {
                let whole = selected.ptr_eq(source)
                    && source.diff(all).all(|item| match item {
                        DiffItem::Add(name, _) => subscribed(name),
                        DiffItem::Update { .. } | DiffItem::Remove(..) => true,
                    });
                if whole {
                    *selected = all.clone();
                    *source = all.clone();
                } else if !source.ptr_eq(all) {
                    for item in source.diff(all) {
                        match item {
                            DiffItem::Add(name, r) | DiffItem::Update { new: (name, r), .. } => {
                                if subscribed(name) {
                                    selected.insert(name.clone(), r.clone());
                                }
                            }
                            DiffItem::Remove(name, _) => {
                                selected.remove(name);
                            }
                        }
                    }
                    *source = all.clone();
                }
                selected.clone()
            }
            _ => {
                // Envoy subscribes to the endpoints of every EDS cluster it
                // has, often all of them: the map itself is then shared, not
                // copied per stream.
                let selected: ResourceMap = if all.keys().all(|n| subscribed(n)) {
                    all.clone()
                } else {
                    all.iter()
                        .filter(|(name, _)| subscribed(name))
                        .map(|(name, r)| (name.clone(), r.clone()))
                        .collect()
                };
                self.picked = Some((all.clone(), epoch, selected.clone()));
                selected
            }
        }
    }
}

impl TypeState {
    fn new(subscription: Subscription) -> Self {
        TypeState {
            subscription,
            sent: None,
            acked: None,
            nack: None,
            nack_count: 0,
            answered_nonce: None,
            respond: false,
            owed: false,
            names_pending: false,
            epoch: 0,
            names_digest: None,
            selection: Selection::default(),
        }
    }

    /// The resources of `all` this type is subscribed to: the map itself
    /// (a reference count) for a wildcard subscription, else
    /// [`Selection::pick`].
    fn select(&mut self, all: &ResourceMap) -> ResourceMap {
        match &self.subscription {
            Subscription::Wildcard => all.clone(),
            Subscription::Names(names) => {
                self.selection.pick(all, self.epoch, |n| names.contains(n))
            }
        }
    }

    /// Whether the latest response is still waiting for an ACK or NACK.
    pub fn awaiting_answer(&self) -> bool {
        self.sent
            .as_ref()
            .is_some_and(|s| self.answered_nonce.as_deref() != Some(&s.nonce))
    }
}

/// A DiscoveryRequest, reduced to what the state machine reads.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The type URL as sent.
    pub type_url: String,
    /// `version_info`.
    pub version_info: String,
    /// `resource_names`, in their wire form (see [`RequestNames`]).
    pub resource_names: RequestNames,
    /// `response_nonce` (empty on a first request).
    pub response_nonce: String,
    /// `error_detail.message`, when present: the request is a NACK.
    pub error_detail: Option<String>,
}

/// What a request turned out to be, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// A type Sextant does not serve; ignored.
    UnknownType,
    /// First request of the type on this stream, or a reconnect (empty nonce).
    Initial,
    /// A nonce that is not the latest: names applied, nothing else.
    Stale,
    /// ACK of the latest response.
    Ack,
    /// NACK of the latest response, with the trimmed message.
    Nack(String),
}

/// One response to send.
#[derive(Clone, Debug)]
pub struct Response {
    /// Type of the resources.
    pub type_url: TypeUrl,
    /// `version_info`.
    pub version: String,
    /// `nonce`.
    pub nonce: String,
    /// Resources on the wire, sorted by name: all the proxy should have for
    /// LDS and CDS and for answers to requests; only the changed ones for an
    /// EDS or RDS push.
    pub resources: Arc<ResourceMap>,
}

/// The SotW state of one ADS stream.
#[derive(Debug, Default, Serialize)]
pub struct SotwStream {
    /// State per type, for the types the proxy asked for.
    pub types: BTreeMap<TypeUrl, TypeState>,
    #[serde(skip)]
    next_nonce: u64,
}

impl SotwStream {
    /// A stream that has seen no request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one request. Responses come from the next [`SotwStream::poll`].
    pub fn on_request(&mut self, request: &Request) -> RequestKind {
        let Some(type_url) = TypeUrl::parse(&request.type_url) else {
            return RequestKind::UnknownType;
        };
        let state = self.types.entry(type_url).or_insert_with(|| {
            TypeState::new(Subscription::from_request(
                type_url,
                &request.resource_names,
            ))
        });
        // Most requests (every ACK) repeat the previous one's names.
        let digest = request.resource_names.digest();
        let names_changed = state.names_digest != Some(digest)
            && !state
                .subscription
                .is_requested_by(type_url, &request.resource_names);
        if names_changed {
            state.subscription = Subscription::from_request(type_url, &request.resource_names);
            state.epoch += 1;
        }
        state.names_digest = Some(digest);

        if request.response_nonce.is_empty() {
            state.respond = true;
            return RequestKind::Initial;
        }
        let Some(sent) = state
            .sent
            .clone()
            .filter(|s| s.nonce == request.response_nonce)
        else {
            state.names_pending |= names_changed;
            return RequestKind::Stale;
        };
        state.answered_nonce = Some(sent.nonce.clone());
        state.respond |= names_changed || std::mem::take(&mut state.owed);
        let kind = record_answer(
            &sent.version,
            &sent.nonce,
            request.error_detail.as_ref(),
            &mut state.nack,
            &mut state.nack_count,
        );
        if kind == RequestKind::Ack {
            state.acked = Some(sent);
        }
        kind
    }

    /// BENCHMARK ONLY (the naive baseline of
    /// [`crate::cache::SnapshotCache::with_naive_baseline`]): the next poll
    /// sends every subscribed type with all its resources, as an answer to
    /// a request would, changed or not.
    pub fn resend_all(&mut self) {
        for state in self.types.values_mut() {
            state.respond = true;
        }
    }

    /// The responses to send now, in push order (CDS, EDS, LDS, RDS), given
    /// what the proxy should have.
    pub fn poll(&mut self, snapshot: &ProxySnapshot) -> Vec<Response> {
        let mut out = Vec::new();
        for type_url in TypeUrl::ALL {
            if self.held(type_url) {
                continue;
            }
            if !self.types.contains_key(&type_url) {
                continue;
            }
            let resources = self.desired(type_url, snapshot);
            let Some(state) = self.types.get_mut(&type_url) else {
                continue;
            };
            let diff = Diff::between(state.sent.as_ref(), &resources);
            if !(diff.any || state.respond)
                || (state.names_pending && state.awaiting_answer() && !state.respond)
            {
                continue;
            }
            self.next_nonce += 1;
            let nonce = self.next_nonce.to_string();
            let version = diff.version.to_hex();
            let resources = Arc::new(resources);
            // EDS and RDS responses are incremental even in SotW (omitting a
            // resource says nothing about it): a push the proxy did not ask
            // for carries only what changed. An answer to a request carries all.
            let incremental = matches!(
                type_url,
                TypeUrl::ClusterLoadAssignment | TypeUrl::RouteConfiguration | TypeUrl::Secret
            ) && !state.respond;
            let wire = if incremental && state.sent.is_some() {
                Arc::new(
                    diff.changed
                        .into_iter()
                        .map(|r| (r.name.clone(), r))
                        .collect(),
                )
            } else {
                resources.clone()
            };
            let modified = diff.modified;
            state.sent = Some(Sent {
                version: version.clone(),
                set_version: diff.version,
                nonce: nonce.clone(),
                resources,
                at: SystemTime::now(),
            });
            state.respond = false;
            state.owed = false;
            state.names_pending = false;
            let dependent = match type_url {
                TypeUrl::Cluster => Some(TypeUrl::ClusterLoadAssignment),
                TypeUrl::Listener => Some(TypeUrl::RouteConfiguration),
                _ => None,
            };
            if let Some(dependent) = dependent
                .filter(|_| modified)
                .and_then(|t| self.types.get_mut(&t))
            {
                dependent.owed = true;
            }
            out.push(Response {
                type_url,
                version,
                nonce,
                resources: wire,
            });
        }
        out
    }

    /// LDS and RDS wait while a CDS or EDS response is unanswered.
    fn held(&self, type_url: TypeUrl) -> bool {
        held(type_url, |t| {
            self.types.get(&t).is_some_and(TypeState::awaiting_answer)
        })
    }

    /// Whether the proxy runs the listeners and routes of `snapshot`: each of
    /// LDS and RDS is unrequested, or its latest response is what the
    /// snapshot holds and was ACKed.
    fn routes_settled(&self, snapshot: &ProxySnapshot) -> bool {
        [TypeUrl::Listener, TypeUrl::RouteConfiguration]
            .iter()
            .all(|t| match self.types.get(t) {
                None => true,
                Some(state) => {
                    let desired = SetVersion::of(&select(snapshot.of(*t), &state.subscription));
                    state
                        .sent
                        .as_ref()
                        .is_some_and(|s| s.set_version == desired)
                        && state
                            .acked
                            .as_ref()
                            .is_some_and(|a| a.set_version == desired)
                }
            })
    }

    /// The resources of `type_url` the proxy should have now.
    fn desired(&mut self, type_url: TypeUrl, snapshot: &ProxySnapshot) -> ResourceMap {
        let keep_clusters = type_url == TypeUrl::Cluster && !self.routes_settled(snapshot);
        let clusters_sent = self
            .types
            .get(&TypeUrl::Cluster)
            .and_then(|s| s.sent.as_ref())
            .map(|s| s.resources.clone());
        let Some(state) = self.types.get_mut(&type_url) else {
            return ResourceMap::new();
        };
        let mut resources = state.select(snapshot.of(type_url));
        if let Some(previous) = &state.sent {
            retain_dropped(
                type_url,
                &mut resources,
                &previous.resources,
                keep_clusters,
                clusters_sent.as_deref(),
                |n| state.subscription.includes(n),
            );
        }
        resources
    }
}

/// How the resources to send differ from the latest response.
struct Diff {
    /// The version of the resources to send.
    version: SetVersion,
    /// The resources added or changed since the latest response, by name
    /// (empty before the first response, which carries everything).
    changed: Vec<Resource>,
    /// Whether a resource the latest response had changed.
    modified: bool,
    /// Whether anything was added, changed or removed (always, with no
    /// response sent yet).
    any: bool,
}

impl Diff {
    /// `resources` against the latest response `sent`. Both maps usually
    /// share most of their structure (see [`ResourceMap`]), and only what
    /// they do not share is visited.
    fn between(sent: Option<&Sent>, resources: &ResourceMap) -> Diff {
        let Some(sent) = sent else {
            return Diff {
                version: SetVersion::of(resources),
                changed: Vec::new(),
                modified: false,
                any: true,
            };
        };
        let mut diff = Diff {
            version: sent.set_version,
            changed: Vec::new(),
            modified: false,
            any: false,
        };
        for item in sent.resources.diff(resources) {
            diff.any = true;
            match item {
                DiffItem::Add(_, r) => {
                    diff.version.add(r);
                    diff.changed.push(r.clone());
                }
                DiffItem::Update {
                    old: (_, old),
                    new: (_, r),
                } => {
                    diff.version.remove(old);
                    diff.version.add(r);
                    diff.changed.push(r.clone());
                    diff.modified = true;
                }
                DiffItem::Remove(_, old) => diff.version.remove(old),
            }
        }
        diff
    }
}

fn select(all: &ResourceMap, subscription: &Subscription) -> ResourceMap {
    match subscription {
        Subscription::Wildcard => all.clone(),
        Subscription::Names(names) => named(all, names),
    }
}

/// The resources of `all` named in `names`, for both protocols.
pub(super) fn named(all: &ResourceMap, names: &BTreeSet<String>) -> ResourceMap {
    names
        .iter()
        .filter_map(|n| all.get(n.as_str()))
        .map(|r| (r.name.clone(), r.clone()))
        .collect()
}

/// Make before break, for both protocols: adds to `resources` (what the
/// snapshot says the proxy should have) what `previous` (what it was sent)
/// holds and the snapshot dropped: clusters while `keep_clusters` (the routes
/// that used them are not replaced yet), and endpoints of clusters still in
/// `clusters_sent`. Only names the proxy is `subscribed` to are kept.
pub(super) fn retain_dropped(
    type_url: TypeUrl,
    resources: &mut ResourceMap,
    previous: &ResourceMap,
    keep_clusters: bool,
    clusters_sent: Option<&ResourceMap>,
    subscribed: impl Fn(&str) -> bool,
) {
    let keep = |name: &str| match type_url {
        TypeUrl::Cluster => keep_clusters,
        TypeUrl::ClusterLoadAssignment => clusters_sent.is_some_and(|c| c.contains_key(name)),
        _ => false,
    };
    // Only what `previous` has and `resources` lacks: the diff of two maps
    // that share their structure visits little else.
    let dropped: Vec<Resource> = previous
        .diff(resources)
        .filter_map(|item| match item {
            DiffItem::Remove(name, r) if keep(name) && subscribed(name) => Some(r.clone()),
            _ => None,
        })
        .collect();
    for r in dropped {
        resources.insert(r.name.clone(), r);
    }
}

/// Make before break, for both protocols: LDS and RDS wait while a CDS or
/// EDS response is unanswered (`awaiting` says which types are).
pub(super) fn held(type_url: TypeUrl, awaiting: impl Fn(TypeUrl) -> bool) -> bool {
    matches!(type_url, TypeUrl::Listener | TypeUrl::RouteConfiguration)
        && [TypeUrl::Cluster, TypeUrl::ClusterLoadAssignment]
            .into_iter()
            .any(awaiting)
}

/// Records the proxy's answer to the response (`version`, `nonce`), for both
/// protocols: with `error` (a NACK, recognised by `error_detail` alone) the
/// trimmed message goes to `nack` and is counted; without, `nack` clears.
/// Returns [`RequestKind::Ack`] or [`RequestKind::Nack`].
pub(super) fn record_answer(
    version: &str,
    nonce: &str,
    error: Option<&String>,
    nack: &mut Option<Nack>,
    nack_count: &mut u64,
) -> RequestKind {
    match error {
        Some(message) => {
            let message = trim_nack_message(message);
            *nack = Some(Nack {
                version: version.to_string(),
                nonce: nonce.to_string(),
                message: message.clone(),
                at: SystemTime::now(),
            });
            *nack_count += 1;
            RequestKind::Nack(message)
        }
        None => {
            *nack = None;
            RequestKind::Ack
        }
    }
}

/// Release Envoy prefixes some NACK messages with a dump of the rejected
/// proto; the useful part is the trailing `Proto constraint validation
/// failed (...)`. Returns that part when present, else the message with
/// whitespace collapsed, at most 1,000 characters.
pub fn trim_nack_message(message: &str) -> String {
    const MARKER: &str = "Proto constraint validation failed";
    let tail = message
        .rfind(MARKER)
        .map(|i| &message[i..])
        .unwrap_or(message);
    let collapsed = tail.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(1000).collect()
}

#[cfg(test)]
mod tests;
