//! DestinationRule traffic policies → the resolved policy of one cluster:
//! load balancing (simple or consistent hash), connection pool limits and
//! outlier detection, with Istio's precedence (subset over rule, port-level
//! settings over the policy that holds them).

use super::policy::parse_duration;
use super::LbPolicy;
use crate::model::{
    ClientTlsSettings, ConnectionPoolSettings, LoadBalancerSettings,
    OutlierDetection as ModelOutlier, SimpleLb, TlsMode, TrafficPolicy,
};
use serde::Serialize;
use std::time::Duration;

/// The request attribute a consistent hash uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    /// A request header.
    Header(String),
    /// A cookie; Envoy generates it with `ttl` when absent.
    Cookie {
        /// Cookie name.
        name: String,
        /// Cookie path.
        path: Option<String>,
        /// Lifetime of a generated cookie.
        ttl: Option<Duration>,
    },
    /// The client's IP.
    SourceIp,
    /// A query parameter.
    QueryParameter(String),
}

/// The hashing load balancer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashLb {
    /// Envoy's RING_HASH.
    RingHash {
        /// Minimum ring entries.
        minimum_ring_size: Option<u64>,
    },
    /// Envoy's MAGLEV.
    Maglev {
        /// Lookup table size.
        table_size: Option<u64>,
    },
}

/// Outlier detection (Envoy names, Istio semantics).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Outlier {
    /// Consecutive 5xx that eject.
    pub consecutive_5xx: Option<u32>,
    /// Consecutive gateway errors that eject.
    pub consecutive_gateway_errors: Option<u32>,
    /// Sweep interval.
    pub interval: Option<Duration>,
    /// Base ejection time.
    pub base_ejection_time: Option<Duration>,
    /// Most endpoints ejected, in %.
    pub max_ejection_percent: Option<u32>,
}

/// The resolved policy of one cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClusterPolicy {
    /// Simple algorithm (ignored when `hash` is set).
    pub lb: LbPolicy,
    /// Consistent hashing: the key and the balancer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<(HashKey, HashLb)>,
    /// Circuit breakers: most connections, pending requests, requests, retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Connect timeout overriding sextant's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Upstream connection idle timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// Requests per upstream connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<u32>,
    /// Outlier detection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier: Option<Outlier>,
    /// Envoy's panic threshold, from `minHealthPercent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_health_percent: Option<u32>,
    /// The DestinationRule's `tls`, if it sets one (else auto mTLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
}

/// A resolved `tls` setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientTls {
    /// Plaintext to every endpoint.
    Disable,
    /// Mutual TLS with SDS certificates to every endpoint.
    IstioMutual,
    /// TLS origination with files on the proxy's host.
    Files {
        /// SNI (default: the service host).
        sni: Option<String>,
        /// CA bundle file; `None`: no verification.
        ca_certificates: Option<String>,
        /// Client certificate and key files (MUTUAL).
        client: Option<(String, String)>,
        /// Acceptable server names.
        subject_alt_names: Vec<String>,
    },
}

/// The policy of `port` of a service whose rule has `rule` and whose subset
/// (if any) has `subset`: each of load balancer, connection pool and outlier
/// detection comes from the most specific place that sets it (subset port
/// level, subset, rule port level, rule).
pub(super) fn resolve(
    rule: Option<&TrafficPolicy>,
    subset: Option<&TrafficPolicy>,
    port: u16,
) -> ClusterPolicy {
    let levels: Vec<Level<'_>> = [rule, subset]
        .into_iter()
        .flatten()
        .flat_map(|p| levels(p, port))
        .collect();
    let lb = levels.iter().rev().find_map(|l| l.lb);
    let pool = levels.iter().rev().find_map(|l| l.pool);
    let outlier = levels.iter().rev().find_map(|l| l.outlier);
    let tls = levels.iter().rev().find_map(|l| l.tls);
    let http = pool.and_then(|p| p.http.as_ref());
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    let duration = |t: Option<&String>| t.and_then(|t| parse_duration(t).ok());
    ClusterPolicy {
        lb: match lb.and_then(|lb| lb.simple) {
            Some(SimpleLb::LEAST_REQUEST | SimpleLb::LEAST_CONN) => LbPolicy::LeastRequest,
            Some(SimpleLb::RANDOM) => LbPolicy::Random,
            _ => LbPolicy::RoundRobin,
        },
        hash: lb.and_then(hash),
        max_connections: tcp.and_then(|t| t.max_connections),
        connect_timeout: duration(tcp.and_then(|t| t.connect_timeout.as_ref())),
        max_pending_requests: http.and_then(|h| h.http1_max_pending_requests),
        max_requests: http.and_then(|h| h.http2_max_requests),
        max_retries: http.and_then(|h| h.max_retries),
        max_requests_per_connection: http.and_then(|h| h.max_requests_per_connection),
        idle_timeout: duration(http.and_then(|h| h.idle_timeout.as_ref())),
        outlier: outlier.map(|o: &ModelOutlier| Outlier {
            consecutive_5xx: o.consecutive_5xx_errors,
            consecutive_gateway_errors: o.consecutive_gateway_errors,
            interval: duration(o.interval.as_ref()),
            base_ejection_time: duration(o.base_ejection_time.as_ref()),
            max_ejection_percent: o.max_ejection_percent,
        }),
        min_health_percent: outlier.and_then(|o| o.min_health_percent),
        tls: tls.map(|t| match t.mode {
            TlsMode::DISABLE => ClientTls::Disable,
            TlsMode::ISTIO_MUTUAL => ClientTls::IstioMutual,
            TlsMode::SIMPLE | TlsMode::MUTUAL => ClientTls::Files {
                sni: t.sni.clone(),
                ca_certificates: t.ca_certificates.clone(),
                client: match (t.mode, &t.client_certificate, &t.private_key) {
                    (TlsMode::MUTUAL, Some(c), Some(k)) => Some((c.clone(), k.clone())),
                    _ => None,
                },
                subject_alt_names: t.subject_alt_names.clone(),
            },
        }),
    }
}

/// One place that may set policies, least specific first.
struct Level<'a> {
    lb: Option<&'a LoadBalancerSettings>,
    pool: Option<&'a ConnectionPoolSettings>,
    outlier: Option<&'a ModelOutlier>,
    tls: Option<&'a ClientTlsSettings>,
}

fn levels(policy: &TrafficPolicy, port: u16) -> Vec<Level<'_>> {
    let mut out = vec![Level {
        lb: policy.load_balancer.as_ref(),
        pool: policy.connection_pool.as_ref(),
        outlier: policy.outlier_detection.as_ref(),
        tls: policy.tls.as_ref(),
    }];
    out.extend(
        policy
            .port_level_settings
            .iter()
            .filter(|p| p.port.number == u32::from(port))
            .map(|p| Level {
                lb: p.load_balancer.as_ref(),
                pool: p.connection_pool.as_ref(),
                outlier: p.outlier_detection.as_ref(),
                tls: p.tls.as_ref(),
            }),
    );
    out
}

fn hash(lb: &LoadBalancerSettings) -> Option<(HashKey, HashLb)> {
    let c = lb.consistent_hash.as_ref()?;
    let key = if let Some(header) = &c.http_header_name {
        HashKey::Header(header.to_ascii_lowercase())
    } else if let Some(cookie) = &c.http_cookie {
        HashKey::Cookie {
            name: cookie.name.clone(),
            path: cookie.path.clone(),
            ttl: cookie.ttl.as_deref().and_then(|t| parse_duration(t).ok()),
        }
    } else if c.use_source_ip == Some(true) {
        HashKey::SourceIp
    } else {
        HashKey::QueryParameter(c.http_query_parameter_name.clone()?)
    };
    let balancer = match &c.maglev {
        Some(m) => HashLb::Maglev {
            table_size: m.table_size,
        },
        None => HashLb::RingHash {
            minimum_ring_size: c.ring_hash.as_ref().and_then(|r| r.minimum_ring_size),
        },
    };
    Some((key, balancer))
}
