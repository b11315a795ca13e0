//! Builders for the inbound side of a sidecar: the listener in front of the
//! app, its filter chains and the static clusters to the app.

use super::builders::{cluster_load_assignment, duration, socket_address};
use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, TransportSocket};
use envoy_types::pb::envoy::config::listener::v3::{
    filter, listener_filter, Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::config::route::v3::{
    route, route_action, route_match, Route, RouteAction, RouteConfiguration, RouteMatch,
    VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager, http_filter, HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{tcp_proxy, TcpProxy};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration as StdDuration;

/// Istio's inbound cluster name: `inbound|<app port>||`.
pub fn inbound_cluster_name(port: u16) -> String {
    format!("inbound|{port}||")
}

/// A STATIC cluster to the app at `ip:port` (the sidecar's own workload).
pub fn inbound_cluster(ip: IpAddr, port: u16, connect_timeout: StdDuration) -> Cluster {
    let name = inbound_cluster_name(port);
    Cluster {
        load_assignment: Some(cluster_load_assignment(
            &name,
            [(ip, port, HealthStatus::Healthy)],
        )),
        name,
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        connect_timeout: Some(duration(connect_timeout)),
        ..Default::default()
    }
}

/// The filters that hand a connection to the app on `port`: for HTTP an
/// HTTP connection manager (`http_filters` before the router, a single route
/// to the inbound cluster, no timeout, the access logs and tracer of
/// `telemetry`), for TCP `network_filters` then a TCP proxy.
pub fn app_filters(
    port: u16,
    http: bool,
    http_filters: Vec<HttpFilter>,
    network_filters: Vec<Filter>,
    telemetry: &crate::ir::telemetry::ProxyTelemetry,
) -> Vec<Filter> {
    let cluster = inbound_cluster_name(port);
    if !http {
        let proxy = TcpProxy {
            stat_prefix: cluster.clone(),
            cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster)),
            ..Default::default()
        };
        let mut filters = network_filters;
        filters.push(Filter {
            name: "envoy.filters.network.tcp_proxy".into(),
            config_type: Some(filter::ConfigType::TypedConfig(pack_any(proxy))),
        });
        return filters;
    }
    let route = Route {
        name: "default".into(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.clone())),
            timeout: Some(duration(StdDuration::ZERO)),
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut filters = http_filters;
    filters.push(HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
            Router::default(),
        ))),
        ..Default::default()
    });
    let mut hcm = HttpConnectionManager {
        stat_prefix: cluster.clone(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::RouteConfig(
            RouteConfiguration {
                name: cluster,
                virtual_hosts: vec![VirtualHost {
                    name: "inbound".into(),
                    domains: vec!["*".into()],
                    routes: vec![route],
                    ..Default::default()
                }],
                ..Default::default()
            },
        )),
        http_filters: filters,
        // Authorization sees normalized paths (RFC 3986 dot segments, percent-
        // encoded unreserved characters, repeated slashes), as Istio's
        // default, so `/./admin` or `//admin` cannot dodge a DENY on `/admin`.
        normalize_path: Some(BoolValue { value: true }),
        merge_slashes: true,
        // The peer's identity for the app, as Istio forwards it.
        forward_client_cert_details: http_connection_manager::ForwardClientCertDetails::SanitizeSet
            as i32,
        set_current_client_cert_details: Some(
            http_connection_manager::SetCurrentClientCertDetails {
                uri: true,
                ..Default::default()
            },
        ),
        ..Default::default()
    };
    super::telemetry_builders::apply(&mut hcm, telemetry);
    vec![Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
    }]
}

/// A filter chain for TLS connections (`server_names`: SNI values, empty
/// for any) or plaintext ones (`tls` = `None`).
pub fn filter_chain(
    name: &str,
    tls: Option<TransportSocket>,
    server_names: Vec<String>,
    filters: Vec<Filter>,
) -> FilterChain {
    let transport_protocol = if tls.is_some() { "tls" } else { "raw_buffer" };
    FilterChain {
        name: name.to_string(),
        filter_chain_match: Some(FilterChainMatch {
            transport_protocol: transport_protocol.into(),
            server_names,
            ..Default::default()
        }),
        transport_socket: tls,
        filters,
        ..Default::default()
    }
}

/// The inbound listener on `addr`: a TLS inspector (to tell TLS from
/// plaintext and read the SNI), then `chains`.
pub fn inbound_listener(name: &str, addr: SocketAddr, chains: Vec<FilterChain>) -> Listener {
    Listener {
        name: name.to_string(),
        address: Some(socket_address(addr.ip(), addr.port())),
        enable_reuse_port: Some(BoolValue { value: false }),
        listener_filters: vec![ListenerFilter {
            name: "envoy.filters.listener.tls_inspector".into(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
                TlsInspector::default(),
            ))),
            ..Default::default()
        }],
        filter_chains: chains,
        ..Default::default()
    }
}
