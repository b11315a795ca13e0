use super::*;

fn options(access_log_service: bool) -> BootstrapOptions {
    BootstrapOptions {
        node_id: "a.default".into(),
        cluster: "a".into(),
        namespace: "default".into(),
        service_account: "default".into(),
        labels: BTreeMap::new(),
        instance_ips: Vec::new(),
        xds_host: "127.0.0.1".into(),
        xds_port: 15010,
        admin: "127.0.0.1:15000".parse().unwrap(),
        outbound: "127.0.0.1:15001".parse().unwrap(),
        inbound_port: 15006,
        delta: false,
        access_log_service,
        metrics_service: access_log_service,
        stats_flush_interval: None,
        token: None,
    }
}

#[test]
fn the_access_log_service_cluster_is_added_unless_turned_off() {
    let with = bootstrap(&options(true));
    let clusters: Vec<&str> = with
        .static_resources
        .as_ref()
        .unwrap()
        .clusters
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(clusters, [XDS_CLUSTER, ALS_CLUSTER, METRICS_CLUSTER]);
    let als = &with.static_resources.as_ref().unwrap().clusters[1];
    assert_eq!(
        als.load_assignment.as_ref().unwrap().cluster_name,
        ALS_CLUSTER
    );
    assert!(
        als.typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"),
        "HTTP/2 for gRPC"
    );
    let meta = &with
        .node
        .as_ref()
        .unwrap()
        .metadata
        .as_ref()
        .unwrap()
        .fields;
    assert_eq!(
        meta[proxy::META_ACCESS_LOG_SERVICE],
        string_value(ALS_CLUSTER)
    );

    let without = bootstrap(&options(false));
    assert_eq!(without.static_resources.as_ref().unwrap().clusters.len(), 1);
    assert!(without.stats_sinks.is_empty());
    let meta = &without
        .node
        .as_ref()
        .unwrap()
        .metadata
        .as_ref()
        .unwrap()
        .fields;
    assert!(!meta.contains_key(proxy::META_ACCESS_LOG_SERVICE));
}

#[test]
fn the_metrics_service_sink_streams_deltas_and_buckets_to_sextant() {
    let mut with = options(true);
    with.stats_flush_interval = Some(Duration::from_millis(250));
    let bootstrap = bootstrap(&with);
    assert_eq!(
        bootstrap.stats_flush_interval,
        Some(duration(Duration::from_millis(250)))
    );
    let [sink] = bootstrap.stats_sinks.as_slice() else {
        panic!("one sink: {:?}", bootstrap.stats_sinks);
    };
    assert_eq!(sink.name, "envoy.stat_sinks.metrics_service");
    let Some(stats_sink::ConfigType::TypedConfig(any)) = &sink.config_type else {
        panic!("typed config");
    };
    let config: MetricsServiceConfig = prost::Message::decode(any.value.as_slice()).unwrap();
    assert_eq!(
        config.report_counters_as_deltas,
        Some(BoolValue { value: true })
    );
    assert_eq!(
        config.histogram_emit_mode,
        HistogramEmitMode::Histogram as i32
    );
    assert_eq!(config.transport_api_version, ApiVersion::V3 as i32);
    assert!(!config.emit_tags_as_labels);
    let Some(grpc_service::TargetSpecifier::EnvoyGrpc(grpc)) =
        config.grpc_service.and_then(|g| g.target_specifier)
    else {
        panic!("Envoy gRPC target");
    };
    assert_eq!(grpc.cluster_name, METRICS_CLUSTER);
}
