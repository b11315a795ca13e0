//! Input types: the objects a user writes.
//!
//! Kubernetes kinds come from `k8s-openapi`; our own kinds are
//! `kube::CustomResource` derives whose specs are a field-compatible subset of
//! Istio's (`networking.istio.io`), so Istio YAML loads after changing only
//! `apiVersion` (the file source also accepts Istio's apiVersions).

mod authorization_policy;
mod destination_rule;
mod peer_authentication;
mod schema;
mod service_entry;
mod sidecar;
mod slo;
mod status;
mod string_match;
mod telemetry;
mod virtual_service;
mod workload_entry;

pub use authorization_policy::*;
pub use destination_rule::*;
pub use peer_authentication::*;
pub use service_entry::*;
pub use sidecar::*;
pub use slo::*;
pub use status::ConfigStatus;
pub use string_match::StringMatch;
pub use telemetry::*;
pub use virtual_service::*;
pub use workload_entry::*;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use std::fmt;

/// API group of our networking kinds (VirtualService, DestinationRule,
/// ServiceEntry, WorkloadEntry, Sidecar).
pub const NETWORKING_GROUP: &str = "networking.sextant.dev";
/// Istio's API group for the same networking kinds, accepted by the file source.
pub const ISTIO_NETWORKING_GROUP: &str = "networking.istio.io";
/// API group of our security kinds (PeerAuthentication, AuthorizationPolicy).
pub const SECURITY_GROUP: &str = "security.sextant.dev";
/// Istio's API group for the same security kinds, accepted by the file source.
pub const ISTIO_SECURITY_GROUP: &str = "security.istio.io";
/// Istio API versions accepted for Istio's security group.
pub const ISTIO_SECURITY_VERSIONS: &[&str] = &["v1", "v1beta1"];
/// API group of our Telemetry and ServiceLevelObjective kinds.
pub const TELEMETRY_GROUP: &str = "telemetry.sextant.dev";
/// Istio's API group for Telemetry, accepted by the file source.
pub const ISTIO_TELEMETRY_GROUP: &str = "telemetry.istio.io";
/// Istio API versions accepted for Istio's telemetry group.
pub const ISTIO_TELEMETRY_VERSIONS: &[&str] = &["v1", "v1alpha1"];
/// Istio API versions accepted for Istio's groups.
pub const ISTIO_VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha3"];

/// The kinds Sextant understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Kind {
    /// `v1/Service`.
    Service,
    /// `discovery.k8s.io/v1/EndpointSlice`.
    EndpointSlice,
    /// `v1/Pod`.
    Pod,
    /// `networking.sextant.dev/v1alpha1/WorkloadEntry`.
    WorkloadEntry,
    /// `networking.sextant.dev/v1alpha1/VirtualService`.
    VirtualService,
    /// `networking.sextant.dev/v1alpha1/DestinationRule`.
    DestinationRule,
    /// `networking.sextant.dev/v1alpha1/Sidecar`.
    Sidecar,
    /// `networking.sextant.dev/v1alpha1/ServiceEntry`.
    ServiceEntry,
    /// `security.sextant.dev/v1alpha1/PeerAuthentication`.
    PeerAuthentication,
    /// `security.sextant.dev/v1alpha1/AuthorizationPolicy`.
    AuthorizationPolicy,
    /// `telemetry.sextant.dev/v1alpha1/Telemetry`.
    Telemetry,
    /// `telemetry.sextant.dev/v1alpha1/ServiceLevelObjective`.
    ServiceLevelObjective,
}

impl Kind {
    /// The kind's name as written in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Pod => "Pod",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::Sidecar => "Sidecar",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::Telemetry => "Telemetry",
            Kind::ServiceLevelObjective => "ServiceLevelObjective",
        }
    }

    /// Every kind Sextant reads.
    pub const ALL: [Kind; 12] = [
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Pod,
        Kind::WorkloadEntry,
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::Sidecar,
        Kind::ServiceEntry,
        Kind::PeerAuthentication,
        Kind::AuthorizationPolicy,
        Kind::Telemetry,
        Kind::ServiceLevelObjective,
    ];

    /// The kind's own `apiVersion` (our group for our kinds; Istio's
    /// `networking.istio.io` versions are accepted too).
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Service | Kind::Pod => "v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            Kind::PeerAuthentication | Kind::AuthorizationPolicy => "security.sextant.dev/v1alpha1",
            Kind::Telemetry | Kind::ServiceLevelObjective => "telemetry.sextant.dev/v1alpha1",
            _ => "networking.sextant.dev/v1alpha1",
        }
    }

    /// Resolves `apiVersion` + `kind` to a known kind; `None` for kinds we skip.
    pub fn from_type_meta(api_version: &str, kind: &str) -> Option<Kind> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let networking = |k| {
            let ours = group == NETWORKING_GROUP && version == "v1alpha1";
            let istio = group == ISTIO_NETWORKING_GROUP && ISTIO_VERSIONS.contains(&version);
            (ours || istio).then_some(k)
        };
        let security = |k| {
            let ours = group == SECURITY_GROUP && version == "v1alpha1";
            let istio = group == ISTIO_SECURITY_GROUP && ISTIO_SECURITY_VERSIONS.contains(&version);
            (ours || istio).then_some(k)
        };
        let telemetry = |k| {
            let ours = group == TELEMETRY_GROUP && version == "v1alpha1";
            let istio =
                group == ISTIO_TELEMETRY_GROUP && ISTIO_TELEMETRY_VERSIONS.contains(&version);
            (ours || istio).then_some(k)
        };
        match (group, version, kind) {
            ("", "v1", "Service") => Some(Kind::Service),
            ("", "v1", "Pod") => Some(Kind::Pod),
            ("discovery.k8s.io", "v1", "EndpointSlice") => Some(Kind::EndpointSlice),
            (_, _, "VirtualService") => networking(Kind::VirtualService),
            (_, _, "DestinationRule") => networking(Kind::DestinationRule),
            (_, _, "WorkloadEntry") => networking(Kind::WorkloadEntry),
            (_, _, "Sidecar") => networking(Kind::Sidecar),
            (_, _, "ServiceEntry") => networking(Kind::ServiceEntry),
            (_, _, "PeerAuthentication") => security(Kind::PeerAuthentication),
            (_, _, "AuthorizationPolicy") => security(Kind::AuthorizationPolicy),
            (_, _, "Telemetry") => telemetry(Kind::Telemetry),
            // Sextant's own kind: Istio's telemetry group has none.
            (_, _, "ServiceLevelObjective") => (group == TELEMETRY_GROUP && version == "v1alpha1")
                .then_some(Kind::ServiceLevelObjective),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of one object: kind, namespace and name. Orders by kind, then
/// namespace, then name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectKey {
    /// The object's kind.
    pub kind: Kind,
    /// `metadata.namespace` (`default` when omitted, as `kubectl apply` does).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl fmt::Display for ObjectKey {
    /// Renders as `Kind namespace/name`, the form used in every error message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One parsed, well-typed input object.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
    Pod(Box<Pod>),
    WorkloadEntry(Box<WorkloadEntry>),
    VirtualService(Box<VirtualService>),
    DestinationRule(Box<DestinationRule>),
    Sidecar(Box<Sidecar>),
    ServiceEntry(Box<ServiceEntry>),
    PeerAuthentication(Box<PeerAuthentication>),
    AuthorizationPolicy(Box<AuthorizationPolicy>),
    Telemetry(Box<Telemetry>),
    ServiceLevelObjective(Box<ServiceLevelObjective>),
}

impl Object {
    /// The object's `metadata`.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::WorkloadEntry(o) => &o.metadata,
            Object::VirtualService(o) => &o.metadata,
            Object::DestinationRule(o) => &o.metadata,
            Object::Sidecar(o) => &o.metadata,
            Object::ServiceEntry(o) => &o.metadata,
            Object::PeerAuthentication(o) => &o.metadata,
            Object::AuthorizationPolicy(o) => &o.metadata,
            Object::Telemetry(o) => &o.metadata,
            Object::ServiceLevelObjective(o) => &o.metadata,
        }
    }

    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Pod(_) => Kind::Pod,
            Object::WorkloadEntry(_) => Kind::WorkloadEntry,
            Object::VirtualService(_) => Kind::VirtualService,
            Object::DestinationRule(_) => Kind::DestinationRule,
            Object::Sidecar(_) => Kind::Sidecar,
            Object::ServiceEntry(_) => Kind::ServiceEntry,
            Object::PeerAuthentication(_) => Kind::PeerAuthentication,
            Object::AuthorizationPolicy(_) => Kind::AuthorizationPolicy,
            Object::Telemetry(_) => Kind::Telemetry,
            Object::ServiceLevelObjective(_) => Kind::ServiceLevelObjective,
        }
    }

    /// The object's key; the namespace defaults to `default`.
    pub fn key(&self) -> ObjectKey {
        let meta = self.metadata();
        ObjectKey {
            kind: self.kind(),
            namespace: namespace_of(meta).to_string(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

/// `metadata.namespace`, or `default` when it is omitted.
pub fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}
