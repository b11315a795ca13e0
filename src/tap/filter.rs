//! Which tapped requests a subscriber sees: a CEL expression
//! (<https://github.com/google/cel-spec>, evaluated by the `cel` crate) over
//! the request attributes Envoy's own CEL names them by
//! (<https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/advanced/attributes>),
//! the names Istio's `Telemetry` access log filters use:
//!
//! | attribute | type | value |
//! |---|---|---|
//! | `request.method` | string | HTTP method |
//! | `request.path` | string | path with query |
//! | `request.url_path` | string | path without query |
//! | `request.host` | string | `:authority` |
//! | `request.id` | string | `x-request-id` |
//! | `request.duration` | duration | first request byte to last response byte (absent without a response) |
//! | `response.code` | int | HTTP status (absent when no response was sent) |
//! | `source.principal` | string | the caller's SPIFFE ID, else its node id |
//! | `xds.cluster_name` | string | the upstream cluster (`outbound\|<port>\|<subset>\|<fqdn>`) |
//! | `xds.node_id` | string | the reporting sidecar's node id (Envoy has the whole node as `xds.node`) |
//!
//! e.g. `response.code >= 500 && request.path.startsWith("/api")`, or
//! `request.duration > duration("100ms")`. An expression that reads an
//! attribute a request lacks (`response.code` of a request reset before
//! its response) does not match it, as Envoy's CEL access log filter does.
//!
//! Comprehensions (the macros `all`, `exists`, `exists_one`, `map`,
//! `filter`) are refused: nested over list literals they take time
//! exponential in the expression's length, and a filter runs on the admin
//! endpoint's workers for every request. Without them, evaluating an
//! expression of at most [`MAX_FILTER_LEN`] bytes visits each of its nodes
//! once.

use super::TapEntry;
use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::objects::{Key, Map};
use cel::{Context, Program, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Longest expression accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;

/// A compiled tap filter.
pub struct TapFilter {
    expression: String,
    program: Program,
}

impl std::fmt::Debug for TapFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapFilter")
            .field("expression", &self.expression)
            .finish()
    }
}

impl TapFilter {
    /// Compiles `expression`. Errors (as text for the user): a syntax
    /// error, an attribute outside the table above, an expression that is
    /// not a boolean for a complete request, or one longer than
    /// [`MAX_FILTER_LEN`].
    pub fn parse(expression: &str) -> Result<TapFilter, String> {
        if expression.len() > MAX_FILTER_LEN {
            return Err(format!(
                "the filter is {} bytes long; at most {MAX_FILTER_LEN}",
                expression.len()
            ));
        }
        if expression.trim().is_empty() {
            return Err("the filter is empty".to_string());
        }
        let program = Program::compile(expression)
            .map_err(|e| format!("not a CEL expression: {}", e.to_string().trim()))?;
        if has_comprehension(program.expression()) {
            return Err(
                "comprehensions (all, exists, exists_one, map, filter) are not \
                 allowed in a tap filter: their cost grows without bound"
                    .to_string(),
            );
        }
        let filter = TapFilter {
            expression: expression.to_string(),
            program,
        };
        // A request with every attribute: an unknown attribute or field, or
        // a result that is not a boolean, shows here rather than as a
        // filter that silently never matches.
        let complete = TapEntry {
            service: "reviews.default".into(),
            cluster: "outbound|9080||reviews.default.svc.cluster.local".into(),
            start_time: None,
            method: "GET".into(),
            path: "/x?y=1".into(),
            authority: "reviews:9080".into(),
            status: Some(200),
            duration_ms: Some(1.0),
            source: "spiffe://cluster.local/ns/default/sa/default".into(),
            node: "client.default".into(),
            trace_id: None,
            request_id: "id".into(),
        };
        match filter.evaluate(&complete) {
            Ok(Value::Bool(_)) => Ok(filter),
            Ok(other) => Err(format!(
                "the filter must be a boolean expression; it gives {:?} for a request",
                other.type_of()
            )),
            Err(reason) => Err(reason),
        }
    }

    /// The expression, as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether `entry` passes: the expression is `true` for it (an error,
    /// such as reading an attribute the entry lacks, is no match).
    pub fn matches(&self, entry: &TapEntry) -> bool {
        matches!(self.evaluate(entry), Ok(Value::Bool(true)))
    }

    fn evaluate(&self, entry: &TapEntry) -> Result<Value, String> {
        let mut context = Context::default();
        for (name, value) in attributes(entry) {
            context.add_variable_from_value(name, value);
        }
        self.program.execute(&context).map_err(|e| {
            format!(
                "cannot evaluate the filter: {e}; the attributes are {}",
                ATTRIBUTES.join(", ")
            )
        })
    }
}

/// The attributes, as the error of an unknown one lists them.
const ATTRIBUTES: [&str; 10] = [
    "request.method",
    "request.path",
    "request.url_path",
    "request.host",
    "request.id",
    "request.duration",
    "response.code",
    "source.principal",
    "xds.cluster_name",
    "xds.node_id",
];

/// Whether a comprehension (what the iterating macros expand to) is
/// anywhere in `e`.
fn has_comprehension(e: &IdedExpr) -> bool {
    match &e.expr {
        Expr::Comprehension(_) => true,
        Expr::Call(call) => {
            call.target.as_deref().is_some_and(has_comprehension)
                || call.args.iter().any(has_comprehension)
        }
        Expr::List(list) => list.elements.iter().any(has_comprehension),
        Expr::Map(map) => map.entries.iter().any(|entry| match &entry.expr {
            EntryExpr::MapEntry(m) => has_comprehension(&m.key) || has_comprehension(&m.value),
            EntryExpr::StructField(f) => has_comprehension(&f.value),
        }),
        Expr::Struct(st) => st.entries.iter().any(|entry| match &entry.expr {
            EntryExpr::MapEntry(m) => has_comprehension(&m.key) || has_comprehension(&m.value),
            EntryExpr::StructField(f) => has_comprehension(&f.value),
        }),
        Expr::Select(select) => has_comprehension(&select.operand),
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => false,
    }
}

fn map(fields: Vec<(&str, Value)>) -> Value {
    let map: HashMap<Key, Value> = fields
        .into_iter()
        .map(|(k, v)| (Key::String(Arc::new(k.to_string())), v))
        .collect();
    Value::Map(Map { map: Arc::new(map) })
}

fn string(s: &str) -> Value {
    Value::String(Arc::new(s.to_string()))
}

/// The attributes of `entry` by top-level name (table in the module doc).
fn attributes(entry: &TapEntry) -> [(&'static str, Value); 4] {
    let url_path = entry.path.split('?').next().unwrap_or_default();
    let mut request = vec![
        ("method", string(&entry.method)),
        ("path", string(&entry.path)),
        ("url_path", string(url_path)),
        ("host", string(&entry.authority)),
        ("id", string(&entry.request_id)),
    ];
    if let Some(ms) = entry.duration_ms {
        let nanos = (ms * 1e6).round() as i64;
        request.push((
            "duration",
            Value::Duration(chrono::Duration::nanoseconds(nanos)),
        ));
    }
    let mut response = Vec::new();
    if let Some(code) = entry.status {
        response.push(("code", Value::Int(i64::from(code))));
    }
    [
        ("request", map(request)),
        ("response", map(response)),
        ("source", map(vec![("principal", string(&entry.source))])),
        (
            "xds",
            map(vec![
                ("cluster_name", string(&entry.cluster)),
                ("node_id", string(&entry.node)),
            ]),
        ),
    ]
}
