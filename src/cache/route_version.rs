//! The content hash (the version) of an encoded route configuration, built
//! from the hashes of its virtual hosts' routes instead of hashing every
//! byte of it for every class.
//!
//! A route configuration is mostly the `routes` of its virtual hosts, and
//! those bytes are shared between proxy classes ([`super::shared`]); only
//! the virtual hosts' names and the domains each claims are the class's
//! own. So the version is the SHA-256 of, in order:
//!
//! - each top-level field record other than a virtual host (the `name`) as
//!   `0x00`, its length (`u64`, big-endian) and its bytes;
//! - each virtual host (field 2) as `0x01` and its 32-byte digest: the
//!   SHA-256 of the length (`u64`, big-endian) and bytes of its *head* (its
//!   field records before the first `routes` record, field 3: `name` and
//!   `domains`), then the SHA-256 of its *tail* (the rest: every route),
//!   which a shared part computes once per IR.
//!
//! That input is a function of the encoded bytes only
//! ([`route_configuration_hash`] computes it from them), so two classes
//! whose route configurations encode the same get the same version however
//! they were built, and the bytes can be read back from it (up to SHA-256
//! collisions), so any change in content changes the version. Its first 8
//! bytes are written in lower-case hex, like [`super::short_hash`].

use prost::encoding::{decode_key, decode_varint, WireType};
use sha2::{Digest, Sha256};

/// Field number of `RouteConfiguration.virtual_hosts`.
const VIRTUAL_HOSTS: u32 = 2;
/// Field number of `VirtualHost.routes`.
const ROUTES: u32 = 3;

/// The SHA-256 of a virtual host's tail (its encoded `routes` records).
pub(super) fn routes_digest(tail: &[u8]) -> [u8; 32] {
    Sha256::digest(tail).into()
}

/// The digest of a virtual host: of its records before its first `routes`
/// record, and [`routes_digest`] of the rest.
pub(super) fn virtual_host_digest(head: &[u8], tail_digest: &[u8; 32]) -> [u8; 32] {
    let mut sha = Sha256::new();
    sha.update((head.len() as u64).to_be_bytes());
    sha.update(head);
    sha.update(tail_digest);
    sha.finalize().into()
}

/// The version of a route configuration, fed one field record at a time
/// in encoding order (see the module docs).
pub(super) struct RouteVersion(Sha256);

impl RouteVersion {
    pub(super) fn new() -> Self {
        RouteVersion(Sha256::new())
    }

    /// A whole top-level field record (key, length, value) that is not a
    /// virtual host.
    pub(super) fn field(&mut self, record: &[u8]) {
        self.0.update([0x00]);
        self.0.update((record.len() as u64).to_be_bytes());
        self.0.update(record);
    }

    /// A virtual host, by its [`virtual_host_digest`].
    pub(super) fn virtual_host(&mut self, digest: &[u8; 32]) {
        self.0.update([0x01]);
        self.0.update(digest);
    }

    /// The first 16 hex digits of the digest.
    pub(super) fn finish(self) -> String {
        super::hex16(&self.0.finalize())
    }
}

/// The version of an encoded `RouteConfiguration`, from its bytes alone:
/// what [`super::shared`] computes while it assembles one. Bytes that are
/// not a well-formed message are hashed whole as one record.
pub fn route_configuration_hash(body: &[u8]) -> String {
    let mut version = RouteVersion::new();
    match records(body) {
        Some(fields) => {
            for (field, record, value) in fields {
                match value.filter(|_| field == VIRTUAL_HOSTS) {
                    Some(vhost) => {
                        let split = records(vhost)
                            .and_then(|r| {
                                r.iter().find(|(f, _, _)| *f == ROUTES).map(|(_, rec, _)| {
                                    rec.as_ptr() as usize - vhost.as_ptr() as usize
                                })
                            })
                            .unwrap_or(vhost.len());
                        let (head, tail) = vhost.split_at(split);
                        version.virtual_host(&virtual_host_digest(head, &routes_digest(tail)));
                    }
                    None => version.field(record),
                }
            }
        }
        None => version.field(body),
    }
    version.finish()
}

/// One field record: its number, the whole record and, when it is
/// length-delimited, its value.
type Record<'a> = (u32, &'a [u8], Option<&'a [u8]>);

/// The field records of an encoded message, or `None` if it is malformed.
fn records(message: &[u8]) -> Option<Vec<Record<'_>>> {
    let mut out = Vec::new();
    let mut rest = message;
    while !rest.is_empty() {
        let start = rest;
        let (field, wire_type) = decode_key(&mut rest).ok()?;
        let value = match wire_type {
            WireType::Varint => {
                decode_varint(&mut rest).ok()?;
                None
            }
            WireType::SixtyFourBit => {
                rest = rest.get(8..)?;
                None
            }
            WireType::ThirtyTwoBit => {
                rest = rest.get(4..)?;
                None
            }
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut rest).ok()?).ok()?;
                let value = rest.get(..len)?;
                rest = &rest[len..];
                Some(value)
            }
            WireType::StartGroup | WireType::EndGroup => return None,
        };
        let record = &start[..start.len() - rest.len()];
        out.push((field, record, value));
    }
    Some(out)
}
