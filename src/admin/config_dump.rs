//! A proxy's ACKed resources in Envoy's `/config_dump` shape.

use crate::cache::ResourceMap;
use crate::envoy::TypeUrl;
use crate::server::registry::TypeStatus;
use envoy_types::pb::envoy::admin::v3::{
    clusters_config_dump, endpoints_config_dump, listeners_config_dump, routes_config_dump,
    ClustersConfigDump, ConfigDump, EndpointsConfigDump, ListenersConfigDump, RoutesConfigDump,
};
use envoy_types::pb::google::protobuf::{Any, Timestamp};
use envoy_types::util::pack_any;
use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

/// The ACKed resources of one type, with their version and time.
struct Acked<'a> {
    version: String,
    resources: &'a ResourceMap,
    at: Option<Timestamp>,
    type_url: TypeUrl,
}

impl Acked<'_> {
    fn any(&self) -> impl Iterator<Item = (&str, Any)> + '_ {
        self.resources.iter().map(|(name, r)| {
            (
                &**name,
                Any {
                    type_url: self.type_url.as_str().to_string(),
                    value: r.body.to_vec(),
                },
            )
        })
    }
}

/// The ACKed state of every type, as Envoy's `ConfigDump` with listeners,
/// clusters, routes and endpoints (in Envoy's own order).
pub(super) fn acked(status: &BTreeMap<TypeUrl, TypeStatus>) -> ConfigDump {
    let acked = |type_url: TypeUrl| {
        let t = status.get(&type_url)?;
        Some(Acked {
            version: t.acked_version.clone()?,
            resources: t.acked_resources.as_deref()?,
            at: t.acked_at.and_then(|at| {
                let since = at.duration_since(UNIX_EPOCH).ok()?;
                Some(Timestamp {
                    seconds: since.as_secs() as i64,
                    nanos: since.subsec_nanos() as i32,
                })
            }),
            type_url,
        })
    };
    let mut listeners = ListenersConfigDump::default();
    if let Some(a) = acked(TypeUrl::Listener) {
        listeners.version_info = a.version.clone();
        listeners.dynamic_listeners = a
            .any()
            .map(|(name, listener)| listeners_config_dump::DynamicListener {
                name: name.to_string(),
                active_state: Some(listeners_config_dump::DynamicListenerState {
                    version_info: a.version.clone(),
                    listener: Some(listener),
                    last_updated: a.at,
                }),
                ..Default::default()
            })
            .collect();
    }
    let mut clusters = ClustersConfigDump::default();
    if let Some(a) = acked(TypeUrl::Cluster) {
        clusters.version_info = a.version.clone();
        clusters.dynamic_active_clusters = a
            .any()
            .map(|(_, cluster)| clusters_config_dump::DynamicCluster {
                version_info: a.version.clone(),
                cluster: Some(cluster),
                last_updated: a.at,
                ..Default::default()
            })
            .collect();
    }
    let mut routes = RoutesConfigDump::default();
    if let Some(a) = acked(TypeUrl::RouteConfiguration) {
        routes.dynamic_route_configs = a
            .any()
            .map(|(_, route_config)| routes_config_dump::DynamicRouteConfig {
                version_info: a.version.clone(),
                route_config: Some(route_config),
                last_updated: a.at,
                ..Default::default()
            })
            .collect();
    }
    let mut endpoints = EndpointsConfigDump::default();
    if let Some(a) = acked(TypeUrl::ClusterLoadAssignment) {
        endpoints.dynamic_endpoint_configs = a
            .any()
            .map(
                |(_, endpoint_config)| endpoints_config_dump::DynamicEndpointConfig {
                    version_info: a.version.clone(),
                    endpoint_config: Some(endpoint_config),
                    last_updated: a.at,
                    ..Default::default()
                },
            )
            .collect();
    }
    ConfigDump {
        configs: vec![
            pack_any(listeners),
            pack_any(clusters),
            pack_any(routes),
            pack_any(endpoints),
        ],
    }
}
