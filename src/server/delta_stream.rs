//! The delta (incremental) ADS state machine of one stream, free of tonic
//! and I/O: requests go in, responses to send come out.
//!
//! Rules, beyond those SotW shares (see [`super::stream`]):
//! - Each resource has its own version: a hash of its content, so a
//!   proxy that reconnects with `initial_resource_versions` is sent only what
//!   differs.
//! - Subscriptions change by `resource_names_subscribe` / `_unsubscribe`.
//!   `*` subscribes to (or unsubscribes from) everything; a first LDS or CDS
//!   request that names nothing is a legacy wildcard subscription.
//! - Resources a proxy has that no longer exist are sent in
//!   `removed_resources`; so are names it asked for that do not exist, once,
//!   so that it stops waiting for them.
//! - What to send is decided against what we *sent*, so after a NACK a
//!   roll-back to the running config is still pushed and the rejected
//!   content is not sent again by itself.
//! - After a CDS response that modified clusters, their ClusterLoadAssignments
//!   are sent again in the same push (Envoy keeps a modified EDS cluster
//!   warming until it receives its endpoints).

use super::names::NameSet;
use super::stream::{held, named, record_answer, retain_dropped, Nack, RequestKind, Selection};
use crate::cache::{ProxySnapshot, ResourceMap, SetVersion};
use crate::envoy::TypeUrl;
use imbl::ordmap::DiffItem;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

/// A DeltaDiscoveryRequest, reduced to what the state machine reads.
#[derive(Clone, Debug, Default)]
pub struct DeltaRequest {
    /// The type URL as sent.
    pub type_url: String,
    /// `resource_names_subscribe`.
    pub subscribe: Vec<String>,
    /// `resource_names_unsubscribe`.
    pub unsubscribe: Vec<String>,
    /// `initial_resource_versions` (name → version the proxy already has).
    pub initial_resource_versions: BTreeMap<String, String>,
    /// `response_nonce` (empty on the first request of a type).
    pub response_nonce: String,
    /// `error_detail.message`, when present: the request is a NACK.
    pub error_detail: Option<String>,
}

/// One delta response we sent.
#[derive(Clone, Debug, Serialize)]
pub struct DeltaSent {
    /// `system_version_info`: hash of everything the proxy should have of the type.
    pub system_version: String,
    /// The response's nonce.
    pub nonce: String,
    /// What the proxy has of the type once it applies this response.
    #[serde(skip)]
    pub state: Arc<ResourceMap>,
    /// When it was sent.
    pub at: SystemTime,
}

/// The delta state of one type on one stream.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DeltaTypeState {
    /// Subscribed to every resource of the type.
    pub wildcard: bool,
    /// Explicitly subscribed names (shared by the streams subscribed to them).
    pub names: NameSet,
    /// The latest response sent.
    pub sent: Option<DeltaSent>,
    /// The latest response the proxy ACKed.
    pub acked: Option<DeltaSent>,
    /// The latest NACK, if the latest answered response was NACKed.
    pub nack: Option<Nack>,
    /// NACKs received on this stream.
    pub nack_count: u64,
    /// Name → version of what the proxy said it has in the
    /// `initial_resource_versions` of its first request, until the next
    /// poll compares them with the snapshot (then empty).
    #[serde(skip)]
    claimed: BTreeMap<Arc<str>, Arc<str>>,
    /// What the proxy has from us, by name (each resource's version is its
    /// hash). With `claimed`, the version of every resource the proxy has;
    /// usually the snapshot's own map (shared, not a copy per stream).
    #[serde(skip)]
    resources: ResourceMap,
    /// Names we told the proxy do not exist.
    #[serde(skip)]
    told_absent: BTreeSet<String>,
    /// Names to send again even if unchanged.
    #[serde(skip)]
    force: BTreeSet<String>,
    #[serde(skip)]
    answered_nonce: Option<String>,
    /// The next poll must send a response even if it is empty.
    #[serde(skip)]
    respond: bool,
    /// Counts subscription changes (for `selection`).
    #[serde(skip)]
    epoch: u64,
    /// The subscribed part of the snapshot's map, kept between pushes.
    #[serde(skip)]
    selection: Selection,
    /// What the latest poll found the proxy should have, and its version.
    /// Until a request changes the subscription, the proxy has exactly this
    /// (`versions` and `resources` say the same), so the next poll compares
    /// only the diff of this map and the new one. `None`: compare all.
    #[serde(skip)]
    last: Option<(ResourceMap, SetVersion)>,
}

impl DeltaTypeState {
    /// Whether the latest response is still waiting for an ACK or NACK.
    pub fn awaiting_answer(&self) -> bool {
        self.sent
            .as_ref()
            .is_some_and(|s| self.answered_nonce.as_deref() != Some(&s.nonce))
    }

    fn subscribed(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// The version of `name` the proxy has, as far as we sent or it told us.
    fn version_of(&self, name: &str) -> Option<&Arc<str>> {
        self.claimed
            .get(name)
            .or_else(|| self.resources.get(name).map(|r| &r.hash))
    }

    /// The names of everything the proxy has, as far as we sent or it told
    /// us (sorted; a name may come twice).
    fn held_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.resources.keys().chain(self.claimed.keys())
    }

    /// What to send so that the proxy has `desired`, found by comparing
    /// every resource: the new or changed resources, the names to remove
    /// (sorted), and the version of `desired`.
    fn changes(&mut self, desired: &ResourceMap) -> (ResourceMap, Vec<String>, SetVersion) {
        // What the proxy already has with this very content (from
        // `initial_resource_versions`) counts as sent: it is kept until
        // the routes move off it, and shown in the sent and ACKed state.
        // (Claims are few, usually none: they are looked up, not `desired`.)
        for (name, version) in &self.claimed {
            if let Some(r) = desired.get(name).filter(|r| r.hash == *version) {
                self.resources
                    .entry(r.name.clone())
                    .or_insert_with(|| r.clone());
            }
        }
        let changed: ResourceMap = if self.resources.is_empty() && self.claimed.is_empty() {
            // The proxy has nothing of the type: all of it, the snapshot's
            // map itself (not a list of thousands of resources per stream).
            desired.clone()
        } else {
            desired
                .values()
                .filter(|r| {
                    self.version_of(&r.name) != Some(&r.hash) || self.force.contains(&*r.name)
                })
                .map(|r| (r.name.clone(), r.clone()))
                .collect()
        };
        let mut removed: Vec<String> = self
            .held_names()
            .filter(|n| !desired.contains_key(*n))
            .map(|n| n.to_string())
            .collect();
        // Explicitly asked for, but absent: say so once.
        removed.extend(
            self.names
                .iter()
                .filter(|n| {
                    !desired.contains_key(n.as_str())
                        && self.version_of(n).is_none()
                        && !self.told_absent.contains(*n)
                })
                .cloned(),
        );
        removed.sort();
        removed.dedup();
        (changed, removed, SetVersion::of(desired))
    }

    /// [`DeltaTypeState::changes`] when the proxy has exactly `last`
    /// (version `version`): only the diff of `last` and `desired`, and
    /// what is forced, is looked at.
    fn changes_since(
        &self,
        last: &ResourceMap,
        mut version: SetVersion,
        desired: &ResourceMap,
    ) -> (ResourceMap, Vec<String>, SetVersion) {
        let mut changed = ResourceMap::new();
        let mut removed = Vec::new();
        for item in last.diff(desired) {
            match item {
                DiffItem::Add(name, r) => {
                    version.add(r);
                    changed.insert(name.clone(), r.clone());
                }
                DiffItem::Update {
                    old: (_, old),
                    new: (name, r),
                } => {
                    version.remove(old);
                    version.add(r);
                    changed.insert(name.clone(), r.clone());
                }
                DiffItem::Remove(name, old) => {
                    version.remove(old);
                    removed.push(name.to_string());
                }
            }
        }
        for name in &self.force {
            if let Some(r) = desired.get(name.as_str()) {
                changed.insert(r.name.clone(), r.clone());
            }
        }
        (changed, removed, version)
    }
}

/// One delta response to send.
#[derive(Clone, Debug)]
pub struct DeltaResponse {
    /// Type of the resources.
    pub type_url: TypeUrl,
    /// `system_version_info`.
    pub system_version: String,
    /// `nonce`.
    pub nonce: String,
    /// New or changed resources, by name (the snapshot's own map when the
    /// proxy had nothing of the type); each resource's version is its hash.
    pub resources: ResourceMap,
    /// `removed_resources`, sorted.
    pub removed: Vec<String>,
}

/// The delta state of one ADS stream.
#[derive(Debug, Default, Serialize)]
pub struct DeltaStream {
    /// State per type, for the types the proxy asked for.
    pub types: BTreeMap<TypeUrl, DeltaTypeState>,
    #[serde(skip)]
    next_nonce: u64,
}

impl DeltaStream {
    /// A stream that has seen no request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one request. Responses come from the next [`DeltaStream::poll`].
    pub fn on_request(&mut self, request: &DeltaRequest) -> RequestKind {
        let Some(type_url) = TypeUrl::parse(&request.type_url) else {
            return RequestKind::UnknownType;
        };
        let first = !self.types.contains_key(&type_url);
        let state = self.types.entry(type_url).or_default();
        if first {
            // Legacy wildcard: a first LDS/CDS request that names nothing.
            state.wildcard = type_url.is_wildcard_capable() && request.subscribe.is_empty();
            for (name, version) in &request.initial_resource_versions {
                state
                    .claimed
                    .insert(Arc::from(name.as_str()), Arc::from(version.as_str()));
            }
        }
        let named = |names: &[String]| names.iter().any(|n| n != "*");
        if named(&request.subscribe) || named(&request.unsubscribe) {
            state.names = state.names.changed(|names| {
                names.extend(request.subscribe.iter().filter(|n| *n != "*").cloned());
                for name in request.unsubscribe.iter().filter(|n| *n != "*") {
                    names.remove(name);
                }
            });
        }
        for name in &request.subscribe {
            if name == "*" {
                state.wildcard = true;
            }
        }
        for name in &request.unsubscribe {
            if name == "*" {
                state.wildcard = false;
            }
            state.told_absent.remove(name);
        }
        // Forget what the proxy dropped with its subscription, or claimed
        // to have without subscribing to it.
        if first || !request.unsubscribe.is_empty() {
            let dropped: Vec<Arc<str>> = state
                .held_names()
                .filter(|n| !state.subscribed(n))
                .cloned()
                .collect();
            for name in &dropped {
                state.claimed.remove(name);
                state.resources.remove(name);
            }
        }
        if first || !request.subscribe.is_empty() || !request.unsubscribe.is_empty() {
            state.epoch += 1;
            state.last = None;
        }

        if request.response_nonce.is_empty() {
            state.respond = true;
            return RequestKind::Initial;
        }
        let Some(sent) = state
            .sent
            .clone()
            .filter(|s| s.nonce == request.response_nonce)
        else {
            return RequestKind::Stale;
        };
        state.answered_nonce = Some(sent.nonce.clone());
        let kind = record_answer(
            &sent.system_version,
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
    /// sends every resource the proxy has again, changed or not.
    pub fn resend_all(&mut self) {
        for state in self.types.values_mut() {
            let names: Vec<String> = state.held_names().map(|n| n.to_string()).collect();
            state.force.extend(names);
            state.respond = true;
            state.last = None;
        }
    }

    /// The responses to send now, in push order (CDS, EDS, LDS, RDS).
    pub fn poll(&mut self, snapshot: &ProxySnapshot) -> Vec<DeltaResponse> {
        let mut out = Vec::new();
        for type_url in TypeUrl::ALL {
            if self.held(type_url) {
                continue;
            }
            let desired = self.desired(type_url, snapshot);
            let Some(state) = self.types.get_mut(&type_url) else {
                continue;
            };
            let (changed, removed, version) = match state.last.take() {
                Some((last, version)) => state.changes_since(&last, version, &desired),
                None => state.changes(&desired),
            };
            state.last = Some((desired.clone(), version));
            if changed.is_empty() && removed.is_empty() {
                // The proxy has `desired` already (every claim matched);
                // keep the map that shares its structure with the next one.
                state.resources = desired.clone();
                state.claimed.clear();
                if !state.respond {
                    continue;
                }
            }
            // Resources the proxy held at another version (none when it
            // held nothing: a cold sync skips the pass over thousands).
            let modified: Vec<String> = if state.resources.is_empty() && state.claimed.is_empty() {
                Vec::new()
            } else {
                changed
                    .values()
                    .filter(|r| state.version_of(&r.name).is_some_and(|v| *v != r.hash))
                    .map(|r| r.name.to_string())
                    .collect()
            };
            if !state.told_absent.is_empty() {
                for name in changed.keys() {
                    state.told_absent.remove(&**name);
                }
            }
            for name in &removed {
                if state.names.contains(name) {
                    state.told_absent.insert(name.clone());
                }
            }
            // The proxy now has what it should: `desired` itself, so that
            // the next diff against it visits little. What it claimed was
            // either in `desired` or removed.
            state.resources = desired;
            state.claimed.clear();
            self.next_nonce += 1;
            let nonce = self.next_nonce.to_string();
            let system_version = version.to_hex();
            state.sent = Some(DeltaSent {
                system_version: system_version.clone(),
                nonce: nonce.clone(),
                state: Arc::new(state.resources.clone()),
                at: SystemTime::now(),
            });
            state.respond = false;
            state.force.clear();
            if type_url == TypeUrl::Cluster {
                if let Some(eds) = self.types.get_mut(&TypeUrl::ClusterLoadAssignment) {
                    let resend: Vec<String> =
                        modified.into_iter().filter(|n| eds.subscribed(n)).collect();
                    eds.force.extend(resend);
                }
            }
            out.push(DeltaResponse {
                type_url,
                system_version,
                nonce,
                resources: changed,
                removed,
            });
        }
        out
    }

    /// LDS and RDS wait while a CDS or EDS response is unanswered.
    fn held(&self, type_url: TypeUrl) -> bool {
        held(type_url, |t| {
            self.types
                .get(&t)
                .is_some_and(DeltaTypeState::awaiting_answer)
        })
    }

    /// Whether the proxy has ACKed listeners and routes equal to the snapshot's.
    fn routes_settled(&self, snapshot: &ProxySnapshot) -> bool {
        [TypeUrl::Listener, TypeUrl::RouteConfiguration]
            .iter()
            .all(|t| match self.types.get(t) {
                None => true,
                Some(state) => {
                    let desired = SetVersion::of(&select(snapshot.of(*t), state)).to_hex();
                    state
                        .sent
                        .as_ref()
                        .is_some_and(|s| s.system_version == desired)
                        && state
                            .acked
                            .as_ref()
                            .is_some_and(|a| a.system_version == desired)
                }
            })
    }

    /// What the proxy should have of `type_url`, including clusters (and
    /// their endpoints) kept until the routes that used them are replaced.
    fn desired(&mut self, type_url: TypeUrl, snapshot: &ProxySnapshot) -> ResourceMap {
        let keep_clusters = type_url == TypeUrl::Cluster && !self.routes_settled(snapshot);
        let clusters_sent = self
            .types
            .get(&TypeUrl::Cluster)
            .map(|c| c.resources.clone());
        let Some(state) = self.types.get_mut(&type_url) else {
            return ResourceMap::new();
        };
        let all = snapshot.of(type_url);
        let mut resources = if state.wildcard {
            all.clone()
        } else {
            let names = &state.names;
            state
                .selection
                .pick(all, state.epoch, |n| names.contains(n))
        };
        retain_dropped(
            type_url,
            &mut resources,
            &state.resources,
            keep_clusters,
            clusters_sent.as_ref(),
            |n| state.subscribed(n),
        );
        resources
    }
}

fn select(all: &ResourceMap, state: &DeltaTypeState) -> ResourceMap {
    if state.wildcard {
        all.clone()
    } else {
        named(all, &state.names)
    }
}

#[cfg(test)]
mod tests;
