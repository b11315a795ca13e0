//! Delta (incremental) ADS: the [`Protocol`] glue between tonic messages and
//! the [`DeltaStream`] state machine.

use super::delta_stream::{DeltaRequest, DeltaResponse, DeltaStream};
use super::registry::StreamState;
use super::task::{Protocol, Seen, IDENTIFIER};
use crate::cache::ProxySnapshot;
use crate::envoy::TypeUrl;
use crate::metrics::XdsProtocol;
use envoy_types::pb::envoy::config::core::v3::{ControlPlane, Node};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use envoy_types::pb::google::protobuf::Any;

pub(super) struct Delta;

fn machine(state: &mut StreamState) -> &mut DeltaStream {
    match state {
        StreamState::Delta(s) => s,
        StreamState::Sotw(_) => unreachable!("a delta stream holds a delta state"),
    }
}

impl Protocol for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
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

    fn measure(response: &DeltaDiscoveryResponse) -> Option<(TypeUrl, usize)> {
        let bytes = response
            .resources
            .iter()
            .filter_map(|r| r.resource.as_ref())
            .map(|a| a.value.len())
            .sum();
        Some((TypeUrl::parse(&response.type_url)?, bytes))
    }

    fn poll(state: &mut StreamState, snapshot: &ProxySnapshot) -> Vec<DeltaDiscoveryResponse> {
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

fn delta_response(response: DeltaResponse) -> DeltaDiscoveryResponse {
    let type_url = response.type_url.as_str();
    DeltaDiscoveryResponse {
        system_version_info: response.system_version,
        resources: response
            .resources
            .into_iter()
            .map(|r| Resource {
                name: r.name.to_string(),
                version: r.hash.to_string(),
                resource: Some(Any {
                    type_url: type_url.to_string(),
                    value: r.body.to_vec(),
                }),
                ..Default::default()
            })
            .collect(),
        type_url: type_url.to_string(),
        removed_resources: response.removed,
        nonce: response.nonce,
        control_plane: Some(ControlPlane {
            identifier: IDENTIFIER.to_string(),
        }),
        ..Default::default()
    }
}
