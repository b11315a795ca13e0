//! Envoy bootstrap for a workload, so that nobody hand-writes one.
//!
//! The bootstrap identifies the proxy (node id, cluster, and the metadata
//! keys of [`crate::proxy`]), points ADS at Sextant over an HTTP/2 cluster
//! (Envoy hangs silently after "initializing cds" without HTTP/2), and takes
//! LDS and CDS from ADS with `resource_api_version: V3`. ADS is state of the
//! world by default (every Envoy and every xDS client supports it); `delta`
//! selects incremental ADS.

use crate::envoy::builders::{ads_config_source, duration};
use crate::proxy::{self, string_value};
use envoy_types::pb::envoy::config::bootstrap::v3::{bootstrap, Admin, Bootstrap};
use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{
    address, api_config_source, grpc_service, socket_address, Address, ApiConfigSource, ApiVersion,
    GrpcService, HeaderValue, Http2ProtocolOptions, Node, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::metrics::v3::{
    stats_sink, HistogramEmitMode, MetricsServiceConfig, StatsSink,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options, HttpProtocolOptions,
};
use envoy_types::pb::google::protobuf::{value::Kind, BoolValue, Struct};
use envoy_types::util::pack_any;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Name of the bootstrap's static cluster that reaches Sextant's xDS server.
pub const XDS_CLUSTER: &str = "sextant-xds";
/// Name of the bootstrap cluster that reaches Sextant's gRPC access log
/// service (the same address as xDS, its own HTTP/2 connection).
pub const ALS_CLUSTER: &str = "sextant-als";

/// Name of the bootstrap cluster that reaches Sextant's metrics service
/// (the same address as xDS, its own HTTP/2 connection).
pub const METRICS_CLUSTER: &str = "sextant-metrics";

/// The workload a bootstrap is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapOptions {
    /// `node.id`, unique per workload, e.g. `reviews-v1.default`.
    pub node_id: String,
    /// `node.cluster`: the workload's service (defaults to the node id's first label).
    pub cluster: String,
    /// Namespace of the workload.
    pub namespace: String,
    /// Service account of the workload.
    pub service_account: String,
    /// Labels of the workload.
    pub labels: BTreeMap<String, String>,
    /// IPs of the workload.
    pub instance_ips: Vec<IpAddr>,
    /// Sextant's xDS address: `host:port`, host an IP or a DNS name.
    pub xds_host: String,
    /// Port of the xDS address.
    pub xds_port: u16,
    /// Envoy's admin listener (keep it on loopback).
    pub admin: SocketAddr,
    /// Outbound HTTP listener of this proxy.
    pub outbound: SocketAddr,
    /// Port of the inbound listener in front of the app (on the first instance IP).
    pub inbound_port: u16,
    /// Use delta (incremental) ADS (`DELTA_GRPC`) instead of state of the world (`GRPC`).
    pub delta: bool,
    /// A token from `sextant token`, sent on the ADS stream as gRPC metadata
    /// `authorization: Bearer <token>` (the xDS gRPC service's
    /// `initial_metadata`), for a server that runs `--require-token`.
    pub token: Option<String>,
    /// Stream HTTP access logs to Sextant (for `sextant tap`): adds the
    /// [`ALS_CLUSTER`] cluster and names it in the node metadata.
    pub access_log_service: bool,
    /// Stream Envoy's stats to Sextant (per-edge golden signals): adds the
    /// [`METRICS_CLUSTER`] cluster and an `envoy.stat_sinks.metrics_service`
    /// stats sink (counters as deltas, histograms as buckets).
    pub metrics_service: bool,
    /// Envoy's `stats_flush_interval`, how often the sinks get stats
    /// (`None`: Envoy's default, 5 s).
    pub stats_flush_interval: Option<Duration>,
}

/// The bootstrap proto.
pub fn bootstrap(options: &BootstrapOptions) -> Bootstrap {
    let mut metadata = HashMap::new();
    metadata.insert(
        proxy::META_NAMESPACE.to_string(),
        string_value(&options.namespace),
    );
    metadata.insert(
        proxy::META_SERVICE_ACCOUNT.to_string(),
        string_value(&options.service_account),
    );
    let ips: Vec<String> = options
        .instance_ips
        .iter()
        .map(ToString::to_string)
        .collect();
    metadata.insert(
        proxy::META_INSTANCE_IPS.to_string(),
        string_value(ips.join(",")),
    );
    metadata.insert(
        proxy::META_OUTBOUND_ADDRESS.to_string(),
        string_value(options.outbound.ip().to_string()),
    );
    metadata.insert(
        proxy::META_OUTBOUND_PORT.to_string(),
        string_value(options.outbound.port().to_string()),
    );
    metadata.insert(
        proxy::META_INBOUND_PORT.to_string(),
        string_value(options.inbound_port.to_string()),
    );
    metadata.insert(
        proxy::META_ADMIN_PORT.to_string(),
        string_value(options.admin.port().to_string()),
    );
    if options.access_log_service {
        metadata.insert(
            proxy::META_ACCESS_LOG_SERVICE.to_string(),
            string_value(ALS_CLUSTER),
        );
    }
    let labels = options
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), string_value(v)))
        .collect();
    metadata.insert(
        proxy::META_LABELS.to_string(),
        envoy_types::pb::google::protobuf::Value {
            kind: Some(Kind::StructValue(Struct { fields: labels })),
        },
    );

    let xds_address = Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: options.xds_host.clone(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                options.xds_port,
            ))),
            ..Default::default()
        })),
    };
    let discovery = if options.xds_host.parse::<IpAddr>().is_ok() {
        cluster::DiscoveryType::Static
    } else {
        cluster::DiscoveryType::StrictDns
    };
    let http2 = HttpProtocolOptions {
        upstream_protocol_options: Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    };
    let xds_cluster = Cluster {
        name: XDS_CLUSTER.to_string(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(discovery as i32)),
        connect_timeout: Some(duration(Duration::from_secs(1))),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: XDS_CLUSTER.to_string(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(xds_address),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        typed_extension_protocol_options: HashMap::from([(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            pack_any(http2),
        )]),
        ..Default::default()
    };

    Bootstrap {
        node: Some(Node {
            id: options.node_id.clone(),
            cluster: options.cluster.clone(),
            metadata: Some(Struct { fields: metadata }),
            ..Default::default()
        }),
        admin: Some(Admin {
            address: Some(crate::envoy::builders::socket_address(
                options.admin.ip(),
                options.admin.port(),
            )),
            ..Default::default()
        }),
        dynamic_resources: Some(bootstrap::DynamicResources {
            ads_config: Some(ApiConfigSource {
                api_type: if options.delta {
                    api_config_source::ApiType::DeltaGrpc as i32
                } else {
                    api_config_source::ApiType::Grpc as i32
                },
                transport_api_version: ApiVersion::V3 as i32,
                grpc_services: vec![GrpcService {
                    target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                        grpc_service::EnvoyGrpc {
                            cluster_name: XDS_CLUSTER.to_string(),
                            ..Default::default()
                        },
                    )),
                    initial_metadata: options
                        .token
                        .iter()
                        .map(|token| HeaderValue {
                            key: "authorization".into(),
                            value: format!("Bearer {token}"),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                set_node_on_first_message_only: true,
                ..Default::default()
            }),
            cds_config: Some(ads_config_source()),
            lds_config: Some(ads_config_source()),
            ..Default::default()
        }),
        static_resources: Some(bootstrap::StaticResources {
            clusters: [
                Some(XDS_CLUSTER),
                options.access_log_service.then_some(ALS_CLUSTER),
                options.metrics_service.then_some(METRICS_CLUSTER),
            ]
            .into_iter()
            .flatten()
            .map(|name| {
                let mut cluster = xds_cluster.clone();
                cluster.name = name.to_string();
                if let Some(assignment) = cluster.load_assignment.as_mut() {
                    assignment.cluster_name = name.to_string();
                }
                cluster
            })
            .collect(),
            ..Default::default()
        }),
        stats_sinks: if options.metrics_service {
            vec![metrics_service_sink()]
        } else {
            Vec::new()
        },
        stats_flush_interval: options.stats_flush_interval.map(duration),
        ..Default::default()
    }
}

/// Envoy's `envoy.stat_sinks.metrics_service` stats sink, streaming to
/// [`METRICS_CLUSTER`]: counters as deltas of the flush interval
/// (`report_counters_as_deltas`), histograms as Prometheus buckets only
/// (`histogram_emit_mode: HISTOGRAM`; Envoy sends the interval's samples),
/// full stat names (no `emit_tags_as_labels`: Envoy's default tag
/// extractor cuts cluster names at their first dot).
pub fn metrics_service_sink() -> StatsSink {
    let config = MetricsServiceConfig {
        grpc_service: Some(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: METRICS_CLUSTER.to_string(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        transport_api_version: ApiVersion::V3 as i32,
        report_counters_as_deltas: Some(BoolValue { value: true }),
        histogram_emit_mode: HistogramEmitMode::Histogram as i32,
        ..Default::default()
    };
    StatsSink {
        name: "envoy.stat_sinks.metrics_service".to_string(),
        config_type: Some(stats_sink::ConfigType::TypedConfig(pack_any(config))),
    }
}

/// The bootstrap as YAML (Envoy's `-c` accepts it), with proto field names
/// and keys in a stable order.
///
/// # Errors
/// Only if rendering fails, which would be a bug.
pub fn bootstrap_yaml(options: &BootstrapOptions) -> Result<String, crate::envoy::json::JsonError> {
    let json = crate::envoy::json::to_json(&bootstrap(options))?;
    Ok(serde_yaml_ng::to_string(&json).expect("JSON values render as YAML"))
}

/// A gRPC xDS bootstrap: the JSON a proxyless gRPC application reads from
/// the file named by `GRPC_XDS_BOOTSTRAP`, so that `xds:///<host>:<port>`
/// targets resolve through Sextant (state of the world over ADS; the node
/// carries `GENERATOR: grpc`). The Envoy-only options (admin, outbound
/// listener, delta) do not apply.
pub fn grpc_bootstrap_json(options: &BootstrapOptions) -> serde_json::Value {
    let ips: Vec<String> = options
        .instance_ips
        .iter()
        .map(ToString::to_string)
        .collect();
    let host = if options.xds_host.contains(':') {
        format!("[{}]", options.xds_host)
    } else {
        options.xds_host.clone()
    };
    serde_json::json!({
        "xds_servers": [{
            "server_uri": format!("{host}:{}", options.xds_port),
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }],
        "node": {
            "id": options.node_id,
            "cluster": options.cluster,
            "metadata": {
                proxy::META_NAMESPACE: options.namespace,
                proxy::META_SERVICE_ACCOUNT: options.service_account,
                proxy::META_INSTANCE_IPS: ips.join(","),
                proxy::META_LABELS: options.labels,
                proxy::META_GENERATOR: "grpc",
            },
        },
    })
}

#[cfg(test)]
mod tests;
