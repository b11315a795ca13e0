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
    let mut ports = std::collections::BTreeSet::new();
    for (i, p) in policy.port_level_settings.iter().enumerate() {
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
