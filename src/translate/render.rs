//! A translation as one JSON document (proto field names, canonical
//! protobuf JSON): what golden tests pin and `sextant translate` prints.

use super::{sidecar_listeners, translate, TranslateOptions};
use crate::envoy::json::to_json;
use crate::ir::Ir;
use crate::proxy::{ProxyClass, DEFAULT_OUTBOUND};
use serde_json::{json, Value};

/// Translates `ir` for a proxy of `class` whose outbound listener is at the
/// default address, and renders every resource plus the diagnostics.
pub fn translation_json(ir: &Ir, class: &ProxyClass, options: &TranslateOptions) -> Value {
    let t = translate(ir, class, options);
    let render =
        |v: Result<Value, crate::envoy::json::JsonError>| v.expect("generated protos render");
    let mut diagnostics: Vec<String> = ir
        .diagnostics
        .iter()
        .chain(&t.diagnostics)
        .map(ToString::to_string)
        .collect();
    diagnostics.sort();
    json!({
        "listeners": sidecar_listeners(DEFAULT_OUTBOUND, &[], &t.tcp_proxies, &t.telemetry).iter().map(|l| render(to_json(l))).collect::<Vec<_>>(),
        "route_configurations": t.route_configurations.iter().map(|r| render(to_json(r))).collect::<Vec<_>>(),
        "clusters": t.clusters.iter().map(|c| render(to_json(c))).collect::<Vec<_>>(),
        "cluster_load_assignments": t.endpoints.iter().map(|e| render(to_json(e))).collect::<Vec<_>>(),
        "diagnostics": diagnostics,
    })
}
