//! One IR route → Envoy routes: match conditions, the action (forward,
//! redirect, direct response) and the route's policy.

use super::scope::Scope;
use crate::envoy::builders::{self, StringPattern};
use crate::envoy::route_builders::{self as rb, CORS_FILTER, FAULT_FILTER};
use crate::ir::{self, Action, HeaderChanges, Ir};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, route, route_action, FilterConfig, HeaderMatcher, Route, RouteAction,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

/// Body of the 503 that replaces a route to a cluster the proxy may not see.
pub const NOT_VISIBLE_BODY: &str =
    "sextant: this route's destination is not visible from this proxy (exportTo or Sidecar egress)\n";

fn pattern(m: &ir::StringMatch) -> StringPattern<'_> {
    match m {
        ir::StringMatch::Exact(s) => StringPattern::Exact(s),
        ir::StringMatch::Prefix(s) => StringPattern::Prefix(s),
        ir::StringMatch::Regex(s) => StringPattern::Regex(s),
    }
}

/// The route match of one IR condition.
fn route_match(m: &ir::Match) -> envoy_types::pb::envoy::config::route::v3::RouteMatch {
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .map(|(name, v)| builders::header_matcher(name, pattern(v)))
        .collect();
    headers.extend(m.without_headers.iter().map(|(name, v)| match v {
        Some(v) => HeaderMatcher {
            invert_match: true,
            ..builders::header_matcher(name, pattern(v))
        },
        None => HeaderMatcher {
            name: name.clone(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::PresentMatch(false)),
            ..Default::default()
        },
    }));
    let mut matcher = builders::route_match(m.path.as_ref().map(pattern), headers);
    matcher.query_parameters = m
        .query_params
        .iter()
        .map(|(name, v)| rb::query_parameter_matcher(name, pattern(v)))
        .collect();
    if m.ignore_case {
        matcher.case_sensitive = Some(BoolValue { value: false });
    }
    matcher
}

/// One Envoy route per match condition (Envoy routes have one match each);
/// a route without conditions matches every request. Conditions on the
/// client (`sourceLabels`, `sourceNamespace`) are decided here, per class:
/// one the class does not meet is left out. A route to a cluster the proxy
/// does not get answers 503 rather than point at nothing.
pub(super) fn routes_of(route: &ir::Route, ir: &Ir, scope: &Scope<'_>) -> Vec<Route> {
    let all = [ir::Match::default()];
    let matches = if route.matches.is_empty() {
        &all[..]
    } else {
        &route.matches[..]
    };
    matches
        .iter()
        .filter(|m| scope.is_source(m))
        .map(|m| {
            let matcher = route_match(m);
            let mut out = match &route.action {
                Action::Forward(clusters)
                    if !clusters.iter().all(|w| {
                        ir.clusters
                            .get(&w.cluster)
                            .is_some_and(|c| scope.cluster(c))
                    }) =>
                {
                    builders::direct_response_route(&route.name, matcher, 503, NOT_VISIBLE_BODY)
                }
                Action::Forward(clusters) => {
                    let names: Vec<(&str, u32)> = clusters
                        .iter()
                        .map(|w| (w.cluster.as_str(), w.weight))
                        .collect();
                    let mut out = builders::forward_route(&route.name, matcher, &names);
                    forward_policy(&mut out, route, clusters);
                    mirror_policies(&mut out, route, ir, scope);
                    hash_policy(&mut out, ir, scope, clusters);
                    out
                }
                Action::Redirect(r) => rb::redirect_route(
                    &route.name,
                    matcher,
                    r.uri.as_deref(),
                    r.authority.as_deref(),
                    r.port,
                    r.scheme.as_deref(),
                    r.code,
                ),
                Action::DirectResponse { status, body } => {
                    builders::direct_response_route(&route.name, matcher, *status, body)
                }
            };
            apply_headers(&mut out, &route.policy.headers);
            if let Some(cors) = &route.policy.cors {
                let origins: Vec<_> = cors
                    .origins
                    .iter()
                    .map(|o| builders::string_matcher(pattern(o)))
                    .collect();
                let policy = rb::cors_policy(
                    &origins,
                    &cors.methods,
                    &cors.headers,
                    &cors.expose,
                    cors.max_age,
                    cors.credentials,
                );
                // Optional: clients without a CORS filter (gRPC) ignore it.
                let config = FilterConfig {
                    config: Some(pack_any(policy)),
                    is_optional: true,
                    ..Default::default()
                };
                out.typed_per_filter_config
                    .insert(CORS_FILTER.to_string(), pack_any(config));
            }
            if let Some(fault) = &route.policy.fault {
                let config = pack_any(rb::http_fault(fault.delay, fault.abort));
                out.typed_per_filter_config
                    .insert(FAULT_FILTER.to_string(), config);
            }
            out
        })
        .collect()
}

/// Timeout, retries, rewrites and per-destination headers of a forwarding route.
fn forward_policy(out: &mut Route, route: &ir::Route, clusters: &[ir::WeightedCluster]) {
    let Some(route::Action::Route(action)) = &mut out.action else {
        return;
    };
    let policy = &route.policy;
    if let Some(timeout) = policy.timeout {
        action.timeout = Some(builders::duration(timeout));
    }
    if let Some(r) = &policy.retry {
        action.retry_policy = Some(rb::retry_policy(
            r.attempts,
            r.per_try_timeout,
            &r.retry_on,
            &r.status_codes,
            r.remote_localities,
        ));
    }
    if let Some(rewrite) = &policy.rewrite {
        if let Some(uri) = &rewrite.uri {
            action.prefix_rewrite = uri.clone();
        }
        if let Some((pattern, substitution)) = &rewrite.regex {
            action.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(builders::regex_matcher(pattern)),
                substitution: substitution.clone(),
            });
        }
        if let Some(authority) = &rewrite.authority {
            action.host_rewrite_specifier = Some(
                route_action::HostRewriteSpecifier::HostRewriteLiteral(authority.clone()),
            );
        }
    }
    destination_headers(action, clusters);
    if let [single] = clusters {
        apply_headers(out, &single.headers);
    }
}

/// Header changes of each destination of a weighted split.
fn destination_headers(action: &mut RouteAction, clusters: &[ir::WeightedCluster]) {
    let Some(route_action::ClusterSpecifier::WeightedClusters(weighted)) =
        &mut action.cluster_specifier
    else {
        return;
    };
    for (weight, cluster) in weighted.clusters.iter_mut().zip(clusters) {
        let h = &cluster.headers;
        weight.request_headers_to_add = rb::header_values(&h.request.set, &h.request.add);
        weight.request_headers_to_remove = h.request.remove.clone();
        weight.response_headers_to_add = rb::header_values(&h.response.set, &h.response.add);
        weight.response_headers_to_remove = h.response.remove.clone();
    }
}

fn apply_headers(out: &mut Route, headers: &HeaderChanges) {
    out.request_headers_to_add.extend(rb::header_values(
        &headers.request.set,
        &headers.request.add,
    ));
    out.request_headers_to_remove
        .extend(headers.request.remove.iter().cloned());
    out.response_headers_to_add.extend(rb::header_values(
        &headers.response.set,
        &headers.response.add,
    ));
    out.response_headers_to_remove
        .extend(headers.response.remove.iter().cloned());
}

/// Consistent hashing needs the key on the route: it comes from the
/// DestinationRule of the route's first destination.
fn hash_policy(out: &mut Route, ir: &Ir, scope: &Scope<'_>, clusters: &[ir::WeightedCluster]) {
    use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::{
        self, PolicySpecifier,
    };
    use ir::cluster_policy::HashKey;
    let Some(route::Action::Route(action)) = &mut out.action else {
        return;
    };
    let key = clusters
        .first()
        .and_then(|c| ir.clusters.get(&c.cluster))
        .filter(|c| scope.applies_rule(c))
        .and_then(|c| c.policy.hash.as_ref());
    let Some((key, _)) = key else { return };
    let specifier = match key {
        HashKey::Header(name) => PolicySpecifier::Header(hash_policy::Header {
            header_name: name.clone(),
            ..Default::default()
        }),
        HashKey::Cookie { name, path, ttl } => PolicySpecifier::Cookie(hash_policy::Cookie {
            name: name.clone(),
            path: path.clone().unwrap_or_default(),
            ttl: ttl.map(builders::duration),
            ..Default::default()
        }),
        HashKey::SourceIp => {
            PolicySpecifier::ConnectionProperties(hash_policy::ConnectionProperties {
                source_ip: true,
            })
        }
        HashKey::QueryParameter(name) => {
            PolicySpecifier::QueryParameter(hash_policy::QueryParameter { name: name.clone() })
        }
    };
    action.hash_policy = vec![route_action::HashPolicy {
        policy_specifier: Some(specifier),
        ..Default::default()
    }];
}

/// Request mirrors to clusters the proxy may see (others are left out).
fn mirror_policies(out: &mut Route, route: &ir::Route, ir: &Ir, scope: &Scope<'_>) {
    let Some(route::Action::Route(action)) = &mut out.action else {
        return;
    };
    action.request_mirror_policies = route
        .policy
        .mirrors
        .iter()
        .filter(|(cluster, _)| ir.clusters.get(cluster).is_some_and(|c| scope.cluster(c)))
        .map(|(cluster, percent)| rb::mirror_policy(cluster, *percent))
        .collect();
}
