//! Checks of PeerAuthentication and AuthorizationPolicy on their own,
//! following Istio's validation of the same kinds.

use super::validate::is_ip_or_cidr;
use super::validate::{header_name, port_number};
use crate::diagnostic::Diagnostic;
use crate::model::{
    AuthorizationAction, AuthorizationPolicySpec, MtlsMode, ObjectKey, PeerAuthenticationSpec,
};

/// Adds every problem of a PeerAuthentication to `out`.
pub(super) fn peer_authentication(
    key: &ObjectKey,
    spec: &PeerAuthenticationSpec,
    out: &mut Vec<Diagnostic>,
) {
    if !spec.port_level_mtls.is_empty() && spec.selector.is_none() {
        out.push(Diagnostic::error(
            key,
            "spec.portLevelMtls",
            "port-level modes need a selector (ports belong to workloads)",
        ));
    }
    for (port, mtls) in &spec.port_level_mtls {
        let field = format!("spec.portLevelMtls[{port}]");
        match port.parse::<i64>() {
            Ok(n) => port_number(key, &field, n, out),
            Err(_) => out.push(Diagnostic::error(
                key,
                &field,
                format!("{port:?} is not a port number"),
            )),
        }
        if mtls.mode == MtlsMode::UNSET {
            out.push(Diagnostic::warning(
                key,
                format!("{field}.mode"),
                "UNSET at port level changes nothing",
            ));
        }
    }
}

/// Adds every problem of an AuthorizationPolicy to `out`. Any error makes
/// the policy fail closed (see `source::parse`).
pub(super) fn authorization_policy(
    key: &ObjectKey,
    spec: &AuthorizationPolicySpec,
    out: &mut Vec<Diagnostic>,
) {
    if spec.action == AuthorizationAction::CUSTOM {
        out.push(Diagnostic::error(
            key,
            "spec.action",
            "CUSTOM (an external authorizer through an extension provider) is not supported",
        ));
    } else if spec.provider.is_some() {
        out.push(Diagnostic::error(
            key,
            "spec.provider",
            "a provider belongs to a CUSTOM policy only",
        ));
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        let base = format!("spec.rules[{i}]");
        for (j, from) in rule.from.iter().enumerate() {
            let s = &from.source;
            let field = |name: &str| format!("{base}.from[{j}].source.{name}");
            let lists = [
                ("principals", &s.principals),
                ("notPrincipals", &s.not_principals),
                ("namespaces", &s.namespaces),
                ("notNamespaces", &s.not_namespaces),
            ];
            for (name, values) in lists {
                wildcard_values(key, &field(name), values, out);
            }
            for (name, values) in [
                ("principals", &s.principals),
                ("notPrincipals", &s.not_principals),
            ] {
                never_matching_principals(key, &field(name), values, out);
            }
            for (name, values) in [
                ("namespaces", &s.namespaces),
                ("notNamespaces", &s.not_namespaces),
            ] {
                never_matching_namespaces(key, &field(name), values, out);
                namespace_patterns_fit_envoy(key, &field(name), values, out);
            }
            for (name, values) in [
                ("ipBlocks", &s.ip_blocks),
                ("notIpBlocks", &s.not_ip_blocks),
                ("remoteIpBlocks", &s.remote_ip_blocks),
                ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
            ] {
                for (k, v) in values.iter().enumerate() {
                    if !is_ip_or_cidr(v) {
                        out.push(Diagnostic::error(
                            key,
                            format!("{}[{k}]", field(name)),
                            format!("{v:?} is not an IP address or CIDR"),
                        ));
                    }
                }
            }
            if lists_empty(&[
                &s.principals,
                &s.not_principals,
                &s.namespaces,
                &s.not_namespaces,
                &s.ip_blocks,
                &s.not_ip_blocks,
                &s.remote_ip_blocks,
                &s.not_remote_ip_blocks,
            ]) {
                out.push(Diagnostic::error(
                    key,
                    format!("{base}.from[{j}].source"),
                    "a source needs at least one field",
                ));
            }
        }
        for (j, to) in rule.to.iter().enumerate() {
            let o = &to.operation;
            let field = |name: &str| format!("{base}.to[{j}].operation.{name}");
            for (name, values) in [
                ("hosts", &o.hosts),
                ("notHosts", &o.not_hosts),
                ("paths", &o.paths),
                ("notPaths", &o.not_paths),
            ] {
                wildcard_values(key, &field(name), values, out);
            }
            for (name, values) in [("paths", &o.paths), ("notPaths", &o.not_paths)] {
                for (k, v) in values.iter().enumerate() {
                    if !v.starts_with('/') && !v.starts_with('*') {
                        out.push(Diagnostic::error(
                            key,
                            format!("{}[{k}]", field(name)),
                            format!("{v:?}: a path starts with / (or is a *suffix pattern)"),
                        ));
                    }
                    if v.contains('{') || v.contains('?') {
                        out.push(Diagnostic::error(key, format!("{}[{k}]", field(name)), format!("{v:?}: path templates and queries are not supported; use exact, prefix* or *suffix")));
                    }
                }
            }
            for (name, values) in [("ports", &o.ports), ("notPorts", &o.not_ports)] {
                for (k, v) in values.iter().enumerate() {
                    match v.parse::<i64>() {
                        Ok(n) => port_number(key, &format!("{}[{k}]", field(name)), n, out),
                        Err(_) => out.push(Diagnostic::error(
                            key,
                            format!("{}[{k}]", field(name)),
                            format!("{v:?} is not a port number"),
                        )),
                    }
                }
            }
            for (name, values) in [("methods", &o.methods), ("notMethods", &o.not_methods)] {
                for (k, v) in values.iter().enumerate() {
                    let token = !v.is_empty()
                        && v.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
                    if !token {
                        out.push(Diagnostic::error(
                            key,
                            format!("{}[{k}]", field(name)),
                            format!("{v:?} is not an HTTP method"),
                        ));
                    }
                }
            }
            if lists_empty(&[
                &o.hosts,
                &o.not_hosts,
                &o.ports,
                &o.not_ports,
                &o.methods,
                &o.not_methods,
                &o.paths,
                &o.not_paths,
            ]) {
                out.push(Diagnostic::error(
                    key,
                    format!("{base}.to[{j}].operation"),
                    "an operation needs at least one field",
                ));
            }
        }
        for (j, c) in rule.when.iter().enumerate() {
            let field = format!("{base}.when[{j}]");
            if c.values.is_empty() && c.not_values.is_empty() {
                out.push(Diagnostic::error(
                    key,
                    &field,
                    "a condition needs values or notValues",
                ));
            }
            let all: Vec<&String> = c.values.iter().chain(&c.not_values).collect();
            match c.key.as_str() {
                "source.ip" | "remote.ip" => {
                    for v in all.iter().filter(|v| !is_ip_or_cidr(v)) {
                        out.push(Diagnostic::error(key, format!("{field}.values"), format!("{v:?} is not an IP address or CIDR")));
                    }
                }
                "destination.port" => {
                    for v in all.iter().filter(|v| v.parse::<u16>().map_or(true, |p| p == 0)) {
                        out.push(Diagnostic::error(key, format!("{field}.values"), format!("{v:?} is not a port number")));
                    }
                }
                "source.namespace" | "source.principal" => {
                    wildcard_values(key, &format!("{field}.values"), &c.values, out);
                    wildcard_values(key, &format!("{field}.notValues"), &c.not_values, out);
                    let never_matching = if c.key == "source.principal" {
                        never_matching_principals
                    } else {
                        never_matching_namespaces
                    };
                    never_matching(key, &format!("{field}.values"), &c.values, out);
                    never_matching(key, &format!("{field}.notValues"), &c.not_values, out);
                    if c.key == "source.namespace" {
                        namespace_patterns_fit_envoy(key, &format!("{field}.values"), &c.values, out);
                        namespace_patterns_fit_envoy(key, &format!("{field}.notValues"), &c.not_values, out);
                    }
                }
                other => match other.strip_prefix("request.headers[").and_then(|r| r.strip_suffix(']')) {
                    Some(name) => {
                        if let Err(reason) = header_name(&name.to_ascii_lowercase()) {
                            out.push(Diagnostic::error(key, format!("{field}.key"), reason));
                        }
                    }
                    None => out.push(Diagnostic::error(
                        key,
                        format!("{field}.key"),
                        format!("{other:?} is not supported; use request.headers[<name>], source.ip, source.namespace, source.principal or destination.port"),
                    )),
                },
            }
        }
    }
}

fn lists_empty(lists: &[&Vec<String>]) -> bool {
    lists.iter().all(|l| l.is_empty())
}

/// Istio's string patterns: exact, `*` alone, or one `*` at the start or the end.
fn wildcard_values(key: &ObjectKey, field: &str, values: &[String], out: &mut Vec<Diagnostic>) {
    for (k, v) in values.iter().enumerate() {
        let stars = v.matches('*').count();
        let ok = !v.is_empty()
            && (stars == 0 || v == "*" || (stars == 1 && (v.starts_with('*') || v.ends_with('*'))))
            && !v.contains(['\r', '\n', '\0']);
        if !ok {
            out.push(Diagnostic::error(
                key,
                format!("{field}[{k}]"),
                format!(
                    "{v:?}: a value is exact, `*`, `prefix*` or `*suffix` (one `*`, at an end)"
                ),
            ));
        }
    }
}

/// Warns about principals that can never match a mesh certificate, which
/// Istio accepts silently: the `spiffe://` prefix written out (it is added
/// when the policy is translated), an exact value not of the form
/// `<trust-domain>/ns/<namespace>/sa/<service-account>`, or upper case in
/// the namespace or service account (Kubernetes names are lower case).
fn never_matching_principals(
    key: &ObjectKey,
    field: &str,
    values: &[String],
    out: &mut Vec<Diagnostic>,
) {
    for (k, v) in values.iter().enumerate() {
        let problem = if v.to_ascii_lowercase().starts_with("spiffe://") {
            Some("leave out `spiffe://`: it is added when the policy is translated, so as written it never matches".to_string())
        } else if v.contains('*') {
            None
        } else {
            match v.split('/').collect::<Vec<_>>()[..] {
                [_, "ns", ns, "sa", sa] if !ns.is_empty() && !sa.is_empty() => (ns
                    .chars()
                    .chain(sa.chars())
                    .any(|c| c.is_ascii_uppercase()))
                .then(|| {
                    "namespaces and service accounts are lower-case Kubernetes names, so it never matches".to_string()
                }),
                _ => Some("a mesh identity has the form <trust-domain>/ns/<namespace>/sa/<service-account>, so it never matches".to_string()),
            }
        };
        if let Some(problem) = problem {
            out.push(Diagnostic::warning(
                key,
                format!("{field}[{k}]"),
                format!("{v:?}: {problem}"),
            ));
        }
    }
}

/// Warns about namespaces with upper case: Kubernetes names are lower
/// case, so they never match.
/// A namespace pattern (`prod-*`, `*-test`) becomes an RE2 regex in Envoy's
/// RBAC filter; one too long for Envoy's program-size limit would make the
/// proxy reject the whole inbound listener, so it is an error here (exact
/// namespaces need no regex).
fn namespace_patterns_fit_envoy(
    key: &ObjectKey,
    field: &str,
    values: &[String],
    out: &mut Vec<Diagnostic>,
) {
    for (k, v) in values.iter().enumerate() {
        let pattern = crate::ir::authz::Pattern::parse(v);
        if matches!(pattern, crate::ir::authz::Pattern::Exact(_)) {
            continue;
        }
        let regex = crate::translate::namespace_regex(&pattern);
        if let Err(reason) = super::re2::re2_compatible(&regex) {
            out.push(Diagnostic::error(
                key,
                format!("{field}[{k}]"),
                format!("{v:?} becomes the RBAC regex {regex:?}: {reason}"),
            ));
        }
    }
}

fn never_matching_namespaces(
    key: &ObjectKey,
    field: &str,
    values: &[String],
    out: &mut Vec<Diagnostic>,
) {
    for (k, v) in values.iter().enumerate() {
        if v.chars().any(|c| c.is_ascii_uppercase()) {
            out.push(Diagnostic::warning(
                key,
                format!("{field}[{k}]"),
                format!("{v:?}: namespaces are lower-case Kubernetes names, so it never matches"),
            ));
        }
    }
}
