//! Multi-document YAML → typed, validated [`Object`]s with diagnostics.

use crate::diagnostic::Diagnostic;
use crate::model::{
    DestinationRule, Kind, Object, ObjectKey, Sidecar, VirtualService, WorkloadEntry,
};
use crate::store::validate;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// What one file contained.
#[derive(Clone, Debug, Default)]
pub struct ParsedFile {
    /// Objects that parsed and validated, in file order.
    pub objects: Vec<Object>,
    /// Objects that were identified (kind, namespace, name) but are invalid:
    /// the store keeps serving their last good version.
    pub rejected: Vec<ObjectKey>,
    /// True when part of the file could not be read at all (YAML syntax error,
    /// a document without `kind` or `metadata.name`): the store then keeps the
    /// file's last good content whole.
    pub unreadable: bool,
    /// Errors and warnings, each naming the file.
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses `text` (the contents of `file`, used only in messages) as a stream
/// of YAML documents.
///
/// Unknown kinds are skipped with an info log line; unknown fields of known
/// kinds become warnings that name the field; type errors and failed
/// validation become errors and the object lands in [`ParsedFile::rejected`].
pub fn parse_documents(file: &str, text: &str) -> ParsedFile {
    let mut out = ParsedFile::default();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = match Value::deserialize(document) {
            Ok(value) => value,
            Err(err) => {
                out.unreadable = true;
                out.diagnostics.push(file_error(
                    file,
                    format!("YAML document {}: {err}", index + 1),
                ));
                // A syntax error ends the stream of documents.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        parse_document(file, index, value, &mut out);
    }
    out
}

fn parse_document(file: &str, index: usize, mut value: Value, out: &mut ParsedFile) {
    let Some(map) = value.as_object_mut() else {
        out.unreadable = true;
        out.diagnostics.push(file_error(
            file,
            format!("YAML document {} is not a mapping", index + 1),
        ));
        return;
    };
    let text = |map: &serde_json::Map<String, Value>, key: &str| {
        map.get(key).and_then(Value::as_str).map(str::to_string)
    };
    let (Some(api_version), Some(kind_name)) = (text(map, "apiVersion"), text(map, "kind")) else {
        out.unreadable = true;
        out.diagnostics.push(file_error(
            file,
            format!("YAML document {}: missing apiVersion or kind", index + 1),
        ));
        return;
    };
    let Some(kind) = Kind::from_type_meta(&api_version, &kind_name) else {
        tracing::info!(
            file,
            api_version,
            kind = kind_name,
            "skipping a kind Sextant does not read"
        );
        return;
    };
    let meta = map.get("metadata").and_then(Value::as_object);
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        out.unreadable = true;
        out.diagnostics.push(file_error(
            file,
            format!(
                "YAML document {}: {kind_name} without metadata.name",
                index + 1
            ),
        ));
        return;
    };
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let key = ObjectKey {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    };

    // Our CRD types do not carry apiVersion/kind as fields (the file may use
    // Istio's apiVersion); k8s-openapi types check them themselves.
    if matches!(
        kind,
        Kind::VirtualService | Kind::DestinationRule | Kind::WorkloadEntry | Kind::Sidecar
    ) {
        map.remove("apiVersion");
        map.remove("kind");
    }
    let mut diagnostics = Vec::new();
    let object = match kind {
        Kind::Service => typed(value, &key, &mut diagnostics).map(|o| Object::Service(Box::new(o))),
        Kind::EndpointSlice => {
            typed(value, &key, &mut diagnostics).map(|o| Object::EndpointSlice(Box::new(o)))
        }
        Kind::Pod => typed(value, &key, &mut diagnostics).map(|o| Object::Pod(Box::new(o))),
        Kind::WorkloadEntry => typed::<WorkloadEntry>(value, &key, &mut diagnostics)
            .map(|o| Object::WorkloadEntry(Box::new(o))),
        Kind::VirtualService => typed::<VirtualService>(value, &key, &mut diagnostics)
            .map(|o| Object::VirtualService(Box::new(o))),
        Kind::DestinationRule => typed::<DestinationRule>(value, &key, &mut diagnostics)
            .map(|o| Object::DestinationRule(Box::new(o))),
        Kind::Sidecar => {
            typed::<Sidecar>(value, &key, &mut diagnostics).map(|o| Object::Sidecar(Box::new(o)))
        }
    };
    if let Some(object) = &object {
        diagnostics.extend(validate::object(object));
    }
    let valid = object.is_some() && !diagnostics.iter().any(Diagnostic::is_error);
    out.diagnostics
        .extend(diagnostics.into_iter().map(|d| d.in_file(file)));
    match object {
        Some(object) if valid => out.objects.push(object),
        _ => out.rejected.push(key),
    }
}

/// Deserializes `value` as `T`, recording unknown fields as warnings and a
/// type error as an error (both with the field path). `None` on error.
fn typed<T: DeserializeOwned>(
    value: Value,
    key: &ObjectKey,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<T> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path));
    let deserializer = serde_ignored::Deserializer::new(value, &mut record);
    let result = serde_path_to_error::deserialize::<_, T>(deserializer);
    for field in unknown {
        diagnostics.push(Diagnostic::warning(
            key,
            field,
            "unknown or unsupported field, ignored (see the README for the supported fields)",
        ));
    }
    match result {
        Ok(object) => Some(object),
        Err(err) => {
            let path = err.path().to_string();
            let field = if path == "." { String::new() } else { path };
            diagnostics.push(Diagnostic::error(key, field, err.into_inner().to_string()));
            None
        }
    }
}

/// Renders a serde_ignored path as `spec.http[0].foo`.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let parent = field_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

fn file_error(file: &str, message: String) -> Diagnostic {
    Diagnostic {
        severity: crate::diagnostic::Severity::Error,
        file: Some(file.to_string()),
        object: None,
        field: String::new(),
        message,
    }
}

#[cfg(test)]
mod tests;
