//! A sidecar's inbound side: one listener on its workload's IP and inbound
//! port in front of the app, terminating mutual TLS where PeerAuthentication
//! asks for it, and one static cluster per app port.
//!
//! Without traffic capture the listener cannot see which app port a client
//! meant, so clients say it in the TLS SNI (`outbound_.<port>_._.<fqdn>`,
//! Istio's form without the subset) and each app port has its own TLS
//! filter chain matching those names. Plaintext connections (PERMISSIVE or
//! DISABLE) carry no SNI: they go to the lowest app port that takes plaintext.

use super::TranslateOptions;
use crate::envoy::inbound_builders as ib;
use crate::envoy::tls;
use crate::ir::mesh::{peer_mode, PeerMode, Workload};
use crate::ir::telemetry::ProxyTelemetry;
use crate::ir::Ir;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

/// Name of the inbound listener.
pub const INBOUND_LISTENER: &str = "inbound";

/// The SNI a client sidecar sends to reach port `port` of service `fqdn`.
pub fn inbound_sni(port: u16, fqdn: &str) -> String {
    format!("outbound_.{port}_._.{fqdn}")
}

/// One app port of a workload, as services reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct AppPort {
    /// Routed as HTTP (else TCP).
    http: bool,
    /// SNI values of the service ports that target it.
    snis: Vec<String>,
}

/// The authorization filters of the workload, put before the router (HTTP)
/// or the TCP proxy (TCP).
#[derive(Clone, Debug, Default)]
pub struct AuthzFilters {
    /// HTTP RBAC filters, in order.
    pub http: Vec<HttpFilter>,
    /// Network RBAC filters, in order.
    pub network: Vec<Filter>,
}

/// The RBAC filters of the AuthorizationPolicies that select `workload`
/// (see [`crate::ir::authz::policies_for`]).
pub fn authz_filters(ir: &Ir, workload: &Workload, options: &TranslateOptions) -> AuthzFilters {
    let policies = crate::ir::authz::policies_for(
        &ir.authorization_policies,
        &workload.namespace,
        &workload.labels,
        &options.root_namespace,
    );
    AuthzFilters {
        http: super::http_rbac_filters(&policies),
        network: super::network_rbac_filters(&policies, "inbound_tcp"),
    }
}

/// The app ports behind every sidecar that services reach, by workload
/// address: built once per IR (one pass over the clusters' endpoints) and
/// shared by every proxy's [`inbound`], instead of each push scanning every
/// cluster for its own address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InboundIndex {
    by_address: HashMap<IpAddr, BTreeMap<u16, AppPort>>,
}

impl InboundIndex {
    /// Indexes the endpoints with a sidecar ([`crate::ir::Endpoint::mesh`])
    /// of the IR's clusters without subset: per address, the app (target)
    /// ports, whether each is HTTP (the protocol of the last cluster by name
    /// that targets it) and the SNIs of the service ports that target it
    /// (sorted, without duplicates).
    pub fn new(ir: &Ir) -> Self {
        let mut by_address: HashMap<IpAddr, BTreeMap<u16, AppPort>> = HashMap::new();
        for c in ir.clusters.values().filter(|c| c.subset.is_none()) {
            for e in &c.endpoints {
                let Some(mesh) = &e.mesh else { continue };
                let port = by_address
                    .entry(e.address)
                    .or_default()
                    .entry(mesh.target_port)
                    .or_default();
                port.http = c.protocol.is_http();
                port.snis.push(inbound_sni(c.port, &c.service));
            }
        }
        for port in by_address.values_mut().flat_map(BTreeMap::values_mut) {
            port.snis.sort();
            port.snis.dedup();
        }
        InboundIndex { by_address }
    }

    /// The app ports services reach at `address` through its sidecar, by
    /// port; `None` when there is none.
    fn ports(&self, address: IpAddr) -> Option<&BTreeMap<u16, AppPort>> {
        self.by_address.get(&address)
    }
}

/// The inbound listener and clusters of `workload`'s sidecar listening on
/// `addr`; `mtls_trust_domain`: the mesh's trust domain when the sidecar
/// has a certificate (`None`: it has none, no mTLS chain); `index`: the
/// [`InboundIndex`] of `ir`; its HTTP connection managers get the access
/// logs and tracer of `telemetry`. `None` when no service reaches the
/// workload through its sidecar, or when no connection could be accepted
/// (STRICT without a certificate).
#[allow(clippy::too_many_arguments)]
pub fn inbound(
    ir: &Ir,
    index: &InboundIndex,
    workload: &Workload,
    addr: SocketAddr,
    mtls_trust_domain: Option<&str>,
    authz: &AuthzFilters,
    telemetry: &ProxyTelemetry,
    options: &TranslateOptions,
) -> Option<(Listener, Vec<Cluster>)> {
    let ports = index.ports(workload.address).filter(|p| !p.is_empty())?;
    let several = ports.len() > 1;
    let client_prefix = mtls_trust_domain.map(|t| format!("spiffe://{t}/"));
    let mut chains = Vec::new();
    let mut plaintext = None;
    for (port, app) in ports {
        let mode = peer_mode(
            &ir.peer_authentications,
            &workload.namespace,
            &workload.labels,
            *port,
            &options.root_namespace,
        );
        let filters = || {
            ib::app_filters(
                *port,
                app.http,
                authz.http.clone(),
                authz.network.clone(),
                telemetry,
            )
        };
        if let (true, Some(client_prefix)) = (mode != PeerMode::Disable, &client_prefix) {
            let names = if several {
                app.snis.clone()
            } else {
                Vec::new()
            };
            chains.push(ib::filter_chain(
                &format!("inbound|{port}|mtls"),
                Some(tls::downstream_mtls(client_prefix)),
                names,
                filters(),
            ));
        }
        if mode != PeerMode::Strict && plaintext.is_none() {
            plaintext = Some(ib::filter_chain(
                &format!("inbound|{port}|plaintext"),
                None,
                Vec::new(),
                filters(),
            ));
        }
    }
    chains.extend(plaintext);
    if chains.is_empty() {
        return None;
    }
    let clusters = ports
        .keys()
        .map(|p| ib::inbound_cluster(workload.address, *p, options.connect_timeout))
        .collect();
    Some((
        ib::inbound_listener(INBOUND_LISTENER, addr, chains),
        clusters,
    ))
}
