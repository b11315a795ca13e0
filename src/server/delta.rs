//! Delta (incremental) ADS: the [`Protocol`] glue between the protocol's
//! messages and the [`DeltaStream`] state machine.

use super::delta_stream::{DeltaRequest, DeltaResponse, DeltaStream};
use super::registry::StreamState;
use super::task::{Protocol, Seen, IDENTIFIER};
use super::wire::WireResponse;
use crate::cache::ProxySnapshot;
use crate::metrics::XdsProtocol;
use envoy_types::pb::envoy::config::core::v3::{ControlPlane, Node};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};

pub(super) struct Delta;

fn machine(state: &mut StreamState) -> &mut DeltaStream {
    match state {
        StreamState::Delta(s) => s,
        StreamState::Sotw(_) => unreachable!("a delta stream holds a delta state"),
    }
}

impl Protocol for Delta {
    type Request = DeltaDiscoveryRequest;
    const NAME: &'static str = "delta";
    const PROTOCOL: XdsProtocol = XdsProtocol::Delta;

    fn node(request: &DeltaDiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }

    fn new_state() -> StreamState {
        StreamState::Delta(DeltaStream::new())
    }

    fn on_request(state: &mut StreamState, request: DeltaDiscoveryRequest) -> Seen {
        let request = DeltaRequest {
            type_url: request.type_url,
            subscribe: request.resource_names_subscribe,
            unsubscribe: request.resource_names_unsubscribe,
            initial_resource_versions: request.initial_resource_versions.into_iter().collect(),
            response_nonce: request.response_nonce,
            error_detail: request.error_detail.map(|e| e.message),
        };
        let kind = machine(state).on_request(&request);
        Seen {
            kind,
            type_url: request.type_url,
            nonce: request.response_nonce,
            error: request.error_detail,
        }
    }

    fn poll(state: &mut StreamState, snapshot: &ProxySnapshot) -> Vec<WireResponse> {
        machine(state)
            .poll(snapshot)
            .into_iter()
            .map(delta_response)
            .collect()
    }

    fn resend_all(state: &mut StreamState) {
        machine(state).resend_all();
    }
}

/// A `DeltaDiscoveryResponse`; its resources are shared with the snapshot,
/// each with its hash as its version.
fn delta_response(response: DeltaResponse) -> WireResponse {
    let fields = DeltaDiscoveryResponse {
        system_version_info: response.system_version,
        type_url: response.type_url.as_str().to_string(),
        removed_resources: response.removed,
        nonce: response.nonce,
        control_plane: Some(ControlPlane {
            identifier: IDENTIFIER.to_string(),
        }),
        ..Default::default()
    };
    WireResponse::delta(response.type_url, fields, response.resources)
}
