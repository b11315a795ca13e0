//! Interned sets of resource names.
//!
//! Proxies of one class subscribe to the same names: an Envoy's EDS
//! subscription names every EDS cluster its CDS response gave it, thousands
//! of them at mesh scale. Each distinct set is held once, shared by every
//! stream subscribed to it, instead of once per stream (at 6,000 clusters a
//! set of names is about 600 KB).

use serde::Serialize;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// A sorted set of resource names, shared with every equal set made
/// through [`NameSet::new`] while one of them is alive.
#[derive(Clone, Debug, Default)]
pub struct NameSet(Arc<BTreeSet<String>>);

impl NameSet {
    /// The set of `names`: an equal set still held elsewhere if there is one.
    pub fn new(names: BTreeSet<String>) -> Self {
        NameSet(intern(names))
    }

    /// A copy of this set changed by `change` (the set itself is shared and
    /// never changes).
    pub fn changed(&self, change: impl FnOnce(&mut BTreeSet<String>)) -> Self {
        let mut names = (*self.0).clone();
        change(&mut names);
        NameSet::new(names)
    }

    /// Whether `self` and `other` are one shared set.
    pub fn is_shared_with(&self, other: &NameSet) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Deref for NameSet {
    type Target = BTreeSet<String>;

    fn deref(&self) -> &BTreeSet<String> {
        &self.0
    }
}

impl<'a> IntoIterator for &'a NameSet {
    type Item = &'a String;
    type IntoIter = std::collections::btree_set::Iter<'a, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl PartialEq for NameSet {
    fn eq(&self, other: &Self) -> bool {
        self.is_shared_with(other) || self.0 == other.0
    }
}

impl Eq for NameSet {}

impl FromIterator<String> for NameSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        NameSet::new(iter.into_iter().collect())
    }
}

impl Serialize for NameSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// The sets alive, by hash. Entries whose set was dropped are purged as
/// they are met, and all at once when the map has doubled since the last
/// purge.
#[derive(Default)]
struct Interner {
    sets: HashMap<u64, Vec<Weak<BTreeSet<String>>>>,
    entries: usize,
    purge_at: usize,
}

/// Sets smaller than this are not worth a lookup.
const SMALLEST_INTERNED: usize = 8;

static INTERNER: LazyLock<Mutex<Interner>> = LazyLock::new(Mutex::default);

fn intern(names: BTreeSet<String>) -> Arc<BTreeSet<String>> {
    if names.len() < SMALLEST_INTERNED {
        return Arc::new(names);
    }
    let mut hasher = DefaultHasher::new();
    names.hash(&mut hasher);
    let hash = hasher.finish();
    let mut interner = INTERNER.lock().expect("name interner lock");
    let bucket = interner.sets.entry(hash).or_default();
    let before = bucket.len();
    bucket.retain(|w| w.strong_count() > 0);
    let purged = before - bucket.len();
    if let Some(found) = bucket
        .iter()
        .filter_map(Weak::upgrade)
        .find(|set| **set == names)
    {
        interner.entries -= purged;
        return found;
    }
    let set = Arc::new(names);
    bucket.push(Arc::downgrade(&set));
    interner.entries = interner.entries - purged + 1;
    if interner.entries > interner.purge_at {
        interner.sets.retain(|_, bucket| {
            bucket.retain(|w| w.strong_count() > 0);
            !bucket.is_empty()
        });
        interner.entries = interner.sets.values().map(Vec::len).sum();
        interner.purge_at = (2 * interner.entries).max(1024);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> BTreeSet<String> {
        (0..n).map(|i| format!("{prefix}-{i}")).collect()
    }

    #[test]
    fn equal_sets_are_one_allocation_and_different_ones_are_not() {
        let a = NameSet::new(names("interned-a", 100));
        let b = NameSet::new(names("interned-a", 100));
        let c = NameSet::new(names("interned-c", 100));
        assert!(a.is_shared_with(&b), "the same names share one set");
        assert!(!a.is_shared_with(&c));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 100);
    }

    #[test]
    fn a_changed_copy_leaves_the_shared_set_alone() {
        let a = NameSet::new(names("interned-changed", 50));
        let b = NameSet::new(names("interned-changed", 50));
        let more = a.changed(|s| {
            s.insert("interned-changed-extra".into());
        });
        assert_eq!(a.len(), 50);
        assert_eq!(b.len(), 50);
        assert_eq!(more.len(), 51);
        let again = NameSet::new(more.iter().cloned().collect());
        assert!(more.is_shared_with(&again));
    }

    #[test]
    fn a_dropped_set_is_not_kept_alive() {
        let a = NameSet::new(names("interned-dropped", 20));
        let weak = Arc::downgrade(&a.0);
        drop(a);
        assert!(
            weak.upgrade().is_none(),
            "the interner holds no strong reference"
        );
        let b = NameSet::new(names("interned-dropped", 20));
        assert_eq!(b.len(), 20);
    }
}
