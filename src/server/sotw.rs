//! State-of-the-world ADS: the [`Protocol`] glue between tonic messages and
//! the [`SotwStream`] state machine.

use super::registry::StreamState;
use super::stream::{Request, Response, SotwStream};
use super::task::{Protocol, Seen, IDENTIFIER};
use crate::cache::ProxySnapshot;
use crate::envoy::TypeUrl;
use crate::metrics::XdsProtocol;
use envoy_types::pb::envoy::config::core::v3::{ControlPlane, Node};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;

pub(super) struct Sotw;

fn machine(state: &mut StreamState) -> &mut SotwStream {
    match state {
        StreamState::Sotw(s) => s,
        StreamState::Delta(_) => unreachable!("a SotW stream holds a SotW state"),
    }
}

impl Protocol for Sotw {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const NAME: &'static str = "SotW";
    const PROTOCOL: XdsProtocol = XdsProtocol::Sotw;

    fn node(request: &DiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }

    fn new_state() -> StreamState {
        StreamState::Sotw(SotwStream::new())
    }

    fn on_request(state: &mut StreamState, request: DiscoveryRequest) -> Seen {
        let request = Request {
            type_url: request.type_url,
            version_info: request.version_info,
            resource_names: request.resource_names,
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

    fn measure(response: &DiscoveryResponse) -> Option<(TypeUrl, usize)> {
        let bytes = response.resources.iter().map(|a| a.value.len()).sum();
        Some((TypeUrl::parse(&response.type_url)?, bytes))
    }

    fn poll(state: &mut StreamState, snapshot: &ProxySnapshot) -> Vec<DiscoveryResponse> {
        machine(state)
            .poll(snapshot)
            .into_iter()
            .map(discovery_response)
            .collect()
    }

    fn resend_all(state: &mut StreamState) {
        machine(state).resend_all();
    }
}

fn discovery_response(response: Response) -> DiscoveryResponse {
    let type_url = response.type_url.as_str();
    DiscoveryResponse {
        version_info: response.version,
        resources: response
            .resources
            .values()
            .map(|r| Any {
                type_url: type_url.to_string(),
                value: r.body.to_vec(),
            })
            .collect(),
        type_url: type_url.to_string(),
        nonce: response.nonce,
        control_plane: Some(ControlPlane {
            identifier: IDENTIFIER.to_string(),
        }),
        ..Default::default()
    }
}
