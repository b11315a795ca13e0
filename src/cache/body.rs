//! A resource's encoded message as one buffer or as several shared ones.
//!
//! Most resources are encoded into one buffer. A class's route
//! configuration is instead assembled from virtual hosts encoded once per
//! IR (see [`super::shared`]): at 10,000 services in 100 namespaces it is
//! 6.7 MB, and all but about 1 % of it are the same bytes for every class.
//! Copied into one buffer per class, 100 classes held 670 MB of copies and
//! spent much of a weight change's CPU copying and faulting in fresh pages;
//! as parts that point into one buffer of the shared records per IR, each
//! class holds its own bytes only. The wire layer (`server::wire`) writes
//! the parts in order, so what Envoy receives is unchanged.

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

    /// Where the first part's bytes start: two single-part bodies that
    /// share their buffer have the same address. (A body in several parts
    /// starts with bytes of its own, copied; see [`Body::parts`] for the
    /// others.)
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

#[cfg(test)]
thread_local! {
    /// What [`min_shared_run`] gives in this thread: tests set 0 to share
    /// every record, whatever the size of their mesh.
    pub(super) static TEST_MIN_SHARED_RUN: std::cell::Cell<usize> =
        const { std::cell::Cell::new(MIN_SHARED_RUN_BYTES) };
}

/// The shortest run of shared records a route configuration points to
/// ([`MIN_SHARED_RUN_BYTES`]; in tests, [`TEST_MIN_SHARED_RUN`]).
#[cfg(not(test))]
pub(super) fn min_shared_run() -> usize {
    MIN_SHARED_RUN_BYTES
}

/// The shortest run of shared records a route configuration points to
/// ([`MIN_SHARED_RUN_BYTES`]; in tests, [`TEST_MIN_SHARED_RUN`]).
#[cfg(test)]
pub(super) fn min_shared_run() -> usize {
    TEST_MIN_SHARED_RUN.get()
}

/// Builds a [`Body`] from copied bytes and shared ranges of one buffer:
/// adjacent ranges of it make a run, a run of at least `min_run` bytes
/// becomes a part that points into the buffer, and the bytes between such
/// runs (copied ones, shorter runs) are gathered into one part of their
/// own. Short runs are copied because every part costs each stream the
/// body goes to: the wire copies short parts into its chunks, per stream
/// (see `server::wire`), where one copy per body would do. At 1,000
/// services in 10 namespaces, a class's own virtual hosts cut the shared
/// ones into runs of about 6 KB; sending those as parts raised the
/// server's peak RSS by half and its CPU for a weight change by about 1.6
/// times (300 delta proxies, 30 per class).
#[derive(Debug)]
pub(super) struct BodyBuilder<'a> {
    /// The buffer ranges are shared from.
    shared: &'a Bytes,
    /// Shorter runs are copied.
    min_run: usize,
    /// What the body is made of, in order; adjacent shared ranges merged.
    pieces: Vec<Piece<'a>>,
}

/// A piece of a [`BodyBuilder`]'s body.
#[derive(Debug)]
enum Piece<'a> {
    Copied(&'a [u8]),
    Shared(Range<usize>),
}

impl<'a> BodyBuilder<'a> {
    /// An empty body whose shared ranges are of `shared`, sharing runs of
    /// `min_run` bytes or more.
    pub(super) fn new(shared: &'a Bytes, min_run: usize) -> Self {
        BodyBuilder {
            shared,
            min_run,
            pieces: Vec::new(),
        }
    }

    /// Appends a copy of `bytes`.
    pub(super) fn copy(&mut self, bytes: &'a [u8]) {
        self.pieces.push(Piece::Copied(bytes));
    }

    /// Appends the bytes of `range` of the shared buffer.
    pub(super) fn share(&mut self, range: Range<usize>) {
        match self.pieces.last_mut() {
            Some(Piece::Shared(run)) if run.end == range.start => run.end = range.end,
            _ => self.pieces.push(Piece::Shared(range)),
        }
    }

    /// The body: each run of `min_run` bytes or more a part that points
    /// into the shared buffer, and what lies between them copied into one
    /// part each (allocated at its exact length).
    pub(super) fn finish(self) -> Body {
        let shared = self.shared;
        let min_run = self.min_run;
        let kept = |p: &Piece<'_>| matches!(p, Piece::Shared(run) if run.len() >= min_run);
        let bytes = |p: &Piece<'a>| -> &'a [u8] {
            match p {
                Piece::Copied(bytes) => bytes,
                Piece::Shared(run) => &shared[run.clone()],
            }
        };
        let mut parts = Vec::new();
        let mut pieces = self.pieces.iter().peekable();
        while let Some(piece) = pieces.next() {
            if let Piece::Shared(run) = piece {
                if kept(piece) {
                    parts.push(shared.slice(run.clone()));
                    continue;
                }
            }
            let mut group = vec![bytes(piece)];
            while let Some(next) = pieces.next_if(|p| !kept(p)) {
                group.push(bytes(next));
            }
            parts.push(Bytes::from(group.concat()));
        }
        Body::from_parts(parts)
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
