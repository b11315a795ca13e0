//! Validation of a DestinationRule traffic policy: durations, one hash key,
//! ranges Envoy enforces.

use crate::diagnostic::Diagnostic;
use crate::ir::policy::parse_duration;
use crate::model::{
    ConnectionPoolSettings, LoadBalancerSettings, ObjectKey, OutlierDetection, TrafficPolicy,
};

/// Checks `policy` at `field` of `key`.
pub(super) fn traffic_policy(
    key: &ObjectKey,
    field: &str,
    policy: &TrafficPolicy,
    out: &mut Vec<Diagnostic>,
) {
    parts(
        key,
        field,
        policy.load_balancer.as_ref(),
        policy.connection_pool.as_ref(),
        policy.outlier_detection.as_ref(),
        out,
    );
    if let Some(t) = &policy.tls {
        tls(key, &format!("{field}.tls"), t, out);
    }
    let mut ports = std::collections::BTreeSet::new();
    for (i, p) in policy.port_level_settings.iter().enumerate() {
        if let Some(t) = &p.tls {
            tls(key, &format!("{field}.portLevelSettings[{i}].tls"), t, out);
        }
        if !ports.insert(p.port.number) {
            out.push(Diagnostic::error(
                key,
                format!("{field}.portLevelSettings[{i}].port.number"),
                format!("port {} has settings twice", p.port.number),
            ));
        }
        let at = format!("{field}.portLevelSettings[{i}]");
        if !(1..=65535).contains(&p.port.number) {
            out.push(Diagnostic::error(
                key,
                format!("{at}.port.number"),
                format!("port {} is outside 1-65535", p.port.number),
            ));
        }
        parts(
            key,
            &at,
            p.load_balancer.as_ref(),
            p.connection_pool.as_ref(),
            p.outlier_detection.as_ref(),
            out,
        );
    }
}

fn parts(
    key: &ObjectKey,
    field: &str,
    lb: Option<&LoadBalancerSettings>,
    pool: Option<&ConnectionPoolSettings>,
    outlier: Option<&OutlierDetection>,
    out: &mut Vec<Diagnostic>,
) {
    if let Some(pool) = pool {
        positive_duration(
            key,
            out,
            format!("{field}.connectionPool.tcp.connectTimeout"),
            pool.tcp.as_ref().and_then(|t| t.connect_timeout.as_ref()),
        );
        positive_duration(
            key,
            out,
            format!("{field}.connectionPool.http.idleTimeout"),
            pool.http.as_ref().and_then(|h| h.idle_timeout.as_ref()),
        );
    }
    if let Some(o) = outlier {
        positive_duration(
            key,
            out,
            format!("{field}.outlierDetection.interval"),
            o.interval.as_ref(),
        );
        positive_duration(
            key,
            out,
            format!("{field}.outlierDetection.baseEjectionTime"),
            o.base_ejection_time.as_ref(),
        );
    }
    if let Some(c) = lb.and_then(|lb| lb.consistent_hash.as_ref()) {
        let names = [
            ("httpHeaderName", c.http_header_name.as_deref()),
            (
                "httpCookie.name",
                c.http_cookie.as_ref().map(|h| h.name.as_str()),
            ),
            (
                "httpQueryParameterName",
                c.http_query_parameter_name.as_deref(),
            ),
        ];
        for (name, value) in names {
            if value.is_some_and(|v| v.trim().is_empty() || v.contains(['\r', '\n', '\0'])) {
                out.push(Diagnostic::error(
                    key,
                    format!("{field}.loadBalancer.consistentHash.{name}"),
                    "must not be empty",
                ));
            }
        }
        any_duration(
            key,
            out,
            format!("{field}.loadBalancer.consistentHash.httpCookie.ttl"),
            c.http_cookie.as_ref().and_then(|h| h.ttl.as_ref()),
        );
        let keys = [
            c.http_header_name.is_some(),
            c.http_cookie.is_some(),
            c.use_source_ip == Some(true),
            c.http_query_parameter_name.is_some(),
        ];
        if keys.iter().filter(|k| **k).count() != 1 {
            out.push(Diagnostic::error(
                key,
                format!("{field}.loadBalancer.consistentHash"),
                "exactly one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName must be set",
            ));
        }
        if let Some(size) = c.maglev.as_ref().and_then(|m| m.table_size) {
            // The bound first: a primality test of a huge number would stall.
            let prime = (2..=5_000_011).contains(&size)
                && (2..).take_while(|d| d * d <= size).all(|d| size % d != 0);
            if !prime {
                out.push(Diagnostic::error(
                    key,
                    format!("{field}.loadBalancer.consistentHash.maglev.tableSize"),
                    format!("{size} is not a prime up to 5000011, as Envoy requires"),
                ));
            }
        }
        if c.ring_hash
            .as_ref()
            .and_then(|r| r.minimum_ring_size)
            .is_some_and(|s| s == 0 || s > 8_388_608)
        {
            out.push(Diagnostic::error(
                key,
                format!("{field}.loadBalancer.consistentHash.ringHash.minimumRingSize"),
                "must be between 1 and 8388608",
            ));
        }
        if lb.is_some_and(|lb| lb.simple.is_some()) {
            out.push(Diagnostic::error(
                key,
                format!("{field}.loadBalancer"),
                "only one of simple and consistentHash may be set",
            ));
        }
    }
    if let Some(p) = outlier
        .and_then(|o| o.max_ejection_percent)
        .filter(|p| *p > 100)
    {
        out.push(Diagnostic::error(
            key,
            format!("{field}.outlierDetection.maxEjectionPercent"),
            format!("{p} is not a percentage 0-100"),
        ));
    }
    if let Some(p) = outlier
        .and_then(|o| o.min_health_percent)
        .filter(|p| *p > 100)
    {
        out.push(Diagnostic::error(
            key,
            format!("{field}.outlierDetection.minHealthPercent"),
            format!("{p} is not a percentage 0-100"),
        ));
    }
}

/// A duration Envoy requires to be positive; it counts in milliseconds.
fn positive_duration(
    key: &ObjectKey,
    out: &mut Vec<Diagnostic>,
    at: String,
    text: Option<&String>,
) {
    match text.map(|t| parse_duration(t)) {
        Some(Err(reason)) => out.push(Diagnostic::error(key, at, reason)),
        Some(Ok(d)) if d < std::time::Duration::from_millis(1) => {
            out.push(Diagnostic::error(key, at, "must be at least 1ms"))
        }
        _ => {}
    }
}

/// A duration that may be zero.
fn any_duration(key: &ObjectKey, out: &mut Vec<Diagnostic>, at: String, text: Option<&String>) {
    if let Some(Err(reason)) = text.map(|t| parse_duration(t)) {
        out.push(Diagnostic::error(key, at, reason));
    }
}

/// `tls`: MUTUAL needs a client certificate and key; file paths are plain
/// paths; SNI and names are header-safe. A server certificate that nothing
/// verifies (no `caCertificates`) is a warning.
fn tls(
    key: &ObjectKey,
    field: &str,
    t: &crate::model::ClientTlsSettings,
    out: &mut Vec<Diagnostic>,
) {
    use crate::model::TlsMode;
    let files = [
        ("clientCertificate", &t.client_certificate),
        ("privateKey", &t.private_key),
        ("caCertificates", &t.ca_certificates),
    ];
    for (name, value) in files {
        if let Some(v) = value {
            if v.is_empty() || v.contains(['\r', '\n', '\0']) {
                out.push(Diagnostic::error(
                    key,
                    format!("{field}.{name}"),
                    format!("{v:?} is not a file path"),
                ));
            }
            if t.mode == TlsMode::ISTIO_MUTUAL || t.mode == TlsMode::DISABLE {
                out.push(Diagnostic::error(
                    key,
                    format!("{field}.{name}"),
                    format!("mode {:?} takes no certificate files", t.mode),
                ));
            }
        }
    }
    if t.mode == TlsMode::MUTUAL && (t.client_certificate.is_none() || t.private_key.is_none()) {
        out.push(Diagnostic::error(
            key,
            format!("{field}.clientCertificate"),
            "MUTUAL needs clientCertificate and privateKey",
        ));
    }
    if t.mode == TlsMode::SIMPLE && (t.client_certificate.is_some() || t.private_key.is_some()) {
        out.push(Diagnostic::error(
            key,
            format!("{field}.mode"),
            "clientCertificate and privateKey need mode MUTUAL",
        ));
    }
    if matches!(t.mode, TlsMode::SIMPLE | TlsMode::MUTUAL) && t.ca_certificates.is_none() {
        out.push(Diagnostic::warning(
            key,
            format!("{field}.caCertificates"),
            "not set: the server's certificate is not verified",
        ));
    }
    if let Some(sni) = &t.sni {
        if sni.is_empty()
            || sni.len() > 255
            || sni.contains(|c: char| c.is_whitespace() || c.is_control())
        {
            out.push(Diagnostic::error(
                key,
                format!("{field}.sni"),
                format!("{sni:?} is not a server name"),
            ));
        }
    }
    for (i, name) in t.subject_alt_names.iter().enumerate() {
        if name.is_empty() || name.contains(['\r', '\n', '\0']) {
            out.push(Diagnostic::error(
                key,
                format!("{field}.subjectAltNames[{i}]"),
                format!("{name:?} is not a name"),
            ));
        }
    }
    if t.mode == TlsMode::ISTIO_MUTUAL && (!t.subject_alt_names.is_empty() || t.sni.is_some()) {
        out.push(Diagnostic::warning(key, format!("{field}.mode"), "ISTIO_MUTUAL checks the workloads' SPIFFE IDs and sets its own SNI; sni and subjectAltNames are ignored"));
    }
}
