//! Visibility: which namespaces see a service or a VirtualService
//! (`exportTo`), and which hosts a proxy may reach (Istio's `Sidecar`
//! egress hosts).

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Annotation on a Service listing the namespaces it is exported to (Istio's).
pub const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// The namespaces an object is visible from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportTo {
    /// Every namespace (`*`, and the default).
    #[default]
    All,
    /// These namespaces only (`.` already resolved; `~` is the empty set).
    Namespaces(BTreeSet<String>),
}

impl ExportTo {
    /// Reads Istio `exportTo` entries of an object in `namespace`: `*`, `.`,
    /// `~` or namespace names. No entry means all namespaces.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>, namespace: &str) -> ExportTo {
        let mut namespaces = BTreeSet::new();
        let mut any = false;
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            any = true;
            match entry {
                "*" => return ExportTo::All,
                "." => {
                    namespaces.insert(namespace.to_string());
                }
                "~" => {}
                name => {
                    namespaces.insert(name.to_string());
                }
            }
        }
        if any {
            ExportTo::Namespaces(namespaces)
        } else {
            ExportTo::All
        }
    }

    /// Whether every namespace sees the object.
    pub fn is_all(&self) -> bool {
        *self == ExportTo::All
    }

    /// Whether proxies in `namespace` see the object.
    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            ExportTo::All => true,
            ExportTo::Namespaces(set) => set.contains(namespace),
        }
    }
}

/// A resolved Sidecar: where it applies and which hosts it lets through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SidecarScope {
    /// `namespace/name` of the Sidecar.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Workload labels it selects; `None`: the whole namespace.
    pub selector: Option<BTreeMap<String, String>>,
    /// Creation time (RFC 3339) for precedence among equals; empty if unknown.
    pub created: String,
    /// Reachable hosts as (namespace pattern, host pattern).
    pub egress: Vec<(String, String)>,
}

impl SidecarScope {
    /// Whether a proxy under this Sidecar may reach service `fqdn` of `namespace`.
    pub fn allows(&self, namespace: &str, fqdn: &str) -> bool {
        self.egress.iter().any(|(ns, host)| {
            let ns_ok = match ns.as_str() {
                "*" => true,
                "." => namespace == self.namespace,
                "~" => false,
                name => namespace == name,
            };
            let host_ok = match host.as_str() {
                "*" => true,
                pattern if pattern.starts_with("*.") => fqdn.ends_with(&pattern[1..]),
                exact => exact.eq_ignore_ascii_case(fqdn),
            };
            ns_ok && host_ok
        })
    }
}

/// The Sidecar that applies to a proxy in `namespace` with `labels`, as
/// Istio picks it: one in the proxy's namespace that selects it by labels,
/// else its namespace's Sidecar without selector, else the root namespace's
/// Sidecar without selector. Among equals the oldest, then by name.
pub fn sidecar_for<'a>(
    sidecars: &'a [SidecarScope],
    namespace: &str,
    labels: &BTreeMap<String, String>,
    root_namespace: &str,
) -> Option<&'a SidecarScope> {
    let oldest = |candidates: Vec<&'a SidecarScope>| {
        candidates
            .into_iter()
            .min_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)))
    };
    let selecting = sidecars.iter().filter(|s| {
        s.namespace == namespace
            && s.selector
                .as_ref()
                .is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
    });
    oldest(selecting.collect())
        .or_else(|| {
            oldest(
                sidecars
                    .iter()
                    .filter(|s| s.namespace == namespace && s.selector.is_none())
                    .collect(),
            )
        })
        .or_else(|| {
            oldest(
                sidecars
                    .iter()
                    .filter(|s| s.namespace == root_namespace && s.selector.is_none())
                    .collect(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_to_follows_istio() {
        assert!(ExportTo::parse([], "a").allows("b"));
        assert!(ExportTo::parse(["*"], "a").allows("b"));
        assert!(ExportTo::parse(["."], "a").allows("a"));
        assert!(!ExportTo::parse(["."], "a").allows("b"));
        assert!(!ExportTo::parse(["~"], "a").allows("a"));
        assert!(ExportTo::parse([".", "b"], "a").allows("b"));
    }

    fn scope(
        namespace: &str,
        name: &str,
        selector: Option<&[(&str, &str)]>,
        egress: &[(&str, &str)],
    ) -> SidecarScope {
        SidecarScope {
            name: format!("{namespace}/{name}"),
            namespace: namespace.into(),
            selector: selector.map(|s| {
                s.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            created: String::new(),
            egress: egress
                .iter()
                .map(|(n, h)| (n.to_string(), h.to_string()))
                .collect(),
        }
    }

    #[test]
    fn egress_hosts_match_namespace_and_host_patterns() {
        let s = scope(
            "shop",
            "default",
            None,
            &[(".", "*"), ("istio-system", "*"), ("*", "*.example.com")],
        );
        assert!(s.allows("shop", "cart.shop.svc.cluster.local"));
        assert!(!s.allows("bank", "ledger.bank.svc.cluster.local"));
        assert!(s.allows("bank", "api.example.com"));
        let exact = scope(
            "shop",
            "x",
            None,
            &[("bank", "ledger.bank.svc.cluster.local")],
        );
        assert!(exact.allows("bank", "ledger.bank.svc.cluster.local"));
        assert!(!exact.allows("bank", "audit.bank.svc.cluster.local"));
    }

    #[test]
    fn the_most_specific_sidecar_applies() {
        let sidecars = vec![
            scope("istio-system", "mesh", None, &[("*", "*")]),
            scope("shop", "ns", None, &[(".", "*")]),
            scope("shop", "cart", Some(&[("app", "cart")]), &[("bank", "*")]),
        ];
        let cart = BTreeMap::from([("app".to_string(), "cart".to_string())]);
        let other = BTreeMap::new();
        assert_eq!(
            sidecar_for(&sidecars, "shop", &cart, "istio-system")
                .unwrap()
                .name,
            "shop/cart"
        );
        assert_eq!(
            sidecar_for(&sidecars, "shop", &other, "istio-system")
                .unwrap()
                .name,
            "shop/ns"
        );
        assert_eq!(
            sidecar_for(&sidecars, "bank", &other, "istio-system")
                .unwrap()
                .name,
            "istio-system/mesh"
        );
        assert!(sidecar_for(&sidecars, "bank", &other, "elsewhere").is_none());
    }
}
