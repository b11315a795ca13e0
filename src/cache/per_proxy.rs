//! The parts of a snapshot that belong to one proxy rather than its class:
//! its SDS secrets (its own certificate) and its inbound listener with the
//! clusters behind it.

use super::{Resource, ResourceMap};
use crate::ca::{SpiffeId, WorkloadCerts};
use crate::envoy::tls;
use crate::ir::mesh::Workload;
use crate::ir::Ir;
use crate::proxy::ProxyInfo;
use std::sync::Arc;
use std::time::SystemTime;

/// The mesh identity `proxy` gets: the SPIFFE ID of the workload it claims
/// to be, when the IR knows that workload (see [`crate::proxy::ProxyClass::workload`]).
pub(super) fn identity<'a>(
    ir: &'a Ir,
    proxy: &ProxyInfo,
    certs: &WorkloadCerts,
) -> Option<(&'a Workload, SpiffeId)> {
    let workload = crate::proxy::ProxyClass::workload(ir, proxy)?;
    let id = SpiffeId::new(
        certs.trust_domain().clone(),
        &workload.namespace,
        &workload.service_account,
    )
    .ok()?;
    Some((workload, id))
}

/// The SDS secrets of `id`: [`tls::CERTIFICATE_SECRET`] and
/// [`tls::ROOT_SECRET`]. Empty when the CA cannot issue (logged).
pub(super) fn secrets(certs: &WorkloadCerts, id: &SpiffeId, now: SystemTime) -> ResourceMap {
    match certs.current(id, now) {
        Ok(cert) => [
            tls::certificate_secret(&cert.cert_chain_pem, &cert.private_key_pem),
            tls::root_secret(&cert.root_pem),
        ]
        .iter()
        .map(|s| Resource::encode(s.name.as_str(), s))
        .map(|r| (r.name.clone(), r))
        .collect(),
        Err(err) => {
            tracing::error!(spiffe_id = %id, "cannot issue a certificate: {err}");
            ResourceMap::new()
        }
    }
}

/// `shared` plus `extra` (per-proxy clusters): `shared` itself when there
/// is none, else a copy that shares every node but the new paths.
pub(super) fn with_extra(shared: &Arc<ResourceMap>, extra: ResourceMap) -> Arc<ResourceMap> {
    if extra.is_empty() {
        return shared.clone();
    }
    let mut all = (**shared).clone();
    all.extend(extra);
    Arc::new(all)
}
