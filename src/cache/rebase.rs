//! Building a class translated again on the maps of its previous
//! translation, so that the two share structure.
//!
//! A change other than an endpoint change translates each class from
//! scratch, and the fresh maps share no node with the ones every stream
//! was sent: each stream's diff (one per type per push) would then compare
//! every resource, thousands of names per stream. Rebuilt on the previous
//! maps, the new ones differ from them only along the paths of what
//! changed, and those diffs visit little else. The rebuild is one diff per
//! class and type.

use super::ResourceMap;
use imbl::ordmap::DiffItem;

/// Above this share of changed resources a rebuild is not worth it: the
/// fresh map is kept as it is.
const MOST_CHANGED: f64 = 0.25;

/// `fresh` as a copy of `old` with the changes from `old` to `fresh`
/// applied: the same content as `fresh`, sharing `old`'s nodes (and its
/// resources, where they are equal) wherever nothing changed. `fresh`
/// itself when more than a quarter of it changed.
pub(super) fn rebase(old: &ResourceMap, fresh: ResourceMap) -> ResourceMap {
    let limit = (fresh.len().max(old.len()) as f64 * MOST_CHANGED) as usize;
    let mut changes = Vec::new();
    for item in old.diff(&fresh) {
        changes.push(item);
        if changes.len() > limit {
            return fresh;
        }
    }
    let mut rebased = old.clone();
    for item in changes {
        match item {
            DiffItem::Add(name, r) | DiffItem::Update { new: (name, r), .. } => {
                rebased.insert(name.clone(), r.clone());
            }
            DiffItem::Remove(name, _) => {
                rebased.remove(name);
            }
        }
    }
    rebased
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Resource;
    use bytes::Bytes;

    fn resource(name: &str, content: &str) -> Resource {
        Resource::new(name, Bytes::from(content.to_string()), content.to_string())
    }

    fn map(entries: &[(&str, &str)]) -> ResourceMap {
        entries
            .iter()
            .map(|(n, c)| resource(n, c))
            .map(|r| (r.name.clone(), r))
            .collect()
    }

    fn contents(map: &ResourceMap) -> Vec<(String, Bytes)> {
        map.values()
            .map(|r| (r.name.to_string(), r.body.clone()))
            .collect()
    }

    #[test]
    fn a_rebased_map_has_the_fresh_content_and_the_old_resources() {
        let names: Vec<String> = (0..100).map(|i| format!("c{i:03}")).collect();
        let old: ResourceMap = map(&names.iter().map(|n| (n.as_str(), "v1")).collect::<Vec<_>>());
        let mut fresh_entries: Vec<(&str, &str)> =
            names.iter().map(|n| (n.as_str(), "v1")).collect();
        fresh_entries[10].1 = "v2";
        fresh_entries.remove(20);
        fresh_entries.push(("d-new", "v1"));
        let fresh = map(&fresh_entries);
        let rebased = rebase(&old, fresh.clone());
        assert_eq!(contents(&rebased), contents(&fresh));
        // Unchanged resources are the old ones (the same buffers); changed
        // and added ones come from the fresh map.
        let same_buffer = |a: &ResourceMap, b: &ResourceMap, name: &str| {
            a[name].body.as_ptr() == b[name].body.as_ptr()
        };
        assert!(same_buffer(&rebased, &old, "c000"));
        assert!(!same_buffer(&rebased, &fresh, "c000"));
        assert!(same_buffer(&rebased, &fresh, "c010"));
        assert!(same_buffer(&rebased, &fresh, "d-new"));
        assert!(!rebased.contains_key("c020"));
    }

    #[test]
    fn a_mostly_changed_map_is_kept_fresh() {
        let old = map(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")]);
        let fresh = map(&[("a", "2"), ("b", "2"), ("c", "1"), ("d", "1")]);
        let rebased = rebase(&old, fresh.clone());
        assert!(rebased.ptr_eq(&fresh));
        let unchanged = rebase(&old, map(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")]));
        assert!(
            unchanged.ptr_eq(&old),
            "nothing changed: the old map itself"
        );
    }
}
