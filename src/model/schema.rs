//! Helpers for the OpenAPI schemas of our CRDs (see [`crate::crds`]), used
//! from `#[schemars(transform = ...)]` attributes of the model types.

use schemars::Schema;
use serde_json::{json, Value};

/// Says, as Istio's CRDs do, that at most one of the properties `names` may
/// be set: `oneOf: [{not: {anyOf: [{required: [a]}, ...]}}, {required: [a]}, ...]`
/// (none of them, or exactly one). Only `required` clauses appear inside the
/// `oneOf`, so the schema stays structural and kube's structural rewriter
/// leaves it as it is.
pub(crate) fn at_most_one_of(schema: &mut Schema, names: &[&str]) {
    let each: Vec<Value> = names.iter().map(|n| json!({ "required": [n] })).collect();
    let mut branches = vec![json!({ "not": { "anyOf": each.clone() } })];
    branches.extend(each);
    schema.insert("oneOf".to_string(), Value::Array(branches));
}
