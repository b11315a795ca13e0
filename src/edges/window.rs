//! The window's counts summed per destination service, for measuring
//! service level objectives ([`crate::slo`]).

use super::{Counts, EdgeStore};
use std::collections::BTreeMap;
use std::time::Instant;

impl EdgeStore {
    /// Per destination service ([`super::EdgeKey::destination_service`]),
    /// the sliding window's [`Counts`] at `now`, summed over every edge to
    /// it: all calling workloads and all subsets. Services without an edge
    /// are absent.
    pub fn window_by_service(&self, now: Instant) -> BTreeMap<String, Counts> {
        let slot = self.slot_of(now);
        let mut inner = self.inner.lock().expect("edge store lock");
        inner.forget_idle(now);
        let mut out: BTreeMap<String, Counts> = BTreeMap::new();
        for (key, edge) in &inner.edges {
            out.entry(key.destination_service.clone())
                .or_default()
                .merge(&edge.window(slot));
        }
        out
    }
}
