//! IR clusters → Envoy clusters, with the DestinationRule's policy:
//! load balancing, circuit breakers, protocol options and outlier detection.

use super::TranslateOptions;
use crate::envoy::builders::{self, duration};
use crate::envoy::tls;
use crate::ir::cluster_policy::{ClientTls, ClusterPolicy, HashLb};
use crate::ir::{self, DnsLookup, LbPolicy, Protocol};
use envoy_types::pb::envoy::config::cluster::v3::{
    circuit_breakers, cluster, CircuitBreakers, Cluster, OutlierDetection,
};
use envoy_types::pb::envoy::config::core::v3::{
    Http1ProtocolOptions, HttpProtocolOptions as CommonHttpOptions,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options, HttpProtocolOptions,
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{UInt32Value, UInt64Value};
use envoy_types::util::pack_any;
use std::collections::HashMap;

/// An outbound cluster for one service port (and subset): EDS, or a DNS
/// cluster for an ExternalName service or a DNS-resolved ServiceEntry.
///
/// `with_rule`: whether the DestinationRule's policy applies to the proxy
/// (see [`ir::Cluster::rule_export_to`]); without it the cluster has the
/// defaults.
///
/// `mtls`: the proxy has a mesh certificate, so endpoints behind a sidecar
/// (marked `tlsMode: istio` in EDS) are reached over mutual TLS, checking
/// the server's SPIFFE ID; the others in plaintext (Istio's auto mTLS).
pub(super) fn outbound_cluster(
    c: &ir::Cluster,
    with_rule: bool,
    mtls: bool,
    options: &TranslateOptions,
) -> Cluster {
    let defaults = ClusterPolicy::default();
    let policy = if with_rule { &c.policy } else { &defaults };
    let lb = match (&policy.hash, policy.lb) {
        (Some((_, HashLb::RingHash { .. })), _) => cluster::LbPolicy::RingHash,
        (Some((_, HashLb::Maglev { .. })), _) => cluster::LbPolicy::Maglev,
        (None, LbPolicy::RoundRobin) => cluster::LbPolicy::RoundRobin,
        (None, LbPolicy::LeastRequest) => cluster::LbPolicy::LeastRequest,
        (None, LbPolicy::Random) => cluster::LbPolicy::Random,
    };
    let connect_timeout = policy.connect_timeout.unwrap_or(options.connect_timeout);
    let mut out = match &c.dns {
        Some(dns) => {
            // Envoy takes exactly one target for LOGICAL_DNS (validation
            // guarantees it; anything else falls back to STRICT_DNS).
            let lookup = match dns.lookup {
                DnsLookup::LogicalDns if dns.targets.len() == 1 => {
                    cluster::DiscoveryType::LogicalDns
                }
                _ => cluster::DiscoveryType::StrictDns,
            };
            builders::dns_cluster(&c.name, lookup, &dns.targets, lb, connect_timeout)
        }
        None => builders::eds_cluster(&c.name, lb, connect_timeout),
    };
    apply_policy(&mut out, policy, c.protocol);
    let sni = || super::inbound::inbound_sni(c.port, &c.service);
    let identities = |fallback: bool| {
        let mut all: Vec<String> = c
            .endpoints
            .iter()
            .filter_map(|e| e.mesh.as_ref())
            .map(|m| format!("spiffe://{}/{}", options.trust_domain, m.identity))
            .collect();
        all.sort();
        all.dedup();
        if all.is_empty() && fallback {
            all.push(format!("spiffe://{}/", options.trust_domain));
        }
        all
    };
    match &policy.tls {
        Some(ClientTls::Disable) => return out,
        Some(ClientTls::IstioMutual) if mtls => {
            out.transport_socket = Some(tls::upstream_mtls(&sni(), &identities(true)));
            return out;
        }
        Some(ClientTls::IstioMutual) => return out,
        Some(ClientTls::Files {
            sni: name,
            ca_certificates,
            client,
            subject_alt_names,
        }) => {
            let host = c.service.trim_start_matches("*.");
            out.transport_socket = Some(tls::upstream_tls_files(
                name.as_deref().unwrap_or(host),
                ca_certificates.as_deref(),
                client.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
                subject_alt_names,
            ));
            return out;
        }
        None => {}
    }
    if mtls {
        let identities = identities(false);
        if !identities.is_empty() {
            out.transport_socket_matches = vec![
                cluster::TransportSocketMatch {
                    name: "tlsMode-istio".into(),
                    r#match: Some(crate::envoy::builders::string_struct(&[(
                        super::endpoint::TLS_MODE_KEY,
                        "istio",
                    )])),
                    transport_socket: Some(tls::upstream_mtls(&sni(), &identities)),
                },
                cluster::TransportSocketMatch {
                    name: "tlsMode-disabled".into(),
                    r#match: Some(Default::default()),
                    transport_socket: Some(tls::plaintext()),
                },
            ];
        }
    }
    out
}

fn apply_policy(out: &mut Cluster, policy: &ClusterPolicy, protocol: Protocol) {
    let http2 = protocol == Protocol::Http2;
    let u32_value = |v: Option<u32>| v.map(|value| UInt32Value { value });
    out.lb_config = match &policy.hash {
        Some((
            _,
            HashLb::RingHash {
                minimum_ring_size: Some(size),
            },
        )) => Some(cluster::LbConfig::RingHashLbConfig(
            cluster::RingHashLbConfig {
                minimum_ring_size: Some(UInt64Value { value: *size }),
                ..Default::default()
            },
        )),
        Some((
            _,
            HashLb::Maglev {
                table_size: Some(size),
            },
        )) => Some(cluster::LbConfig::MaglevLbConfig(cluster::MaglevLbConfig {
            table_size: Some(UInt64Value { value: *size }),
        })),
        _ => None,
    };
    let limits = [
        policy.max_connections,
        policy.max_pending_requests,
        policy.max_requests,
        policy.max_retries,
    ];
    if limits.iter().any(Option::is_some) {
        out.circuit_breakers = Some(CircuitBreakers {
            thresholds: vec![circuit_breakers::Thresholds {
                max_connections: u32_value(policy.max_connections),
                max_pending_requests: u32_value(policy.max_pending_requests),
                max_requests: u32_value(policy.max_requests),
                max_retries: u32_value(policy.max_retries),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    let config = match http2 {
        true => http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
            Default::default(),
        ),
        false => http_protocol_options::explicit_http_config::ProtocolConfig::HttpProtocolOptions(
            Http1ProtocolOptions::default(),
        ),
    };
    let http_options =
        policy.idle_timeout.is_some() || policy.max_requests_per_connection.is_some();
    if protocol.is_http() && (http2 || http_options) {
        let options = HttpProtocolOptions {
            common_http_protocol_options: Some(CommonHttpOptions {
                idle_timeout: policy.idle_timeout.map(duration),
                max_requests_per_connection: u32_value(policy.max_requests_per_connection),
                ..Default::default()
            }),
            upstream_protocol_options: Some(
                http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                    http_protocol_options::ExplicitHttpConfig {
                        protocol_config: Some(config),
                    },
                ),
            ),
            ..Default::default()
        };
        out.typed_extension_protocol_options = HashMap::from([(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            pack_any(options),
        )]);
    }
    if let Some(o) = &policy.outlier {
        // Istio: only the error kinds asked for eject (Envoy's default would
        // also eject on 5 consecutive 5xx).
        let enforcing = |on: bool| {
            Some(UInt32Value {
                value: if on { 100 } else { 0 },
            })
        };
        out.outlier_detection = Some(OutlierDetection {
            consecutive_5xx: u32_value(o.consecutive_5xx),
            enforcing_consecutive_5xx: enforcing(o.consecutive_5xx.is_some()),
            consecutive_gateway_failure: u32_value(o.consecutive_gateway_errors),
            enforcing_consecutive_gateway_failure: enforcing(
                o.consecutive_gateway_errors.is_some(),
            ),
            interval: o.interval.map(duration),
            base_ejection_time: o.base_ejection_time.map(duration),
            max_ejection_percent: u32_value(o.max_ejection_percent),
            ..Default::default()
        });
    }
    if let Some(percent) = policy.min_health_percent {
        out.common_lb_config = Some(cluster::CommonLbConfig {
            healthy_panic_threshold: Some(Percent {
                value: f64::from(percent),
            }),
            ..Default::default()
        });
    }
}
