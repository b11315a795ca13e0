//! Canonical names: service FQDNs and Istio-convention cluster names.

/// DNS suffix of service FQDNs (`<name>.<namespace>.svc.cluster.local`).
pub const DOMAIN_SUFFIX: &str = "svc.cluster.local";

/// Istio's outbound cluster name: `outbound|<port>|<subset>|<fqdn>`, with an
/// empty subset field when there is none.
pub fn cluster_name(port: u16, subset: Option<&str>, fqdn: &str) -> String {
    format!("outbound|{port}|{}|{fqdn}", subset.unwrap_or(""))
}

/// The FQDN of service `name` in `namespace`.
pub fn service_fqdn(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.{DOMAIN_SUFFIX}").to_ascii_lowercase()
}

/// Resolves a host as written in an object of `namespace` to a lower-case
/// FQDN, as Istio does: a name without dots is a service of that namespace.
/// Beyond Istio, `name.ns` and `name.ns.svc` also resolve to a service when
/// `is_service` says that service exists. Any other host is kept as written
/// (lower-cased): an external name or a wildcard such as `*.example.com`.
pub fn resolve_host(host: &str, namespace: &str, is_service: impl Fn(&str) -> bool) -> String {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if host == "*" || host.starts_with("*.") {
        return host;
    }
    if !host.contains('.') {
        return service_fqdn(&host, namespace);
    }
    let dots = host.matches('.').count();
    let expanded = match dots {
        1 => Some(format!("{host}.{DOMAIN_SUFFIX}")),
        2 if host.ends_with(".svc") => Some(format!("{host}.cluster.local")),
        _ => None,
    };
    match expanded {
        Some(fqdn) if is_service(&fqdn) => fqdn,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_in_the_objects_namespace() {
        let none = |_: &str| false;
        assert_eq!(
            resolve_host("Reviews", "shop", none),
            "reviews.shop.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("CART.shop.example", "shop", none),
            "cart.shop.example"
        );
        assert_eq!(resolve_host("*.Example.com", "shop", none), "*.example.com");
        let svc = |h: &str| h == "reviews.other.svc.cluster.local";
        assert_eq!(
            resolve_host("reviews.other", "shop", svc),
            "reviews.other.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("reviews.other.svc", "shop", svc),
            "reviews.other.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("reviews.nowhere", "shop", svc),
            "reviews.nowhere"
        );
    }

    #[test]
    fn cluster_names_follow_istio() {
        assert_eq!(
            cluster_name(9080, None, "r.d.svc.cluster.local"),
            "outbound|9080||r.d.svc.cluster.local"
        );
        assert_eq!(
            cluster_name(80, Some("v1"), "r.d.svc.cluster.local"),
            "outbound|80|v1|r.d.svc.cluster.local"
        );
    }
}
