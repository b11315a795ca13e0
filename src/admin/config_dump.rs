//! A proxy's ACKed resources in Envoy's `/config_dump` shape.

use crate::envoy::TypeUrl;
use crate::server::stream::{Sent, SotwStream};
use envoy_types::pb::envoy::admin::v3::{
    clusters_config_dump, endpoints_config_dump, listeners_config_dump, routes_config_dump,
    ClustersConfigDump, ConfigDump, EndpointsConfigDump, ListenersConfigDump, RoutesConfigDump,
};
use envoy_types::pb::google::protobuf::{Any, Timestamp};
use envoy_types::util::pack_any;
use std::time::UNIX_EPOCH;

fn resources(sent: &Sent, type_url: TypeUrl) -> impl Iterator<Item = Any> + '_ {
    sent.resources.values().map(move |r| Any {
        type_url: type_url.as_str().to_string(),
        value: r.body.to_vec(),
    })
}

fn timestamp(sent: &Sent) -> Option<Timestamp> {
    let since = sent.at.duration_since(UNIX_EPOCH).ok()?;
    Some(Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    })
}

/// The ACKed state of every type of `stream`, as Envoy's `ConfigDump` with
/// listeners, clusters, routes and endpoints (in Envoy's own order).
pub(super) fn acked(stream: &SotwStream) -> ConfigDump {
    let acked = |t: TypeUrl| stream.types.get(&t).and_then(|s| s.acked.as_ref());
    let mut configs = Vec::new();

    let mut listeners = ListenersConfigDump::default();
    if let Some(sent) = acked(TypeUrl::Listener) {
        listeners.version_info = sent.version.clone();
        listeners.dynamic_listeners = resources(sent, TypeUrl::Listener)
            .zip(sent.resources.keys())
            .map(|(listener, name)| listeners_config_dump::DynamicListener {
                name: name.clone(),
                active_state: Some(listeners_config_dump::DynamicListenerState {
                    version_info: sent.version.clone(),
                    listener: Some(listener),
                    last_updated: timestamp(sent),
                }),
                ..Default::default()
            })
            .collect();
    }
    configs.push(pack_any(listeners));

    let mut clusters = ClustersConfigDump::default();
    if let Some(sent) = acked(TypeUrl::Cluster) {
        clusters.version_info = sent.version.clone();
        clusters.dynamic_active_clusters = resources(sent, TypeUrl::Cluster)
            .map(|cluster| clusters_config_dump::DynamicCluster {
                version_info: sent.version.clone(),
                cluster: Some(cluster),
                last_updated: timestamp(sent),
                ..Default::default()
            })
            .collect();
    }
    configs.push(pack_any(clusters));

    let mut routes = RoutesConfigDump::default();
    if let Some(sent) = acked(TypeUrl::RouteConfiguration) {
        routes.dynamic_route_configs = resources(sent, TypeUrl::RouteConfiguration)
            .map(|route_config| routes_config_dump::DynamicRouteConfig {
                version_info: sent.version.clone(),
                route_config: Some(route_config),
                last_updated: timestamp(sent),
                ..Default::default()
            })
            .collect();
    }
    configs.push(pack_any(routes));

    let mut endpoints = EndpointsConfigDump::default();
    if let Some(sent) = acked(TypeUrl::ClusterLoadAssignment) {
        endpoints.dynamic_endpoint_configs = resources(sent, TypeUrl::ClusterLoadAssignment)
            .map(
                |endpoint_config| endpoints_config_dump::DynamicEndpointConfig {
                    version_info: sent.version.clone(),
                    endpoint_config: Some(endpoint_config),
                    last_updated: timestamp(sent),
                    ..Default::default()
                },
            )
            .collect();
    }
    configs.push(pack_any(endpoints));

    ConfigDump { configs }
}
