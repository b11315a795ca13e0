//! The resource types the Kubernetes source watches.

use kube::api::{ApiResource, GroupVersionKind};

/// One watched resource type.
#[derive(Clone, Debug)]
pub struct WatchedType {
    /// Group, version, kind and plural, as the API server serves them.
    pub api_resource: ApiResource,
    /// Whether Sextant writes `status.conditions` on objects of this type
    /// (our own CRDs only; never Istio's or built-in kinds).
    pub writes_status: bool,
    /// Whether this is a custom resource (ours or Istio's): its `status` is
    /// written by controllers, never read by Sextant, and dropped before
    /// parsing (an unknown field of a security policy would be an error).
    pub custom: bool,
}

/// Our networking kinds (`networking.sextant.dev/v1alpha1`) with their plurals.
const NETWORKING_KINDS: &[(&str, &str)] = &[
    ("VirtualService", "virtualservices"),
    ("DestinationRule", "destinationrules"),
    ("ServiceEntry", "serviceentries"),
    ("WorkloadEntry", "workloadentries"),
    ("Sidecar", "sidecars"),
];

/// Our security kinds (`security.sextant.dev/v1alpha1`) with their plurals.
const SECURITY_KINDS: &[(&str, &str)] = &[
    ("PeerAuthentication", "peerauthentications"),
    ("AuthorizationPolicy", "authorizationpolicies"),
];

/// Our telemetry kinds (`telemetry.sextant.dev/v1alpha1`) with their plurals.
const TELEMETRY_KINDS: &[(&str, &str)] = &[("Telemetry", "telemetries")];

/// Sextant's own telemetry kinds, which Istio's group does not have.
const OWN_TELEMETRY_KINDS: &[(&str, &str)] = &[("ServiceLevelObjective", "servicelevelobjectives")];

fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Every type `sextant serve --kube` watches: Services, EndpointSlices and
/// Pods, our CRDs, and with `istio_groups` the same kinds in Istio's groups
/// (`networking.istio.io/v1`, `security.istio.io/v1`,
/// `telemetry.istio.io/v1`), read but never written to.
pub fn watched_types(istio_groups: bool) -> Vec<WatchedType> {
    let builtin = |group, version, kind, plural| WatchedType {
        api_resource: api_resource(group, version, kind, plural),
        writes_status: false,
        custom: false,
    };
    let mut types = vec![
        builtin("", "v1", "Service", "services"),
        builtin("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
        builtin("", "v1", "Pod", "pods"),
    ];
    let groups = [
        (
            crate::model::NETWORKING_GROUP,
            "v1alpha1",
            NETWORKING_KINDS,
            true,
        ),
        (
            crate::model::SECURITY_GROUP,
            "v1alpha1",
            SECURITY_KINDS,
            true,
        ),
        (
            crate::model::TELEMETRY_GROUP,
            "v1alpha1",
            TELEMETRY_KINDS,
            true,
        ),
        (
            crate::model::TELEMETRY_GROUP,
            "v1alpha1",
            OWN_TELEMETRY_KINDS,
            true,
        ),
        (
            crate::model::ISTIO_NETWORKING_GROUP,
            "v1",
            NETWORKING_KINDS,
            false,
        ),
        (
            crate::model::ISTIO_SECURITY_GROUP,
            "v1",
            SECURITY_KINDS,
            false,
        ),
        (
            crate::model::ISTIO_TELEMETRY_GROUP,
            "v1",
            TELEMETRY_KINDS,
            false,
        ),
    ];
    for (group, version, kinds, ours) in groups {
        if !ours && !istio_groups {
            continue;
        }
        for (kind, plural) in kinds {
            types.push(WatchedType {
                api_resource: api_resource(group, version, kind, plural),
                writes_status: ours,
                custom: true,
            });
        }
    }
    types
}
