//! Authorization policies, resolved: Istio's `AuthorizationPolicy` with its
//! string patterns, CIDRs and ports parsed, and which workloads each one
//! selects ([`policies_for`]). [`crate::translate`] turns the policies of
//! one workload into Envoy RBAC filters.
//!
//! Semantics follow Istio (`pilot/pkg/security/authz/model` and
//! `pilot/pkg/model/authorization.go`): a rule matches when one of its
//! `from` entries, one of its `to` entries and every `when` condition match;
//! within an entry every field must match; a field matches when the value is
//! one of `values` (if any) and none of `not_values`.

mod resolve;

pub use resolve::resolve;

use crate::model::ObjectKey;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// One AuthorizationPolicy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthzPolicy {
    /// `<namespace>/<name>`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// Workload labels it selects (all must match); `None`: every workload of
    /// its namespace, or of the mesh for a policy in the root namespace.
    pub selector: Option<BTreeMap<String, String>>,
    /// What a matching request gets.
    pub action: AuthzAction,
    /// Rules, ORed. No rule: the policy matches nothing (an ALLOW policy
    /// then allows nothing, a DENY policy denies nothing).
    pub rules: Vec<AuthzRule>,
    /// Why this policy stands in for one that could not be served as
    /// written (the first error); it then denies every request to the
    /// workloads it selects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_closed: Option<String>,
    /// The object it comes from.
    pub origin: ObjectKey,
}

impl AuthzPolicy {
    /// Istio's key of rule `index` in Envoy's RBAC policy map:
    /// `ns[<namespace>]-policy[<name>]-rule[<index>]`.
    pub fn rule_name(&self, index: usize) -> String {
        format!(
            "ns[{}]-policy[{}]-rule[{index}]",
            self.namespace, self.origin.name
        )
    }

    /// Whether it applies to a workload in `namespace` with `labels`, given
    /// the mesh's `root_namespace` (see [`policies_for`]).
    pub fn selects(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        root_namespace: &str,
    ) -> bool {
        let in_scope = self.namespace == namespace || self.namespace == root_namespace;
        in_scope
            && self
                .selector
                .as_ref()
                .is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}

/// The policies that apply to a workload in `namespace` with `labels`, in
/// the order of `all` (by name). As Istio selects them: policies of the
/// workload's namespace and of the root namespace, without selector (the
/// whole namespace; the whole mesh for the root namespace) or with a
/// selector whose labels the workload all carries (in the root namespace:
/// matching workloads of every namespace).
pub fn policies_for<'a>(
    all: &'a [AuthzPolicy],
    namespace: &str,
    labels: &BTreeMap<String, String>,
    root_namespace: &str,
) -> Vec<&'a AuthzPolicy> {
    all.iter()
        .filter(|p| p.selects(namespace, labels, root_namespace))
        .collect()
}

/// Istio's `AuthorizationPolicy.Action` (CUSTOM is not supported).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthzAction {
    /// A request must match a rule of some ALLOW policy of the workload.
    Allow,
    /// A request that matches a rule is refused (HTTP 403, or the
    /// connection closed for TCP).
    Deny,
    /// A matching request is marked for audit logging; decisions do not change.
    Audit,
}

/// One rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuthzRule {
    /// Sources (`from[].source`), ORed; each a list of fields, ANDed. Empty:
    /// any peer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Vec<Field>>,
    /// Operations (`to[].operation`), ORed; each a list of fields, ANDed.
    /// Empty: any request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<Vec<Field>>,
    /// Conditions (`when`), ANDed with the matching source and operation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Field>,
}

/// One attribute condition: the attribute has one of `values` (when there
/// are any) and none of `not_values`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Values<T> {
    /// Values, ORed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<T>,
    /// Values that must not match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<T>,
}

/// A condition on one attribute of the peer or of the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// The peer's identity (`principals`, `source.principal`): its SPIFFE ID
    /// without `spiffe://`, from the mutual-TLS certificate.
    Principals(Values<Pattern>),
    /// The namespace in the peer's identity (`namespaces`, `source.namespace`).
    Namespaces(Values<Pattern>),
    /// The peer's address, the connection's source (`ipBlocks`, `source.ip`).
    SourceIps(Values<Cidr>),
    /// The original client address, from `X-Forwarded-For` or the PROXY
    /// protocol (`remote.ip`).
    RemoteIps(Values<Cidr>),
    /// The `Host` (`:authority`) header, case-insensitive (`hosts`).
    Hosts(Values<Pattern>),
    /// The HTTP method (`methods`).
    Methods(Values<Pattern>),
    /// The path without query (`paths`).
    Paths(Values<Pattern>),
    /// The workload port the request came in on (`ports`, `destination.port`).
    Ports(Values<u16>),
    /// A request header (`request.headers[<name>]`).
    Header {
        /// Lower-case header name.
        name: String,
        /// Its values.
        #[serde(flatten)]
        values: Values<Pattern>,
    },
}

impl Field {
    /// Whether it is about the peer (Envoy RBAC principals) rather than the
    /// request (permissions), where Istio puts it.
    pub fn is_peer(&self) -> bool {
        matches!(
            self,
            Field::Principals(_)
                | Field::Namespaces(_)
                | Field::SourceIps(_)
                | Field::RemoteIps(_)
                | Field::Header { .. }
        )
    }

    /// Whether only HTTP requests have the attribute (hosts, methods, paths
    /// and headers), so a TCP connection can never be checked against it.
    pub fn is_http_only(&self) -> bool {
        matches!(
            self,
            Field::Hosts(_) | Field::Methods(_) | Field::Paths(_) | Field::Header { .. }
        )
    }
}

/// One of Istio's string patterns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// `*`: any value (the attribute is present and not empty).
    Any,
    /// Equal to.
    Exact(String),
    /// `<prefix>*`: starts with.
    Prefix(String),
    /// `*<suffix>`: ends with.
    Suffix(String),
}

impl Pattern {
    /// Reads an Istio value: `*`, `prefix*`, `*suffix` or exact.
    pub fn parse(value: &str) -> Pattern {
        if value == "*" {
            Pattern::Any
        } else if let Some(suffix) = value.strip_prefix('*') {
            Pattern::Suffix(suffix.to_string())
        } else if let Some(prefix) = value.strip_suffix('*') {
            Pattern::Prefix(prefix.to_string())
        } else {
            Pattern::Exact(value.to_string())
        }
    }
}

/// An IP range: an address as written and a prefix length (32 or 128 for
/// a single address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Cidr {
    /// The address.
    pub address: IpAddr,
    /// Prefix length in bits.
    pub prefix_len: u8,
}

impl Cidr {
    /// Reads `10.1.2.3`, `10.1.0.0/16` or an IPv6 form; `None` otherwise.
    pub fn parse(value: &str) -> Option<Cidr> {
        if let Ok(address) = value.parse::<IpAddr>() {
            let prefix_len = if address.is_ipv4() { 32 } else { 128 };
            return Some(Cidr {
                address,
                prefix_len,
            });
        }
        let net = value.parse::<ipnet::IpNet>().ok()?;
        Some(Cidr {
            address: net.addr(),
            prefix_len: net.prefix_len(),
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

#[cfg(test)]
mod tests;
