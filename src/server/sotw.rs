//! State-of-the-world ADS: the [`Protocol`] glue between the protocol's
//! messages and the [`SotwStream`] state machine.

use super::registry::StreamState;
use super::sotw_request::SotwRequest;
use super::stream::{Request, Response, SotwStream};
use super::task::{Protocol, Seen, IDENTIFIER};
use super::wire::WireResponse;
use crate::cache::ProxySnapshot;
use crate::metrics::XdsProtocol;
use envoy_types::pb::envoy::config::core::v3::{ControlPlane, Node};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use std::sync::Arc;

pub(super) struct Sotw;

fn machine(state: &mut StreamState) -> &mut SotwStream {
    match state {
        StreamState::Sotw(s) => s,
        StreamState::Delta(_) => unreachable!("a SotW stream holds a SotW state"),
    }
}

impl Protocol for Sotw {
    type Request = SotwRequest;
    const NAME: &'static str = "SotW";
    const PROTOCOL: XdsProtocol = XdsProtocol::Sotw;

    fn node(request: &SotwRequest) -> Option<&Node> {
        request.head.node.as_ref()
    }

    fn new_state() -> StreamState {
        StreamState::Sotw(SotwStream::new())
    }

    fn on_request(state: &mut StreamState, request: SotwRequest) -> Seen {
        let SotwRequest {
            head,
            resource_names,
        } = request;
        let request = Request {
            type_url: head.type_url,
            version_info: head.version_info,
            resource_names,
            response_nonce: head.response_nonce,
            error_detail: head.error_detail.map(|e| e.message),
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
            .map(discovery_response)
            .collect()
    }

    fn resend_all(state: &mut StreamState) {
        machine(state).resend_all();
    }
}

/// A `DiscoveryResponse`; its resources are shared with the snapshot.
fn discovery_response(response: Response) -> WireResponse {
    let fields = DiscoveryResponse {
        version_info: response.version,
        type_url: response.type_url.as_str().to_string(),
        nonce: response.nonce,
        control_plane: Some(ControlPlane {
            identifier: IDENTIFIER.to_string(),
        }),
        ..Default::default()
    };
    WireResponse::sotw(
        response.type_url,
        fields,
        Arc::unwrap_or_clone(response.resources),
    )
}
