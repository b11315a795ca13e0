use super::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Annotation that marks an AuthorizationPolicy standing in for one that
/// failed validation (or could not be read): its value is the first error.
/// Such a policy denies every request to the workloads it selects
/// (see `source::parse` and `ir::authz`).
pub const FAIL_CLOSED_ANNOTATION: &str = "sextant.dev/fail-closed";

/// Who may call what on the workloads it selects: Istio's
/// `AuthorizationPolicy` (<https://istio.io/latest/docs/reference/config/security/authorization-policy/>),
/// translated into Envoy's RBAC filter on the inbound listener.
///
/// DENY policies are checked first; if any ALLOW policy selects a workload,
/// a request must match one of them. A rule matches when all its parts
/// (`from`, `to`, `when`) match; each part matches when any of its entries does.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "security.sextant.dev",
    version = "v1alpha1",
    kind = "AuthorizationPolicy",
    doc = "Who may call what on the workloads it selects, enforced by Envoy RBAC on the inbound listener (Istio's AuthorizationPolicy without CUSTOM).",
    namespaced,
    derive = "PartialEq",
    status = "super::ConfigStatus",
    shortname = "ap",
    category = "sextant",
    printcolumn(
        name = "Action",
        type_ = "string",
        json_path = ".spec.action",
        description = "ALLOW, DENY or AUDIT"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    /// The workloads (by labels) it applies to; none: every workload of the
    /// namespace (of the mesh, in the root namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// ALLOW (the default), DENY or AUDIT.
    // CUSTOM is read from files so that it can be refused clearly (the
    // policy fails closed); the CRD schema refuses it at admission.
    #[serde(default)]
    #[schemars(with = "EnforcedAction")]
    pub action: AuthorizationAction,
    /// The external authorizer of a CUSTOM policy (Istio's
    /// `extensionProvider` name); read only to be refused with its policy
    /// (not in the CRD schema, which refuses CUSTOM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub provider: Option<ExtensionProvider>,
    /// Rules, ORed. No rules: an ALLOW policy allows nothing, a DENY policy denies nothing.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// Istio's `AuthorizationPolicy.Action`.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AuthorizationAction {
    /// Requests must match a rule of some ALLOW policy.
    #[default]
    ALLOW,
    /// Requests matching a rule are refused (403).
    DENY,
    /// Matching requests are marked for auditing; decisions do not change.
    AUDIT,
    /// Delegates the decision to an external authorizer (Envoy ext_authz).
    /// Not supported: there is no extension provider configuration, so a
    /// CUSTOM policy is an error and fails closed.
    CUSTOM,
}

/// The actions the CRD schema admits: [`AuthorizationAction`] without CUSTOM.
#[allow(dead_code, non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(JsonSchema)]
enum EnforcedAction {
    ALLOW,
    DENY,
    AUDIT,
}

/// Istio's `AuthorizationPolicy.ExtensionProvider`: the name of an
/// external authorizer declared in the mesh config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExtensionProvider {
    /// The provider's name.
    #[serde(default)]
    pub name: String,
}

/// One rule: `from`, `to` and `when` must all match (an empty part matches).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Rule {
    /// Sources, ORed.
    #[serde(default)]
    pub from: Vec<From>,
    /// Operations, ORed.
    #[serde(default)]
    pub to: Vec<To>,
    /// Extra conditions, ANDed.
    #[serde(default)]
    pub when: Vec<Condition>,
}

/// A `from` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct From {
    /// The peer.
    pub source: Source,
}

/// Istio's `Source`: every field set must match; values within a field are ORed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Peer identities (SPIFFE IDs without `spiffe://`, e.g.
    /// `cluster.local/ns/default/sa/sleep`); `*` alone, or one `*` at the
    /// start or end, as a wildcard. Needs mutual TLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Identities that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    /// Peer namespaces (from the identity). Needs mutual TLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    /// Peer IPs or CIDRs (the connection's address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    /// IPs or CIDRs that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
    /// Original client IPs or CIDRs (Envoy's `remote_ip`: from
    /// `X-Forwarded-For` or the PROXY protocol when the listener trusts
    /// them, else the connection's address), as Istio's `remoteIpBlocks`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_ip_blocks: Vec<String>,
    /// Original client IPs or CIDRs that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_remote_ip_blocks: Vec<String>,
}

/// A `to` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct To {
    /// The operation.
    pub operation: Operation,
}

/// Istio's `Operation`: every field set must match; values within a field are ORed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Host header values (case-insensitive; one `*` at the start or end).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Hosts that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,
    /// Workload ports, as strings of numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Ports that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<String>,
    /// HTTP methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Methods that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    /// Paths (without query); exact, or one `*` at the start or end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Paths that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

/// Istio's `Condition`: `key` must have one of `values` and none of `notValues`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `request.headers[<name>]`, `source.ip`, `source.namespace`,
    /// `source.principal`, `destination.port`.
    pub key: String,
    /// Values, ORed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Values that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}
