//! Per-object validation that needs no other object: field shapes, ranges and
//! regular expressions. Reference checks (does the host exist?) happen when
//! the IR is built, because they depend on the rest of the world.

use crate::diagnostic::Diagnostic;
use crate::model::{Object, ObjectKey, StringMatch};
use std::collections::BTreeSet;

/// Checks one object; errors make the source keep the object's last good version.
pub fn object(object: &Object) -> Vec<Diagnostic> {
    let key = object.key();
    let mut out = Vec::new();
    metadata(object, &key, &mut out);
    match object {
        Object::VirtualService(vs) => {
            export_to(&key, &vs.spec.export_to, &mut out);
            if vs.spec.hosts.is_empty() {
                out.push(Diagnostic::error(
                    &key,
                    "spec.hosts",
                    "at least one host is required",
                ));
            }
            for (i, host) in vs.spec.hosts.iter().enumerate() {
                if let Err(reason) = host_name(host) {
                    out.push(Diagnostic::error(&key, format!("spec.hosts[{i}]"), reason));
                }
            }
            if vs.spec.http.is_empty() && vs.spec.tcp.is_empty() {
                out.push(Diagnostic::warning(
                    &key,
                    "spec.http",
                    "no HTTP or TCP routes: HTTP requests to its hosts get 404 (tls routes are not supported)",
                ));
            }
            tcp_routes(&key, &vs.spec.tcp, &mut out);
            for (i, http) in vs.spec.http.iter().enumerate() {
                for (j, m) in http.matches.iter().enumerate() {
                    let base = format!("spec.http[{i}].match[{j}]");
                    if let Some(uri) = &m.uri {
                        string_match(&key, &format!("{base}.uri"), uri, &mut out);
                    }
                    for (name, value) in &m.source_labels {
                        if let Err(reason) = label(name, value) {
                            out.push(Diagnostic::error(
                                &key,
                                format!("{base}.sourceLabels.{name}"),
                                reason,
                            ));
                        }
                    }
                    if let Some(ns) = m.source_namespace.as_deref().filter(|ns| !is_dns_label(ns)) {
                        out.push(Diagnostic::error(
                            &key,
                            format!("{base}.sourceNamespace"),
                            format!("{ns:?} is not a namespace name (a DNS-1123 label)"),
                        ));
                    }
                    for (name, value) in &m.headers {
                        let field = format!("{base}.headers.{name}");
                        if let Err(reason) = header_name(name) {
                            out.push(Diagnostic::error(&key, &field, reason));
                        }
                        string_match(&key, &field, value, &mut out);
                        if value.prefix.as_deref() == Some("") {
                            out.push(Diagnostic::error(&key, format!("{field}.prefix"), "a header prefix must not be empty (use regex \".*\" to match any value)"));
                        }
                    }
                }
                super::validate_http::http_route(&key, i, http, &mut out);
                for (j, dest) in http.route.iter().enumerate() {
                    let base = format!("spec.http[{i}].route[{j}]");
                    if dest.destination.host.trim().is_empty() {
                        out.push(Diagnostic::error(
                            &key,
                            format!("{base}.destination.host"),
                            "host must not be empty",
                        ));
                    }
                    if let Some(port) = &dest.destination.port {
                        port_number(
                            &key,
                            &format!("{base}.destination.port.number"),
                            i64::from(port.number),
                            &mut out,
                        );
                    }
                    if matches!(dest.weight, Some(w) if w < 0) {
                        out.push(Diagnostic::error(
                            &key,
                            format!("{base}.weight"),
                            "weight must not be negative",
                        ));
                    }
                }
            }
        }
        Object::DestinationRule(dr) => {
            export_to(&key, &dr.spec.export_to, &mut out);
            if let Some(policy) = &dr.spec.traffic_policy {
                super::validate_policy::traffic_policy(
                    &key,
                    "spec.trafficPolicy",
                    policy,
                    &mut out,
                );
            }
            for (i, subset) in dr.spec.subsets.iter().enumerate() {
                if let Some(policy) = &subset.traffic_policy {
                    super::validate_policy::traffic_policy(
                        &key,
                        &format!("spec.subsets[{i}].trafficPolicy"),
                        policy,
                        &mut out,
                    );
                }
            }
            if dr.spec.host.trim().is_empty() {
                out.push(Diagnostic::error(
                    &key,
                    "spec.host",
                    "host must not be empty",
                ));
            }
            let mut names = BTreeSet::new();
            for (i, subset) in dr.spec.subsets.iter().enumerate() {
                let field = format!("spec.subsets[{i}].name");
                if subset.name.is_empty() || subset.name.contains('|') {
                    out.push(Diagnostic::error(
                        &key,
                        &field,
                        "subset name must be non-empty and must not contain '|'",
                    ));
                } else if !names.insert(subset.name.as_str()) {
                    out.push(Diagnostic::error(
                        &key,
                        &field,
                        format!("duplicate subset name {:?}", subset.name),
                    ));
                }
            }
        }
        Object::WorkloadEntry(we) => {
            if we.spec.address.parse::<std::net::IpAddr>().is_err() {
                out.push(Diagnostic::error(
                    &key,
                    "spec.address",
                    format!("{:?} is not an IP address", we.spec.address),
                ));
            }
            for (name, port) in &we.spec.ports {
                port_number(
                    &key,
                    &format!("spec.ports.{name}"),
                    i64::from(*port),
                    &mut out,
                );
            }
        }
        Object::Service(svc) => {
            let annotation = svc
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(crate::ir::scope::EXPORT_TO_ANNOTATION));
            if let Some(value) = annotation {
                let entries: Vec<String> = value.split(',').map(|e| e.trim().to_string()).collect();
                let field = format!(
                    "metadata.annotations[{}]",
                    crate::ir::scope::EXPORT_TO_ANNOTATION
                );
                export_to_at(&key, &field, &entries, &mut out);
            }
            let spec = svc.spec.as_ref();
            if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
                let name = spec.and_then(|s| s.external_name.as_deref()).unwrap_or("");
                if name.is_empty() || name.starts_with('*') || host_name(name).is_err() {
                    out.push(Diagnostic::error(
                        &key,
                        "spec.externalName",
                        format!("{name:?} is not a DNS name; an ExternalName service needs one"),
                    ));
                }
            }
            let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
            let mut numbers = BTreeSet::new();
            let mut names = BTreeSet::new();
            for (i, port) in ports.into_iter().flatten().enumerate() {
                let protocol = port.protocol.as_deref().unwrap_or("TCP");
                if !numbers.insert((port.port, protocol)) {
                    out.push(Diagnostic::error(
                        &key,
                        format!("spec.ports[{i}].port"),
                        format!("port {} {protocol} appears twice", port.port),
                    ));
                }
                if !names.insert(port.name.clone().unwrap_or_default()) {
                    out.push(Diagnostic::error(
                        &key,
                        format!("spec.ports[{i}].name"),
                        "port names must be unique (and set when there are several ports)",
                    ));
                }
                if !matches!(protocol, "TCP" | "UDP" | "SCTP") {
                    out.push(Diagnostic::error(&key, format!("spec.ports[{i}].protocol"), format!("{protocol:?} is not TCP, UDP or SCTP (Kubernetes spells them in capitals)")));
                }
            }
            for (i, port) in ports.into_iter().flatten().enumerate() {
                port_number(
                    &key,
                    &format!("spec.ports[{i}].port"),
                    i64::from(port.port),
                    &mut out,
                );
                if let Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(
                    target,
                )) = &port.target_port
                {
                    port_number(
                        &key,
                        &format!("spec.ports[{i}].targetPort"),
                        i64::from(*target),
                        &mut out,
                    );
                }
            }
        }
        Object::EndpointSlice(slice) => {
            let labels = slice.metadata.labels.as_ref();
            if labels
                .and_then(|l| l.get(crate::ir::SERVICE_NAME_LABEL))
                .is_none()
            {
                out.push(Diagnostic::warning(
                    &key,
                    "metadata.labels",
                    format!(
                        "no {} label: the slice belongs to no Service and is ignored",
                        crate::ir::SERVICE_NAME_LABEL
                    ),
                ));
            }
        }
        Object::Pod(_) => {}
        Object::PeerAuthentication(pa) => {
            super::validate_security::peer_authentication(&key, &pa.spec, &mut out)
        }
        Object::AuthorizationPolicy(ap) => {
            super::validate_security::authorization_policy(&key, &ap.spec, &mut out)
        }
        Object::Telemetry(t) => super::validate_telemetry::telemetry(&key, &t.spec, &mut out),
        Object::ServiceLevelObjective(slo) => {
            super::validate_slo::service_level_objective(&key, &slo.spec, &mut out)
        }
        Object::ServiceEntry(entry) => {
            super::validate_entry::service_entry(&key, &entry.spec, &mut out)
        }
        Object::Sidecar(sidecar) => {
            for (i, egress) in sidecar.spec.egress.iter().enumerate() {
                for (j, host) in egress.hosts.iter().enumerate() {
                    let valid = host.split_once('/').is_some_and(|(ns, h)| {
                        (matches!(ns, "*" | "." | "~") || is_dns_label(ns)) && host_name(h).is_ok()
                    });
                    if !valid {
                        out.push(Diagnostic::error(
                            &key,
                            format!("spec.egress[{i}].hosts[{j}]"),
                            format!("{host:?} is not namespace/host: a namespace (or *, ., ~) and a FQDN, *.suffix or * (e.g. \"./*\", \"shop/cart.shop.svc.cluster.local\")"),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// A VirtualService's `tcp` routes: destinations named, weights not
/// negative, ports in range.
fn tcp_routes(key: &ObjectKey, routes: &[crate::model::TcpRoute], out: &mut Vec<Diagnostic>) {
    for (i, route) in routes.iter().enumerate() {
        for (j, m) in route.matches.iter().enumerate() {
            if let Some(port) = m.port {
                port_number(
                    key,
                    &format!("spec.tcp[{i}].match[{j}].port"),
                    i64::from(port),
                    out,
                );
            }
        }
        if route.route.is_empty() {
            out.push(Diagnostic::error(
                key,
                format!("spec.tcp[{i}].route"),
                "at least one destination is required",
            ));
        }
        for (j, dest) in route.route.iter().enumerate() {
            let base = format!("spec.tcp[{i}].route[{j}]");
            if dest.destination.host.trim().is_empty() {
                out.push(Diagnostic::error(
                    key,
                    format!("{base}.destination.host"),
                    "host must not be empty",
                ));
            }
            if let Some(port) = &dest.destination.port {
                port_number(
                    key,
                    &format!("{base}.destination.port.number"),
                    i64::from(port.number),
                    out,
                );
            }
            if matches!(dest.weight, Some(w) if w < 0) {
                out.push(Diagnostic::error(
                    key,
                    format!("{base}.weight"),
                    "weight must not be negative",
                ));
            }
        }
    }
}

/// `metadata.name` and `metadata.namespace` as Kubernetes requires them:
/// namespaces are DNS-1123 labels, Service names DNS-1035 labels, other
/// names DNS-1123 subdomains. Anything else could break generated names
/// (`outbound|port|subset|fqdn`) or domains Envoy rejects.
fn metadata(object: &Object, key: &ObjectKey, out: &mut Vec<Diagnostic>) {
    if !is_dns_label(&key.namespace) {
        out.push(Diagnostic::error(
            key,
            "metadata.namespace",
            format!(
                "{:?} is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)",
                key.namespace
            ),
        ));
    }
    let name_ok = match object {
        Object::Service(_) => {
            is_dns_label(&key.name) && key.name.starts_with(|c: char| c.is_ascii_lowercase())
        }
        _ => key.name.len() <= 253 && key.name.split('.').all(is_dns_label),
    };
    if !name_ok {
        let rule = if matches!(object, Object::Service(_)) {
            "a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, at most 63)"
        } else {
            "a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')"
        };
        out.push(Diagnostic::error(
            key,
            "metadata.name",
            format!("{:?} is not {rule}", key.name),
        ));
    }
}

/// A Kubernetes label: key `[prefix/]name` (name up to 63 characters of
/// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric; prefix a
/// DNS subdomain), value empty or like a name.
fn label(key: &str, value: &str) -> Result<(), String> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if !name_ok(name) || prefix.is_some_and(|p| p.len() > 253 || !p.split('.').all(is_dns_label)) {
        return Err(format!("{key:?} is not a label key"));
    }
    if !value.is_empty() && !name_ok(value) {
        return Err(format!(
            "{value:?} is not a label value (up to 63 alphanumerics, '-', '_', '.')"
        ));
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A VirtualService host: a DNS name (any case; compared lower-case), `*`,
/// or `*.suffix`; no port.
pub(super) fn host_name(host: &str) -> Result<(), String> {
    let rest = host.strip_prefix("*.").unwrap_or(host);
    if host == "*" {
        return Ok(());
    }
    let labels_ok = !rest.is_empty()
        && rest.len() <= 253
        && rest.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if labels_ok {
        Ok(())
    } else if host.contains(':') {
        Err(format!(
            "{host:?}: hosts carry no port (the route applies to every port of the host)"
        ))
    } else {
        Err(format!("{host:?} is not a DNS name, `*` or `*.suffix`"))
    }
}

/// A header name Envoy accepts: an HTTP token (RFC 9110), optionally a
/// pseudo-header such as `:authority`; lower-case, since Envoy matches
/// lower-cased names.
pub(super) fn header_name(name: &str) -> Result<(), String> {
    let token = name.strip_prefix(':').unwrap_or(name);
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if token.is_empty() || !token.chars().all(tchar) {
        Err(format!("{name:?} is not an HTTP header name"))
    } else if name.chars().any(|c| c.is_ascii_uppercase()) {
        Err(format!("{name:?}: header names must be lower-case"))
    } else {
        Ok(())
    }
}

/// `exportTo` entries: `*`, `.`, `~` or a namespace name.
fn export_to(key: &ObjectKey, entries: &[String], out: &mut Vec<Diagnostic>) {
    export_to_at(key, "spec.exportTo", entries, out);
}

pub(super) fn export_to_at(
    key: &ObjectKey,
    field: &str,
    entries: &[String],
    out: &mut Vec<Diagnostic>,
) {
    let mut seen = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        if !seen.insert(entry.as_str()) {
            out.push(Diagnostic::error(
                key,
                format!("{field}[{i}]"),
                format!("{entry:?} appears twice"),
            ));
        }
        if matches!(entry.as_str(), "*" | "~") && entries.len() > 1 {
            out.push(Diagnostic::error(
                key,
                format!("{field}[{i}]"),
                format!("{entry:?} cannot be combined with other entries"),
            ));
        }
        let name_ok = !entry.is_empty()
            && entry.len() <= 63
            && entry
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !(matches!(entry.as_str(), "*" | "." | "~") || name_ok) {
            out.push(Diagnostic::error(
                key,
                format!("{field}[{i}]"),
                format!("{entry:?} is not *, ., ~ or a namespace name"),
            ));
        }
    }
}

pub(super) fn port_number(key: &ObjectKey, field: &str, port: i64, out: &mut Vec<Diagnostic>) {
    if !(1..=65535).contains(&port) {
        out.push(Diagnostic::error(
            key,
            field,
            format!("port {port} is outside 1-65535"),
        ));
    }
}

/// Checks that exactly one of exact/prefix/regex is set and that a regex is
/// one Envoy's RE2 engine accepts.
pub(super) fn string_match(
    key: &ObjectKey,
    field: &str,
    m: &StringMatch,
    out: &mut Vec<Diagnostic>,
) {
    let set = [m.exact.is_some(), m.prefix.is_some(), m.regex.is_some()];
    if set.iter().filter(|s| **s).count() != 1 {
        out.push(Diagnostic::error(
            key,
            field,
            "exactly one of exact, prefix or regex must be set",
        ));
    }
    if m.regex.as_deref() == Some("") {
        out.push(Diagnostic::error(
            key,
            format!("{field}.regex"),
            "a regex must not be empty",
        ));
    } else if let Some(regex) = &m.regex {
        if let Err(reason) = super::re2::re2_compatible(regex) {
            out.push(Diagnostic::error(key, format!("{field}.regex"), reason));
        }
    }
}

/// An IP address, or a CIDR range (`10.0.0.0/8`, `2001:db8::/32`).
pub(super) fn is_ip_or_cidr(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok() || s.parse::<ipnet::IpNet>().is_ok()
}
