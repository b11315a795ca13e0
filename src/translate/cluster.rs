//! IR clusters → Envoy clusters.

use super::TranslateOptions;
use crate::envoy::builders;
use crate::ir::{self, LbPolicy};
use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};

/// An outbound cluster for one service port (and subset): EDS, or STRICT_DNS
/// for an ExternalName service.
pub(super) fn outbound_cluster(c: &ir::Cluster, options: &TranslateOptions) -> Cluster {
    let lb = match c.lb_policy {
        LbPolicy::RoundRobin => cluster::LbPolicy::RoundRobin,
        LbPolicy::LeastRequest => cluster::LbPolicy::LeastRequest,
        LbPolicy::Random => cluster::LbPolicy::Random,
    };
    match &c.external_name {
        Some(host) => builders::dns_cluster(&c.name, host, c.port, lb, options.connect_timeout),
        None => builders::eds_cluster(&c.name, lb, options.connect_timeout),
    }
}
