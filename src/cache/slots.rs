//! One slot per cluster of an IR (an encoded resource, filled once), in
//! chunks that successive generations share: an endpoint change copies the
//! chunks holding the clusters it touched and shares every other one, so
//! its cost follows the change, not the mesh (at 10,000 services the
//! slots of 60,000 clusters were cloned one by one per change, about half
//! of the endpoint-only update).

use std::ops::Index;
use std::sync::Arc;

/// Slots per chunk.
const CHUNK: usize = 64;

/// `len` slots, chunked. A slot shared between two generations is filled
/// by whichever asks first; that is only right for a slot whose content
/// is the same under both IRs, which is what [`Slots::carry_over`] keeps.
#[derive(Debug)]
pub(super) struct Slots<T> {
    chunks: Vec<Arc<[T]>>,
    len: usize,
}

impl<T: Default + Clone> Slots<T> {
    /// `len` empty slots.
    pub(super) fn new(len: usize) -> Self {
        Self::from_fn(len, |_| T::default())
    }

    /// The slots `slot(0)`, `slot(1)`, … `slot(len - 1)`.
    pub(super) fn from_fn(len: usize, mut slot: impl FnMut(usize) -> T) -> Self {
        let chunks = (0..len)
            .step_by(CHUNK)
            .map(|start| (start..len.min(start + CHUNK)).map(&mut slot).collect())
            .collect();
        Slots { chunks, len }
    }

    /// The slots of `slots`, in order.
    pub(super) fn from_vec(slots: Vec<T>) -> Self {
        let len = slots.len();
        let mut slots = slots.into_iter();
        Self::from_fn(len, |_| slots.next().expect("one slot per index"))
    }

    /// The same slots, but those `dirty` marks (or that it does not cover)
    /// empty: chunks without such a slot are shared, not copied.
    pub(super) fn carry_over(&self, dirty: &[bool]) -> Self {
        let is_dirty = |i: usize| dirty.get(i).copied().unwrap_or(true);
        let chunks = self
            .chunks
            .iter()
            .enumerate()
            .map(|(c, chunk)| {
                let start = c * CHUNK;
                let range = start..start + chunk.len();
                if !range.clone().any(is_dirty) {
                    return chunk.clone();
                }
                range
                    .zip(chunk.iter())
                    .map(|(i, slot)| {
                        if is_dirty(i) {
                            T::default()
                        } else {
                            slot.clone()
                        }
                    })
                    .collect()
            })
            .collect();
        Slots {
            chunks,
            len: self.len,
        }
    }

    /// How many slots there are.
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

impl<T: Default + Clone> Default for Slots<T> {
    fn default() -> Self {
        Slots::new(0)
    }
}

impl<T> Index<usize> for Slots<T> {
    type Output = T;

    /// The slot at `index`; panics past the end, as a slice does.
    fn index(&self, index: usize) -> &T {
        assert!(index < self.len, "slot {index} of {}", self.len);
        &self.chunks[index / CHUNK][index % CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    #[test]
    fn a_carried_over_chunk_is_shared_unless_a_dirty_slot_is_in_it() {
        let slots: Slots<OnceLock<usize>> = Slots::new(3 * CHUNK + 5);
        for i in 0..slots.len() {
            slots[i].set(i).unwrap();
        }
        let mut dirty = vec![false; slots.len()];
        dirty[CHUNK + 1] = true;
        dirty[3 * CHUNK + 4] = true;
        let next = slots.carry_over(&dirty);
        assert_eq!(next.len(), slots.len());
        for i in 0..slots.len() {
            let expected = (!dirty[i]).then_some(i);
            assert_eq!(next[i].get().copied(), expected, "slot {i}");
        }
        let shared: Vec<bool> = (0..4)
            .map(|c| Arc::ptr_eq(&slots.chunks[c], &next.chunks[c]))
            .collect();
        assert_eq!(shared, [true, false, true, false]);
        // A dirty slot filled again is the new generation's alone.
        next[CHUNK + 1].set(7).unwrap();
        assert_eq!(slots[CHUNK + 1].get(), Some(&(CHUNK + 1)));
        // Slots a shorter `dirty` does not cover are emptied.
        let short = slots.carry_over(&dirty[..CHUNK]);
        assert_eq!(short[CHUNK - 1].get(), Some(&(CHUNK - 1)));
        assert_eq!(short[CHUNK].get(), None);
    }

    #[test]
    #[should_panic(expected = "slot 3 of 3")]
    fn a_slot_past_the_end_panics() {
        let slots: Slots<OnceLock<u8>> = Slots::new(3);
        let _ = &slots[3];
    }
}
