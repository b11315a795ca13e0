//! A resource's encoded message as one buffer or as several shared ones.
//!
//! Most resources are encoded into one buffer. A class's route
//! configuration is instead assembled from virtual hosts encoded once per
//! IR (see [`super::shared`]): at 10,000 services it is 6.7 MB, and all
//! but a few hundred KB of it are the same bytes for every class. Copying
//! them into one buffer per class cost 100 classes 670 MB and a fifth of
//! a weight change's CPU (fresh pages for each copy); as parts that point
//! into the buffer an earlier class assembled, each class holds its own
//! bytes only. The wire layer ([`crate::server`]) writes the parts in
//! order, sharing the large ones, so what Envoy receives is unchanged.

use bytes::{Bytes, BytesMut};
use std::ops::Range;
use std::sync::Arc;

/// An encoded message: the concatenation of its parts, in order. Cheap to
/// clone (one reference count). Two bodies are equal when their bytes are,
/// however they are cut into parts.
#[derive(Clone, Debug, Default)]
pub struct Body(Repr);

#[derive(Clone, Debug)]
enum Repr {
    /// One buffer.
    Whole(Bytes),
    /// Two or more buffers, and their total length in bytes.
    Parts(Arc<[Bytes]>, usize),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Whole(Bytes::new())
    }
}

impl Body {
    /// The body made of `parts`, in order (empty ones left out).
    pub fn from_parts(mut parts: Vec<Bytes>) -> Self {
        parts.retain(|p| !p.is_empty());
        match parts.len() {
            0 => Body::default(),
            1 => Body(Repr::Whole(parts.pop().expect("one part"))),
            _ => {
                let len = parts.iter().map(Bytes::len).sum();
                Body(Repr::Parts(parts.into(), len))
            }
        }
    }

    /// Length of the message in bytes.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Whole(bytes) => bytes.len(),
            Repr::Parts(_, len) => *len,
        }
    }

    /// Whether the message is empty (a message with every field at its
    /// default).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parts, in order (one for a body built from one buffer).
    pub fn parts(&self) -> &[Bytes] {
        match &self.0 {
            Repr::Whole(bytes) => std::slice::from_ref(bytes),
            Repr::Parts(parts, _) => parts,
        }
    }

    /// The message in one buffer: the body's own when it has one part, a
    /// copy otherwise.
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Whole(bytes) => bytes.clone(),
            Repr::Parts(parts, len) => {
                let mut out = BytesMut::with_capacity(*len);
                for part in parts.iter() {
                    out.extend_from_slice(part);
                }
                out.freeze()
            }
        }
    }

    /// The message copied into a vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.to_bytes().to_vec()
    }

    /// Where the first part's bytes start: two bodies that share their
    /// (first) buffer have the same address.
    pub fn as_ptr(&self) -> *const u8 {
        self.parts()
            .first()
            .map_or(std::ptr::null(), |p| p.as_ptr())
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body(Repr::Whole(bytes))
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body(Repr::Whole(bytes.into()))
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .parts()
                .iter()
                .flat_map(|p| p.iter())
                .eq(other.parts().iter().flat_map(|p| p.iter()))
    }
}

impl Eq for Body {}

/// Shared runs shorter than this (bytes) are copied instead (see
/// [`BodyBuilder`]).
pub(super) const MIN_SHARED_RUN_BYTES: usize = 16 * 1024;

/// Builds a [`Body`] from copied bytes and shared ranges of one buffer:
/// adjacent ranges of it make a run, a run of at least `min_run` bytes
/// becomes a part that points into the buffer, and the bytes between such
/// runs (copied ones, shorter runs) are gathered into one part of their
/// own. Short runs are copied because every part costs each stream the
/// body goes to: the wire copies short parts into its chunks, per stream
/// (see `server::wire`), where one copy per body would do. At 1,000
/// services in 10 namespaces, a class's own virtual hosts cut the shared
/// ones into runs of about 6 KB; sharing them raised the server's peak
/// RSS by half and its CPU for a weight change by 1.6 times (300 proxies).
#[derive(Debug)]
pub(super) struct BodyBuilder<'a> {
    /// The buffer ranges are shared from.
    shared: &'a Bytes,
    /// Shorter runs are copied.
    min_run: usize,
    parts: Vec<Bytes>,
    /// Bytes copied since the last shared range.
    copied: Vec<u8>,
    /// The shared range being extended.
    run: Option<Range<usize>>,
}

impl<'a> BodyBuilder<'a> {
    /// An empty body whose shared ranges are of `shared`, sharing runs of
    /// `min_run` bytes or more.
    pub(super) fn new(shared: &'a Bytes, min_run: usize) -> Self {
        BodyBuilder {
            shared,
            min_run,
            parts: Vec::new(),
            copied: Vec::new(),
            run: None,
        }
    }

    /// Appends a copy of `bytes`.
    pub(super) fn copy(&mut self, bytes: &[u8]) {
        self.end_run();
        self.copied.extend_from_slice(bytes);
    }

    /// Appends the bytes of `range` of the shared buffer, without copying.
    pub(super) fn share(&mut self, range: Range<usize>) {
        match &mut self.run {
            Some(run) if run.end == range.start => run.end = range.end,
            _ => {
                self.end_run();
                self.run = Some(range);
            }
        }
    }

    fn end_run(&mut self) {
        match self.run.take() {
            Some(run) if run.len() >= self.min_run => {
                if !self.copied.is_empty() {
                    self.parts.push(std::mem::take(&mut self.copied).into());
                }
                self.parts.push(self.shared.slice(run));
            }
            Some(run) => self.copied.extend_from_slice(&self.shared[run]),
            None => {}
        }
    }

    /// The body.
    pub(super) fn finish(mut self) -> Body {
        self.end_run();
        if !self.copied.is_empty() {
            self.parts.push(std::mem::take(&mut self.copied).into());
        }
        Body::from_parts(self.parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_shared_ranges_make_one_part_and_copies_between_them_another() {
        let shared = Bytes::from_static(b"0123456789");
        let mut b = BodyBuilder::new(&shared, 2);
        b.copy(b"head:");
        b.share(0..3);
        b.share(3..5);
        b.copy(b"-x-");
        b.copy(b"y");
        b.share(7..8);
        b.share(9..10);
        b.share(2..4);
        b.share(6..9);
        let body = b.finish();
        assert_eq!(body.to_vec(), b"head:01234-x-y7923678");
        assert_eq!(body.len(), 21);
        // Runs shorter than two bytes are copied with their neighbours.
        let parts: Vec<&[u8]> = body.parts().iter().map(|p| &p[..]).collect();
        assert_eq!(parts, [&b"head:"[..], b"01234", b"-x-y79", b"23", b"678"]);
        // The shared parts point into the shared buffer.
        assert_eq!(body.parts()[1].as_ptr(), shared.as_ptr());
        assert_eq!(body.parts()[3].as_ptr(), shared[2..].as_ptr());
        assert_eq!(body, Body::from(b"head:01234-x-y7923678".to_vec()));
        assert_ne!(body, Body::from(b"head:01234-x-y7923679".to_vec()));
        assert_ne!(body, Body::from(b"head:01234-x-y792367".to_vec()));
    }

    #[test]
    fn a_body_of_one_part_or_none_is_that_buffer() {
        let shared = Bytes::from_static(b"abc");
        let mut b = BodyBuilder::new(&shared, 3);
        b.share(0..3);
        let body = b.finish();
        assert_eq!(body.parts().len(), 1);
        assert_eq!(body.as_ptr(), shared.as_ptr());
        let empty = BodyBuilder::new(&shared, 3).finish();
        assert!(empty.is_empty());
        assert_eq!(empty, Body::default());
    }
}
