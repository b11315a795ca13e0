//! Reads ADS responses as their bytes arrive, without holding a whole
//! response in memory.
//!
//! The fields of a `DiscoveryResponse` or `DeltaDiscoveryResponse` other
//! than `resources` are read whole (they are short strings). Each entry of
//! `resources` is read only as far as its first [`ENTRY_PREFIX`] bytes,
//! where its type URL, name and (delta) version are, and the rest is
//! skipped unless the [`Sink`] asks for the whole entry. A thousand
//! simulated proxies of a 24.5 MB configuration then need kilobytes each,
//! where tonic's decoder keeps a buffer of the largest message per stream.
//!
//! Framing follows gRPC over HTTP/2 (`PROTOCOL-HTTP2.md` of grpc/grpc: a
//! 1-byte compressed flag and a 4-byte big-endian length before each
//! message) and the protobuf wire format (varint keys, length-delimited
//! fields; fields may come in any order).

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::ops::Range;

/// Bytes of a `resources` entry read before the [`Sink`] decides whether
/// it wants all of it.
pub const ENTRY_PREFIX: usize = 1024;

/// Longest field other than `resources` that is read whole (bytes); a
/// longer one is an error.
const MAX_FIELD_BYTES: usize = 1 << 20;

/// `resources`, in both response messages.
const RESOURCES: u32 = 2;
/// `version_info` (SotW) and `system_version_info` (delta).
const VERSION_INFO: u32 = 1;
/// `type_url`, in both.
const TYPE_URL: u32 = 4;
/// `nonce`, in both.
const NONCE: u32 = 5;
/// `removed_resources` (delta only; SotW's 6 is `control_plane`).
const REMOVED_RESOURCES: u32 = 6;

/// `Resource.version`, `Resource.resource` and `Resource.name` (delta).
const RESOURCE_VERSION: u32 = 1;
const RESOURCE_ANY: u32 = 2;
const RESOURCE_NAME: u32 = 3;
/// `Any.type_url` and `Any.value`.
const ANY_TYPE_URL: u32 = 1;
const ANY_VALUE: u32 = 2;

/// Which response message the stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `DiscoveryResponse`: each entry is a `google.protobuf.Any`.
    Sotw,
    /// `DeltaDiscoveryResponse`: each entry is a `Resource` holding an `Any`.
    Delta,
}

/// The fields of a response other than `resources`, as far as read: when
/// a [`Sink`] sees an entry, only the fields written before it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// `version_info` (SotW) or `system_version_info` (delta).
    pub version_info: String,
    /// `type_url`.
    pub type_url: String,
    /// `nonce`.
    pub nonce: String,
    /// Delta: `removed_resources`.
    pub removed: Vec<String>,
}

/// One `resources` entry, as far as read. Its strings are read from its
/// bytes when asked for (most entries are only counted).
#[derive(Clone, Debug, Default)]
pub struct Entry {
    /// The entry's length in bytes (the `Any`, or the delta `Resource`).
    pub len: usize,
    /// Whether all of the entry was read (then [`Entry::value`] is whole).
    pub complete: bool,
    /// Length of `Any.value` (the encoded resource) in bytes, when its
    /// field header was read; `Some(0)` when the entry is whole and has none.
    pub value_len: Option<usize>,
    /// The entry's bytes read.
    bytes: Bytes,
    /// Where `Any.type_url`, delta `Resource.name` and `Resource.version`
    /// are in `bytes`, when read whole.
    type_url: Option<Range<usize>>,
    resource_name: Option<Range<usize>>,
    version: Option<Range<usize>>,
    /// Where the bytes of `Any.value` read are.
    value: Range<usize>,
}

impl Entry {
    fn text(&self, range: &Option<Range<usize>>) -> Option<&str> {
        std::str::from_utf8(&self.bytes[range.clone()?]).ok()
    }

    /// `Any.type_url`, when read.
    pub fn type_url(&self) -> Option<&str> {
        self.text(&self.type_url)
    }

    /// Delta `Resource.name` when read, else field 1 of the resource
    /// itself (the name of a Cluster, ClusterLoadAssignment, Listener and
    /// RouteConfiguration), when read.
    pub fn name(&self) -> Option<&str> {
        self.text(&self.resource_name)
            .or_else(|| leading_name(self.value()))
    }

    /// Delta: `Resource.version`, when read.
    pub fn version(&self) -> Option<&str> {
        self.text(&self.version)
    }

    /// The bytes of `Any.value` read: all of them when `complete`.
    pub fn value(&self) -> &[u8] {
        &self.bytes[self.value.clone()]
    }

    /// [`Entry::value`], to keep (shares the entry's bytes).
    pub fn value_bytes(&self) -> Bytes {
        self.bytes.slice(self.value.clone())
    }
}

/// What a [`Scanner`] reports to, in stream order.
pub trait Sink {
    /// The first bytes of an entry arrived (the whole entry when
    /// `entry.complete`); true asks for the whole entry, given to
    /// [`Sink::whole`] before anything else.
    fn entry(&mut self, head: &Head, entry: &Entry) -> bool;
    /// The whole of an entry that [`Sink::entry`] asked for.
    fn whole(&mut self, head: &Head, entry: Entry);
    /// A response ended: its `head` is complete, and it had `entries` entries.
    fn end(&mut self, head: Head, entries: usize);
}

/// Where the scanner is in the stream.
#[derive(Debug)]
enum State {
    /// Before a message's 5-byte gRPC prefix.
    Prefix,
    /// Before a field's key (and length) inside a message.
    Key,
    /// Inside a field read whole.
    Field { field: u32, len: usize },
    /// Inside bytes skipped.
    Skip { len: usize },
    /// At the start of a `resources` entry of `len` bytes.
    EntryStart { len: usize },
    /// Past the prefix of an entry: `remaining` bytes to go; `parts` holds
    /// the bytes read when the sink asked for the whole entry.
    EntryRest {
        len: usize,
        remaining: usize,
        parts: Option<Vec<Bytes>>,
    },
}

/// Reads one direction of an ADS stream, chunk by chunk.
#[derive(Debug)]
pub struct Scanner {
    layout: Layout,
    queue: Queue,
    state: State,
    /// Bytes of the current message not consumed yet.
    left: usize,
    head: Head,
    entries: usize,
}

impl Scanner {
    /// A scanner at the start of a stream of `layout` messages.
    pub fn new(layout: Layout) -> Self {
        Scanner {
            layout,
            queue: Queue::default(),
            state: State::Prefix,
            left: 0,
            head: Head::default(),
            entries: 0,
        }
    }

    /// Whether the stream is between messages (nothing buffered, nothing
    /// half read): where a stream may end.
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Prefix) && self.queue.len == 0
    }

    /// Reads `chunk`, reporting to `sink` what it completes.
    ///
    /// # Errors
    /// A message the scanner cannot read: compressed, a malformed varint, a
    /// field running past its message's end, a group, a non-UTF-8 string,
    /// or a field other than `resources` longer than 1 MiB.
    pub fn feed(&mut self, chunk: Bytes, sink: &mut impl Sink) -> Result<(), String> {
        self.queue.push(chunk);
        while self.step(sink)? {}
        Ok(())
    }

    /// Takes one step if the buffered bytes allow; false when it needs more.
    fn step(&mut self, sink: &mut impl Sink) -> Result<bool, String> {
        match &mut self.state {
            State::Prefix => {
                let mut prefix = [0u8; 5];
                if self.queue.peek(&mut prefix) < 5 {
                    return Ok(false);
                }
                self.queue.skip(5);
                if prefix[0] != 0 {
                    return Err(format!(
                        "a message with compressed flag {} (no compression was asked for)",
                        prefix[0]
                    ));
                }
                self.left =
                    u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
                self.head = Head::default();
                self.entries = 0;
                self.state = State::Key;
            }
            State::Key => {
                if self.left == 0 {
                    sink.end(std::mem::take(&mut self.head), self.entries);
                    self.state = State::Prefix;
                    return Ok(true);
                }
                let mut bytes = [0u8; 20];
                let want = self.left.min(bytes.len());
                let have = self.queue.peek(&mut bytes[..want]);
                let Some((field, value, used)) = key(&bytes[..have]) else {
                    return if have == want {
                        Err(format!(
                            "a malformed field key in the {} bytes left of a message",
                            self.left
                        ))
                    } else {
                        Ok(false)
                    };
                };
                self.queue.skip(used);
                self.left -= used;
                self.state = match value {
                    KeyValue::Varint => State::Key,
                    KeyValue::Fixed(len) => State::Skip { len },
                    KeyValue::Len(len) if len > self.left => {
                        return Err(format!(
                            "field {field} of {len} bytes runs past its message ({} bytes left)",
                            self.left
                        ))
                    }
                    KeyValue::Len(len) if field == RESOURCES => State::EntryStart { len },
                    KeyValue::Len(len) if self.reads_whole(field) => {
                        if len > MAX_FIELD_BYTES {
                            return Err(format!(
                                "field {field} is {len} bytes (at most {MAX_FIELD_BYTES} are read)"
                            ));
                        }
                        State::Field { field, len }
                    }
                    KeyValue::Len(len) => State::Skip { len },
                };
                if let State::Skip { len } = self.state {
                    if len > self.left {
                        return Err(format!("field {field} runs past its message"));
                    }
                }
            }
            State::Field { field, len } => {
                let (field, len) = (*field, *len);
                if self.queue.len < len {
                    return Ok(false);
                }
                let bytes = self.queue.take(len);
                self.left -= len;
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| format!("field {field} is not UTF-8"))?;
                match field {
                    VERSION_INFO => self.head.version_info = text,
                    TYPE_URL => self.head.type_url = text,
                    NONCE => self.head.nonce = text,
                    _ => self.head.removed.push(text),
                }
                self.state = State::Key;
            }
            State::Skip { len } => {
                let skipped = self.queue.skip(*len);
                *len -= skipped;
                self.left -= skipped;
                if *len > 0 {
                    return Ok(false);
                }
                self.state = State::Key;
            }
            State::EntryStart { len } => {
                let len = *len;
                let first = len.min(ENTRY_PREFIX);
                if self.queue.len < first {
                    return Ok(false);
                }
                let prefix = self.queue.take(first);
                self.left -= first;
                self.entries += 1;
                let entry = read_entry(self.layout, prefix, len);
                let whole = sink.entry(&self.head, &entry);
                self.state = if first == len {
                    if whole {
                        sink.whole(&self.head, entry);
                    }
                    State::Key
                } else {
                    State::EntryRest {
                        len,
                        remaining: len - first,
                        parts: whole.then(|| vec![entry.bytes]),
                    }
                };
            }
            State::EntryRest {
                len,
                remaining,
                parts,
            } => {
                if self.queue.len == 0 {
                    return Ok(false);
                }
                let piece = self.queue.take_some(*remaining);
                *remaining -= piece.len();
                self.left -= piece.len();
                if let Some(parts) = parts {
                    parts.push(piece);
                }
                if *remaining > 0 {
                    return Ok(true);
                }
                if let Some(parts) = parts.take() {
                    let mut bytes = BytesMut::with_capacity(*len);
                    for part in parts {
                        bytes.extend_from_slice(&part);
                    }
                    let entry = read_entry(self.layout, bytes.freeze(), *len);
                    sink.whole(&self.head, entry);
                }
                self.state = State::Key;
            }
        }
        Ok(true)
    }

    /// Whether `field` (length-delimited, not `resources`) is kept in the [`Head`].
    fn reads_whole(&self, field: u32) -> bool {
        matches!(field, VERSION_INFO | TYPE_URL | NONCE)
            || (field == REMOVED_RESOURCES && self.layout == Layout::Delta)
    }
}

/// What follows a field key.
enum KeyValue {
    /// A varint, already read.
    Varint,
    /// A fixed-width value of this many bytes.
    Fixed(usize),
    /// A length-delimited value of this many bytes.
    Len(usize),
}

/// A field key at the start of `bytes` and what follows it (a varint
/// value is read too): the field number, the value and the bytes used.
/// None when `bytes` ends first or the key is malformed (a group, a varint
/// of more than 10 bytes).
fn key(bytes: &[u8]) -> Option<(u32, KeyValue, usize)> {
    let (key, n) = varint(bytes)?;
    let field = u32::try_from(key >> 3).ok()?;
    let rest = &bytes[n..];
    match key & 7 {
        0 => varint(rest).map(|(_, m)| (field, KeyValue::Varint, n + m)),
        1 => Some((field, KeyValue::Fixed(8), n)),
        5 => Some((field, KeyValue::Fixed(4), n)),
        2 => {
            let (len, m) = varint(rest)?;
            Some((field, KeyValue::Len(usize::try_from(len).ok()?), n + m))
        }
        _ => None,
    }
}

/// A varint at the start of `bytes` and its length; None when `bytes`
/// ends first or it runs over 10 bytes.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The value of a field inside a message read so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldValue {
    Varint(u64),
    Fixed,
    /// Length-delimited: where its bytes start and how many it declares
    /// (they may run past what was read).
    Len {
        start: usize,
        len: usize,
    },
}

/// The fields of a message of which `bytes` are the first bytes, up to
/// the first one whose key or varint is cut off; the last may be a
/// length-delimited field whose bytes are cut off.
struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Fields { bytes, pos: 0 }
    }
}

impl Iterator for Fields<'_> {
    type Item = (u32, FieldValue);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.get(self.pos..)?;
        let (key, n) = varint(rest)?;
        let field = u32::try_from(key >> 3).ok()?;
        let mut pos = self.pos + n;
        let value = match key & 7 {
            0 => {
                let (v, m) = varint(self.bytes.get(pos..)?)?;
                pos += m;
                FieldValue::Varint(v)
            }
            1 => {
                pos += 8;
                FieldValue::Fixed
            }
            5 => {
                pos += 4;
                FieldValue::Fixed
            }
            2 => {
                let (len, m) = varint(self.bytes.get(pos..)?)?;
                let start = pos + m;
                let len = usize::try_from(len).ok()?;
                pos = start.checked_add(len)?;
                FieldValue::Len { start, len }
            }
            _ => return None,
        };
        self.pos = pos;
        Some((field, value))
    }
}

/// Where a length-delimited field's bytes are, when all were read.
fn whole_field(bytes: &[u8], value: FieldValue) -> Option<Range<usize>> {
    match value {
        FieldValue::Len { start, len } if start + len <= bytes.len() => Some(start..start + len),
        _ => None,
    }
}

/// What the first bytes (`bytes`) of an entry of `len` bytes say.
fn read_entry(layout: Layout, bytes: Bytes, len: usize) -> Entry {
    let mut entry = Entry {
        len,
        complete: bytes.len() == len,
        ..Entry::default()
    };
    match layout {
        Layout::Sotw => read_any(&bytes, 0, &mut entry),
        Layout::Delta => {
            for (field, value) in Fields::new(&bytes) {
                match (field, value) {
                    (RESOURCE_VERSION, _) => entry.version = whole_field(&bytes, value),
                    (RESOURCE_NAME, _) => entry.resource_name = whole_field(&bytes, value),
                    (RESOURCE_ANY, FieldValue::Len { start, len }) => {
                        let end = bytes.len().min(start + len);
                        read_any(&bytes[start..end], start, &mut entry);
                    }
                    _ => {}
                }
            }
        }
    }
    if entry.complete && entry.value_len.is_none() {
        entry.value_len = Some(0);
    }
    entry.bytes = bytes;
    entry
}

/// Reads the first bytes of an `Any`, found at `offset` of the entry,
/// into `entry`.
fn read_any(bytes: &[u8], offset: usize, entry: &mut Entry) {
    for (field, value) in Fields::new(bytes) {
        match (field, value) {
            (ANY_TYPE_URL, _) => {
                entry.type_url = whole_field(bytes, value).map(|r| r.start + offset..r.end + offset)
            }
            (ANY_VALUE, FieldValue::Len { start, len }) => {
                entry.value_len = Some(len);
                entry.value = start + offset..bytes.len().min(start + len) + offset;
            }
            _ => {}
        }
    }
}

/// The name of an encoded Cluster, ClusterLoadAssignment, Listener or
/// RouteConfiguration of which `bytes` are the first bytes: each has its
/// name as field 1, which encoders write first (in field-number order, as
/// prost and Envoy's C++ serializer do).
pub fn leading_name(bytes: &[u8]) -> Option<&str> {
    match Fields::new(bytes).next()? {
        (1, FieldValue::Len { start, len }) => {
            std::str::from_utf8(bytes.get(start..start + len)?).ok()
        }
        _ => None,
    }
}

/// Whether an encoded Cluster of which `bytes` are the first bytes is of
/// `type: EDS`; None when those bytes do not tell. Like [`leading_name`]
/// it relies on field-number order: `type` (field 2 of
/// `envoy.config.cluster.v3.Cluster`) comes right after `name` (1), so any
/// other field first means it is not set (STATIC, proto3's default, or
/// `cluster_type`, field 38).
pub fn eds_cluster(bytes: &[u8]) -> Option<bool> {
    /// `Cluster.DiscoveryType.EDS`.
    const EDS: u64 = 3;
    let mut fields = Fields::new(bytes);
    loop {
        match fields.next()? {
            (1, _) => continue,
            (2, FieldValue::Varint(t)) => return Some(t == EDS),
            _ => return Some(false),
        }
    }
}

/// Bytes received and not read yet, as the chunks they came in.
#[derive(Debug, Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl Queue {
    fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Copies the first bytes into `out`, as many as there are; returns
    /// how many.
    fn peek(&self, out: &mut [u8]) -> usize {
        let mut n = 0;
        for chunk in &self.chunks {
            let m = chunk.len().min(out.len() - n);
            out[n..n + m].copy_from_slice(&chunk[..m]);
            n += m;
            if n == out.len() {
                break;
            }
        }
        n
    }

    /// Drops up to `n` bytes; returns how many.
    fn skip(&mut self, mut n: usize) -> usize {
        let mut skipped = 0;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let m = front.len().min(n);
            front.advance(m);
            if front.is_empty() {
                self.chunks.pop_front();
            }
            n -= m;
            skipped += m;
        }
        self.len -= skipped;
        skipped
    }

    /// The first `n` bytes (`n` at most [`Queue::len`]); a slice of one
    /// chunk, without copying, when one holds them.
    fn take(&mut self, n: usize) -> Bytes {
        debug_assert!(n <= self.len);
        if self.chunks.front().is_some_and(|c| c.len() >= n) {
            return self.take_some(n);
        }
        let mut bytes = BytesMut::with_capacity(n);
        while bytes.len() < n {
            bytes.extend_from_slice(&self.take_some(n - bytes.len()));
        }
        bytes.freeze()
    }

    /// Up to `n` bytes from the first chunk, without copying.
    fn take_some(&mut self, n: usize) -> Bytes {
        let Some(front) = self.chunks.front_mut() else {
            return Bytes::new();
        };
        let piece = if front.len() <= n {
            self.chunks.pop_front().expect("front exists")
        } else {
            front.split_to(n)
        };
        self.len -= piece.len();
        piece
    }
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
