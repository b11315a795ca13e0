//! One [`Field`] → Envoy RBAC principals or permissions, with the matchers
//! of Istio's `pilot/pkg/security/authz/model/generator.go` and
//! `pilot/pkg/security/authz/matcher`.

use crate::envoy::builders::regex_matcher;
use crate::envoy::rbac_builders::{
    header_match, permission_header, permission_not, permission_or, permission_path,
    permission_port, principal_and, principal_authenticated, principal_direct_remote_ip,
    principal_header, principal_not, principal_or, principal_remote_ip,
};
use crate::ir::authz::{Field, Pattern, Values};
use envoy_types::pb::envoy::config::rbac::v3::{Permission, Principal};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};

/// What Envoy reports as the authenticated principal: the URI SAN of the
/// peer certificate, a SPIFFE ID (Istio's `spiffe.URIPrefix`).
const SPIFFE_PREFIX: &str = "spiffe://";

/// The principals a peer field ANDs into its source: one that matches any
/// of `values`, one that matches none of `not_values` (each only when the
/// list is not empty). Request fields have none.
pub(super) fn principal_terms(field: &Field) -> Vec<Principal> {
    let terms = |values: &Values<_>, one: &dyn Fn(&_) -> Principal| {
        either_and_neither(values, one, principal_or, principal_not)
    };
    match field {
        Field::Principals(v) => terms(v, &principal_matcher),
        Field::Namespaces(v) => terms(v, &|p| principal_authenticated(namespace_matcher(p))),
        Field::Header { name, values } => terms(values, &|p| {
            principal_header(header_match(name, header_value(p, false)))
        }),
        Field::SourceIps(v) => either_and_neither(
            v,
            &|c| principal_direct_remote_ip(c.address, c.prefix_len),
            principal_or,
            principal_not,
        ),
        Field::RemoteIps(v) => either_and_neither(
            v,
            &|c| principal_remote_ip(c.address, c.prefix_len),
            principal_or,
            principal_not,
        ),
        Field::Hosts(_) | Field::Methods(_) | Field::Paths(_) | Field::Ports(_) => Vec::new(),
    }
}

/// The permissions a request field ANDs into its operation (see
/// [`principal_terms`]). Peer fields have none.
pub(super) fn permission_terms(field: &Field) -> Vec<Permission> {
    let terms = |values: &Values<_>, one: &dyn Fn(&_) -> Permission| {
        either_and_neither(values, one, permission_or, permission_not)
    };
    match field {
        // Istio's HostMatcher: case-insensitive, and exactly the value
        // written (`example.com` does not match `example.com:8080`; write
        // `example.com:*` for that).
        Field::Hosts(v) => terms(v, &|p| {
            permission_header(header_match(":authority", header_value(p, true)))
        }),
        Field::Methods(v) => terms(v, &|p| {
            permission_header(header_match(":method", header_value(p, false)))
        }),
        Field::Paths(v) => terms(v, &|p| permission_path(string_matcher(p, "", false))),
        Field::Ports(v) => either_and_neither(
            v,
            &|port| permission_port(*port),
            permission_or,
            permission_not,
        ),
        Field::Principals(_)
        | Field::Namespaces(_)
        | Field::SourceIps(_)
        | Field::RemoteIps(_)
        | Field::Header { .. } => Vec::new(),
    }
}

/// Istio's `rule.permission` / `rule.principal`: `or(values)` and
/// `not(or(not_values))`, each when its list is not empty.
fn either_and_neither<T, M>(
    values: &Values<T>,
    one: &dyn Fn(&T) -> M,
    or: fn(Vec<M>) -> M,
    not: fn(M) -> M,
) -> Vec<M> {
    let mut out = Vec::new();
    if !values.values.is_empty() {
        out.push(or(values.values.iter().map(one).collect()));
    }
    if !values.not_values.is_empty() {
        out.push(not(or(values.not_values.iter().map(one).collect())));
    }
    out
}

/// A `principals` value: Istio's `StringMatcherWithPrefix` with the SPIFFE
/// prefix, except that `*suffix` is the SPIFFE prefix AND the suffix rather
/// than Istio's regex `spiffe://.*<suffix>`: the same for every SPIFFE ID
/// with a path, and no regex for Envoy's RE2 program-size limit (100) to
/// reject when the suffix is long.
fn principal_matcher(pattern: &Pattern) -> Principal {
    match pattern {
        Pattern::Suffix(_) => principal_and(vec![
            principal_authenticated(string_matcher(
                &Pattern::Prefix(String::new()),
                SPIFFE_PREFIX,
                false,
            )),
            principal_authenticated(string_matcher(pattern, "", false)),
        ]),
        other => principal_authenticated(string_matcher(other, SPIFFE_PREFIX, false)),
    }
}

/// A `namespaces` value: Istio's namespace matcher, the regex
/// `.*/ns/<pattern>/.*` on the peer's SPIFFE ID. An exact namespace is the
/// equivalent `contains` match instead (no regex for Envoy's RE2
/// program-size limit to reject); patterns keep the regex of
/// [`namespace_regex`], which validation checks against that limit.
fn namespace_matcher(pattern: &Pattern) -> StringMatcher {
    match pattern {
        Pattern::Exact(v) => StringMatcher {
            match_pattern: Some(MatchPattern::Contains(format!("/ns/{v}/"))),
            ignore_case: false,
        },
        other => regex(namespace_regex(other)),
    }
}

/// The RE2 regex Istio's namespace matcher gives for `pattern`; Envoy gets
/// it for the patterns `prod-*`, `*-test` and `*` (see [`namespace_matcher`]).
pub(crate) fn namespace_regex(pattern: &Pattern) -> String {
    format!(".*/ns/{}/.*", pattern_regex(pattern))
}

/// Istio's `StringMatcherWithPrefix`: `*` is the regex `.+` (any non-empty
/// value; the prefix is not added), `prefix*` and exact values get `prefix`
/// prepended, and `*suffix` is a suffix match, or with a prefix the regex
/// `<prefix>.*<suffix>` (the suffix quoted here; Istio leaves it raw).
fn string_matcher(pattern: &Pattern, prefix: &str, ignore_case: bool) -> StringMatcher {
    let pattern = match pattern {
        Pattern::Any => MatchPattern::SafeRegex(regex_matcher(".+")),
        Pattern::Exact(v) => MatchPattern::Exact(format!("{prefix}{v}")),
        Pattern::Prefix(v) => MatchPattern::Prefix(format!("{prefix}{v}")),
        Pattern::Suffix(v) if prefix.is_empty() => MatchPattern::Suffix(v.clone()),
        Pattern::Suffix(v) => {
            MatchPattern::SafeRegex(regex_matcher(&format!("{}.*{}", quote(prefix), quote(v))))
        }
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case,
    }
}

/// Istio's `HeaderMatcher` / `HostMatcher` value: `None` (present) for `*`,
/// else an exact, prefix or suffix string match.
fn header_value(pattern: &Pattern, ignore_case: bool) -> Option<StringMatcher> {
    match pattern {
        Pattern::Any => None,
        other => Some(string_matcher(other, "", ignore_case)),
    }
}

/// A whole-value RE2 match.
fn regex(regex: String) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(MatchPattern::SafeRegex(regex_matcher(&regex))),
        ignore_case: false,
    }
}

/// A pattern as a regex fragment, `*` as `.*` (Istio's namespace matcher).
fn pattern_regex(pattern: &Pattern) -> String {
    match pattern {
        Pattern::Any => ".*".into(),
        Pattern::Exact(v) => quote(v),
        Pattern::Prefix(v) => format!("{}.*", quote(v)),
        Pattern::Suffix(v) => format!(".*{}", quote(v)),
    }
}

/// `text` as a literal in an RE2 regex (only RE2's meta characters quoted).
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::rbac::v3::principal;

    fn text(m: &StringMatcher) -> String {
        match m.match_pattern.as_ref().unwrap() {
            MatchPattern::Exact(v) => format!("exact {v}"),
            MatchPattern::Prefix(v) => format!("prefix {v}"),
            MatchPattern::Suffix(v) => format!("suffix {v}"),
            MatchPattern::SafeRegex(r) => format!("regex {}", r.regex),
            MatchPattern::Contains(v) => format!("contains {v}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn principals_get_the_spiffe_prefix_as_istio_adds_it() {
        let m = |v: &str| text(&string_matcher(&Pattern::parse(v), SPIFFE_PREFIX, false));
        assert_eq!(
            m("cluster.local/ns/default/sa/sleep"),
            "exact spiffe://cluster.local/ns/default/sa/sleep"
        );
        assert_eq!(
            m("cluster.local/ns/a/*"),
            "prefix spiffe://cluster.local/ns/a/"
        );
        assert_eq!(m("*"), "regex .+");
    }

    #[test]
    fn suffix_principals_and_exact_namespaces_need_no_regex() {
        let authenticated = |p: &Principal| match &p.identifier {
            Some(principal::Identifier::Authenticated(a)) => {
                text(a.principal_name.as_ref().unwrap())
            }
            other => format!("{other:?}"),
        };
        let and = principal_matcher(&Pattern::parse("*/sa/sleep"));
        let Some(principal::Identifier::AndIds(set)) = &and.identifier else {
            panic!("{and:?}");
        };
        let parts: Vec<String> = set.ids.iter().map(authenticated).collect();
        assert_eq!(parts, ["prefix spiffe://", "suffix /sa/sleep"]);
        let ns = |v: &str| text(&namespace_matcher(&Pattern::parse(v)));
        let long = "n".repeat(200);
        assert_eq!(ns(&long), format!("contains /ns/{long}/"));
        assert_eq!(ns("prod-*"), r"regex .*/ns/prod-.*/.*");
    }

    #[test]
    fn paths_and_namespaces_follow_istio_patterns() {
        let path = |v: &str| text(&string_matcher(&Pattern::parse(v), "", false));
        assert_eq!(path("/api/*"), "prefix /api/");
        assert_eq!(path("*.png"), "suffix .png");
        assert_eq!(path("*"), "regex .+");
        assert_eq!(path("/x"), "exact /x");
        let ns = |v: &str| pattern_regex(&Pattern::parse(v));
        assert_eq!(ns("prod"), "prod");
        assert_eq!(
            namespace_regex(&Pattern::parse("*-test")),
            r".*/ns/.*-test/.*"
        );
        assert_eq!(ns("prod-*"), "prod-.*");
        assert_eq!(ns("*"), ".*");
        assert_eq!(quote("a.b(c)"), r"a\.b\(c\)");
    }

    #[test]
    fn a_field_is_either_peer_or_request() {
        let values = Values {
            values: vec![Pattern::Any],
            not_values: vec![Pattern::Exact("x".into())],
        };
        let hosts = Field::Hosts(values.clone());
        assert_eq!(permission_terms(&hosts).len(), 2);
        assert!(principal_terms(&hosts).is_empty());
        let principals = Field::Principals(values);
        assert_eq!(principal_terms(&principals).len(), 2);
        assert!(permission_terms(&principals).is_empty());
    }
}
