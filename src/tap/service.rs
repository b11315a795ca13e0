//! Sextant's `envoy.service.accesslog.v3.AccessLogService`: reads the HTTP
//! access log entries a sidecar streams and records them in the [`TapHub`].

use super::{service_of_cluster, TapEntry, TapHub};
use crate::cache::SnapshotCache;
use crate::proxy::ProxyInfo;
use crate::server::sink_gate::SinkGate;
use envoy_types::pb::envoy::config::core::v3::RequestMethod;
use envoy_types::pb::envoy::data::accesslog::v3::HttpAccessLogEntry;
use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_server::{
    AccessLogService, AccessLogServiceServer,
};
use envoy_types::pb::envoy::service::accesslog::v3::{
    stream_access_logs_message::LogEntries, StreamAccessLogsMessage, StreamAccessLogsResponse,
};
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};

/// Longest text kept of a string field of an entry (path, authority, ...),
/// in bytes: with [`super::RING_CAPACITY`] entries per service, it bounds
/// the memory a sidecar (or anyone speaking the protocol) can make Sextant
/// keep.
pub const MAX_FIELD_BYTES: usize = 512;

/// Largest access log message accepted (Envoy buffers 16 KiB by default
/// before it flushes).
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The access log service: one task per stream, no response until the
/// sidecar closes it (Envoy's protocol).
#[derive(Clone, Debug)]
pub struct AccessLogSink {
    hub: Arc<TapHub>,
    /// Resolves a sidecar's SPIFFE ID from its node, when Sextant serves
    /// certificates, and tells the clusters of the current configuration.
    cache: Option<Arc<SnapshotCache>>,
    /// With `serve --require-token`: only proxies connected over ADS.
    gate: Option<SinkGate>,
}

impl AccessLogSink {
    /// A service recording into `hub`; `cache` names sources by their
    /// workload's SPIFFE ID (without it, by node id).
    pub fn new(hub: Arc<TapHub>, cache: Option<Arc<SnapshotCache>>) -> Self {
        AccessLogSink {
            hub,
            cache,
            gate: None,
        }
    }

    /// The same, admitting only the streams `gate` admits.
    pub fn gated(self, gate: SinkGate) -> Self {
        AccessLogSink {
            gate: Some(gate),
            ..self
        }
    }

    /// The tonic service, with an explicit message size limit.
    pub fn into_server(self) -> AccessLogServiceServer<Self> {
        AccessLogServiceServer::new(self).max_decoding_message_size(MAX_MESSAGE_BYTES)
    }
}

#[tonic::async_trait]
impl AccessLogService for AccessLogSink {
    async fn stream_access_logs(
        &self,
        request: Request<Streaming<StreamAccessLogsMessage>>,
    ) -> Result<Response<StreamAccessLogsResponse>, Status> {
        let peer = request.remote_addr();
        let mut stream = request.into_inner();
        // The identifier comes with the first message only.
        let mut source = (String::new(), String::new());
        while let Some(message) = stream.message().await? {
            if let Some(id) = &message.identifier {
                let node = id.node.as_ref();
                let node_id = node.map(|n| n.id.clone()).unwrap_or_default();
                if let Some(gate) = &self.gate {
                    gate.admit(&node_id, peer).inspect_err(|status| {
                        tracing::warn!(
                            node = node_id,
                            "refusing an access log stream: {}",
                            status.message()
                        );
                    })?;
                }
                let identity = ProxyInfo::from_node(node)
                    .ok()
                    .and_then(|proxy| self.cache.as_ref().and_then(|c| c.identity_of(&proxy)));
                source = (identity.unwrap_or_else(|| node_id.clone()), node_id);
            }
            if let Some(LogEntries::HttpLogs(logs)) = message.log_entries {
                // Only requests to clusters of the current configuration:
                // nobody fills the rings with services that do not exist.
                let ir = self.cache.as_ref().map(|c| c.ir());
                for entry in &logs.log_entry {
                    let cluster = entry
                        .common_properties
                        .as_ref()
                        .map_or("", |c| c.upstream_cluster.as_str());
                    if ir
                        .as_ref()
                        .is_some_and(|ir| !ir.clusters.contains_key(cluster))
                    {
                        continue;
                    }
                    self.hub.record(tap_entry(entry, &source.0, &source.1));
                }
            }
        }
        Ok(Response::new(StreamAccessLogsResponse {}))
    }
}

/// A tap entry from one Envoy HTTP access log entry, reported by the
/// sidecar `node` whose workload is `source`.
pub fn tap_entry(entry: &HttpAccessLogEntry, source: &str, node: &str) -> TapEntry {
    let common = entry.common_properties.clone().unwrap_or_default();
    let request = entry.request.clone().unwrap_or_default();
    let response = entry.response.clone().unwrap_or_default();
    let duration = common
        .duration
        .or(common.time_to_last_downstream_tx_byte)
        .map(|d| d.seconds as f64 * 1e3 + f64::from(d.nanos) / 1e6);
    let trace_id = request
        .request_headers
        .get("x-b3-traceid")
        .cloned()
        .or_else(|| {
            let traceparent = request.request_headers.get("traceparent")?;
            traceparent.split('-').nth(1).map(str::to_string)
        });
    let start_time = common.start_time.and_then(|t| {
        let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
        let time = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
        time.format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    TapEntry {
        service: if common.upstream_cluster.is_empty() {
            String::new()
        } else {
            service_of_cluster(&common.upstream_cluster)
        },
        cluster: bounded(common.upstream_cluster),
        start_time,
        method: RequestMethod::try_from(request.request_method)
            .map(|m| m.as_str_name().to_string())
            .unwrap_or_default(),
        path: bounded(request.path),
        authority: bounded(request.authority),
        status: response.response_code.map(|c| c.value),
        duration_ms: duration,
        source: bounded(source.to_string()),
        node: bounded(node.to_string()),
        trace_id: trace_id.map(bounded),
        request_id: bounded(request.request_id),
    }
}

/// `text` cut to at most [`MAX_FIELD_BYTES`] bytes (on a character boundary).
fn bounded(mut text: String) -> String {
    if text.len() > MAX_FIELD_BYTES {
        let mut end = MAX_FIELD_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
