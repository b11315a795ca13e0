//! Builders of what a proxy's telemetry adds to an HTTP connection manager
//! (JSON file access logs, a Zipkin or OpenTelemetry tracer) and the
//! cluster that reaches a trace collector.

use super::builders::{dns_cluster, string_struct};
use crate::ir::telemetry::{
    AccessLogSink, Comparison, ProxyTelemetry, TagValue, TracerKind, TracingSettings,
};
use envoy_types::pb::envoy::config::accesslog::v3::{
    access_log, access_log_filter, comparison_filter, AccessLog, AccessLogFilter, ComparisonFilter,
    StatusCodeFilter,
};
use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{
    grpc_service, substitution_format_string, GrpcService, Http2ProtocolOptions, RuntimeUInt32,
    SubstitutionFormatString,
};
use envoy_types::pb::envoy::config::trace::v3::{
    tracing::{http, Http},
    zipkin_config, OpenTelemetryConfig, ZipkinConfig,
};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    file_access_log, FileAccessLog,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager, HttpConnectionManager,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options, HttpProtocolOptions,
};
use envoy_types::pb::envoy::r#type::tracing::v3::{custom_tag, CustomTag};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;
use std::time::Duration;

/// Envoy's name of the file access logger.
pub const FILE_ACCESS_LOG: &str = "envoy.access_loggers.file";
/// Path on the collector that Zipkin v2 JSON spans are POSTed to.
pub const ZIPKIN_SPANS_PATH: &str = "/api/v2/spans";
/// Runtime key of the status code filter's threshold (no runtime sets it:
/// the configured value applies).
const STATUS_RUNTIME_KEY: &str = "sextant.access_log.status_code";

/// The fields of every access log line (keys of one JSON object), as Envoy
/// command operators. `-` stands for a value Envoy does not have (e.g. no
/// client certificate).
pub const ACCESS_LOG_FIELDS: &[(&str, &str)] = &[
    ("start_time", "%START_TIME%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("protocol", "%PROTOCOL%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("duration_ms", "%DURATION%"),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("downstream_peer_uri_san", "%DOWNSTREAM_PEER_URI_SAN%"),
    ("x_forwarded_client_cert", "%REQ(X-FORWARDED-CLIENT-CERT)%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("trace_id", "%TRACE_ID%"),
    ("user_agent", "%REQ(USER-AGENT)%"),
];

/// A file access log writing one JSON object per request (fields:
/// [`ACCESS_LOG_FIELDS`]) to the sink's path, filtered by response code.
pub fn file_access_log(sink: &AccessLogSink) -> AccessLog {
    let format = SubstitutionFormatString {
        format: Some(substitution_format_string::Format::JsonFormat(
            string_struct(ACCESS_LOG_FIELDS),
        )),
        ..Default::default()
    };
    let config = FileAccessLog {
        path: sink.path.clone(),
        access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(format)),
    };
    AccessLog {
        name: FILE_ACCESS_LOG.into(),
        filter: sink.filter.map(|f| {
            let op = match f.op {
                Comparison::Ge => comparison_filter::Op::Ge,
                Comparison::Eq => comparison_filter::Op::Eq,
                Comparison::Le => comparison_filter::Op::Le,
            };
            AccessLogFilter {
                filter_specifier: Some(access_log_filter::FilterSpecifier::StatusCodeFilter(
                    StatusCodeFilter {
                        comparison: Some(ComparisonFilter {
                            op: op as i32,
                            value: Some(RuntimeUInt32 {
                                default_value: f.code,
                                runtime_key: STATUS_RUNTIME_KEY.into(),
                            }),
                        }),
                    },
                )),
            }
        }),
        config_type: Some(access_log::ConfigType::TypedConfig(pack_any(config))),
    }
}

/// The HTTP connection manager's tracing: the provider (its collector
/// reached through [`collector_cluster`]), random sampling, custom tags;
/// with span reporting disabled, the overall sampling is 0 % (context is
/// still propagated, nothing is reported).
pub fn hcm_tracing(settings: &TracingSettings) -> http_connection_manager::Tracing {
    let cluster = settings.provider.cluster_name();
    let provider = match settings.provider.kind {
        TracerKind::Zipkin => Http {
            name: "envoy.tracers.zipkin".into(),
            config_type: Some(http::ConfigType::TypedConfig(pack_any(ZipkinConfig {
                collector_cluster: cluster,
                collector_endpoint: ZIPKIN_SPANS_PATH.into(),
                collector_endpoint_version: zipkin_config::CollectorEndpointVersion::HttpJson
                    as i32,
                collector_hostname: format!(
                    "{}:{}",
                    settings.provider.host, settings.provider.port
                ),
                trace_id_128bit: true,
                shared_span_context: Some(BoolValue { value: false }),
                // Read and write B3 and W3C `traceparent`.
                trace_context_option: zipkin_config::TraceContextOption::UseB3WithW3cPropagation
                    as i32,
                ..Default::default()
            }))),
        },
        TracerKind::OpenTelemetry => Http {
            name: "envoy.tracers.opentelemetry".into(),
            config_type: Some(http::ConfigType::TypedConfig(pack_any(
                OpenTelemetryConfig {
                    grpc_service: Some(GrpcService {
                        target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                            grpc_service::EnvoyGrpc {
                                cluster_name: cluster,
                                ..Default::default()
                            },
                        )),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ))),
        },
    };
    let percent = |value: f64| Some(Percent { value });
    http_connection_manager::Tracing {
        random_sampling: percent(settings.sampling_percent),
        overall_sampling: settings
            .disable_span_reporting
            .then_some(Percent { value: 0.0 }),
        custom_tags: settings
            .custom_tags
            .iter()
            .map(|(tag, value)| CustomTag {
                tag: tag.clone(),
                r#type: Some(match value {
                    TagValue::Literal(v) => {
                        custom_tag::Type::Literal(custom_tag::Literal { value: v.clone() })
                    }
                    TagValue::Header { name, default } => {
                        custom_tag::Type::RequestHeader(custom_tag::Header {
                            name: name.clone(),
                            default_value: default.clone().unwrap_or_default(),
                        })
                    }
                }),
            })
            .collect(),
        provider: Some(provider),
        ..Default::default()
    }
}

/// Adds `telemetry` to an HTTP connection manager: its access logs and its
/// tracer. Request IDs (`x-request-id`) are generated by Envoy's default
/// either way, and incoming trace headers are forwarded.
pub fn apply(hcm: &mut HttpConnectionManager, telemetry: &ProxyTelemetry) {
    hcm.access_log = telemetry.access_logs.iter().map(file_access_log).collect();
    hcm.access_log
        .extend(telemetry.access_log_service.as_deref().map(grpc_access_log));
    hcm.tracing = telemetry.tracing.as_ref().map(hcm_tracing);
}

/// Envoy's name of the gRPC HTTP access logger.
pub const GRPC_ACCESS_LOG: &str = "envoy.access_loggers.http_grpc";
/// `log_name` of the access logs streamed to Sextant.
pub const SEXTANT_LOG_NAME: &str = "sextant";
/// Request headers added to each gRPC access log entry: the trace ID of B3
/// and W3C trace context.
pub const TRACE_HEADERS: &[&str] = &["x-b3-traceid", "traceparent"];

/// An HTTP gRPC access log (`envoy.service.accesslog.v3.AccessLogService`)
/// to the bootstrap cluster `cluster`, flushed every 100 ms so a live tap
/// sees requests promptly, with the trace headers.
pub fn grpc_access_log(cluster: &str) -> AccessLog {
    use envoy_types::pb::envoy::config::core::v3::ApiVersion;
    use envoy_types::pb::envoy::extensions::access_loggers::grpc::v3::{
        CommonGrpcAccessLogConfig, HttpGrpcAccessLogConfig,
    };
    let config = HttpGrpcAccessLogConfig {
        common_config: Some(CommonGrpcAccessLogConfig {
            log_name: SEXTANT_LOG_NAME.into(),
            grpc_service: Some(GrpcService {
                target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                    grpc_service::EnvoyGrpc {
                        cluster_name: cluster.into(),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }),
            transport_api_version: ApiVersion::V3 as i32,
            buffer_flush_interval: Some(super::builders::duration(Duration::from_millis(100))),
            ..Default::default()
        }),
        additional_request_headers_to_log: TRACE_HEADERS.iter().map(|h| h.to_string()).collect(),
        ..Default::default()
    };
    AccessLog {
        name: GRPC_ACCESS_LOG.into(),
        filter: None,
        config_type: Some(access_log::ConfigType::TypedConfig(pack_any(config))),
    }
}

/// The cluster that reaches a tracer's collector: `STRICT_DNS` on its
/// `host:port` (an IP resolves to itself), HTTP/2 for OpenTelemetry's gRPC.
pub fn collector_cluster(settings: &TracingSettings, connect_timeout: Duration) -> Cluster {
    let provider = &settings.provider;
    let mut cluster = dns_cluster(
        &provider.cluster_name(),
        cluster::DiscoveryType::StrictDns,
        &[(provider.host.clone(), provider.port)],
        cluster::LbPolicy::RoundRobin,
        connect_timeout,
    );
    if provider.kind == TracerKind::OpenTelemetry {
        let options = HttpProtocolOptions {
            upstream_protocol_options: Some(
                http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                    http_protocol_options::ExplicitHttpConfig {
                        protocol_config: Some(
                            http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                                Http2ProtocolOptions::default(),
                            ),
                        ),
                    },
                ),
            ),
            ..Default::default()
        };
        cluster.typed_extension_protocol_options.insert(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(),
            pack_any(options),
        );
    }
    cluster
}
