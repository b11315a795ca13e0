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
    assert_eq!(clusters, [XDS_CLUSTER, ALS_CLUSTER]);
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
