//! IR virtual hosts → the outbound route configuration.

use super::plan::ClassPlan;
use super::scope::Scope;
use crate::diagnostic::{Diagnostic, Severity};
use crate::ir::{self, Ir};
use crate::proxy::ProxyClass;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// Name of the outbound route configuration.
pub const OUTBOUND_ROUTE_CONFIG: &str = "outbound";

/// One virtual host per IR virtual host. Domains are lower-case and unique
/// across the configuration (Envoy rejects the whole RouteConfiguration
/// otherwise): a domain already taken by an earlier virtual host is left out
/// with an error, and a virtual host left without domains is not sent.
///
/// The domains are those the plan claimed (see [`claim_domains`]); the
/// plan's virtual hosts are moved out.
pub(super) fn outbound_route_configuration(plan: &mut ClassPlan<'_>) -> RouteConfiguration {
    let virtual_hosts = std::mem::take(&mut plan.virtual_hosts)
        .into_iter()
        .map(|v| VirtualHost {
            name: v.vhost.name.clone(),
            routes: plan.routes(v.vhost),
            domains: v.domains.into_owned(),
            ..Default::default()
        })
        .collect();
    RouteConfiguration {
        name: OUTBOUND_ROUTE_CONFIG.into(),
        virtual_hosts,
        ..Default::default()
    }
}

/// The virtual hosts of `vhosts` (in order, each with its position in
/// `ir.virtual_hosts`) that the class sees, each with the domains it gets:
/// a domain an earlier one took is left out with an error, and a virtual
/// host left without domains is left out. Each domain is decided on its
/// own: who owns it depends only on the virtual hosts that claim it, so a
/// virtual host that shares no domain with another for any class
/// ([`VirtualHostDomains::is_contested`]) gets its domains as they are,
/// borrowed from `table`, and only the contested ones are checked.
pub(super) fn claim_domains<'v>(
    vhosts: impl Iterator<Item = (usize, &'v ir::VirtualHost)>,
    table: &'v VirtualHostDomains,
    class: &ProxyClass,
    scope: &Scope<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<(usize, &'v ir::VirtualHost, Cow<'v, [String]>)> {
    let mut taken: HashMap<&'v str, &'v str> = HashMap::new();
    let mut out = Vec::new();
    for (index, vhost) in vhosts.filter(|(_, v)| scope.virtual_host(v)) {
        let all = table.of(index, class);
        if !table.is_contested(index) {
            if !all.is_empty() {
                out.push((index, vhost, Cow::Borrowed(all)));
            }
            continue;
        }
        let mut kept = Vec::with_capacity(all.len());
        for domain in all {
            if let Some(owner) = taken.get(domain.as_str()) {
                diagnostics.push(Diagnostic {
                    severity: Severity::Error,
                    file: None,
                    object: vhost.origins.last().cloned(),
                    field: String::new(),
                    message: format!("domain {domain:?} of virtual host {} is already served by virtual host {owner}; left out", vhost.name),
                });
                kept.push(false);
                continue;
            }
            taken.insert(domain, &vhost.name);
            kept.push(true);
        }
        let domains = if kept.iter().all(|k| *k) {
            Cow::Borrowed(all)
        } else {
            let owned: Vec<String> = all
                .iter()
                .zip(&kept)
                .filter(|(_, k)| **k)
                .map(|(d, _)| d.clone())
                .collect();
            Cow::Owned(owned)
        };
        if !domains.is_empty() {
            out.push((index, vhost, domains));
        }
    }
    out
}

/// The domains of every virtual host of an IR (see [`domains_of`]), built
/// once per IR and shared by the classes planned against it, and which
/// virtual hosts may have a domain claimed by another one.
#[derive(Clone, Debug, Default)]
pub struct VirtualHostDomains {
    /// Per virtual host of `ir.virtual_hosts`, in order: every domain it
    /// answers for some class, those every class gets first, its short
    /// names (answered in the service's namespace only) last.
    domains: Vec<Vec<String>>,
    /// Per virtual host: how many of its domains every class gets.
    everywhere: Vec<usize>,
    /// Per virtual host: its service's namespace, if it has a service.
    namespaces: Vec<Option<String>>,
    /// Per virtual host: whether it may claim a domain another one claims
    /// too, for some proxy class: it has a domain that two of them can
    /// answer in one namespace. [`claim_domains`] over these alone finds
    /// the same conflicts as over all of them, since a domain only one
    /// virtual host can claim is never contested.
    contested: Vec<bool>,
}

impl VirtualHostDomains {
    /// The domains of every virtual host of `ir`.
    pub fn new(ir: &Ir) -> Self {
        let all: Vec<Vec<(String, bool)>> = ir.virtual_hosts.iter().map(all_domains).collect();
        fn namespace(v: &ir::VirtualHost) -> &str {
            v.service.as_ref().map_or("", |s| s.namespace.as_str())
        }
        // Claims of domains every class gets, of short names by namespace, and
        // the short names some namespace has.
        let mut global: HashMap<&str, usize> = HashMap::new();
        let mut short: HashMap<(&str, &str), usize> = HashMap::new();
        let mut short_any: HashSet<&str> = HashSet::new();
        for (vhost, domains) in ir.virtual_hosts.iter().zip(&all) {
            for (domain, is_short) in domains {
                if *is_short {
                    *short.entry((namespace(vhost), domain)).or_default() += 1;
                    short_any.insert(domain);
                } else {
                    *global.entry(domain).or_default() += 1;
                }
            }
        }
        let count = |d: &str| global.get(d).copied().unwrap_or(0);
        let contested = ir
            .virtual_hosts
            .iter()
            .zip(&all)
            .map(|(vhost, domains)| {
                domains.iter().any(|(domain, is_short)| {
                    if *is_short {
                        count(domain) + short[&(namespace(vhost), domain.as_str())] >= 2
                    } else {
                        count(domain) >= 2 || short_any.contains(domain.as_str())
                    }
                })
            })
            .collect();
        drop((global, short, short_any));
        let everywhere = all
            .iter()
            .map(|d| {
                let n = d.iter().take_while(|(_, short)| !short).count();
                debug_assert!(d[n..].iter().all(|(_, short)| *short), "short names last");
                n
            })
            .collect();
        VirtualHostDomains {
            domains: all
                .into_iter()
                .map(|d| d.into_iter().map(|(domain, _)| domain).collect())
                .collect(),
            everywhere,
            namespaces: ir
                .virtual_hosts
                .iter()
                .map(|v| v.service.as_ref().map(|s| s.namespace.clone()))
                .collect(),
            contested,
        }
    }

    /// The domains of the virtual host at `index` for proxies of `class`,
    /// before claims: [`domains_of`] without building a string.
    pub fn of(&self, index: usize, class: &ProxyClass) -> &[String] {
        let domains = &self.domains[index];
        if self.namespaces[index].as_deref() == Some(class.namespace.as_str()) {
            domains
        } else {
            self.everywhere(index)
        }
    }

    /// The domains of the virtual host at `index` that every class gets
    /// (those of [`VirtualHostDomains::of`] for a class outside its
    /// service's namespace, before claims).
    pub fn everywhere(&self, index: usize) -> &[String] {
        &self.domains[index][..self.everywhere[index]]
    }

    /// Whether the virtual host at `index` may have a domain claimed by
    /// another one, for some class.
    pub fn is_contested(&self, index: usize) -> bool {
        self.contested[index]
    }

    /// The positions of the contested virtual hosts, in order.
    pub fn contested(&self) -> impl Iterator<Item = usize> + '_ {
        self.contested
            .iter()
            .enumerate()
            .filter(|(_, c)| **c)
            .map(|(i, _)| i)
    }
}

/// The Host header values a virtual host answers, lower-case. A service port
/// answers its FQDN, `name.ns.svc`, `name.ns` and, for proxies in the same
/// namespace, `name`; a ServiceEntry port its host only. Each with `:port`,
/// and without a port on the service's default port.
pub(super) fn domains_of(vhost: &ir::VirtualHost, class: &ProxyClass) -> Vec<String> {
    let same_namespace = vhost
        .service
        .as_ref()
        .is_some_and(|s| s.namespace == class.namespace);
    all_domains(vhost)
        .into_iter()
        .filter(|(_, short)| !short || same_namespace)
        .map(|(domain, _)| domain)
        .collect()
}

/// Every domain of [`domains_of`] for some class, in its order, each with
/// whether it is a short name (answered in the service's namespace only).
fn all_domains(vhost: &ir::VirtualHost) -> Vec<(String, bool)> {
    let Some(svc) = &vhost.service else {
        return vec![(vhost.host.to_ascii_lowercase(), false)];
    };
    let port = svc.port.to_string();
    let mut domains = Vec::with_capacity(8);
    let mut add = |alias: String, short: bool| {
        let mut with_port = String::with_capacity(alias.len() + 1 + port.len());
        with_port.push_str(&alias);
        with_port.push(':');
        with_port.push_str(&port);
        if svc.default_port {
            domains.push((alias, short));
        }
        domains.push((with_port, short));
    };
    add(vhost.host.to_ascii_lowercase(), false);
    if svc.short_names {
        let name = svc.name.to_ascii_lowercase();
        let namespace = svc.namespace.to_ascii_lowercase();
        add(format!("{name}.{namespace}.svc"), false);
        add(format!("{name}.{namespace}"), false);
        add(name, true);
    }
    domains
}
