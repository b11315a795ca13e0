//! Authorization policies of one workload → Envoy RBAC filters, as Istio
//! builds them (`pilot/pkg/security/authz/builder/builder.go` and
//! `model/model.go`).
//!
//! Filters come in Istio's order, one per action present: AUDIT (an RBAC
//! with action `LOG`: matching requests are marked for access logging,
//! nothing is refused), then DENY, then ALLOW. Each holds every rule of the
//! workload's policies with that action, keyed
//! `ns[<namespace>]-policy[<name>]-rule[<i>]`; a policy without rules gets
//! one policy that never matches (so an ALLOW policy without rules allows
//! nothing). Envoy's DENY filter refuses requests matching any policy; its
//! ALLOW filter refuses requests matching none, which is why it exists only
//! when some ALLOW policy applies.
//!
//! Within a rule's Envoy policy, each `from` entry is one principal and each
//! `to` entry one permission (ORed by Envoy); `when` conditions are ANDed
//! into every principal (peer attributes) or every permission (request
//! attributes). A field is `or(values)` and `not(or(not_values))`.
//!
//! TCP filter chains cannot see hosts, methods, paths or headers: an ALLOW
//! rule that uses any of them is left out (it can never match, so the
//! filter allows less), while DENY and AUDIT rules drop just those fields
//! (the rule then matches more connections), as Istio's `checkError` does.

mod matchers;
pub(crate) use matchers::namespace_regex;

use crate::envoy::rbac_builders::{
    http_rbac_filter, network_rbac_filter, permission_and, permission_any, policy_match_never,
    principal_and, principal_any,
};
use crate::ir::authz::{AuthzAction, AuthzPolicy, AuthzRule, Field};
use envoy_types::pb::envoy::config::listener::v3::Filter;
use envoy_types::pb::envoy::config::rbac::v3::{rbac, Policy};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use std::collections::BTreeMap;

/// The actions in filter order, with Envoy's RBAC action for each.
const ACTIONS: [(AuthzAction, rbac::Action); 3] = [
    (AuthzAction::Audit, rbac::Action::Log),
    (AuthzAction::Deny, rbac::Action::Deny),
    (AuthzAction::Allow, rbac::Action::Allow),
];

/// What the filters will see: HTTP requests, or TCP connections.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Traffic {
    Http,
    Tcp,
}

/// The HTTP RBAC filters (`envoy.filters.http.rbac`) enforcing `policies`
/// (the ones that select the workload, e.g. from
/// [`crate::ir::policies_for`]), to go before the router filter of the
/// inbound HTTP connection manager in this order. Empty when no policy
/// applies.
pub fn http_rbac_filters(policies: &[&AuthzPolicy]) -> Vec<HttpFilter> {
    ACTIONS
        .iter()
        .filter_map(|(action, envoy)| {
            let rules = rbac_policies(policies, *action, Traffic::Http)?;
            Some(http_rbac_filter(*envoy, &rules))
        })
        .collect()
}

/// The network RBAC filters (`envoy.filters.network.rbac`, stats under
/// `stat_prefix`) enforcing `policies` on a TCP filter chain, to go before
/// its `tcp_proxy` in this order. Empty when no policy applies.
pub fn network_rbac_filters(policies: &[&AuthzPolicy], stat_prefix: &str) -> Vec<Filter> {
    ACTIONS
        .iter()
        .filter_map(|(action, envoy)| {
            let rules = rbac_policies(policies, *action, Traffic::Tcp)?;
            Some(network_rbac_filter(*envoy, &rules, stat_prefix))
        })
        .collect()
}

/// The RBAC policy map of the `policies` with `action`, by name; `None`
/// when none has it (then there is no filter).
fn rbac_policies(
    policies: &[&AuthzPolicy],
    action: AuthzAction,
    traffic: Traffic,
) -> Option<BTreeMap<String, Policy>> {
    let mut map = BTreeMap::new();
    let mut any = false;
    for policy in policies.iter().filter(|p| p.action == action) {
        any = true;
        if policy.rules.is_empty() {
            map.insert(policy.rule_name(0), policy_match_never());
        }
        for (i, rule) in policy.rules.iter().enumerate() {
            if let Some(generated) = rule_policy(rule, action, traffic) {
                map.insert(policy.rule_name(i), generated);
            }
        }
    }
    any.then_some(map)
}

/// One rule as an Envoy policy (Istio's `Model.Generate`); `None` for an
/// ALLOW rule that a TCP connection can never match.
fn rule_policy(rule: &AuthzRule, action: AuthzAction, traffic: Traffic) -> Option<Policy> {
    let tcp = traffic == Traffic::Tcp;
    let mut fields = rule.from.iter().chain(&rule.to).flatten().chain(&rule.when);
    if tcp && action == AuthzAction::Allow && fields.any(Field::is_http_only) {
        return None;
    }
    let applies = |f: &&Field| !(tcp && f.is_http_only());
    let (peer_when, request_when): (Vec<&Field>, Vec<&Field>) =
        rule.when.iter().filter(applies).partition(|f| f.is_peer());
    let principals = entries(&rule.from, &peer_when, &applies)
        .into_iter()
        .map(|fields| {
            let terms: Vec<_> = fields
                .into_iter()
                .flat_map(matchers::principal_terms)
                .collect();
            principal_and(or_else(terms, principal_any))
        })
        .collect();
    let permissions = entries(&rule.to, &request_when, &applies)
        .into_iter()
        .map(|fields| {
            let terms: Vec<_> = fields
                .into_iter()
                .flat_map(matchers::permission_terms)
                .collect();
            permission_and(or_else(terms, permission_any))
        })
        .collect();
    Some(Policy {
        permissions,
        principals,
        ..Default::default()
    })
}

/// The field lists of the principals (or permissions) of a rule: each entry
/// of `list` followed by the conditions `when`, or `when` alone when the
/// list is empty; fields that do not `apply` are left out.
fn entries<'a>(
    list: &'a [Vec<Field>],
    when: &[&'a Field],
    applies: &dyn Fn(&&Field) -> bool,
) -> Vec<Vec<&'a Field>> {
    if list.is_empty() {
        return vec![when.to_vec()];
    }
    list.iter()
        .map(|entry| {
            entry
                .iter()
                .filter(applies)
                .chain(when.iter().copied())
                .collect()
        })
        .collect()
}

/// `terms`, or the one term `any()` when there is none.
fn or_else<T>(terms: Vec<T>, any: fn() -> T) -> Vec<T> {
    if terms.is_empty() {
        vec![any()]
    } else {
        terms
    }
}

#[cfg(test)]
mod tests;
