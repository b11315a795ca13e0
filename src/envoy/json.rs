//! Canonical protobuf JSON for Envoy protos, with Envoy's own field naming
//! (proto field names, as Envoy's `/config_dump` prints them).
//!
//! The descriptors come from envoy-types' FileDescriptorSet (copied by
//! build.rs), decoded once into a prost-reflect pool.

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use std::sync::LazyLock;

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(
        include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin")).as_ref(),
    )
    .expect("envoy-types ships a valid FileDescriptorSet")
});

/// Why a message could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The type is not in envoy-types' descriptors.
    #[error("unknown message type {0}")]
    UnknownType(String),
    /// The bytes are not a valid encoding of the type.
    #[error("cannot decode {type_name}: {source}")]
    Decode {
        /// Full message name.
        type_name: String,
        /// The decoder's error.
        source: prost::DecodeError,
    },
    /// JSON serialization failed.
    #[error("cannot render {type_name} as JSON: {source}")]
    Serialize {
        /// Full message name.
        type_name: String,
        /// The serializer's error.
        source: serde_json::Error,
    },
}

/// Renders encoded message `bytes` of `type_name` (full name, e.g.
/// `envoy.config.cluster.v3.Cluster`, or a type URL) as JSON; `Any` fields
/// inside are expanded with their `@type`.
///
/// # Errors
/// [`JsonError`] for an unknown type or bytes that do not decode.
pub fn encoded_to_json(type_name: &str, bytes: &[u8]) -> Result<serde_json::Value, JsonError> {
    let type_name = type_name.rsplit('/').next().unwrap_or(type_name);
    let descriptor = POOL
        .get_message_by_name(type_name)
        .ok_or_else(|| JsonError::UnknownType(type_name.to_string()))?;
    let message =
        DynamicMessage::decode(descriptor, bytes).map_err(|source| JsonError::Decode {
            type_name: type_name.to_string(),
            source,
        })?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|source| JsonError::Serialize {
            type_name: type_name.to_string(),
            source,
        })
}

/// Renders a message as JSON (see [`encoded_to_json`]).
///
/// # Errors
/// [`JsonError`] if the type is not in envoy-types' descriptors.
pub fn to_json<M: prost::Message + prost::Name>(
    message: &M,
) -> Result<serde_json::Value, JsonError> {
    encoded_to_json(&M::full_name(), &message.encode_to_vec())
}
