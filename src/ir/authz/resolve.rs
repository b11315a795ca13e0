//! `model::AuthorizationPolicy` → [`AuthzPolicy`].

use super::{AuthzAction, AuthzPolicy, AuthzRule, Cidr, Field, Pattern, Values};
use crate::diagnostic::Diagnostic;
use crate::model::{
    AuthorizationAction, AuthorizationPolicy, Condition, ObjectKey, Operation, Rule, Source,
    FAIL_CLOSED_ANNOTATION,
};

/// Resolves the AuthorizationPolicy `key`.
///
/// A policy annotated [`FAIL_CLOSED_ANNOTATION`] (the stand-in that
/// `source::parse` serves for an invalid one), and one whose values do not
/// parse (validation normally rejects them first), becomes a DENY of every
/// request to the workloads it selects, with `fail_closed` saying why (and,
/// for the latter, an error in `diagnostics`).
pub fn resolve(
    key: &ObjectKey,
    policy: &AuthorizationPolicy,
    diagnostics: &mut Vec<Diagnostic>,
) -> AuthzPolicy {
    let spec = &policy.spec;
    let marked = policy
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(FAIL_CLOSED_ANNOTATION))
        .cloned();
    let resolved = match marked {
        Some(reason) => Err(reason),
        // Validation refuses CUSTOM first; never treat it as another action.
        None if spec.action == AuthorizationAction::CUSTOM => {
            Err("spec.action: CUSTOM is not supported".to_string())
        }
        None => spec
            .rules
            .iter()
            .map(rule)
            .collect::<Result<Vec<_>, _>>()
            .inspect_err(|reason| {
                diagnostics.push(Diagnostic::error(
                    key,
                    "spec.rules",
                    format!("{reason}; the policy fails closed (denies every request)"),
                ))
            }),
    };
    let (action, rules, fail_closed) = match resolved {
        Ok(rules) => (
            match spec.action {
                AuthorizationAction::ALLOW => AuthzAction::Allow,
                AuthorizationAction::DENY => AuthzAction::Deny,
                AuthorizationAction::AUDIT => AuthzAction::Audit,
                AuthorizationAction::CUSTOM => unreachable!("CUSTOM fails closed above"),
            },
            rules,
            None,
        ),
        Err(reason) => (AuthzAction::Deny, vec![AuthzRule::default()], Some(reason)),
    };
    AuthzPolicy {
        name: format!("{}/{}", key.namespace, key.name),
        namespace: key.namespace.clone(),
        selector: spec.selector.as_ref().map(|s| s.match_labels.clone()),
        action,
        rules,
        fail_closed,
        origin: key.clone(),
    }
}

/// One rule, its fields in Istio's order (`model.New`): a source's
/// principals, namespaces, then IP blocks; an operation's hosts, methods,
/// paths, then ports; conditions as written.
fn rule(rule: &Rule) -> Result<AuthzRule, String> {
    Ok(AuthzRule {
        from: rule
            .from
            .iter()
            .map(|f| source(&f.source))
            .collect::<Result<_, _>>()?,
        to: rule
            .to
            .iter()
            .map(|t| operation(&t.operation))
            .collect::<Result<_, _>>()?,
        when: rule.when.iter().map(condition).collect::<Result<_, _>>()?,
    })
}

fn source(s: &Source) -> Result<Vec<Field>, String> {
    let principals = patterns(&s.principals, &s.not_principals).map(Field::Principals);
    let namespaces = patterns(&s.namespaces, &s.not_namespaces).map(Field::Namespaces);
    let ips = cidrs(&s.ip_blocks, &s.not_ip_blocks)?.map(Field::SourceIps);
    let remote_ips = cidrs(&s.remote_ip_blocks, &s.not_remote_ip_blocks)?.map(Field::RemoteIps);
    Ok([principals, namespaces, ips, remote_ips]
        .into_iter()
        .flatten()
        .collect())
}

fn operation(o: &Operation) -> Result<Vec<Field>, String> {
    let hosts = patterns(&o.hosts, &o.not_hosts).map(Field::Hosts);
    let methods = patterns(&o.methods, &o.not_methods).map(Field::Methods);
    let paths = patterns(&o.paths, &o.not_paths).map(Field::Paths);
    let ports = ports(&o.ports, &o.not_ports)?.map(Field::Ports);
    Ok([hosts, methods, paths, ports]
        .into_iter()
        .flatten()
        .collect())
}

fn condition(c: &Condition) -> Result<Field, String> {
    let (values, not_values) = (&c.values, &c.not_values);
    let field = match c.key.as_str() {
        "source.principal" => patterns(values, not_values).map(Field::Principals),
        "source.namespace" => patterns(values, not_values).map(Field::Namespaces),
        "source.ip" => cidrs(values, not_values)?.map(Field::SourceIps),
        "remote.ip" => cidrs(values, not_values)?.map(Field::RemoteIps),
        "destination.port" => ports(values, not_values)?.map(Field::Ports),
        key => {
            let name = key
                .strip_prefix("request.headers[")
                .and_then(|r| r.strip_suffix(']'))
                .filter(|n| !n.is_empty())
                .ok_or_else(|| format!("condition key {key:?} is not supported"))?;
            patterns(values, not_values).map(|values| Field::Header {
                name: name.to_ascii_lowercase(),
                values,
            })
        }
    };
    field.ok_or_else(|| format!("condition {:?} has no values", c.key))
}

/// `None` when both lists are empty (the field is not set).
fn values<T>(values: Vec<T>, not_values: Vec<T>) -> Option<Values<T>> {
    (!values.is_empty() || !not_values.is_empty()).then_some(Values { values, not_values })
}

fn patterns(v: &[String], not: &[String]) -> Option<Values<Pattern>> {
    let parse = |list: &[String]| list.iter().map(|s| Pattern::parse(s)).collect();
    values(parse(v), parse(not))
}

fn cidrs(v: &[String], not: &[String]) -> Result<Option<Values<Cidr>>, String> {
    let parse = |list: &[String]| {
        list.iter()
            .map(|s| Cidr::parse(s).ok_or_else(|| format!("{s:?} is not an IP address or CIDR")))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(values(parse(v)?, parse(not)?))
}

fn ports(v: &[String], not: &[String]) -> Result<Option<Values<u16>>, String> {
    let parse = |list: &[String]| {
        list.iter()
            .map(|s| {
                s.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("{s:?} is not a port number"))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(values(parse(v)?, parse(not)?))
}
