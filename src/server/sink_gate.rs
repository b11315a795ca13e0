//! Who may stream telemetry (access logs, stats) to Sextant. Envoy's
//! access-log and metrics clients carry no token of their own, so with
//! `serve --require-token` a sink stream is admitted only for a node that
//! has an open ADS stream (whose token was checked) from the same IP
//! address. Without `--require-token`, node identities are claimed, not
//! proven, for telemetry as for xDS (README, Security).

use super::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use tonic::Status;

/// Admits telemetry streams of proxies connected over ADS.
#[derive(Clone, Debug)]
pub struct SinkGate {
    registry: Arc<Registry>,
}

impl SinkGate {
    /// A gate that looks proxies up in `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        SinkGate { registry }
    }

    /// `Ok` when `node_id` has an open ADS stream from `peer`'s IP address.
    ///
    /// # Errors
    /// `UNAUTHENTICATED`, naming the node and what is missing.
    pub fn admit(&self, node_id: &str, peer: Option<SocketAddr>) -> Result<(), Status> {
        let Some(entry) = self.registry.find(node_id) else {
            return Err(Status::unauthenticated(format!(
                "node {node_id:?} has no open ADS stream; telemetry is accepted only from connected proxies"
            )));
        };
        match (entry.peer, peer) {
            (Some(ads), Some(sink)) if ads.ip() == sink.ip() => Ok(()),
            (ads, sink) => Err(Status::unauthenticated(format!(
                "node {node_id:?} streams telemetry from {} but its ADS stream comes from {}",
                sink.map_or("an unknown address".into(), |a| a.ip().to_string()),
                ads.map_or("an unknown address".into(), |a| a.ip().to_string()),
            ))),
        }
    }
}
