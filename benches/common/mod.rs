//! What the benches share.

// The server's allocator, so that the figures are the server's.
#[path = "../../src/allocator.rs"]
mod allocator;

use sextant::proxy::{ProxyInfo, DEFAULT_OUTBOUND};
use std::collections::BTreeMap;

/// A sidecar in `ns-0`, without certificates (no mutual TLS, no SDS).
pub fn proxy() -> ProxyInfo {
    ProxyInfo {
        node_id: "bench.ns-0".into(),
        cluster: "bench".into(),
        namespace: "ns-0".into(),
        labels: BTreeMap::new(),
        service_account: "default".into(),
        instance_ips: Vec::new(),
        outbound: DEFAULT_OUTBOUND,
        admin_port: None,
        inbound_port: 15006,
        proxyless_grpc: false,
        access_log_service: None,
    }
}
