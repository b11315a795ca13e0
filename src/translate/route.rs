//! IR virtual hosts → the outbound route configuration.

use super::http_route;
use super::scope::Scope;
use crate::diagnostic::{Diagnostic, Severity};
use crate::ir::{self, Ir};
use crate::proxy::ProxyClass;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use std::collections::BTreeMap;

/// Name of the outbound route configuration.
pub const OUTBOUND_ROUTE_CONFIG: &str = "outbound";

/// One virtual host per IR virtual host. Domains are lower-case and unique
/// across the configuration (Envoy rejects the whole RouteConfiguration
/// otherwise): a domain already taken by an earlier virtual host is left out
/// with an error, and a virtual host left without domains is not sent.
pub(super) fn outbound_route_configuration(
    ir: &Ir,
    class: &ProxyClass,
    scope: &Scope<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> RouteConfiguration {
    let mut taken: BTreeMap<String, &str> = BTreeMap::new();
    let mut virtual_hosts = Vec::new();
    for vhost in ir.virtual_hosts.iter().filter(|v| scope.virtual_host(v)) {
        let mut domains = Vec::new();
        for domain in domains_of(vhost, class) {
            if let Some(owner) = taken.get(&domain) {
                diagnostics.push(Diagnostic {
                    severity: Severity::Error,
                    file: None,
                    object: vhost.origins.last().cloned(),
                    field: String::new(),
                    message: format!("domain {domain:?} of virtual host {} is already served by virtual host {owner}; left out", vhost.name),
                });
                continue;
            }
            taken.insert(domain.clone(), &vhost.name);
            domains.push(domain);
        }
        if domains.is_empty() {
            continue;
        }
        virtual_hosts.push(VirtualHost {
            name: vhost.name.clone(),
            domains,
            routes: scope
                .routes(vhost)
                .iter()
                .flat_map(|r| http_route::routes_of(r, ir, scope))
                .collect(),
            ..Default::default()
        });
    }
    RouteConfiguration {
        name: OUTBOUND_ROUTE_CONFIG.into(),
        virtual_hosts,
        ..Default::default()
    }
}

/// The Host header values a virtual host answers, lower-case. A service port
/// answers its FQDN, `name.ns.svc`, `name.ns` and, for proxies in the same
/// namespace, `name`; a ServiceEntry port its host only. Each with `:port`,
/// and without a port on the service's default port.
pub(super) fn domains_of(vhost: &ir::VirtualHost, class: &ProxyClass) -> Vec<String> {
    let Some(svc) = &vhost.service else {
        return vec![vhost.host.to_ascii_lowercase()];
    };
    let mut aliases = vec![vhost.host.clone()];
    if svc.short_names {
        aliases.push(format!("{}.{}.svc", svc.name, svc.namespace));
        aliases.push(format!("{}.{}", svc.name, svc.namespace));
    }
    if svc.short_names && svc.namespace == class.namespace {
        aliases.push(svc.name.clone());
    }
    let mut domains = Vec::new();
    for alias in aliases {
        let alias = alias.to_ascii_lowercase();
        if svc.default_port {
            domains.push(alias.clone());
        }
        domains.push(format!("{alias}:{}", svc.port));
    }
    domains
}
