//! Sextant's `envoy.service.metrics.v3.MetricsService`: reads the stats
//! flushes a sidecar streams (`StreamMetrics`) and records its outbound
//! clusters' samples in the [`EdgeStore`], less what the proxy's
//! Telemetry `metrics` overrides turn off.

use super::{cluster_samples, ClusterSample, EdgeStore};
use crate::cache::SnapshotCache;
use crate::ir::telemetry::{metrics_for_proxy, EdgeMetric, MetricsSettings};
use crate::proxy::ProxyInfo;
use crate::server::sink_gate::SinkGate;
use envoy_types::pb::envoy::service::metrics::v3::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use envoy_types::pb::envoy::service::metrics::v3::{StreamMetricsMessage, StreamMetricsResponse};
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status, Streaming};

/// Largest metrics message accepted. Envoy sends every used stat in one
/// message per flush unless its sink sets `batch_size`; a sidecar with
/// thousands of clusters sends a few MiB.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The metrics service: one task per stream; like Envoy's protocol says,
/// no response until the sidecar closes the stream.
#[derive(Clone, Debug)]
pub struct MetricsSink {
    edges: Arc<EdgeStore>,
    /// With `serve --require-token`: only proxies connected over ADS.
    gate: Option<SinkGate>,
    /// The configuration whose Telemetry `metrics` apply; `None`: everything counts.
    cache: Option<Arc<SnapshotCache>>,
}

impl MetricsSink {
    /// A service recording into `edges`.
    pub fn new(edges: Arc<EdgeStore>) -> Self {
        MetricsSink {
            edges,
            gate: None,
            cache: None,
        }
    }

    /// The same, dropping what the Telemetry `metrics` overrides of the
    /// current configuration in `cache` turn off for the reporting proxy.
    pub fn with_telemetry(self, cache: Arc<SnapshotCache>) -> Self {
        MetricsSink {
            cache: Some(cache),
            ..self
        }
    }

    /// What counts of `proxy`'s reports now.
    fn settings(&self, proxy: Option<&ProxyInfo>) -> MetricsSettings {
        match (&self.cache, proxy) {
            (Some(cache), Some(proxy)) => metrics_for_proxy(
                &cache.ir().telemetries,
                &proxy.namespace,
                &proxy.labels,
                cache.root_namespace(),
            ),
            _ => MetricsSettings::default(),
        }
    }

    /// The same, admitting only the streams `gate` admits.
    pub fn gated(self, gate: SinkGate) -> Self {
        MetricsSink {
            gate: Some(gate),
            ..self
        }
    }

    /// The tonic service, with an explicit message size limit.
    pub fn into_server(self) -> MetricsServiceServer<Self> {
        MetricsServiceServer::new(self).max_decoding_message_size(MAX_MESSAGE_BYTES)
    }
}

/// Forgets a stream's active connections when the stream ends, however it ends.
struct StreamGuard {
    edges: Arc<EdgeStore>,
    node_id: Option<String>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(node_id) = &self.node_id {
            self.edges.proxy_gone(node_id);
        }
    }
}

/// The source workload of a node: `<node.cluster>.<namespace>` (the
/// namespace from its metadata, `default` without); the node id when the
/// node cannot be read.
pub fn source_workload(node: Option<&envoy_types::pb::envoy::config::core::v3::Node>) -> String {
    match ProxyInfo::from_node(node) {
        Ok(proxy) if !proxy.cluster.is_empty() => format!("{}.{}", proxy.cluster, proxy.namespace),
        Ok(proxy) => proxy.node_id,
        Err(_) => node.map(|n| n.id.clone()).unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl MetricsService for MetricsSink {
    async fn stream_metrics(
        &self,
        request: Request<Streaming<StreamMetricsMessage>>,
    ) -> Result<Response<StreamMetricsResponse>, Status> {
        let peer = request.remote_addr();
        let mut stream = request.into_inner();
        let mut guard = StreamGuard {
            edges: self.edges.clone(),
            node_id: None,
        };
        // The identifier comes with the first message only.
        let mut source = String::new();
        let mut proxy: Option<ProxyInfo> = None;
        while let Some(message) = stream.message().await? {
            if let Some(id) = &message.identifier {
                let node = id.node.as_ref();
                if let Some(gate) = &self.gate {
                    let node_id = node.map_or("", |n| n.id.as_str());
                    gate.admit(node_id, peer).inspect_err(|status| {
                        tracing::warn!(
                            node = node_id,
                            "refusing a metrics stream: {}",
                            status.message()
                        );
                    })?;
                }
                source = source_workload(node);
                proxy = ProxyInfo::from_node(node).ok();
                guard.node_id = node.map(|n| n.id.clone());
            }
            let Some(node_id) = guard.node_id.as_deref() else {
                return Err(Status::invalid_argument(
                    "the first StreamMetricsMessage carries no identifier.node",
                ));
            };
            let mut samples = cluster_samples(&message.envoy_metrics);
            let settings = self.settings(proxy.as_ref());
            if !settings.disabled.is_empty() {
                samples = samples
                    .into_iter()
                    .filter_map(|s| without(s, &settings))
                    .collect();
            }
            tracing::debug!(
                node = node_id,
                families = message.envoy_metrics.len(),
                ?samples,
                "metrics flush"
            );
            self.edges
                .record(&source, node_id, &samples, Instant::now());
        }
        Ok(Response::new(StreamMetricsResponse {}))
    }
}

/// `sample` less the metrics `settings` turn off; `None` when nothing is left.
pub(super) fn without(
    mut sample: ClusterSample,
    settings: &MetricsSettings,
) -> Option<ClusterSample> {
    for metric in &settings.disabled {
        match metric {
            EdgeMetric::RequestCount => {
                sample.responses = [0; 5];
                sample.grpc_ok = 0;
                sample.grpc_failed = 0;
            }
            EdgeMetric::RequestDuration => sample.latency = None,
            EdgeMetric::ActiveConnections => sample.active_connections = None,
        }
    }
    (!sample.is_empty()).then_some(sample)
}
