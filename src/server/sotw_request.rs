//! A SotW `DiscoveryRequest` decoded for the ACK path: its
//! `resource_names` are not copied out of the message, only counted and
//! digested, and read from the message again when they are needed.
//!
//! Envoy repeats every subscribed name in each SotW request, ACKs included
//! (for EDS, every EDS cluster: 6,000 names, ~360 KB, per ACK at 1,000
//! services), and almost every such request names what the previous one
//! did. A profile of 300 streams ACKing one endpoint change showed most of
//! the server's CPU in decoding those names into strings and comparing
//! them with the subscription. A repeated list is now recognized by its
//! digest ([`RequestNames::digest`]); names are read only when it differs.

use super::grpc::RequestMessage;
use bytes::{Buf, Bytes};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, ResourceLocator};
use envoy_types::pb::google::rpc::Status;
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};
use std::hash::{BuildHasher, Hasher};
use std::ops::Range;
use std::sync::LazyLock;

/// `DiscoveryRequest.resource_names`' field number.
const RESOURCE_NAMES: u32 = 3;

/// The key byte of a `resource_names` field (number 3, length-delimited).
const NAME_KEY: u8 = (RESOURCE_NAMES as u8) << 3 | 2;

/// The fields of a `DiscoveryRequest` other than `resource_names` (same
/// field numbers; `resource_names` is skipped as unknown).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestHead {
    /// `version_info`.
    #[prost(string, tag = "1")]
    pub version_info: String,
    /// `node` (first request of a stream).
    #[prost(message, optional, tag = "2")]
    pub node: Option<Node>,
    /// `type_url`.
    #[prost(string, tag = "4")]
    pub type_url: String,
    /// `response_nonce`.
    #[prost(string, tag = "5")]
    pub response_nonce: String,
    /// `error_detail`: present on a NACK.
    #[prost(message, optional, tag = "6")]
    pub error_detail: Option<Status>,
    /// `resource_locators` (xDS-TP; not served by Sextant, decoded so that
    /// a malformed one fails the request as it does with prost).
    #[prost(message, repeated, tag = "7")]
    pub resource_locators: Vec<ResourceLocator>,
}

/// A SotW `DiscoveryRequest`: [`RequestHead`] and [`RequestNames`]. Accepts
/// and refuses exactly the messages prost's `DiscoveryRequest` does, with
/// its errors (a name that is not UTF-8 fails the decode).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SotwRequest {
    /// Every field but `resource_names`.
    pub head: RequestHead,
    /// `resource_names`.
    pub resource_names: RequestNames,
}

impl RequestMessage for SotwRequest {
    fn decode_message(message: Bytes) -> Result<Self, DecodeError> {
        let Some((resource_names, run)) = RequestNames::read(&message) else {
            return Self::decode_with_prost(message);
        };
        // Names in one run of fields: the other fields are the bytes
        // around it, decoded without walking over thousands of names.
        let head = match run {
            Some(run) => {
                RequestHead::decode(message.slice(..run.start).chain(message.slice(run.end..)))
            }
            None => RequestHead::decode(message.clone()),
        };
        match head {
            Ok(head) => Ok(SotwRequest {
                head,
                resource_names,
            }),
            Err(_) => Self::decode_with_prost(message),
        }
    }
}

impl SotwRequest {
    /// prost's decoding of a message the fast path refused: its error
    /// (which names the field); were prost to accept it, its fields.
    fn decode_with_prost(message: Bytes) -> Result<Self, DecodeError> {
        let full = DiscoveryRequest::decode(message)?;
        Ok(SotwRequest {
            resource_names: full.resource_names.iter().map(String::as_str).collect(),
            head: RequestHead {
                version_info: full.version_info,
                node: full.node,
                type_url: full.type_url,
                response_nonce: full.response_nonce,
                error_detail: full.error_detail,
                resource_locators: full.resource_locators,
            },
        })
    }
}

/// The `resource_names` of a request, in order: the bytes of their fields
/// (a reference into the request message), their count and their digest.
#[derive(Clone, Debug, Default)]
pub struct RequestNames {
    /// Every `resource_names` field, maybe among other fields.
    fields: Bytes,
    count: usize,
    digest: u128,
}

/// Keys of the two halves of [`RequestNames::digest`], random per process:
/// one pair for names read as one run of fields, one for names read one
/// by one (the same list read both ways gets two digests, which only
/// costs a comparison).
static DIGEST_KEYS: LazyLock<[ahash::RandomState; 4]> =
    LazyLock::new(|| std::array::from_fn(|_| ahash::RandomState::new()));

impl RequestNames {
    /// Counts, checks (UTF-8) and digests the names in `message`, a
    /// `DiscoveryRequest`; with the byte range of their fields when they
    /// are one run with no other field between them (as Envoy and prost
    /// write them). `None` when a field is malformed.
    fn read(message: &Bytes) -> Option<(Self, Option<Range<usize>>)> {
        let mut count = 0;
        let mut run: Option<Range<usize>> = None;
        let mut contiguous = true;
        for field in fields(message) {
            let field = field.ok()?;
            count += 1;
            match &mut run {
                None => run = Some(field.whole.clone()),
                Some(r) if r.end == field.whole.start => r.end = field.whole.end,
                Some(_) => contiguous = false,
            }
        }
        let keys = &*DIGEST_KEYS;
        let digest = |a: &ahash::RandomState, b: &ahash::RandomState, bytes: &[u8]| {
            (u128::from(a.hash_one(bytes)) << 64) | u128::from(b.hash_one(bytes))
        };
        match run {
            Some(run) if contiguous => {
                let bytes = &message[run.clone()];
                // Keys and lengths under 128 are ASCII: an ASCII run is
                // valid UTF-8 in every name, checked in one pass.
                if !bytes.is_ascii() && !all_utf8(bytes) {
                    return None;
                }
                let names = RequestNames {
                    fields: message.slice(run.clone()),
                    count,
                    digest: digest(&keys[0], &keys[1], bytes),
                };
                Some((names, Some(run)))
            }
            _ => {
                // Names among other fields: checked and digested one by one.
                let (mut a, mut b) = (keys[2].build_hasher(), keys[3].build_hasher());
                for field in fields(message) {
                    let name = std::str::from_utf8(&message[field.ok()?.name]).ok()?;
                    for h in [&mut a, &mut b] {
                        h.write_usize(name.len());
                        h.write(name.as_bytes());
                    }
                }
                let names = RequestNames {
                    fields: message.clone(),
                    count,
                    digest: (u128::from(a.finish()) << 64) | u128::from(b.finish()),
                };
                Some((names, None))
            }
        }
    }

    /// How many names (duplicates counted).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the request names nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The names, in request order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        fields(&self.fields).map(|field| {
            let name = &self.fields[field.expect("checked when read").name];
            std::str::from_utf8(name).expect("checked when read")
        })
    }

    /// A 128-bit keyed digest of the names in order: equal lists read the
    /// same way have equal digests, and different lists equal ones with a
    /// chance of about 2^-128 (the keys are random per process, so a proxy
    /// cannot aim for a collision; one would only hide its own
    /// subscription change from itself).
    pub fn digest(&self) -> u128 {
        self.digest
    }
}

/// Whether every `resource_names` field of `message` is UTF-8.
fn all_utf8(message: &[u8]) -> bool {
    fields(message).all(|f| f.is_ok_and(|f| std::str::from_utf8(&message[f.name]).is_ok()))
}

/// Where one `resource_names` field is in a message.
struct NameField {
    /// The whole field: key, length and name.
    whole: Range<usize>,
    /// The name.
    name: Range<usize>,
}

/// Each `resource_names` field of `message`, in order; an `Err` item (and
/// the end) at the first malformed field of any number.
fn fields(message: &[u8]) -> impl Iterator<Item = Result<NameField, ()>> + '_ {
    let mut rest = message;
    let at = move |rest: &[u8]| message.len() - rest.len();
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let start = at(rest);
        // The common case, a name field with a one-byte length, without
        // the general decoding below (thousands per request).
        if let [NAME_KEY, len @ 0..=0x7f, tail @ ..] = rest {
            let len = usize::from(*len);
            if tail.len() >= len {
                rest = &tail[len..];
                return Some(Ok(NameField {
                    whole: start..start + 2 + len,
                    name: start + 2..start + 2 + len,
                }));
            }
        }
        let next = (|| {
            let (tag, wire_type) = encoding::decode_key(&mut rest).map_err(drop)?;
            if tag != RESOURCE_NAMES {
                encoding::skip_field(wire_type, tag, &mut rest, DecodeContext::default())
                    .map_err(drop)?;
                return Ok(None);
            }
            encoding::check_wire_type(WireType::LengthDelimited, wire_type).map_err(drop)?;
            let len =
                usize::try_from(encoding::decode_varint(&mut rest).map_err(drop)?).map_err(drop)?;
            if rest.len() < len {
                return Err(());
            }
            let name = at(rest)..at(rest) + len;
            rest.advance(len);
            Ok(Some(NameField {
                whole: start..name.end,
                name,
            }))
        })();
        match next {
            Ok(None) => continue,
            Ok(Some(field)) => return Some(Ok(field)),
            Err(()) => {
                rest = &[];
                return Some(Err(()));
            }
        }
    })
}

impl PartialEq for RequestNames {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count && self.iter().eq(other.iter())
    }
}

impl<'a> FromIterator<&'a str> for RequestNames {
    /// The names of a request that names these (for tests and fallbacks).
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let request = DiscoveryRequest {
            resource_names: iter.into_iter().map(str::to_string).collect(),
            ..Default::default()
        };
        RequestNames::read(&request.encode_to_vec().into())
            .expect("prost encodes valid names")
            .0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(names: &[&str]) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: "v1".into(),
            node: Some(Node {
                id: "sidecar~127.0.0.1~a.ns~ns.svc.cluster.local".into(),
                ..Default::default()
            }),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            type_url: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment".into(),
            response_nonce: "7".into(),
            error_detail: Some(Status {
                code: 3,
                message: "rejected".into(),
                details: vec![],
            }),
            ..Default::default()
        }
    }

    fn decode(bytes: &[u8]) -> Result<SotwRequest, DecodeError> {
        SotwRequest::decode_message(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn decodes_what_prost_decodes() {
        // A name of 300 bytes has a length that is not one ASCII byte.
        let long = "x".repeat(300);
        for names in [
            &[][..],
            &["a"],
            &["outbound|80||b.ns.svc.cluster.local", "a", "a", "", "ü"],
            &["a", &long, "b"],
        ] {
            let original = request(names);
            let ours = decode(&original.encode_to_vec()).expect("decodes");
            assert_eq!(ours.resource_names.iter().collect::<Vec<_>>(), names);
            assert_eq!(ours.resource_names.len(), names.len());
            assert_eq!(ours.head.version_info, original.version_info);
            assert_eq!(ours.head.node, original.node);
            assert_eq!(ours.head.type_url, original.type_url);
            assert_eq!(ours.head.response_nonce, original.response_nonce);
            assert_eq!(ours.head.error_detail, original.error_detail);
        }
    }

    #[test]
    fn names_are_read_wherever_they_are_and_other_fields_are_skipped() {
        // Fields out of order, names around other fields, and a field
        // (resource_locators, 7) Sextant does not read.
        let mut bytes = Vec::new();
        encoding::string::encode(3, &"x".to_string(), &mut bytes);
        encoding::string::encode(4, &"t".to_string(), &mut bytes);
        encoding::bytes::encode(7, &vec![0x0a, 0x01, b'z'], &mut bytes);
        encoding::uint32::encode(99, &5, &mut bytes);
        encoding::string::encode(3, &"y".to_string(), &mut bytes);
        let ours = decode(&bytes).expect("decodes");
        let prost = DiscoveryRequest::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(
            ours.resource_names.iter().collect::<Vec<_>>(),
            prost.resource_names
        );
        assert_eq!(ours.head.type_url, "t");
    }

    #[test]
    fn what_prost_refuses_is_refused_with_its_error() {
        let mut not_utf8 = Vec::new();
        encoding::bytes::encode(3, &vec![0xff, 0xfe], &mut not_utf8);
        let mut cut = Vec::new();
        encoding::string::encode(3, &"abcdef".to_string(), &mut cut);
        cut.truncate(cut.len() - 2);
        let mut wrong_type = Vec::new();
        encoding::uint32::encode(3, &1, &mut wrong_type);
        let mut bad_head = request(&["a"]).encode_to_vec();
        bad_head.extend([0x22, 0x02, 0xff, 0xfe]); // type_url, not UTF-8
                                                   // Not UTF-8, after another field.
        let mut apart = Vec::new();
        encoding::string::encode(3, &"ok".to_string(), &mut apart);
        encoding::string::encode(4, &"t".to_string(), &mut apart);
        encoding::bytes::encode(3, &vec![b'a', 0xc3], &mut apart);
        for bytes in [not_utf8, cut, wrong_type, bad_head, apart] {
            let prost = DiscoveryRequest::decode(bytes.as_slice()).expect_err("prost refuses");
            let ours = decode(&bytes).expect_err("refused");
            assert_eq!(ours.to_string(), prost.to_string(), "{bytes:?}");
        }
    }

    #[test]
    fn equal_lists_have_one_digest_and_any_difference_changes_it() {
        let list = |names: &[&str]| names.iter().copied().collect::<RequestNames>();
        assert_eq!(list(&["a", "b"]).digest(), list(&["a", "b"]).digest());
        // The same names in a request with other fields.
        let full = decode(&request(&["a", "b"]).encode_to_vec()).expect("decodes");
        assert_eq!(full.resource_names.digest(), list(&["a", "b"]).digest());
        for other in [
            &["b", "a"][..],
            &["a"],
            &["a", "b", "b"],
            &["ab"],
            &["a", "b", ""],
            &[],
        ] {
            assert_ne!(
                list(&["a", "b"]).digest(),
                list(other).digest(),
                "{other:?}"
            );
        }
    }

    /// Random damage to valid requests (bytes flipped, cut, inserted, fields
    /// repeated): whatever prost makes of the bytes, ours makes too.
    #[test]
    fn agrees_with_prost_on_damaged_requests() {
        let mut rng = fastrand::Rng::with_seed(7);
        let long = "n".repeat(200);
        for round in 0..50_000 {
            let names: Vec<&str> = (0..rng.usize(0..5))
                .map(|_| ["a", "outbound|80||b", "", "ü", &long][rng.usize(0..5)])
                .collect();
            let mut bytes = request(&names).encode_to_vec();
            for _ in 0..rng.usize(1..4) {
                if bytes.is_empty() {
                    break;
                }
                let at = rng.usize(0..bytes.len());
                match rng.u8(0..4) {
                    0 => bytes[at] = rng.u8(..),
                    1 => bytes.truncate(at),
                    2 => bytes.insert(at, rng.u8(..)),
                    _ => {
                        let again = bytes[at..].to_vec();
                        bytes.extend(again);
                    }
                }
            }
            let prost = DiscoveryRequest::decode(bytes.as_slice());
            let ours = decode(&bytes);
            match (prost, ours) {
                (Ok(p), Ok(o)) => {
                    assert_eq!(
                        o.resource_names.iter().collect::<Vec<_>>(),
                        p.resource_names
                    );
                    assert_eq!(o.resource_names.len(), p.resource_names.len());
                    assert_eq!(
                        (o.head.version_info, o.head.node, o.head.type_url),
                        (p.version_info, p.node, p.type_url),
                        "round {round}"
                    );
                    assert_eq!(
                        (o.head.response_nonce, o.head.error_detail),
                        (p.response_nonce, p.error_detail),
                        "round {round}"
                    );
                    assert_eq!(
                        o.head.resource_locators, p.resource_locators,
                        "round {round}"
                    );
                }
                (Err(p), Err(o)) => assert_eq!(o.to_string(), p.to_string(), "round {round}"),
                (p, o) => panic!("round {round}: prost {p:?}, ours {o:?} for {bytes:?}"),
            }
        }
    }
}
