//! Small builders of Envoy v3 protos. The translator calls them; tests use
//! them to write short expectations.

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{
    address, config_source, data_source, socket_address, Address, AggregatedConfigSource,
    ApiVersion, ConfigSource, DataSource, HealthStatus, Locality, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::{
    filter, ApiListener, Filter, FilterChain, Listener,
};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, route, route_action, route_match, weighted_cluster, DirectResponseAction,
    HeaderMatcher, Route, RouteAction, RouteMatch, WeightedCluster,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager, http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher, RegexMatcher, StringMatcher};
use envoy_types::pb::google::protobuf::{BoolValue, Duration, UInt32Value};
use envoy_types::util::pack_any;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration as StdDuration;

/// A config source that points at the ADS stream, with `resource_api_version: V3`.
pub fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

/// A protobuf Duration from a std Duration.
pub fn duration(d: StdDuration) -> Duration {
    Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// A TCP socket address.
pub fn socket_address(ip: IpAddr, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: super::address::ip_string(ip),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

/// An HTTP connection manager that takes its route configuration
/// `route_config_name` from RDS over ADS and ends in the router filter.
pub fn http_connection_manager(
    route_config_name: &str,
    stat_prefix: &str,
) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_config_name.to_string(),
        })),
        // Istio's default path normalization (BASE, plus merging slashes):
        // `/./x`, `/y/../x` and `//x` match routes and policies as `/x`.
        normalize_path: Some(BoolValue { value: true }),
        merge_slashes: true,
        // The CORS and fault filters do nothing unless a route configures them.
        http_filters: vec![
            HttpFilter {
                name: super::route_builders::CORS_FILTER.into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                    envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors::default(),
                ))),
                ..Default::default()
            },
            HttpFilter {
                name: super::route_builders::FAULT_FILTER.into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                    envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault::default(),
                ))),
                ..Default::default()
            },
            grpc_stats_filter(),
            HttpFilter {
                name: "envoy.filters.http.router".into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(Router::default()))),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

/// Name of Envoy's gRPC statistics filter.
pub const GRPC_STATS_FILTER: &str = "envoy.filters.http.grpc_stats";

/// The gRPC statistics filter, counting every gRPC call's outcome in one
/// stat per cluster (`cluster.<c>.grpc.success`, `.failure`, `.total`; no
/// per-method stats, which would grow with the methods callers make up).
/// Sextant reads them from the metrics service to count gRPC non-OK
/// statuses as errors ([`crate::edges`]). It does nothing to other requests.
pub fn grpc_stats_filter() -> HttpFilter {
    use envoy_types::pb::envoy::extensions::filters::http::grpc_stats::v3::{
        filter_config::PerMethodStatSpecifier, FilterConfig,
    };
    HttpFilter {
        name: GRPC_STATS_FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            FilterConfig {
                per_method_stat_specifier: Some(PerMethodStatSpecifier::StatsForAllMethods(
                    BoolValue { value: false },
                )),
                ..Default::default()
            },
        ))),
        ..Default::default()
    }
}

/// A protobuf `Struct` of string values.
pub fn string_struct(fields: &[(&str, &str)]) -> envoy_types::pb::google::protobuf::Struct {
    envoy_types::pb::google::protobuf::Struct {
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), crate::proxy::string_value(*v)))
            .collect(),
    }
}

/// An HTTP listener on `addr` with [`http_connection_manager`] and the
/// access logs and tracer of `telemetry`.
pub fn http_listener(
    name: &str,
    addr: SocketAddr,
    route_config_name: &str,
    stat_prefix: &str,
    telemetry: &crate::ir::telemetry::ProxyTelemetry,
) -> Listener {
    let mut hcm = http_connection_manager(route_config_name, stat_prefix);
    super::telemetry_builders::apply(&mut hcm, telemetry);
    Listener {
        name: name.to_string(),
        address: Some(socket_address(addr.ip(), addr.port())),
        // Without SO_REUSEPORT a second proxy given the same address fails
        // to bind (a visible NACK) instead of silently taking half the
        // connections.
        enable_reuse_port: Some(BoolValue { value: false }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A listener on `addr` whose only filter is Envoy's TCP proxy to one
/// cluster, or to several by relative weight (each weight > 0); with
/// `hash_source_ip`, the client's IP is the load balancer's hash key.
pub fn tcp_listener(
    name: &str,
    addr: SocketAddr,
    stat_prefix: &str,
    clusters: &[(String, u32)],
    hash_source_ip: bool,
) -> Listener {
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        tcp_proxy::{self, weighted_cluster::ClusterWeight, WeightedCluster},
        TcpProxy,
    };
    use envoy_types::pb::envoy::r#type::v3::{hash_policy, HashPolicy};
    let specifier = match clusters {
        [(cluster, _)] => tcp_proxy::ClusterSpecifier::Cluster(cluster.clone()),
        _ => tcp_proxy::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: clusters
                .iter()
                .map(|(name, weight)| ClusterWeight {
                    name: name.clone(),
                    weight: *weight,
                    ..Default::default()
                })
                .collect(),
        }),
    };
    let proxy = TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(specifier),
        hash_policy: if hash_source_ip {
            vec![HashPolicy {
                policy_specifier: Some(hash_policy::PolicySpecifier::SourceIp(
                    hash_policy::SourceIp {},
                )),
            }]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    Listener {
        name: name.to_string(),
        address: Some(socket_address(addr.ip(), addr.port())),
        // Without SO_REUSEPORT a second proxy given the same address fails
        // to bind (a visible NACK) instead of silently taking half the
        // connections.
        enable_reuse_port: Some(BoolValue { value: false }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.tcp_proxy".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(proxy))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// An API listener (no socket: what gRPC's xDS client resolves a target
/// `xds:///<name>` to) with [`http_connection_manager`].
///
/// gRPC's xDS client supports only some HTTP filters and rejects a
/// listener naming another: the CORS filter is left out (routes mark their
/// CORS config optional, so gRPC ignores it), and so is the gRPC stats
/// filter (a proxyless client reports no Envoy stats).
pub fn api_listener(name: &str, route_config_name: &str) -> Listener {
    let mut hcm = http_connection_manager(route_config_name, name);
    hcm.http_filters
        .retain(|f| f.name != super::route_builders::CORS_FILTER && f.name != GRPC_STATS_FILTER);
    Listener {
        name: name.to_string(),
        api_listener: Some(ApiListener {
            api_listener: Some(pack_any(hcm)),
        }),
        ..Default::default()
    }
}

/// An EDS cluster whose ClusterLoadAssignment is named like the cluster
/// (`eds_cluster_config.service_name` = `name`), fetched over ADS.
pub fn eds_cluster(
    name: &str,
    lb_policy: cluster::LbPolicy,
    connect_timeout: StdDuration,
) -> Cluster {
    Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: name.to_string(),
        }),
        connect_timeout: Some(duration(connect_timeout)),
        lb_policy: lb_policy as i32,
        ..Default::default()
    }
}

/// A DNS cluster of `discovery` type (`STRICT_DNS` or `LOGICAL_DNS`) that
/// resolves each `(host, port)` target (IPv4 preferred) and connects to the
/// port on the addresses found. `LOGICAL_DNS` takes exactly one target.
pub fn dns_cluster(
    name: &str,
    discovery: cluster::DiscoveryType,
    targets: &[(String, u16)],
    lb_policy: cluster::LbPolicy,
    connect_timeout: StdDuration,
) -> Cluster {
    let lb_endpoints = targets
        .iter()
        .map(|(host, port)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: host.clone(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                            *port,
                        ))),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(discovery as i32)),
        dns_lookup_family: cluster::DnsLookupFamily::V4Preferred as i32,
        connect_timeout: Some(duration(connect_timeout)),
        lb_policy: lb_policy as i32,
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.to_string(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A ClusterLoadAssignment with one locality (weight 1) holding `endpoints` (address,
/// port, health status), in the given order.
pub fn cluster_load_assignment(
    cluster_name: &str,
    endpoints: impl IntoIterator<Item = (IpAddr, u16, HealthStatus)>,
) -> ClusterLoadAssignment {
    let lb_endpoints: Vec<LbEndpoint> = endpoints
        .into_iter()
        .map(|(ip, port, health)| LbEndpoint {
            health_status: health as i32,
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket_address(ip, port)),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: cluster_name.to_string(),
        endpoints: if lb_endpoints.is_empty() {
            Vec::new()
        } else {
            // gRPC's xDS client rejects a locality without `locality` and
            // ignores one without a weight; Envoy reads the weight only with
            // locality-weighted load balancing.
            vec![LocalityLbEndpoints {
                lb_endpoints,
                locality: Some(Locality::default()),
                load_balancing_weight: Some(UInt32Value { value: 1 }),
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}

/// A string matcher: exact, prefix or RE2 regex.
pub fn string_matcher(pattern: StringPattern<'_>) -> StringMatcher {
    use string_matcher::MatchPattern;
    let pattern = match pattern {
        StringPattern::Exact(s) => MatchPattern::Exact(s.to_string()),
        StringPattern::Prefix(s) => MatchPattern::Prefix(s.to_string()),
        StringPattern::Regex(s) => MatchPattern::SafeRegex(regex_matcher(s)),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    }
}

/// A RE2 regex matcher (Envoy's default engine).
pub fn regex_matcher(regex: &str) -> RegexMatcher {
    RegexMatcher {
        regex: regex.to_string(),
        ..Default::default()
    }
}

/// A borrowed exact/prefix/regex pattern.
#[derive(Clone, Copy, Debug)]
pub enum StringPattern<'a> {
    /// Equal to.
    Exact(&'a str),
    /// Starts with.
    Prefix(&'a str),
    /// Matches the whole value (RE2).
    Regex(&'a str),
}

/// A header condition.
pub fn header_matcher(name: &str, pattern: StringPattern<'_>) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
            string_matcher(pattern),
        )),
        ..Default::default()
    }
}

/// A route match on the path (`None` = prefix `/`, every request) and headers.
pub fn route_match(path: Option<StringPattern<'_>>, headers: Vec<HeaderMatcher>) -> RouteMatch {
    use route_match::PathSpecifier;
    let path = match path {
        None => PathSpecifier::Prefix("/".into()),
        Some(StringPattern::Exact(p)) => PathSpecifier::Path(p.to_string()),
        Some(StringPattern::Prefix(p)) => PathSpecifier::Prefix(p.to_string()),
        Some(StringPattern::Regex(r)) => PathSpecifier::SafeRegex(regex_matcher(r)),
    };
    RouteMatch {
        path_specifier: Some(path),
        headers,
        ..Default::default()
    }
}

/// A route forwarding to one cluster (one entry) or splitting between
/// clusters by relative weight (several). The route timeout is disabled, as
/// Istio does by default. `clusters` must not be empty and weights must be > 0.
pub fn forward_route(name: &str, matcher: RouteMatch, clusters: &[(&str, u32)]) -> Route {
    let specifier = match clusters {
        [(cluster, _)] => route_action::ClusterSpecifier::Cluster(cluster.to_string()),
        _ => route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: clusters
                .iter()
                .map(|(cluster, weight)| weighted_cluster::ClusterWeight {
                    name: cluster.to_string(),
                    weight: Some(UInt32Value { value: *weight }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    Route {
        name: name.to_string(),
        r#match: Some(matcher),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(specifier),
            timeout: Some(duration(StdDuration::ZERO)),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A route that answers `status` with a plain-text `body`, without an upstream.
pub fn direct_response_route(name: &str, matcher: RouteMatch, status: u16, body: &str) -> Route {
    Route {
        name: name.to_string(),
        r#match: Some(matcher),
        action: Some(route::Action::DirectResponse(DirectResponseAction {
            status: u32::from(status),
            body: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineString(body.to_string())),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}
