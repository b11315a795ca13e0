//! The Kubernetes source: kube-runtime watchers feeding the same parser and
//! [`Store`] as the YAML directory.
//!
//! Each object is one origin of the store, named
//! `kube:<apiVersion>/<kind>/<namespace>/<name>` (see [`origin_of`]), parsed
//! from its JSON by [`parse_value`], so validation, diagnostics, last-good
//! rules and translation are those of the file source.
//!
//! One watcher runs per watched type (per namespace with `--namespaces`),
//! with kube-runtime's default backoff. A watcher restarts its watch from
//! the last resourceVersion it saw; when the API server answers 410 Gone it
//! lists again. A relist is applied in one step at its `InitDone`: objects
//! absent from the new list are dropped then, and not before, so the served
//! configuration never shrinks to half a list.
//!
//! Changes that touch only `status`, `metadata.resourceVersion` or
//! `metadata.managedFields` of our CRs (such as Sextant's own status
//! writes) are dropped in the watcher task: they wake nothing and push
//! nothing (Istio's known status-write feedback loop).

mod resources;
pub mod status;

pub use resources::{watched_types, WatchedType};

use crate::source::parse::parse_value;
use crate::source::yaml_dir::SyncReport;
use crate::store::Store;
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::Value;
use status::{Condition, StatusTarget};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What to watch.
#[derive(Clone, Debug, Default)]
pub struct KubeOptions {
    /// Namespaces to watch; empty means all namespaces (cluster-wide watches).
    pub namespaces: Vec<String>,
    /// Also watch Istio's API groups (`networking.istio.io/v1`,
    /// `security.istio.io/v1`, `telemetry.istio.io/v1`).
    pub istio_groups: bool,
}

/// The store origin of an object: `kube:<apiVersion>/<kind>/<namespace>/<name>`.
pub fn origin_of(api_version: &str, kind: &str, namespace: &str, name: &str) -> String {
    format!("kube:{api_version}/{kind}/{namespace}/{name}")
}

/// One object as a watcher delivers it: its origin, its JSON (with
/// `apiVersion` and `kind` set, and the fields that never matter to
/// translation removed) and, for our CRs, where its status goes.
#[derive(Clone, Debug)]
struct Entry {
    origin: String,
    value: Value,
    status: Option<StatusTarget>,
}

/// A change reported by one watcher task.
#[derive(Debug)]
enum Update {
    /// An object was added or changed.
    Apply(Box<Entry>),
    /// An object was deleted.
    Delete(String),
    /// A (re)list finished: these are all objects under the scope `prefix`
    /// of origins; anything else under it is gone.
    Relisted { prefix: String, entries: Vec<Entry> },
    /// The API server does not serve the type (404: CRD not installed); the
    /// scope counts as synced, and empty.
    Unserved { prefix: String },
}

/// The running watchers and the changes they reported that the store has
/// not seen yet.
///
/// Dropping it stops the watchers.
pub struct KubeSource {
    updates: mpsc::UnboundedReceiver<Update>,
    pending: Vec<Update>,
    scopes: BTreeSet<String>,
    synced: BTreeSet<String>,
    targets: BTreeMap<String, StatusTarget>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl KubeSource {
    /// Starts one watcher per watched type (and namespace, see
    /// [`KubeOptions::namespaces`]) on `client`. Must be called inside a
    /// tokio runtime.
    pub fn start(client: Client, options: &KubeOptions) -> Self {
        let (tx, updates) = mpsc::unbounded_channel();
        let mut scopes = BTreeSet::new();
        let mut tasks = Vec::new();
        for watched in watched_types(options.istio_groups) {
            let ar = &watched.api_resource;
            let namespaces: Vec<Option<&str>> = if options.namespaces.is_empty() {
                vec![None]
            } else {
                options
                    .namespaces
                    .iter()
                    .map(|n| Some(n.as_str()))
                    .collect()
            };
            for namespace in namespaces {
                let (api, prefix) = match namespace {
                    None => (
                        Api::<DynamicObject>::all_with(client.clone(), ar),
                        format!("kube:{}/{}/", ar.api_version, ar.kind),
                    ),
                    Some(ns) => (
                        Api::<DynamicObject>::namespaced_with(client.clone(), ns, ar),
                        format!("kube:{}/{}/{ns}/", ar.api_version, ar.kind),
                    ),
                };
                scopes.insert(prefix.clone());
                tasks.push(tokio::spawn(watch(
                    api,
                    watched.clone(),
                    prefix,
                    tx.clone(),
                )));
            }
        }
        KubeSource {
            updates,
            pending: Vec::new(),
            scopes,
            synced: BTreeSet::new(),
            targets: BTreeMap::new(),
            tasks,
        }
    }

    /// A source fed by hand (tests): the returned sender stands for the watchers.
    #[cfg(test)]
    fn for_tests(scopes: &[&str]) -> (Self, mpsc::UnboundedSender<Update>) {
        let (tx, updates) = mpsc::unbounded_channel();
        let source = KubeSource {
            updates,
            pending: Vec::new(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            synced: BTreeSet::new(),
            targets: BTreeMap::new(),
            tasks: Vec::new(),
        };
        (source, tx)
    }

    /// Waits for the next change from any watcher. Returns false when every
    /// watcher has stopped (they do not stop on errors; only on shutdown).
    pub async fn changed(&mut self) -> bool {
        match self.updates.recv().await {
            Some(update) => {
                self.receive(update);
                true
            }
            None => false,
        }
    }

    fn receive(&mut self, update: Update) {
        if let Update::Relisted { prefix, .. } | Update::Unserved { prefix } = &update {
            self.synced.insert(prefix.clone());
        }
        self.pending.push(update);
    }

    /// Whether every watcher has finished its first list (or found its type
    /// not served), so the store holds a complete view of the cluster.
    pub fn initial_sync_done(&self) -> bool {
        self.synced.len() == self.scopes.len()
    }

    /// Applies every reported change to `store`.
    pub fn sync(&mut self, store: &mut Store) -> SyncReport {
        while let Ok(update) = self.updates.try_recv() {
            self.receive(update);
        }
        let mut report = SyncReport::default();
        for update in std::mem::take(&mut self.pending) {
            match update {
                Update::Apply(entry) => self.apply(store, *entry, &mut report),
                Update::Delete(origin) => {
                    self.targets.remove(&origin);
                    report.changed |= store.remove(&origin);
                    report.files.push(origin);
                }
                Update::Relisted { prefix, entries } => {
                    let listed: BTreeSet<&str> =
                        entries.iter().map(|e| e.origin.as_str()).collect();
                    let gone: Vec<String> = store
                        .origins()
                        .filter(|o| o.starts_with(&prefix) && !listed.contains(o))
                        .map(str::to_string)
                        .collect();
                    for origin in gone {
                        self.targets.remove(&origin);
                        report.changed |= store.remove(&origin);
                        report.files.push(origin);
                    }
                    for entry in entries {
                        self.apply(store, entry, &mut report);
                    }
                }
                Update::Unserved { .. } => {}
            }
        }
        report
    }

    fn apply(&mut self, store: &mut Store, entry: Entry, report: &mut SyncReport) {
        let parsed = parse_value(&entry.origin, entry.value);
        report
            .diagnostics
            .extend(parsed.diagnostics.iter().cloned());
        report.changed |= store.apply(&entry.origin, parsed);
        match entry.status {
            Some(target) => self.targets.insert(entry.origin.clone(), target),
            None => self.targets.remove(&entry.origin),
        };
        report.files.push(entry.origin);
    }

    /// Our CRs currently in the store, by origin, with where their status goes.
    pub fn status_targets(&self) -> &BTreeMap<String, StatusTarget> {
        &self.targets
    }
}

/// Runs one watcher until the receiver is gone, reporting its changes.
async fn watch(
    api: Api<DynamicObject>,
    watched: WatchedType,
    prefix: String,
    tx: mpsc::UnboundedSender<Update>,
) {
    let ar = &watched.api_resource;
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    // The normalized JSON last reported per origin: an event that changes
    // nothing translation reads is not reported.
    let mut reported: HashMap<String, Value> = HashMap::new();
    let mut listing: Option<Vec<Entry>> = None;
    let mut last_error: Option<String> = None;
    while let Some(event) = stream.next().await {
        let update = match event {
            Ok(Event::Init) => {
                listing = Some(Vec::new());
                None
            }
            Ok(Event::InitApply(object)) => {
                listing
                    .get_or_insert_with(Vec::new)
                    .push(entry(&watched, object));
                None
            }
            Ok(Event::InitDone) => {
                let entries = listing.take().unwrap_or_default();
                reported = entries
                    .iter()
                    .map(|e| (e.origin.clone(), e.value.clone()))
                    .collect();
                tracing::info!(
                    resource = %format!("{}/{}", ar.api_version, ar.plural),
                    objects = entries.len(),
                    "listed"
                );
                last_error = None;
                Some(Update::Relisted {
                    prefix: prefix.clone(),
                    entries,
                })
            }
            Ok(Event::Apply(object)) => {
                let entry = entry(&watched, object);
                if reported.get(&entry.origin) == Some(&entry.value) {
                    tracing::debug!(
                        origin = entry.origin,
                        "ignoring a status or metadata-only change"
                    );
                    None
                } else {
                    reported.insert(entry.origin.clone(), entry.value.clone());
                    Some(Update::Apply(Box::new(entry)))
                }
            }
            Ok(Event::Delete(object)) => {
                let origin = origin_of(
                    &ar.api_version,
                    &ar.kind,
                    object.metadata.namespace.as_deref().unwrap_or("default"),
                    object.metadata.name.as_deref().unwrap_or_default(),
                );
                reported.remove(&origin);
                Some(Update::Delete(origin))
            }
            Err(err) => {
                let not_served = matches!(
                    &err,
                    watcher::Error::InitialListFailed(kube::Error::Api(status)) if status.code == 404
                );
                let message = err.to_string();
                if last_error.as_deref() != Some(message.as_str()) {
                    if not_served {
                        tracing::warn!(
                            resource = %format!("{}/{}", ar.api_version, ar.plural),
                            "the API server does not serve this resource (CRD not installed?); retrying with backoff"
                        );
                    } else {
                        tracing::warn!(
                            resource = %format!("{}/{}", ar.api_version, ar.plural),
                            "watch failed, retrying with backoff: {message}"
                        );
                    }
                    last_error = Some(message);
                }
                not_served.then(|| Update::Unserved {
                    prefix: prefix.clone(),
                })
            }
        };
        if let Some(update) = update {
            if tx.send(update).is_err() {
                return;
            }
        }
    }
}

/// The entry of an object of type `watched`: its origin and normalized JSON
/// (without `resourceVersion`, `managedFields` and, for custom resources,
/// `status`), and its status target when Sextant writes its status.
fn entry(watched: &WatchedType, object: DynamicObject) -> Entry {
    let ar = &watched.api_resource;
    let writes_status = watched.writes_status;
    let namespace = object
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let name = object.metadata.name.clone().unwrap_or_default();
    let origin = origin_of(&ar.api_version, &ar.kind, &namespace, &name);
    let mut value = serde_json::to_value(&object).unwrap_or(Value::Null);
    let mut status_value = None;
    if let Some(map) = value.as_object_mut() {
        // List items carry no apiVersion and kind; the type is known.
        map.insert("apiVersion".into(), Value::String(ar.api_version.clone()));
        map.insert("kind".into(), Value::String(ar.kind.clone()));
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("managedFields");
        }
        if watched.custom {
            status_value = map.remove("status");
        }
    }
    let status = writes_status.then(|| StatusTarget {
        api_resource: ar.clone(),
        namespace,
        name,
        generation: object.metadata.generation,
        current: status_value
            .as_ref()
            .map(Condition::ours_in)
            .unwrap_or_default(),
    });
    Entry {
        origin,
        value,
        status,
    }
}

#[cfg(test)]
mod tests;
