//! CustomResourceDefinitions of our kinds, generated from the model types
//! (`sextant crds` prints them; `crds/` holds them checked in).
//!
//! The schemas come from the `kube::CustomResource` + `schemars` derives in
//! [`crate::model`] (with `#[schemars(...)]` ranges, enums and Istio's
//! "at most one of" `oneOf`s), made structural by kube's own rewriter. This
//! module only tidies what the derives leave behind:
//! - it drops the `default`s schemars copies from `#[serde(default)]`, so
//!   the API server stores an object as its author wrote it (as Istio's CRDs
//!   do; our parser applies the same defaults when it reads the object);
//! - it maps the formats `uint32` and `uint64`, which Kubernetes does not
//!   know, to `int64` (keeping `minimum: 0`, and for `uint32` adding
//!   `maximum: 4294967295` unless a smaller one is set), so the API server
//!   checks the same bounds our parser does.

use crate::model::{
    AuthorizationPolicy, DestinationRule, PeerAuthentication, ServiceEntry, ServiceLevelObjective,
    Sidecar, Telemetry, VirtualService, WorkloadEntry,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{json, Value};

/// The command that rewrites `crds/` from the code (named in test failures).
pub const REGENERATE: &str = "cargo run -q -- crds --output-dir crds";

/// Every CRD Sextant defines, in [`crate::model::Kind::ALL`] order:
/// WorkloadEntry, VirtualService, DestinationRule, Sidecar, ServiceEntry
/// (`networking.sextant.dev`), PeerAuthentication, AuthorizationPolicy
/// (`security.sextant.dev`), Telemetry, ServiceLevelObjective
/// (`telemetry.sextant.dev`), all
/// `v1alpha1`, namespaced, with the status subresource.
pub fn definitions() -> Vec<CustomResourceDefinition> {
    [
        WorkloadEntry::crd(),
        VirtualService::crd(),
        DestinationRule::crd(),
        Sidecar::crd(),
        ServiceEntry::crd(),
        PeerAuthentication::crd(),
        AuthorizationPolicy::crd(),
        Telemetry::crd(),
        ServiceLevelObjective::crd(),
    ]
    .into_iter()
    .map(refine)
    .collect()
}

/// The file a CRD is checked in as under `crds/`: `<plural>.<group>.yaml`
/// (the CRD's own name).
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or_default())
}

/// One CRD as a YAML document (without a leading `---`).
///
/// # Errors
/// Only if serialization fails, which the CRD types do not do.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(crd)
}

/// Every CRD as one multi-document YAML stream (`---` before each).
///
/// # Errors
/// As [`to_yaml`].
pub fn bundle_yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for crd in definitions() {
        out.push_str("---\n");
        out.push_str(&to_yaml(&crd)?);
    }
    Ok(out)
}

/// The header of every file [`files`] writes.
const HEADER: &str =
    "# Generated from src/model by `sextant crds --output-dir crds`; do not edit.\n";

/// The contents of `crds/`: per CRD `(file_name, YAML)`, then a
/// `kustomization.yaml` listing them (so `manifests/` and users can refer
/// to the directory with kustomize). Sorted by file name except the
/// kustomization, which comes last.
///
/// # Errors
/// As [`to_yaml`].
pub fn files() -> Result<Vec<(String, String)>, serde_yaml_ng::Error> {
    let mut files = definitions()
        .iter()
        .map(|crd| Ok((file_name(crd), format!("{HEADER}{}", to_yaml(crd)?))))
        .collect::<Result<Vec<_>, serde_yaml_ng::Error>>()?;
    files.sort();
    let mut kustomization = format!(
        "{HEADER}apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
    );
    for (name, _) in &files {
        kustomization.push_str(&format!("- {name}\n"));
    }
    files.push(("kustomization.yaml".to_string(), kustomization));
    Ok(files)
}

/// The JSON Schema (draft 2020-12) that checks an object of `crd`'s served
/// version as the API server's schema validation and strict field
/// validation (`kubectl apply`'s default) would, for offline checks and
/// tests:
/// - `nullable: true` also allows `null`;
/// - every object schema with `properties` (and no `additionalProperties`
///   nor `x-kubernetes-preserve-unknown-fields`) rejects other properties,
///   as the API server rejects unknown fields under strict validation
///   (instead of pruning them);
/// - the root also allows `apiVersion`, `kind` (strings) and `metadata` (an
///   object), which Kubernetes defines for every object.
///
/// Not covered: the API server's own checks of `metadata` and CEL rules (our
/// CRDs have none). Formats are left as they are (JSON Schema validators do
/// not check `int64` and the like).
///
/// `None` when the CRD has no served version with a schema.
pub fn validation_schema(crd: &CustomResourceDefinition) -> Option<Value> {
    let version = crd.spec.versions.iter().find(|v| v.served)?;
    let schema = version.schema.as_ref()?.open_api_v3_schema.as_ref()?;
    let mut value = serde_json::to_value(schema).ok()?;
    strict_json_schema(&mut value);
    let properties = value.get_mut("properties")?.as_object_mut()?;
    properties.insert("apiVersion".into(), json!({ "type": "string" }));
    properties.insert("kind".into(), json!({ "type": "string" }));
    properties.insert("metadata".into(), json!({ "type": "object" }));
    value["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    Some(value)
}

/// Recursively applies [`validation_schema`]'s rules to one subschema.
fn strict_json_schema(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(strict_json_schema);
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub) = map.get_mut(key) {
            strict_json_schema(sub);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(subs)) = map.get_mut(key) {
            subs.iter_mut().for_each(strict_json_schema);
        }
    }
    if map.contains_key("properties")
        && !map.contains_key("additionalProperties")
        && map.get("x-kubernetes-preserve-unknown-fields") != Some(&json!(true))
    {
        map.insert("additionalProperties".into(), json!(false));
    }
    if map.remove("nullable") == Some(json!(true)) {
        if let Some(Value::String(t)) = map.get("type").cloned() {
            map.insert("type".into(), json!([t, "null"]));
        }
        if let Some(Value::Array(values)) = map.get_mut("enum") {
            values.push(Value::Null);
        }
        // `required` clauses hold for `null`, so a `oneOf` of them would
        // refuse it: apply the `oneOf` to objects only.
        if let Some(one_of) = map.remove("oneOf") {
            map.insert("if".into(), json!({ "type": "object" }));
            map.insert("then".into(), json!({ "oneOf": one_of }));
        }
    }
}

/// Applies this module's changes to every schema of `crd`.
fn refine(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        let Some(validation) = version.schema.as_mut() else {
            continue;
        };
        let Some(schema) = validation.open_api_v3_schema.take() else {
            continue;
        };
        let mut value = serde_json::to_value(schema).expect("a CRD schema serializes");
        refine_schema(&mut value);
        validation.open_api_v3_schema =
            Some(serde_json::from_value(value).expect("a refined CRD schema deserializes"));
    }
    crd
}

/// Recursively, through every subschema: drops `default` and maps the
/// unsigned formats (see the module doc). Property *names* are never
/// touched (a property may be called `default`).
fn refine_schema(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    map.remove("default");
    match map.get("format").and_then(Value::as_str) {
        Some("uint32") => {
            map.insert("format".into(), json!("int64"));
            map.entry("maximum").or_insert(json!(u32::MAX));
        }
        Some("uint64") => {
            map.insert("format".into(), json!("int64"));
        }
        _ => {}
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(refine_schema);
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub) = map.get_mut(key) {
            refine_schema(sub);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(subs)) = map.get_mut(key) {
            subs.iter_mut().for_each(refine_schema);
        }
    }
}

#[cfg(test)]
mod tests;
