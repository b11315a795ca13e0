//! Fail closed: an AuthorizationPolicy that cannot be served as written
//! (validation errors, a type error, an apiVersion that does not serve the
//! kind) is replaced by one that denies every request to the workloads it
//! selects, instead of being dropped (which would open the workloads it was
//! meant to protect). A new PeerAuthentication that cannot be served is
//! replaced by a STRICT one for the workloads it selects (dropping it would
//! leave them PERMISSIVE).

use crate::diagnostic::Diagnostic;
use crate::model::{
    AuthorizationAction, AuthorizationPolicy, AuthorizationPolicySpec, LabelSelector, MtlsMode,
    MutualTls, Object, ObjectKey, PeerAuthentication, PeerAuthenticationSpec, Rule,
    FAIL_CLOSED_ANNOTATION,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use std::collections::BTreeMap;

/// The stand-in for an invalid AuthorizationPolicy `key`: same name and
/// namespace, the selector of the raw object (`spec.selector.matchLabels`
/// when it is a map of strings, else none: the whole namespace, or the mesh
/// in the root namespace), action DENY and one empty rule (matches every
/// request), annotated with [`FAIL_CLOSED_ANNOTATION`] = `reason`.
pub(super) fn replacement(key: &ObjectKey, raw: &Value, reason: &str) -> Object {
    let policy = AuthorizationPolicy {
        metadata: stand_in_metadata(key, reason),
        spec: AuthorizationPolicySpec {
            selector: raw_selector(raw).map(|match_labels| LabelSelector { match_labels }),
            action: AuthorizationAction::DENY,
            provider: None,
            rules: vec![Rule::default()],
        },
        status: None,
    };
    Object::AuthorizationPolicy(Box::new(policy))
}

/// The stand-in for an invalid PeerAuthentication `key` that has no last
/// good version: same name and namespace, the raw object's selector (as for
/// [`replacement`]), mode STRICT on every port, annotated with
/// [`FAIL_CLOSED_ANNOTATION`] = `reason`.
pub(super) fn strict_peer_authentication(key: &ObjectKey, raw: &Value, reason: &str) -> Object {
    let policy = PeerAuthentication {
        metadata: stand_in_metadata(key, reason),
        spec: PeerAuthenticationSpec {
            selector: raw_selector(raw).map(|match_labels| LabelSelector { match_labels }),
            mtls: Some(MutualTls {
                mode: MtlsMode::STRICT,
            }),
            port_level_mtls: BTreeMap::new(),
        },
        status: None,
    };
    Object::PeerAuthentication(Box::new(policy))
}

/// Name and namespace of `key`, annotated with why it is a stand-in.
fn stand_in_metadata(key: &ObjectKey, reason: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(key.name.clone()),
        namespace: Some(key.namespace.clone()),
        annotations: Some(BTreeMap::from([(
            FAIL_CLOSED_ANNOTATION.to_string(),
            reason.to_string(),
        )])),
        ..ObjectMeta::default()
    }
}

/// The first error among `diagnostics`, as `field: message` (the reason a
/// stand-in carries).
pub(super) fn first_error(diagnostics: &[Diagnostic]) -> Option<String> {
    diagnostics.iter().find(|d| d.is_error()).map(|d| {
        if d.field.is_empty() {
            d.message.clone()
        } else {
            format!("{}: {}", d.field, d.message)
        }
    })
}

/// `spec.selector.matchLabels` of a raw object, when it is a map of strings.
fn raw_selector(raw: &Value) -> Option<BTreeMap<String, String>> {
    let labels = raw.pointer("/spec/selector/matchLabels")?.as_object()?;
    labels
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}
