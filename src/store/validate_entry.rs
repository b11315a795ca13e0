//! Checks of a ServiceEntry on its own, following Istio's validation
//! (`ValidateServiceEntry`): hosts, ports, resolution and endpoints agree.

use super::validate::is_ip_or_cidr;
use super::validate::{export_to_at, host_name, port_number};
use crate::diagnostic::Diagnostic;
use crate::ir::Protocol;
use crate::model::{ObjectKey, Resolution, ServiceEntrySpec};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Adds every problem of `spec` (object `key`) to `out`.
pub(super) fn service_entry(key: &ObjectKey, spec: &ServiceEntrySpec, out: &mut Vec<Diagnostic>) {
    let error = |out: &mut Vec<Diagnostic>, field: String, message: String| {
        out.push(Diagnostic::error(key, field, message));
    };
    export_to_at(key, "spec.exportTo", &spec.export_to, out);
    let resolution = spec.resolution.unwrap_or(Resolution::NONE);
    if spec.hosts.is_empty() {
        error(
            out,
            "spec.hosts".into(),
            "at least one host is required".into(),
        );
    }
    for (i, host) in spec.hosts.iter().enumerate() {
        let field = format!("spec.hosts[{i}]");
        if host == "*" {
            error(
                out,
                field,
                "\"*\" is not allowed: name the hosts, or a `*.suffix`".into(),
            );
        } else if let Err(reason) = host_name(host) {
            error(out, field, reason);
        } else if host.starts_with("*.")
            && spec.endpoints.is_empty()
            && matches!(
                resolution,
                Resolution::DNS | Resolution::DNS_ROUND_ROBIN | Resolution::NONE
            )
        {
            let why = match resolution {
                Resolution::NONE => "resolution NONE sends requests to the host the client names; a wildcard names no single host (list the hosts, or use STATIC endpoints)",
                _ => "DNS resolution needs a name to resolve: give endpoints, or list the hosts",
            };
            error(out, field, format!("wildcard host {host:?}: {why}"));
        }
    }
    for (i, address) in spec.addresses.iter().enumerate() {
        if !is_ip_or_cidr(address) {
            error(
                out,
                format!("spec.addresses[{i}]"),
                format!("{address:?} is not an IP address or CIDR"),
            );
        }
    }
    if spec.ports.is_empty() {
        error(
            out,
            "spec.ports".into(),
            "at least one port is required".into(),
        );
    }
    let mut numbers = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let base = format!("spec.ports[{i}]");
        port_number(key, &format!("{base}.number"), i64::from(port.number), out);
        if let Some(target) = port.target_port {
            port_number(key, &format!("{base}.targetPort"), i64::from(target), out);
        }
        if !numbers.insert(port.number) {
            error(
                out,
                format!("{base}.number"),
                format!("port {} appears twice", port.number),
            );
        }
        let name_ok = !port.name.is_empty()
            && port.name.len() <= 63
            && port
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !port.name.starts_with('-')
            && !port.name.ends_with('-');
        if !name_ok {
            error(
                out,
                format!("{base}.name"),
                format!("{:?}: every port needs a name of letters, digits and '-' (endpoints map ports by name)", port.name),
            );
        } else if !names.insert(port.name.as_str()) {
            error(
                out,
                format!("{base}.name"),
                format!("port name {:?} appears twice", port.name),
            );
        }
        if let Some(protocol) = &port.protocol {
            if Protocol::from_istio_name(protocol).is_none() {
                error(out, format!("{base}.protocol"), format!("{protocol:?} is not one of HTTP, HTTP2, GRPC, GRPC-WEB, HTTPS, TLS, TCP, MONGO, MYSQL, REDIS (UDP is not supported)"));
            }
        }
    }
    if spec.workload_selector.is_some() && !spec.endpoints.is_empty() {
        error(
            out,
            "spec.workloadSelector".into(),
            "set endpoints or workloadSelector, not both".into(),
        );
    }
    if spec.workload_selector.is_some() && resolution != Resolution::STATIC {
        error(out, "spec.resolution".into(), "workloadSelector needs resolution STATIC (the selected workloads' IPs are the endpoints)".into());
    }
    match resolution {
        Resolution::NONE if !spec.endpoints.is_empty() => {
            error(
                out,
                "spec.endpoints".into(),
                "resolution NONE takes no endpoints (use STATIC or DNS)".into(),
            );
        }
        Resolution::DNS_ROUND_ROBIN if spec.endpoints.len() > 1 => {
            error(
                out,
                "spec.endpoints".into(),
                "resolution DNS_ROUND_ROBIN takes at most one endpoint (use DNS for several)"
                    .into(),
            );
        }
        _ => {}
    }
    for (i, endpoint) in spec.endpoints.iter().enumerate() {
        let base = format!("spec.endpoints[{i}]");
        let is_ip = endpoint.address.parse::<IpAddr>().is_ok();
        match resolution {
            Resolution::STATIC if !is_ip => error(
                out,
                format!("{base}.address"),
                format!(
                    "{:?} is not an IP address; resolution STATIC needs IPs (use DNS for names)",
                    endpoint.address
                ),
            ),
            _ if !is_ip
                && (endpoint.address.starts_with('*') || host_name(&endpoint.address).is_err()) =>
            {
                error(
                    out,
                    format!("{base}.address"),
                    format!(
                        "{:?} is neither an IP address nor a DNS name",
                        endpoint.address
                    ),
                );
            }
            _ => {}
        }
        for (name, number) in &endpoint.ports {
            port_number(
                key,
                &format!("{base}.ports.{name}"),
                i64::from(*number),
                out,
            );
            if !names.contains(name.as_str()) {
                error(
                    out,
                    format!("{base}.ports.{name}"),
                    format!("the entry has no port named {name:?}"),
                );
            }
        }
    }
}
