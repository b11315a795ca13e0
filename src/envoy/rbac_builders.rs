//! Small builders of Envoy's RBAC protos (`envoy.config.rbac.v3`) and of
//! the HTTP and network RBAC filters that carry them.
//!
//! The filters' `typed_config` is encoded here with the policy map in name
//! order: prost encodes a `HashMap` in random order, so the same policies
//! would get other bytes (hence another content hash, hence a needless
//! push) on every translation.

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter};
use envoy_types::pb::envoy::config::rbac::v3::{
    permission, principal, rbac, Permission, Policy, Principal,
};
use envoy_types::pb::envoy::config::route::v3::{header_matcher, HeaderMatcher};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::r#type::matcher::v3::{path_matcher, PathMatcher, StringMatcher};
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use prost::{Message, Name};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Name of Envoy's HTTP RBAC filter.
pub const HTTP_RBAC_FILTER: &str = "envoy.filters.http.rbac";
/// Name of Envoy's network (TCP) RBAC filter.
pub const NETWORK_RBAC_FILTER: &str = "envoy.filters.network.rbac";

/// A permission that matches when all of `rules` do.
pub fn permission_and(rules: Vec<Permission>) -> Permission {
    Permission {
        rule: Some(permission::Rule::AndRules(permission::Set { rules })),
    }
}

/// A permission that matches when any of `rules` does.
pub fn permission_or(rules: Vec<Permission>) -> Permission {
    Permission {
        rule: Some(permission::Rule::OrRules(permission::Set { rules })),
    }
}

/// A permission that matches when `rule` does not.
pub fn permission_not(rule: Permission) -> Permission {
    Permission {
        rule: Some(permission::Rule::NotRule(Box::new(rule))),
    }
}

/// A permission that matches every request.
pub fn permission_any() -> Permission {
    Permission {
        rule: Some(permission::Rule::Any(true)),
    }
}

/// A permission on a request header (`:authority`, `:method`, ...).
pub fn permission_header(header: HeaderMatcher) -> Permission {
    Permission {
        rule: Some(permission::Rule::Header(header)),
    }
}

/// A permission on the path without query (`url_path`).
pub fn permission_path(path: StringMatcher) -> Permission {
    Permission {
        rule: Some(permission::Rule::UrlPath(PathMatcher {
            rule: Some(path_matcher::Rule::Path(path)),
        })),
    }
}

/// A permission on the local port the connection came in on.
pub fn permission_port(port: u16) -> Permission {
    Permission {
        rule: Some(permission::Rule::DestinationPort(u32::from(port))),
    }
}

/// A principal that matches when all of `ids` do.
pub fn principal_and(ids: Vec<Principal>) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::AndIds(principal::Set { ids })),
    }
}

/// A principal that matches when any of `ids` does.
pub fn principal_or(ids: Vec<Principal>) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::OrIds(principal::Set { ids })),
    }
}

/// A principal that matches when `id` does not.
pub fn principal_not(id: Principal) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::NotId(Box::new(id))),
    }
}

/// A principal that matches every peer.
pub fn principal_any() -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Any(true)),
    }
}

/// A principal whose authenticated name (the peer certificate's URI SAN,
/// e.g. `spiffe://cluster.local/ns/default/sa/sleep`) matches `name`.
pub fn principal_authenticated(name: StringMatcher) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Authenticated(
            principal::Authenticated {
                principal_name: Some(name),
            },
        )),
    }
}

/// A principal on the connection's source address (`direct_remote_ip`).
pub fn principal_direct_remote_ip(address: IpAddr, prefix_len: u8) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::DirectRemoteIp(cidr_range(
            address, prefix_len,
        ))),
    }
}

/// A principal on the original client address (`remote_ip`: from
/// `X-Forwarded-For` or the PROXY protocol).
pub fn principal_remote_ip(address: IpAddr, prefix_len: u8) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::RemoteIp(cidr_range(
            address, prefix_len,
        ))),
    }
}

/// A principal on a request header.
pub fn principal_header(header: HeaderMatcher) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Header(header)),
    }
}

/// An IP range.
pub fn cidr_range(address: IpAddr, prefix_len: u8) -> CidrRange {
    CidrRange {
        address_prefix: address.to_string(),
        prefix_len: Some(UInt32Value {
            value: u32::from(prefix_len),
        }),
    }
}

/// A header matcher: the header is present (`None`) or matches `value`.
pub fn header_match(name: &str, value: Option<StringMatcher>) -> HeaderMatcher {
    let specifier = match value {
        None => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
        Some(m) => header_matcher::HeaderMatchSpecifier::StringMatch(m),
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(specifier),
        ..Default::default()
    }
}

/// A policy that never matches (Istio's `rbacPolicyMatchNever`, for a
/// policy without rules).
pub fn policy_match_never() -> Policy {
    Policy {
        permissions: vec![permission_not(permission_any())],
        principals: vec![principal_not(principal_any())],
        ..Default::default()
    }
}

/// The HTTP RBAC filter enforcing `policies` (by name) with `action`.
pub fn http_rbac_filter(action: rbac::Action, policies: &BTreeMap<String, Policy>) -> HttpFilter {
    let value = with_rules(&HttpRbac::default(), action, policies);
    HttpFilter {
        name: HTTP_RBAC_FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(Any {
            type_url: HttpRbac::type_url(),
            value,
        })),
        ..Default::default()
    }
}

/// The network RBAC filter enforcing `policies` (by name) with `action`,
/// its stats under `stat_prefix`.
pub fn network_rbac_filter(
    action: rbac::Action,
    policies: &BTreeMap<String, Policy>,
    stat_prefix: &str,
) -> Filter {
    let outer = NetworkRbac {
        stat_prefix: stat_prefix.to_string(),
        ..Default::default()
    };
    Filter {
        name: NETWORK_RBAC_FILTER.into(),
        config_type: Some(filter::ConfigType::TypedConfig(Any {
            type_url: NetworkRbac::type_url(),
            value: with_rules(&outer, action, policies),
        })),
    }
}

/// `outer` (an RBAC filter config without `rules`) encoded, followed by its
/// field 1, `rules`: an `envoy.config.rbac.v3.RBAC` whose map entries come
/// in name order. (Both filter configs have `rules` as field 1; a map is on
/// the wire a repeated message of key 1 and value 2.)
fn with_rules<M: Message>(
    outer: &M,
    action: rbac::Action,
    policies: &BTreeMap<String, Policy>,
) -> Vec<u8> {
    let rules = OrderedRules {
        rules: Some(OrderedRbac {
            action: action as i32,
            policies: policies
                .iter()
                .map(|(key, policy)| PolicyEntry {
                    key: key.clone(),
                    value: Some(policy.clone()),
                })
                .collect(),
        }),
    };
    let mut bytes = outer.encode_to_vec();
    rules.encode(&mut bytes).expect("a Vec grows as needed");
    bytes
}

/// Field 1 (`rules`) of the RBAC filter configs.
#[derive(Clone, PartialEq, Message)]
struct OrderedRules {
    #[prost(message, optional, tag = "1")]
    rules: Option<OrderedRbac>,
}

/// `envoy.config.rbac.v3.RBAC` with its `policies` map as ordered entries.
#[derive(Clone, PartialEq, Message)]
struct OrderedRbac {
    #[prost(enumeration = "rbac::Action", tag = "1")]
    action: i32,
    #[prost(message, repeated, tag = "2")]
    policies: Vec<PolicyEntry>,
}

/// One entry of the `policies` map.
#[derive(Clone, PartialEq, Message)]
struct PolicyEntry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Policy>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies() -> BTreeMap<String, Policy> {
        (0..20)
            .map(|i| {
                (
                    format!("ns[default]-policy[p{i}]-rule[0]"),
                    policy_match_never(),
                )
            })
            .collect()
    }

    #[test]
    fn filters_decode_as_envoys_own_messages() {
        let filter = http_rbac_filter(rbac::Action::Deny, &policies());
        let Some(http_filter::ConfigType::TypedConfig(any)) = filter.config_type else {
            panic!("typed config")
        };
        let decoded = HttpRbac::decode(any.value.as_slice()).unwrap();
        let rules = decoded.rules.unwrap();
        assert_eq!(rules.action, rbac::Action::Deny as i32);
        assert_eq!(rules.policies, policies().into_iter().collect());

        let filter = network_rbac_filter(rbac::Action::Allow, &policies(), "tcp.");
        let Some(filter::ConfigType::TypedConfig(any)) = filter.config_type else {
            panic!("typed config")
        };
        let decoded = NetworkRbac::decode(any.value.as_slice()).unwrap();
        assert_eq!(decoded.stat_prefix, "tcp.");
        assert_eq!(
            decoded.rules.unwrap().policies,
            policies().into_iter().collect()
        );
    }

    #[test]
    fn encoding_does_not_depend_on_hash_order() {
        let first = http_rbac_filter(rbac::Action::Allow, &policies()).encode_to_vec();
        for _ in 0..10 {
            assert_eq!(
                http_rbac_filter(rbac::Action::Allow, &policies()).encode_to_vec(),
                first
            );
        }
    }
}
