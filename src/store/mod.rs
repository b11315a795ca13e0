//! The indexed world of validated input objects, grouped by the file (or
//! other origin) they came from.
//!
//! The store keeps the last good state: an invalid edit of an object keeps
//! its previous version served, and a file that cannot be read at all keeps
//! its previous content whole.

pub mod re2;
pub mod validate;
mod validate_entry;
mod validate_http;
mod validate_policy;
mod validate_security;
mod validate_slo;
mod validate_telemetry;

use crate::diagnostic::Diagnostic;
use crate::model::{Object, ObjectKey};
use crate::source::parse::ParsedFile;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Objects and diagnostics of one origin (a file path).
#[derive(Clone, Debug, Default)]
struct Origin {
    objects: BTreeMap<ObjectKey, Arc<Object>>,
    diagnostics: Vec<Diagnostic>,
}

/// All input objects, keyed by origin. Origins are ordered by name; when two
/// origins define the same object, the first one wins and a warning says so.
///
/// The served view ([`Store::world`]) is kept up to date as origins change,
/// in a persistent map: reading it is a cheap copy, and a change of one
/// origin compares its own objects with their previous versions and
/// refreshes the served view only for those it changed (a lookup in every
/// origin each), not the whole store; its unchanged objects stay the same
/// `Arc`s.
#[derive(Clone, Debug, Default)]
pub struct Store {
    origins: BTreeMap<String, Origin>,
    /// Every served object: the first origin's version of each key.
    world: World,
    /// Keys that more than one origin defines.
    shared: BTreeSet<ObjectKey>,
}

/// A consistent view of every object, keyed by [`ObjectKey`] (a persistent
/// map: copies share their unchanged parts).
pub type World = imbl::OrdMap<ObjectKey, Arc<Object>>;

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the content of `origin` with a parse result, keeping last good
    /// versions as described on [`Store`]. Returns true if the set of served
    /// objects changed.
    pub fn apply(&mut self, origin: &str, mut parsed: ParsedFile) -> bool {
        let previous = self.origins.remove(origin).unwrap_or_default();
        let emptied = parsed.empty && !previous.objects.is_empty();
        if emptied {
            parsed.diagnostics.push(Diagnostic {
                severity: crate::diagnostic::Severity::Warning,
                file: Some(origin.to_string()),
                object: None,
                field: String::new(),
                message: format!(
                    "the file is empty; its {} objects stay served until it gets content again or is deleted",
                    previous.objects.len()
                ),
            });
        }
        let objects = if parsed.unreadable || emptied {
            previous.objects.clone()
        } else {
            // An object the file still holds as it was keeps its `Arc`: the
            // served world then changes only where the file did, and what
            // compares worlds (the IR's patch) skips the shared parts.
            let mut objects: BTreeMap<ObjectKey, Arc<Object>> = parsed
                .objects
                .into_iter()
                .map(|o| {
                    let key = o.key();
                    let object = match previous.objects.get(&key) {
                        Some(old) if Arc::ptr_eq(old, &o) || **old == *o => old.clone(),
                        _ => o,
                    };
                    (key, object)
                })
                .collect();
            for key in parsed.rejected {
                if let Some(last_good) = previous.objects.get(&key) {
                    objects.entry(key).or_insert_with(|| last_good.clone());
                } else if let Some(stand_in) = parsed.fallbacks.iter().find(|o| o.key() == key) {
                    parsed.diagnostics.push(
                        Diagnostic::error(
                            &key,
                            "",
                            "no earlier valid version to keep serving: it fails closed, served as mtls.mode STRICT for the workloads it selects until it is fixed",
                        )
                        .in_file(origin),
                    );
                    objects.insert(key, Arc::new(stand_in.clone()));
                }
            }
            objects
        };
        // Keys whose object the file added, removed or changed (an equal
        // object is the same `Arc`, above).
        let touched: Vec<ObjectKey> = previous
            .objects
            .iter()
            .filter(|(key, old)| objects.get(*key).is_none_or(|new| !Arc::ptr_eq(new, old)))
            .map(|(key, _)| key)
            .chain(
                objects
                    .keys()
                    .filter(|key| !previous.objects.contains_key(*key)),
            )
            .cloned()
            .collect();
        let changed = !touched.is_empty();
        self.origins.insert(
            origin.to_string(),
            Origin {
                objects,
                diagnostics: parsed.diagnostics,
            },
        );
        for key in &touched {
            self.refresh(key);
        }
        changed
    }

    /// Serves the first origin's version of `key` (or nothing), after an
    /// origin that defines or defined it changed.
    fn refresh(&mut self, key: &ObjectKey) {
        let mut holders = self.origins.values().filter_map(|o| o.objects.get(key));
        match holders.next() {
            Some(first) => {
                if self.world.get(key).is_none_or(|o| !Arc::ptr_eq(o, first)) {
                    self.world.insert(key.clone(), first.clone());
                }
            }
            None => {
                self.world.remove(key);
            }
        }
        if holders.next().is_some() {
            self.shared.insert(key.clone());
        } else {
            self.shared.remove(key);
        }
    }

    /// Keeps an origin's objects but replaces its diagnostics (its file could
    /// not be read this time).
    pub fn keep_with_diagnostics(&mut self, origin: &str, diagnostics: Vec<Diagnostic>) {
        self.origins
            .entry(origin.to_string())
            .or_default()
            .diagnostics = diagnostics;
    }

    /// The origin (file) that serves `key`, if any.
    pub fn origin_of(&self, key: &ObjectKey) -> Option<&str> {
        self.origins
            .iter()
            .find(|(_, o)| o.objects.contains_key(key))
            .map(|(name, _)| name.as_str())
    }

    /// Fills in the file of diagnostics that name an object but no file
    /// (those found while resolving references).
    pub fn locate(&self, diagnostics: &mut [Diagnostic]) {
        for d in diagnostics.iter_mut().filter(|d| d.file.is_none()) {
            if let Some(origin) = d.object.as_ref().and_then(|key| self.origin_of(key)) {
                d.file = Some(origin.to_string());
            }
        }
    }

    /// Forgets an origin (its file was deleted). Returns true if it served objects.
    pub fn remove(&mut self, origin: &str) -> bool {
        let Some(removed) = self.origins.remove(origin) else {
            return false;
        };
        for key in removed.objects.keys() {
            self.refresh(key);
        }
        !removed.objects.is_empty()
    }

    /// Names of the known origins.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.origins.keys().map(String::as_str)
    }

    /// Every served object, plus a warning for each object defined by more
    /// than one origin (in origin order, then key order).
    pub fn world(&self) -> (World, Vec<Diagnostic>) {
        let mut later: Vec<(&str, &ObjectKey, &str)> = Vec::new();
        for key in &self.shared {
            let mut holders = self
                .origins
                .iter()
                .filter(|(_, o)| o.objects.contains_key(key))
                .map(|(name, _)| name.as_str());
            let first = holders.next().unwrap_or_default();
            later.extend(holders.map(|name| (name, key, first)));
        }
        later.sort();
        let diagnostics = later
            .into_iter()
            .map(|(name, key, first)| {
                Diagnostic::warning(
                    key,
                    "",
                    format!("also defined in {first}; that definition is served"),
                )
                .in_file(name.to_string())
            })
            .collect();
        (self.world.clone(), diagnostics)
    }

    /// Diagnostics of the latest parse of every origin, in origin order.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        self.origins
            .values()
            .flat_map(|o| o.diagnostics.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests;
