//! Building a class translated again on the maps of its previous
//! translation, so that the two share structure.
//!
//! A change other than an endpoint change translates each class again, and
//! maps built from scratch would share no node with the ones every stream
//! was sent: each stream's diff (one per type per push) would then compare
//! every resource, thousands of names per stream. Built on the previous
//! maps, the new ones differ from them only along the paths of what
//! changed, and those diffs visit little else. Given the class's list of
//! resources (in name order, as classes list them), building on the
//! previous map costs a walk of it plus one insertion or removal per
//! difference, where a map from scratch costs one insertion per resource.

use super::{Resource, ResourceMap};
use std::sync::Arc;

/// The map of `fresh` (by name; of two resources with one name the later
/// wins, as when collecting them), built as a copy of `old` with the
/// differences applied when there is an `old`: the same content, sharing
/// `old`'s nodes and its resources wherever they are equal (a resource
/// equal to the old one is not inserted). `fresh` is expected in name
/// order, as classes list their clusters; it is sorted otherwise.
pub(super) fn build_on(old: Option<&ResourceMap>, mut fresh: Vec<Resource>) -> ResourceMap {
    if !fresh.is_sorted_by(|a, b| a.name < b.name) {
        // Stable: of equal names the later stays later, and wins below.
        fresh.sort_by(|a, b| a.name.cmp(&b.name));
        let mut rest = fresh.into_iter().peekable();
        let mut kept = Vec::new();
        while let Some(r) = rest.next() {
            if rest.peek().is_none_or(|next| next.name != r.name) {
                kept.push(r);
            }
        }
        fresh = kept;
    }
    let Some(old) = old else {
        return fresh.into_iter().map(|r| (r.name.clone(), r)).collect();
    };
    let mut out = old.clone();
    let mut previous = old.iter().peekable();
    let mut gone = Vec::new();
    for r in fresh {
        // A resource carried over unchanged is the old one, name and all:
        // one pointer comparison instead of comparing names.
        if previous
            .next_if(|(n, kept)| Arc::ptr_eq(n, &r.name) && **kept == r)
            .is_some()
        {
            continue;
        }
        while let Some((name, _)) = previous.next_if(|(n, _)| **n < r.name) {
            gone.push(name.clone());
        }
        match previous.next_if(|(n, _)| **n == r.name) {
            Some((_, kept)) if *kept == r => {}
            _ => {
                out.insert(r.name.clone(), r);
            }
        }
    }
    gone.extend(previous.map(|(name, _)| name.clone()));
    for name in &gone {
        out.remove(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Body, Resource};
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

    fn contents(map: &ResourceMap) -> Vec<(String, Body)> {
        map.values()
            .map(|r| (r.name.to_string(), r.body.clone()))
            .collect()
    }

    fn resources(entries: &[(&str, &str)]) -> Vec<Resource> {
        entries.iter().map(|(n, c)| resource(n, c)).collect()
    }

    #[test]
    fn a_map_built_on_the_old_one_has_the_fresh_content_and_the_old_resources() {
        let names: Vec<String> = (0..100).map(|i| format!("c{i:03}")).collect();
        let old: ResourceMap = map(&names.iter().map(|n| (n.as_str(), "v1")).collect::<Vec<_>>());
        let mut fresh_entries: Vec<(&str, &str)> =
            names.iter().map(|n| (n.as_str(), "v1")).collect();
        fresh_entries[10].1 = "v2";
        fresh_entries.remove(20);
        fresh_entries.push(("d-new", "v1"));
        fresh_entries.insert(0, ("a-new", "v1"));
        let fresh = resources(&fresh_entries);
        let built = build_on(Some(&old), fresh.clone());
        assert_eq!(contents(&built), contents(&build_on(None, fresh.clone())));
        assert_eq!(built.len(), 101);
        // Unchanged resources are the old ones (the same buffers); changed
        // and added ones are the fresh ones.
        let buffer = |map: &ResourceMap, name: &str| map[name].body.as_ptr();
        let fresh_buffer = |name: &str| {
            fresh
                .iter()
                .find(|r| &*r.name == name)
                .unwrap()
                .body
                .as_ptr()
        };
        assert_eq!(buffer(&built, "c000"), buffer(&old, "c000"));
        assert_ne!(buffer(&built, "c000"), fresh_buffer("c000"));
        assert_eq!(buffer(&built, "c010"), fresh_buffer("c010"));
        assert_eq!(buffer(&built, "d-new"), fresh_buffer("d-new"));
        assert_eq!(buffer(&built, "a-new"), fresh_buffer("a-new"));
        assert!(!built.contains_key("c020"));
        // Everything after the last fresh name goes too.
        let shorter = build_on(Some(&old), resources(&[("c000", "v1"), ("c001", "v1")]));
        assert_eq!(
            shorter.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
            ["c000", "c001"]
        );
    }

    #[test]
    fn nothing_changed_gives_the_old_map_itself() {
        let old = map(&[("a", "1"), ("b", "1"), ("c", "1")]);
        let built = build_on(Some(&old), resources(&[("a", "1"), ("b", "1"), ("c", "1")]));
        assert!(built.ptr_eq(&old));
    }

    #[test]
    fn out_of_order_names_are_sorted_and_the_later_of_two_wins() {
        let fresh = resources(&[("b", "1"), ("a", "1"), ("b", "2"), ("c", "1")]);
        for old in [None, Some(map(&[("a", "0"), ("b", "0")]))] {
            let built = build_on(old.as_ref(), fresh.clone());
            let got: Vec<(String, Body)> = contents(&built);
            assert_eq!(
                got,
                [("a", "1"), ("b", "2"), ("c", "1")]
                    .map(|(n, c)| (n.to_string(), Body::from(Bytes::from(c))))
            );
        }
    }
}
