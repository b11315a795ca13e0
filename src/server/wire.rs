//! Responses on the wire. A `DiscoveryResponse` or `DeltaDiscoveryResponse`
//! is written as one gRPC message (a 5-byte prefix: compressed flag, then the
//! big-endian length in bytes) made of chunks produced while the stream
//! sends: the encoded resources of the snapshot, which every stream shares,
//! go out as chunks of their own instead of being copied into a buffer per
//! stream (what tonic's message encoder does, and keeps at its largest size
//! for the life of the stream).
//!
//! The `resources` section of a large map that a snapshot holds and a
//! response sends whole is encoded once and shared by every stream that
//! sends that map (see [`super::sections`]).
//!
//! The fields other than `resources` are encoded by prost from the message
//! types of `envoy/service/discovery/v3/discovery.proto`; each resource is
//! appended as one more `resources` field. Protobuf parsers merge fields in
//! any order and append repeated ones, so the message is the same one prost
//! would encode (see <https://protobuf.dev/programming-guides/encoding/>).

use super::sections::{Section, SectionCache, SECTIONS};
use crate::cache::{ProxySnapshot, Resource, ResourceMap};
use crate::envoy::TypeUrl;
use bytes::{BufMut, Bytes, BytesMut};
use envoy_types::pb::envoy::service::discovery::v3 as discovery;
use envoy_types::pb::google::protobuf::Any;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;
use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

/// Bytes of the gRPC message prefix: the compressed flag and the length.
pub(crate) const GRPC_PREFIX_BYTES: usize = 5;
/// The `resources` field of both response messages.
const RESOURCES_FIELD: u32 = 2;
/// `google.protobuf.Any.value`.
const ANY_VALUE_FIELD: u32 = 2;
/// `envoy.service.discovery.v3.Resource.version`.
const RESOURCE_VERSION_FIELD: u32 = 1;
/// `envoy.service.discovery.v3.Resource.resource`.
const RESOURCE_ANY_FIELD: u32 = 2;
/// `envoy.service.discovery.v3.Resource.name`.
const RESOURCE_NAME_FIELD: u32 = 3;
/// Resource bodies shorter than this (bytes) are copied into the chunk being
/// built; longer ones are sent as chunks of their own, shared, not copied.
const SHARE_FROM_BYTES: usize = 1024;
/// A chunk being built is sent once it holds this many bytes. Parts of a
/// body in several parts (a route configuration: see [`crate::cache::Body`])
/// are shared from this length on and copied below it: such a body
/// alternates long shared runs with the few KB of a class's own virtual
/// hosts, and every chunk is one more frame for the HTTP/2 layer to send
/// (frames are at most 16 KB by default anyway).
const CHUNK_BYTES: usize = 16 * 1024;
/// Resources read from the response at a time.
const BATCH: usize = 64;

/// Which response message, with what the resources field needs per resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `DiscoveryResponse.resources`: `Any` messages.
    Sotw,
    /// `DeltaDiscoveryResponse.resources`: `Resource` messages carrying the
    /// resource's name and version ([`Resource::hash`]) and its `Any`.
    Delta,
}

/// One response, ready to be written as a gRPC message.
#[derive(Debug)]
pub(crate) struct WireResponse {
    type_url: TypeUrl,
    layout: Layout,
    /// The message's fields other than `resources`, encoded.
    head: Bytes,
    /// `Any.type_url` of every resource, encoded as a field (the same for all).
    any_type_url: Bytes,
    /// The resources, in name order (usually sharing the snapshot's map).
    resources: ResourceMap,
    /// Where the `resources` section of this whole snapshot map is kept,
    /// for every stream that sends the map (see [`WireResponse::share_section`]).
    keep_in: Option<&'static SectionCache>,
    /// The `resources` section already encoded, taken from `keep_in`.
    section: Option<Arc<Section>>,
    /// Whether `len` and `resource_bytes` are known (they take a pass over
    /// the resources, skipped when a kept section tells them).
    measured: bool,
    /// Length of the whole message in bytes (without the gRPC prefix).
    len: usize,
    /// Bytes of the resources' own encodings.
    resource_bytes: usize,
}

impl WireResponse {
    /// A `DiscoveryResponse` of `resources` with the other fields of `fields`
    /// (whose own `resources` must be empty).
    pub(crate) fn sotw(
        type_url: TypeUrl,
        fields: discovery::DiscoveryResponse,
        resources: ResourceMap,
    ) -> Self {
        debug_assert!(fields.resources.is_empty());
        Self::new(
            type_url,
            Layout::Sotw,
            fields.encode_to_vec().into(),
            resources,
        )
    }

    /// A `DeltaDiscoveryResponse` of `resources` with the other fields of
    /// `fields` (whose own `resources` must be empty).
    pub(crate) fn delta(
        type_url: TypeUrl,
        fields: discovery::DeltaDiscoveryResponse,
        resources: ResourceMap,
    ) -> Self {
        debug_assert!(fields.resources.is_empty());
        Self::new(
            type_url,
            Layout::Delta,
            fields.encode_to_vec().into(),
            resources,
        )
    }

    /// A response with the encoded fields `head`, which encodes its
    /// resources as it is sent (unless [`WireResponse::share_section`] finds
    /// them kept).
    fn new(type_url: TypeUrl, layout: Layout, head: Bytes, resources: ResourceMap) -> Self {
        let any_type_url = Any {
            type_url: type_url.as_str().to_string(),
            value: Vec::new(),
        }
        .encode_to_vec();
        WireResponse {
            type_url,
            layout,
            head,
            any_type_url: any_type_url.into(),
            resources,
            keep_in: None,
            section: None,
            measured: false,
            len: 0,
            resource_bytes: 0,
        }
    }

    /// The message's length and its resources' bytes: one pass over the
    /// resources (a full response holds thousands), once.
    fn measure(&mut self) {
        if self.measured {
            return;
        }
        let (mut len, mut resource_bytes) = (self.head.len(), 0);
        for r in self.resources.values() {
            len += field_len(self.resource_len(r));
            resource_bytes += r.body.len();
        }
        (self.len, self.resource_bytes, self.measured) = (len, resource_bytes, true);
    }

    /// The type of the resources.
    pub(crate) fn type_url(&self) -> TypeUrl {
        self.type_url
    }

    /// Length of the encoded message in bytes, without the gRPC prefix.
    #[cfg(test)]
    pub(crate) fn len(&mut self) -> usize {
        self.measure();
        self.len
    }

    /// Bytes of the resources' own encodings (the `Any` values), for the metrics.
    pub(crate) fn resource_bytes(&mut self) -> usize {
        self.measure();
        self.resource_bytes
    }

    /// How many resources the response carries.
    #[cfg(test)]
    pub(crate) fn resource_count(&self) -> usize {
        self.resources.len()
    }

    /// Length of a resource's `Any` message. An empty value is left out,
    /// as proto3 leaves out every field at its default.
    fn any_len(&self, resource: &Resource) -> usize {
        match resource.body.len() {
            0 => self.any_type_url.len(),
            len => self.any_type_url.len() + field_len(len),
        }
    }

    /// Length of the message that one entry of `resources` holds.
    fn resource_len(&self, resource: &Resource) -> usize {
        match self.layout {
            Layout::Sotw => self.any_len(resource),
            Layout::Delta => {
                string_field_len(&resource.hash)
                    + string_field_len(&resource.name)
                    + field_len(self.any_len(resource))
            }
        }
    }

    /// Writes a resource's entry up to its body into `buf`.
    fn put_entry_head(&self, resource: &Resource, buf: &mut BytesMut) {
        put_field_head(RESOURCES_FIELD, self.resource_len(resource), buf);
        if let Layout::Delta = self.layout {
            put_string_field(RESOURCE_VERSION_FIELD, &resource.hash, buf);
            put_string_field(RESOURCE_NAME_FIELD, &resource.name, buf);
            put_field_head(RESOURCE_ANY_FIELD, self.any_len(resource), buf);
        }
        buf.put_slice(&self.any_type_url);
        if !resource.body.is_empty() {
            put_field_head(ANY_VALUE_FIELD, resource.body.len(), buf);
        }
    }

    /// The `resources` section alone, as the chunks a stream would send
    /// (the head must be empty).
    fn into_section(mut self) -> Section {
        debug_assert!(self.head.is_empty() && self.section.is_none());
        self.measure();
        let (len, resource_bytes) = (self.len, self.resource_bytes);
        // The copied bytes go into one allocation of their exact length.
        let shared: usize = (self.resources.values())
            .flat_map(|r| {
                let parts = r.body.parts();
                parts.iter().filter(move |p| is_shared(p, parts.len()))
            })
            .map(Bytes::len)
            .sum();
        let mut chunks = Chunks {
            response: self,
            queue: VecDeque::new(),
            started: true,
            cursor: Cursor::Start,
            next_in_section: 0,
            buf: BytesMut::with_capacity(len - shared),
        };
        let chunks: Vec<Bytes> = std::iter::from_fn(|| chunks.next()).collect();
        debug_assert_eq!(chunks.iter().map(Bytes::len).sum::<usize>(), len);
        Section {
            chunks,
            len,
            resource_bytes,
        }
    }

    /// Marks the response as sending the whole of `snapshot`'s map of its
    /// type, when it does (the map itself, not a part or a copy): its
    /// `resources` section is then taken from the process's
    /// [`SectionCache`] when there, or written there, once the response is
    /// sent ([`WireResponse::into_chunks`]). Streams of one proxy class
    /// share their snapshot's maps, so each of them sends the same section.
    /// Not for the naive baseline, whose maps are each proxy's own.
    ///
    /// A section kept already also tells the response's length, so the
    /// response skips its own pass over the resources.
    pub(crate) fn share_section(&mut self, snapshot: &ProxySnapshot) {
        if self.resources.ptr_eq(snapshot.of(self.type_url)) {
            self.keep_in = Some(&SECTIONS);
            self.take_kept_section(&SECTIONS);
        }
    }

    /// Takes the section of this response's map kept in `sections`, if
    /// written, with the lengths it tells.
    fn take_kept_section(&mut self, sections: &SectionCache) {
        if let Some(section) = sections.kept(self.type_url, self.layout, &self.resources) {
            self.len = self.head.len() + section.len;
            self.resource_bytes = section.resource_bytes;
            self.measured = true;
            self.section = Some(section);
        }
    }

    /// The gRPC message as chunks, produced as they are asked for.
    ///
    /// # Errors
    /// The message is longer than `max_bytes`: the length in bytes.
    pub(crate) fn into_chunks(mut self, max_bytes: usize) -> Result<Chunks, usize> {
        self.measure();
        if self.len > max_bytes || u32::try_from(self.len).is_err() {
            return Err(self.len);
        }
        if let Some(sections) = self.keep_in.take().filter(|_| self.section.is_none()) {
            let (type_url, layout) = (self.type_url, self.layout);
            let size = self.len - self.head.len();
            let map = &self.resources;
            self.section = sections.section(type_url, layout, map, size, || {
                Self::new(type_url, layout, Bytes::new(), map.clone()).into_section()
            });
        }
        Ok(Chunks {
            response: self,
            queue: VecDeque::new(),
            started: false,
            cursor: Cursor::Start,
            next_in_section: 0,
            buf: BytesMut::new(),
        })
    }
}

/// Length of a length-delimited field of `len` bytes with its key (field
/// numbers below 16 have one-byte keys).
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Length of a string field: nothing when empty (proto3 leaves defaults out).
fn string_field_len(value: &str) -> usize {
    match value.len() {
        0 => 0,
        len => field_len(len),
    }
}

fn put_string_field(field: u32, value: &str, buf: &mut BytesMut) {
    if !value.is_empty() {
        put_field_head(field, value.len(), buf);
        buf.put_slice(value.as_bytes());
    }
}

fn put_field_head(field: u32, len: usize, buf: &mut BytesMut) {
    debug_assert!(field < 16, "field_len counts a one-byte key");
    encode_key(field, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

/// Where a response's resources have been read up to.
#[derive(Debug)]
enum Cursor {
    /// Nothing read yet.
    Start,
    /// The resources up to this name are read.
    After(Arc<str>),
    /// All are read.
    Done,
}

/// A response's gRPC message as chunks of bytes (see the module doc).
#[derive(Debug)]
pub(crate) struct Chunks {
    response: WireResponse,
    queue: VecDeque<Bytes>,
    started: bool,
    cursor: Cursor,
    /// With an encoded section: the index of its next chunk.
    next_in_section: usize,
    /// Where copied bytes are written (what is left of the last chunk's
    /// allocation).
    buf: BytesMut,
}

impl Chunks {
    /// Resources after the cursor, at most [`BATCH`], and moves the cursor.
    fn next_batch(&mut self) -> Vec<Resource> {
        let map = &self.response.resources;
        let batch: Vec<Resource> = match &self.cursor {
            Cursor::Done => Vec::new(),
            Cursor::After(last) => map
                .range::<_, str>((Bound::Excluded(&**last), Bound::Unbounded))
                .take(BATCH)
                .map(|(_, r)| r.clone())
                .collect(),
            Cursor::Start => map.values().take(BATCH).cloned().collect(),
        };
        self.cursor = match batch.last() {
            None => Cursor::Done,
            Some(last) => Cursor::After(last.name.clone()),
        };
        batch
    }

    /// The gRPC prefix and the message's fields other than `resources`,
    /// on the first call; empty after.
    fn start(&mut self) -> BytesMut {
        let mut buf = std::mem::take(&mut self.buf);
        if !self.started {
            self.started = true;
            buf.reserve(GRPC_PREFIX_BYTES + self.response.head.len());
            buf.put_u8(0);
            buf.put_u32(self.response.len as u32);
            buf.put_slice(&self.response.head);
        }
        buf
    }

    /// Fills the queue with the next chunks; leaves it empty at the end.
    fn refill(&mut self) {
        let mut buf = self.start();
        while self.queue.is_empty() && buf.len() < CHUNK_BYTES {
            let batch = self.next_batch();
            if batch.is_empty() {
                break;
            }
            for resource in &batch {
                self.response.put_entry_head(resource, &mut buf);
                let parts = resource.body.parts();
                for part in parts {
                    if !is_shared(part, parts.len()) {
                        buf.put_slice(part);
                        if buf.len() >= CHUNK_BYTES {
                            self.queue.push_back(buf.split().freeze());
                        }
                    } else {
                        self.queue.push_back(buf.split().freeze());
                        self.queue.push_back(part.clone());
                    }
                }
            }
        }
        if !buf.is_empty() {
            self.queue.push_back(buf.split().freeze());
        }
        // What is left of its allocation serves the next refill.
        self.buf = buf;
        self.queue.retain(|chunk| !chunk.is_empty());
    }
}

/// Whether a part of a body of `parts` parts is sent as a chunk of its own
/// (shared with the snapshot) rather than copied into the chunk being built.
fn is_shared(part: &Bytes, parts: usize) -> bool {
    let share_from = match parts {
        1 => SHARE_FROM_BYTES,
        _ => CHUNK_BYTES,
    };
    part.len() >= share_from
}

impl Iterator for Chunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.response.section.is_some() {
            if !self.started {
                return Some(self.start().freeze());
            }
            let section = self.response.section.as_ref()?;
            let chunk = section.chunks.get(self.next_in_section).cloned();
            self.next_in_section += 1;
            return chunk;
        }
        if self.queue.is_empty() {
            self.refill();
        }
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Body;
    use envoy_types::pb::envoy::config::core::v3::ControlPlane;

    /// Resources named `r000`.. whose bodies have the given lengths, so
    /// that some are copied and some are shared; every third body is cut
    /// into parts (a route configuration assembled from shared virtual
    /// hosts) at a third and 1,000 bytes before its end (two parts when
    /// those coincide, below about 1,500 bytes).
    fn resources(lengths: &[usize]) -> Vec<Resource> {
        lengths
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let body: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
                let body = if i % 3 == 2 {
                    let body = Bytes::from(body);
                    let (a, b) = (len / 3, len.saturating_sub(1000).max(len / 3));
                    Body::from_parts(vec![body.slice(..a), body.slice(a..b), body.slice(b..)])
                } else {
                    Body::from(body)
                };
                Resource::new(format!("r{i:03}"), body, format!("h{i}"))
            })
            .collect()
    }

    fn by_name(list: Vec<Resource>) -> ResourceMap {
        list.into_iter().map(|r| (r.name.clone(), r)).collect()
    }

    /// Lengths around the sharing threshold and the chunk size, and enough
    /// of them for several batches.
    fn lengths() -> Vec<usize> {
        let mut lengths = vec![0, 1, 127, 128, SHARE_FROM_BYTES - 1, SHARE_FROM_BYTES];
        lengths.extend([CHUNK_BYTES - 1, CHUNK_BYTES, 70_000]);
        lengths.extend((0..200).map(|i| (i * 37) % 900));
        lengths
    }

    /// The gRPC message of a response: checks the prefix, returns the body.
    fn message(response: WireResponse) -> Vec<u8> {
        let chunks: Vec<Bytes> = response
            .into_chunks(usize::MAX)
            .expect("no limit")
            .collect();
        message_of(&chunks)
    }

    /// The gRPC message sent as `chunks`: checks the prefix, returns the body.
    fn message_of(chunks: &[Bytes]) -> Vec<u8> {
        let bytes: Vec<u8> = chunks.iter().flat_map(|chunk| chunk.to_vec()).collect();
        assert_eq!(bytes[0], 0, "uncompressed");
        let len = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
        assert_eq!(
            len,
            bytes.len() - GRPC_PREFIX_BYTES,
            "the prefix gives the length"
        );
        bytes[GRPC_PREFIX_BYTES..].to_vec()
    }

    /// Whether two lists of chunks are the same buffers.
    fn same(a: &[Bytes], b: &[Bytes]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.as_ptr() == y.as_ptr() && x.len() == y.len())
    }

    /// A fresh cache that lives as long as the test process, as the
    /// server's does.
    fn fresh_cache() -> &'static SectionCache {
        Box::leak(Box::default())
    }

    /// A response of `map` with the head `fields`, sending its section
    /// through `sections` when given (as a whole snapshot map does), sent:
    /// its chunks.
    fn send(
        sections: Option<&'static SectionCache>,
        type_url: TypeUrl,
        layout: Layout,
        fields: &impl Message,
        map: &ResourceMap,
    ) -> Vec<Bytes> {
        let mut wire =
            WireResponse::new(type_url, layout, fields.encode_to_vec().into(), map.clone());
        if let Some(sections) = sections {
            // As `share_section` does with the process's cache.
            wire.keep_in = Some(sections);
            wire.take_kept_section(sections);
        }
        wire.into_chunks(usize::MAX).unwrap().collect()
    }

    /// The `Any` messages prost would build for `list`.
    fn anys(type_url: TypeUrl, list: &[Resource]) -> Vec<Any> {
        list.iter()
            .map(|r| Any {
                type_url: type_url.as_str().into(),
                value: r.body.to_vec(),
            })
            .collect()
    }

    fn control_plane() -> Option<ControlPlane> {
        Some(ControlPlane {
            identifier: "sextant/test".into(),
        })
    }

    #[test]
    fn a_sotw_response_decodes_to_the_message_prost_would_build() {
        let list = resources(&lengths());
        let map = by_name(list.clone());
        let fields = discovery::DiscoveryResponse {
            version_info: "v-42".into(),
            type_url: TypeUrl::Cluster.as_str().into(),
            nonce: "7".into(),
            control_plane: control_plane(),
            ..Default::default()
        };
        let expected = discovery::DiscoveryResponse {
            resources: anys(TypeUrl::Cluster, &list),
            ..fields.clone()
        };
        let mut wire = WireResponse::sotw(TypeUrl::Cluster, fields.clone(), map.clone());
        assert_eq!(wire.len(), expected.encoded_len());
        assert_eq!(wire.resource_count(), list.len());
        assert_eq!(
            wire.resource_bytes(),
            list.iter().map(|r| r.body.len()).sum::<usize>()
        );
        for (how, sent) in every_way(TypeUrl::Cluster, Layout::Sotw, &fields, &map) {
            let decoded = discovery::DiscoveryResponse::decode(&sent[..]).unwrap();
            assert_eq!(decoded, expected, "{how}");
        }
    }

    /// The message of a response of `map` with `fields`, sent each way a
    /// stream can send it: written as it is sent; from a section written
    /// for it; from the section kept from the previous one (which must be
    /// the same chunks).
    fn every_way(
        type_url: TypeUrl,
        layout: Layout,
        fields: &impl Message,
        map: &ResourceMap,
    ) -> [(&'static str, Vec<u8>); 3] {
        assert!(map.len() >= super::super::sections::MIN_RESOURCES);
        let sections = fresh_cache();
        let written = send(None, type_url, layout, fields, map);
        let first = send(Some(sections), type_url, layout, fields, map);
        let second = send(Some(sections), type_url, layout, fields, map);
        assert!(same(&first[1..], &second[1..]), "the section is sent again");
        assert!(!same(&written[1..], &first[1..]));
        [
            ("written as sent", message_of(&written)),
            ("from a section written for it", message_of(&first)),
            ("from a section kept", message_of(&second)),
        ]
    }

    #[test]
    fn a_delta_response_decodes_to_the_message_prost_would_build() {
        let list = resources(&lengths());
        let fields = discovery::DeltaDiscoveryResponse {
            system_version_info: "v-1".into(),
            type_url: TypeUrl::ClusterLoadAssignment.as_str().into(),
            removed_resources: vec!["gone-a".into(), "gone-b".into()],
            nonce: "3".into(),
            control_plane: control_plane(),
            ..Default::default()
        };
        let expected = discovery::DeltaDiscoveryResponse {
            resources: list
                .iter()
                .map(|r| discovery::Resource {
                    name: r.name.to_string(),
                    version: r.hash.to_string(),
                    resource: Some(Any {
                        type_url: TypeUrl::ClusterLoadAssignment.as_str().into(),
                        value: r.body.to_vec(),
                    }),
                    ..Default::default()
                })
                .collect(),
            ..fields.clone()
        };
        let map = by_name(list);
        let url = TypeUrl::ClusterLoadAssignment;
        let mut wire = WireResponse::delta(url, fields.clone(), map.clone());
        assert_eq!(wire.len(), expected.encoded_len());
        for (how, sent) in every_way(url, Layout::Delta, &fields, &map) {
            let decoded = discovery::DeltaDiscoveryResponse::decode(&sent[..]).unwrap();
            assert_eq!(decoded, expected, "{how}");
        }
    }

    /// Streams sending the same large map send the chunks of one section,
    /// each after a head of its own (the head first); a section serves only
    /// its map (by identity: a map with one resource changed is another),
    /// type and layout; small maps are not kept, and the least recently
    /// used section goes first.
    #[test]
    fn a_kept_section_serves_every_stream_of_its_map_and_no_other() {
        use super::super::sections::{ENTRIES, MIN_RESOURCES};
        let sections = fresh_cache();
        let map = by_name(resources(&lengths()));
        let nonce = |n: &str| discovery::DiscoveryResponse {
            nonce: n.into(),
            ..Default::default()
        };
        let sotw = |n: &str, map: &ResourceMap| {
            send(
                Some(sections),
                TypeUrl::Cluster,
                Layout::Sotw,
                &nonce(n),
                map,
            )
        };
        let first = sotw("1", &map);
        let second = sotw("2", &map);
        assert_eq!(sections.len(), 1);
        assert!(
            same(&first[1..], &second[1..]),
            "the section's chunks are shared"
        );
        let head = |n: &str| {
            let mut head = vec![0];
            head.extend(
                u32::try_from(message_of(&first).len())
                    .unwrap()
                    .to_be_bytes(),
            );
            head.extend(nonce(n).encode_to_vec());
            head
        };
        assert_eq!(
            first[0],
            head("1"),
            "the prefix and the stream's own head first"
        );
        assert_eq!(second[0], head("2"));

        let delta = send(
            Some(sections),
            TypeUrl::Cluster,
            Layout::Delta,
            &nonce("3"),
            &map,
        );
        assert_eq!(sections.len(), 2, "another layout, another section");
        assert!(!same(&first[1..], &delta[1..]));
        let url = TypeUrl::ClusterLoadAssignment;
        let other_type = send(Some(sections), url, Layout::Sotw, &nonce("3"), &map);
        assert_eq!(sections.len(), 3, "another type, another section");
        assert!(!same(&first[1..], &other_type[1..]));

        let mut changed = map.clone();
        changed.insert(
            "r005".into(),
            Resource::new("r005", vec![9u8; 40], "changed"),
        );
        let after = sotw("4", &changed);
        assert_eq!(sections.len(), 4, "a changed map is another map");
        let decoded = discovery::DiscoveryResponse::decode(&message_of(&after)[..]).unwrap();
        assert!(decoded.resources.iter().any(|a| a.value == vec![9u8; 40]));

        let small = by_name(resources(&[10; MIN_RESOURCES - 1]));
        sotw("5", &small);
        assert_eq!(sections.len(), 4, "a small map is written per stream");

        // `map` used last: the others go before it.
        assert!(same(&first[1..], &sotw("6", &map)[1..]));
        for i in 0..ENTRIES - 1 {
            let mut other = map.clone();
            other.insert("zz".into(), Resource::new("zz", vec![i as u8], "other"));
            sotw("7", &other);
        }
        assert_eq!(sections.len(), ENTRIES);
        assert!(
            same(&first[1..], &sotw("8", &map)[1..]),
            "the most recently used stays"
        );
        let mut other = map.clone();
        other.insert("zz".into(), Resource::new("zz", vec![200], "other"));
        for _ in 0..ENTRIES {
            other.insert("zz".into(), Resource::new("zz", vec![201], "again"));
            sotw("9", &other);
        }
        let again = sotw("10", &map);
        assert!(
            !same(&first[1..], &again[1..]),
            "the least recently used was dropped"
        );
        assert_eq!(
            message_of(&again)[again[0].len() - GRPC_PREFIX_BYTES..],
            message_of(&first)[first[0].len() - GRPC_PREFIX_BYTES..],
            "and written again alike"
        );
    }

    /// The sweep drops the sections no stream asked for within the idle
    /// time and keeps the others, still shared.
    #[test]
    fn idle_sections_are_dropped_and_used_ones_kept() {
        let sections = fresh_cache();
        let (old, recent) = (
            by_name(resources(&lengths())),
            by_name(resources(&[40; 70])),
        );
        let sotw = |map: &ResourceMap| {
            send(
                Some(sections),
                TypeUrl::Cluster,
                Layout::Sotw,
                &discovery::DiscoveryResponse::default(),
                map,
            )
        };
        sotw(&old);
        std::thread::sleep(std::time::Duration::from_millis(100));
        let first = sotw(&recent);
        assert_eq!(sections.len(), 2);
        let now = std::time::Instant::now();
        let idle = std::time::Duration::from_millis(50);
        assert_eq!(sections.expire_idle(now, idle), 1, "only the old map's");
        assert_eq!(sections.len(), 1);
        assert!(
            same(&first[1..], &sotw(&recent)[1..]),
            "the used one stays shared"
        );
        assert_eq!(
            sections.expire_idle(now + 2 * idle, idle),
            1,
            "idle in its turn"
        );
        assert_eq!(sections.len(), 0);
    }

    /// A response whose map has a kept section takes its lengths from the
    /// section (no pass over the resources), and they are the ones a pass
    /// finds.
    #[test]
    fn a_kept_section_tells_the_response_its_lengths() {
        let sections = fresh_cache();
        let map = by_name(resources(&lengths()));
        let fields = discovery::DeltaDiscoveryResponse {
            nonce: "7".into(),
            ..Default::default()
        };
        let response =
            || WireResponse::delta(TypeUrl::ClusterLoadAssignment, fields.clone(), map.clone());
        let mut first = response();
        first.take_kept_section(sections);
        assert!(!first.measured, "nothing kept yet");
        send(
            Some(sections),
            TypeUrl::ClusterLoadAssignment,
            Layout::Delta,
            &fields,
            &map,
        );
        let mut second = response();
        second.take_kept_section(sections);
        assert!(second.measured && second.section.is_some());
        let (len, resource_bytes) = (second.len, second.resource_bytes);
        let mut measured = response();
        assert_eq!(
            (len, resource_bytes),
            (measured.len(), measured.resource_bytes())
        );
        let sent: Vec<Bytes> = second.into_chunks(usize::MAX).unwrap().collect();
        assert_eq!(message_of(&sent).len(), len);
    }

    /// The cache keeps at most its byte budget of sections, counted before
    /// they are written: with room for two, a third drops the oldest; a
    /// section over the whole budget is not kept.
    #[test]
    fn sections_over_the_byte_budget_are_dropped_oldest_first() {
        let map = by_name(resources(&lengths()));
        let size = send(None, TypeUrl::Cluster, Layout::Sotw, &nonce(), &map)
            .iter()
            .map(Bytes::len)
            .sum::<usize>()
            - GRPC_PREFIX_BYTES;
        fn nonce() -> discovery::DiscoveryResponse {
            Default::default()
        }
        let sections: &'static SectionCache =
            Box::leak(Box::new(SectionCache::with_max_bytes(2 * size + 1000)));
        let maps: Vec<ResourceMap> = (0..3)
            .map(|i| {
                let mut other = map.clone();
                other.insert("zz".into(), Resource::new("zz", vec![i], "other"));
                other
            })
            .collect();
        let sent: Vec<Vec<Bytes>> = (maps.iter())
            .map(|m| send(Some(sections), TypeUrl::Cluster, Layout::Sotw, &nonce(), m))
            .collect();
        assert_eq!(sections.len(), 2);
        let resend = |i: usize| {
            send(
                Some(sections),
                TypeUrl::Cluster,
                Layout::Sotw,
                &nonce(),
                &maps[i],
            )
        };
        assert!(same(&sent[2][1..], &resend(2)[1..]), "the newest is kept");
        assert!(
            same(&sent[1][1..], &resend(1)[1..]),
            "the one before it too"
        );
        assert!(
            !same(&sent[0][1..], &resend(0)[1..]),
            "the oldest was dropped"
        );

        let tight: &'static SectionCache =
            Box::leak(Box::new(SectionCache::with_max_bytes(size - 1)));
        send(Some(tight), TypeUrl::Cluster, Layout::Sotw, &nonce(), &map);
        assert_eq!(
            tight.len(),
            0,
            "a section over the whole budget is not kept"
        );
    }

    /// Only a response carrying the snapshot's own map of its type (not a
    /// part of it, not a copy) shares its section.
    #[test]
    fn only_a_whole_snapshot_map_shares_its_section() {
        use crate::server::test_support::{cluster, snapshot, CDS};
        let snapshot = snapshot(&[(CDS, (0..70).map(|i| cluster(&format!("c{i}"), 1)).collect())]);
        let whole = snapshot.of(CDS).clone();
        let part: ResourceMap = whole
            .iter()
            .take(69)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let copy: ResourceMap = whole.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (what, map, shares) in [
            ("whole", whole, true),
            ("part", part, false),
            ("copy", copy, false),
        ] {
            let mut wire = WireResponse::sotw(CDS, Default::default(), map);
            wire.share_section(&snapshot);
            assert_eq!(wire.keep_in.is_some(), shares, "{what}");
        }
        let mut other_type = WireResponse::sotw(
            TypeUrl::Listener,
            Default::default(),
            snapshot.of(CDS).clone(),
        );
        other_type.share_section(&snapshot);
        assert!(other_type.keep_in.is_none(), "the map of another type");
    }

    #[test]
    fn an_empty_response_is_its_fields_alone() {
        let fields = discovery::DiscoveryResponse {
            version_info: "v".into(),
            type_url: TypeUrl::Listener.as_str().into(),
            nonce: "1".into(),
            ..Default::default()
        };
        let wire = WireResponse::sotw(TypeUrl::Listener, fields.clone(), Default::default());
        assert_eq!(message(wire), fields.encode_to_vec());
    }

    #[test]
    fn large_parts_of_a_body_are_shared_and_small_ones_copied() {
        // A route configuration's shape: shared runs, and the class's own
        // virtual hosts between them (one part of 2,000 bytes: above the
        // threshold of whole bodies, below that of parts).
        let bytes = |len: usize, seed: u8| Bytes::from(vec![seed; len]);
        let parts = vec![
            bytes(20_000, 1),
            bytes(2_000, 2),
            bytes(30_000, 3),
            bytes(500, 4),
        ];
        let body = Body::from_parts(parts.clone());
        let mut list = resources(&[10, 20]);
        list.push(Resource::new("r002", body, "h2"));
        let wire = WireResponse::sotw(
            TypeUrl::RouteConfiguration,
            Default::default(),
            by_name(list.clone()),
        );
        let expected = discovery::DiscoveryResponse {
            resources: anys(TypeUrl::RouteConfiguration, &list),
            ..Default::default()
        };
        let chunks: Vec<Bytes> = wire.into_chunks(usize::MAX).unwrap().collect();
        let sent = |part: &Bytes| chunks.iter().any(|c| c.as_ptr() == part.as_ptr());
        assert!(sent(&parts[0]) && !sent(&parts[1]) && sent(&parts[2]) && !sent(&parts[3]));
        let message: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
        assert_eq!(
            discovery::DiscoveryResponse::decode(&message[GRPC_PREFIX_BYTES..]).unwrap(),
            expected
        );
    }

    #[test]
    fn large_bodies_are_shared_not_copied() {
        let list = resources(&[10, 70_000, 20]);
        let big = list[1].body.clone();
        let wire = WireResponse::delta(TypeUrl::Cluster, Default::default(), by_name(list));
        let chunks: Vec<Bytes> = wire.into_chunks(usize::MAX).unwrap().collect();
        assert!(
            chunks
                .iter()
                .any(|c| c.as_ptr() == big.as_ptr() && c.len() == big.len()),
            "the 70,000-byte body is sent from the snapshot's own buffer"
        );
        assert!(
            chunks.iter().all(|c| !c.is_empty()),
            "no empty chunk is sent"
        );
    }

    #[test]
    fn a_message_over_the_limit_is_refused_with_its_length() {
        let list = resources(&[5_000]);
        let mut wire = WireResponse::delta(TypeUrl::Cluster, Default::default(), by_name(list));
        let len = wire.len();
        assert_eq!(wire.into_chunks(len - 1).err(), Some(len));
    }
}
