//! Multi-document YAML → typed, validated [`Object`]s with diagnostics.

use crate::diagnostic::Diagnostic;
use crate::model::{
    AuthorizationPolicy, DestinationRule, Kind, Object, ObjectKey, PeerAuthentication,
    ServiceEntry, ServiceLevelObjective, Sidecar, Telemetry, VirtualService, WorkloadEntry,
};
use crate::store::validate;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// What one file contained.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedFile {
    /// Objects that parsed and validated, in file order (shared, so a
    /// document the file source did not re-parse hands the store the very
    /// object it already holds).
    pub objects: Vec<Arc<Object>>,
    /// Objects that were identified (kind, namespace, name) but are invalid:
    /// the store keeps serving their last good version. (An invalid
    /// AuthorizationPolicy is never here: its fail-closed stand-in is in
    /// `objects`.)
    pub rejected: Vec<ObjectKey>,
    /// True when part of the file could not be read at all (YAML syntax error,
    /// a document without `kind` or `metadata.name`): the store then keeps the
    /// file's last good content whole.
    pub unreadable: bool,
    /// True when the file has no content at all (0 bytes or only white
    /// space), as while an editor or a script rewrites it: the store keeps
    /// its last good content. (To remove every object, delete the file.)
    pub empty: bool,
    /// Errors and warnings, each naming the file.
    pub diagnostics: Vec<Diagnostic>,
    /// Fail-closed stand-ins for objects in [`ParsedFile::rejected`], served
    /// only when the store has no last good version of them: an invalid
    /// PeerAuthentication is served as STRICT for the workloads it selects,
    /// never dropped (which would leave them PERMISSIVE, the mesh default).
    pub fallbacks: Vec<Object>,
}

/// Parses `text` (the contents of `file`, used only in messages) as a stream
/// of YAML documents.
///
/// Unknown kinds are skipped with an info log line; unknown fields of known
/// kinds become warnings that name the field; type errors and failed
/// validation become errors and the object lands in [`ParsedFile::rejected`],
/// except an AuthorizationPolicy: it fails closed, replaced by a policy that
/// denies every request to the workloads it selects and carries the
/// annotation [`crate::model::FAIL_CLOSED_ANNOTATION`].
pub fn parse_documents(file: &str, text: &str) -> ParsedFile {
    let mut out = ParsedFile {
        empty: text.trim().is_empty(),
        ..ParsedFile::default()
    };
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
    if !out.unreadable {
        non_finite_numbers(file, text, &mut out);
    }
    keep_last_definitions(file, &mut out);
    out
}

/// What a text parsed alone holds (see [`parse_alone`]).
#[derive(Debug)]
pub(super) enum Alone {
    /// No document: blank lines and comments only.
    Nothing,
    /// One document, parsed.
    Document(ParsedFile),
}

/// Parses `text`, the text of document `index` (from 0) of `file` alone,
/// as [`parse_documents`] parses that document within the whole file: the
/// same objects and the same diagnostics (which number the document
/// `index + 1`), but [`keep_last_definitions`] is the file's business.
///
/// `None` when `text` is neither one readable document nor none: a syntax
/// error (whose message should carry the line in the whole file), or
/// several documents.
pub(super) fn parse_alone(file: &str, index: usize, text: &str) -> Option<Alone> {
    let mut out = ParsedFile::default();
    let mut documents = serde_yaml_ng::Deserializer::from_str(text);
    let Some(document) = documents.next() else {
        return Some(Alone::Nothing);
    };
    let value = Value::deserialize(document).ok()?;
    if documents.next().is_some() {
        return None;
    }
    if value.is_null() && !holds_a_document(text) {
        return Some(Alone::Nothing);
    }
    if !value.is_null() {
        parse_document(file, index, value, &mut out);
    }
    if !out.unreadable && could_hold_non_finite(text) {
        if let Some(message) = serde_yaml_ng::from_str(text)
            .ok()
            .as_ref()
            .and_then(|value| non_finite_in(file, index, value))
        {
            out.unreadable = true;
            out.diagnostics.push(message);
        }
    }
    Some(Alone::Document(out))
}

/// Whether `text`, which parses as one null document, really holds one
/// (`~`, `null`) rather than nothing: serde_yaml_ng yields a null document
/// for a stream of blank lines and comments too. A marker line appended
/// adds one document, so the stream then has two only if `text` held one.
fn holds_a_document(text: &str) -> bool {
    // (`take`: after an error the iterator would not end.)
    serde_yaml_ng::Deserializer::from_str(&format!("{text}\n---\n"))
        .take(3)
        .count()
        == 2
}

/// What is left to do once every document of `file` is parsed: an object
/// defined twice keeps its last definition, with a warning.
pub(super) fn finish_file(file: &str, out: &mut ParsedFile) {
    keep_last_definitions(file, out);
}

/// Whether `text` could spell YAML's `.nan` or `.inf`.
fn could_hold_non_finite(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains(".nan") || lower.contains(".inf")
}

/// The error for the first `.nan` or `.inf` in document `index` of `file`.
fn non_finite_in(file: &str, index: usize, value: &serde_yaml_ng::Value) -> Option<Diagnostic> {
    fn find(value: &serde_yaml_ng::Value, path: &str) -> Option<String> {
        match value {
            serde_yaml_ng::Value::Number(n) if n.as_f64().is_some_and(|f| !f.is_finite()) => {
                Some(path.to_string())
            }
            serde_yaml_ng::Value::Mapping(map) => map.iter().find_map(|(k, v)| {
                let key = k.as_str().map_or_else(|| format!("{k:?}"), str::to_string);
                let path = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                find(v, &path)
            }),
            serde_yaml_ng::Value::Sequence(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| find(v, &format!("{path}[{i}]"))),
            serde_yaml_ng::Value::Tagged(tagged) => find(&tagged.value, path),
            _ => None,
        }
    }
    let path = find(value, "")?;
    Some(file_error(
        file,
        format!(
            "YAML document {}: {path} is .nan or .inf, not a number (Kubernetes refuses it too)",
            index + 1
        ),
    ))
}

/// YAML's `.nan` and `.inf` are floats JSON cannot carry: decoding into
/// JSON would quietly make them null (the field's default). Kubernetes
/// refuses them; so does Sextant, naming where they are. Only files whose
/// text could hold one are decoded a second time.
fn non_finite_numbers(file: &str, text: &str, out: &mut ParsedFile) {
    if !could_hold_non_finite(text) {
        return;
    }
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let Ok(value) = serde_yaml_ng::Value::deserialize(document) else {
            return;
        };
        if let Some(message) = non_finite_in(file, index, &value) {
            out.unreadable = true;
            out.diagnostics.push(message);
        }
    }
}

/// Parses one object already decoded from JSON (as a Kubernetes watch
/// delivers it), exactly as one document of a file named `origin`: same
/// validation, same diagnostics (each naming `origin`), same last-good rules.
pub fn parse_value(origin: &str, value: Value) -> ParsedFile {
    let mut out = ParsedFile {
        empty: value.is_null(),
        ..ParsedFile::default()
    };
    if !value.is_null() {
        parse_document(origin, 0, value, &mut out);
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
    let document = index + 1;
    // A kind Sextant does not read is skipped before its metadata is looked
    // at: a kustomization.yaml has no metadata.name and is none of our business.
    let type_meta = classify(&api_version, &kind_name);
    if matches!(type_meta, TypeMeta::Skipped) {
        tracing::info!(
            file,
            api_version,
            kind = kind_name,
            "skipping a kind Sextant does not read"
        );
        return;
    }
    let meta = map.get("metadata").and_then(Value::as_object);
    let field = |name: &str| meta.and_then(|m| m.get(name));
    let (name, namespace) = match (field("name"), field("namespace")) {
        (Some(Value::String(name)), None | Some(Value::Null)) if !name.is_empty() => {
            (name.clone(), "default".to_string())
        }
        (Some(Value::String(name)), Some(Value::String(ns))) if !name.is_empty() => {
            (name.clone(), ns.clone())
        }
        (name, namespace) => {
            let problem = match (name, namespace) {
                (None | Some(Value::Null), _) => "has no metadata.name".to_string(),
                (Some(Value::String(_)), Some(Value::String(_)) | None | Some(Value::Null)) => {
                    "has an empty metadata.name".to_string()
                }
                (Some(Value::String(_)), Some(other)) => {
                    format!("metadata.namespace must be a string, not {other}")
                }
                (Some(other), _) => format!("metadata.name must be a string, not {other}"),
            };
            out.unreadable = true;
            out.diagnostics.push(file_error(
                file,
                format!("YAML document {document} ({kind_name}) {problem}"),
            ));
            return;
        }
    };
    let kind = match type_meta {
        TypeMeta::Known(kind) => kind,
        TypeMeta::Skipped => return, // logged above
        TypeMeta::Unsupported(message) => {
            let mut warning = file_error(
                file,
                format!("YAML document {document} ({namespace}/{name}): {message}"),
            );
            warning.severity = crate::diagnostic::Severity::Warning;
            out.diagnostics.push(warning);
            return;
        }
        TypeMeta::WrongVersion(kind, message) => {
            // The object is identified: its last good version stays served
            // (an AuthorizationPolicy fails closed instead).
            let key = ObjectKey {
                kind,
                namespace,
                name,
            };
            let diagnostics = vec![Diagnostic::error(&key, "apiVersion", message)];
            if kind == Kind::AuthorizationPolicy {
                serve_fail_closed(file, &key, &value, diagnostics, out);
            } else {
                reject(file, key, &value, diagnostics, out);
            }
            return;
        }
        TypeMeta::Mistake(message) => {
            out.unreadable = true;
            out.diagnostics.push(file_error(
                file,
                format!("YAML document {document} ({namespace}/{name}): {message}"),
            ));
            return;
        }
    };
    let namespace = namespace.as_str();
    let key = ObjectKey {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    };

    // Our CRD types do not carry apiVersion/kind as fields (the file may use
    // Istio's apiVersion); k8s-openapi types check them themselves. `status`
    // is written by a controller (istiod, or Sextant in Kubernetes mode), not
    // by the author: a file saved with `kubectl get -o yaml` carries it, and
    // it must not count as an unknown field (an error in a security policy).
    if matches!(
        kind,
        Kind::VirtualService
            | Kind::DestinationRule
            | Kind::WorkloadEntry
            | Kind::Sidecar
            | Kind::ServiceEntry
            | Kind::PeerAuthentication
            | Kind::AuthorizationPolicy
            | Kind::Telemetry
            | Kind::ServiceLevelObjective
    ) {
        map.remove("apiVersion");
        map.remove("kind");
        map.remove("status");
    }
    // An invalid AuthorizationPolicy or PeerAuthentication is replaced,
    // taking its selector from the raw object.
    let raw =
        matches!(kind, Kind::AuthorizationPolicy | Kind::PeerAuthentication).then(|| value.clone());
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
        Kind::ServiceEntry => typed::<ServiceEntry>(value, &key, &mut diagnostics)
            .map(|o| Object::ServiceEntry(Box::new(o))),
        Kind::PeerAuthentication => typed::<PeerAuthentication>(value, &key, &mut diagnostics)
            .map(|o| Object::PeerAuthentication(Box::new(o))),
        Kind::AuthorizationPolicy => typed::<AuthorizationPolicy>(value, &key, &mut diagnostics)
            .map(|o| Object::AuthorizationPolicy(Box::new(o))),
        Kind::Telemetry => typed::<Telemetry>(value, &key, &mut diagnostics)
            .map(|o| Object::Telemetry(Box::new(o))),
        Kind::ServiceLevelObjective => {
            typed::<ServiceLevelObjective>(value, &key, &mut diagnostics)
                .map(|o| Object::ServiceLevelObjective(Box::new(o)))
        }
    };
    if let Some(object) = &object {
        diagnostics.extend(validate::object(object));
    }
    let valid = object.is_some() && !diagnostics.iter().any(Diagnostic::is_error);
    match (valid, object) {
        (true, Some(object)) => {
            out.diagnostics
                .extend(diagnostics.into_iter().map(|d| d.in_file(file)));
            push_object(object, out);
        }
        _ if kind == Kind::AuthorizationPolicy => serve_fail_closed(
            file,
            &key,
            raw.as_ref().unwrap_or(&Value::Null),
            diagnostics,
            out,
        ),
        _ => reject(
            file,
            key,
            raw.as_ref().unwrap_or(&Value::Null),
            diagnostics,
            out,
        ),
    }
}

/// Rejects the invalid object `key` (its last good version stays served),
/// keeping its `diagnostics`; a PeerAuthentication also leaves a STRICT
/// stand-in, served only when there is no last good version.
fn reject(
    file: &str,
    key: ObjectKey,
    raw: &Value,
    diagnostics: Vec<Diagnostic>,
    out: &mut ParsedFile,
) {
    if key.kind == Kind::PeerAuthentication {
        let reason = fail_closed::first_error(&diagnostics).unwrap_or_else(|| "invalid".into());
        out.fallbacks
            .push(fail_closed::strict_peer_authentication(&key, raw, &reason));
    }
    out.diagnostics
        .extend(diagnostics.into_iter().map(|d| d.in_file(file)));
    out.rejected.push(key);
}

/// Adds `object` to `out` ([`keep_last_definitions`] later drops an
/// earlier definition of the same object, with a warning).
fn push_object(object: Object, out: &mut ParsedFile) {
    out.objects.push(Arc::new(object))
}

/// An object defined twice in one file: the later document is served, with
/// a warning. One pass at the end of the file (a check per document made
/// parsing quadratic in the number of objects).
fn keep_last_definitions(file: &str, out: &mut ParsedFile) {
    let keys: Vec<ObjectKey> = out.objects.iter().map(|o| o.key()).collect();
    let mut last = std::collections::HashMap::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        last.insert(key, i);
    }
    if last.len() == keys.len() {
        return;
    }
    let mut index = 0;
    out.objects.retain(|_| {
        let key = &keys[index];
        let keep = last[key] == index;
        index += 1;
        if !keep {
            out.diagnostics.push(
                Diagnostic::warning(
                    key,
                    "",
                    "defined twice in this file; the later document is served",
                )
                .in_file(file),
            );
        }
        keep
    });
}

/// Serves the fail-closed stand-in of the invalid AuthorizationPolicy `key`
/// (whose raw document is `raw`) instead of rejecting it, keeping its
/// `diagnostics` (at least one error) and saying what is served instead.
fn serve_fail_closed(
    file: &str,
    key: &ObjectKey,
    raw: &Value,
    mut diagnostics: Vec<Diagnostic>,
    out: &mut ParsedFile,
) {
    let reason = fail_closed::first_error(&diagnostics).unwrap_or_else(|| "invalid".into());
    diagnostics.push(Diagnostic::error(
        key,
        "",
        "invalid AuthorizationPolicy: it fails closed, denying every request to the workloads it selects",
    ));
    out.diagnostics
        .extend(diagnostics.into_iter().map(|d| d.in_file(file)));
    push_object(fail_closed::replacement(key, raw, &reason), out);
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
    // In a security policy an ignored field would widen what it allows or
    // narrow what it enforces: there it is an error (an AuthorizationPolicy
    // then fails closed; a PeerAuthentication keeps its last good version,
    // or is served as STRICT when it has none).
    // In a Telemetry an ignored field would silently change what is logged
    // or traced (Istio's `match`, `targetRefs`, `metrics` are not built);
    // in a ServiceLevelObjective it would measure the wrong objective.
    let strict = matches!(
        key.kind,
        Kind::AuthorizationPolicy
            | Kind::PeerAuthentication
            | Kind::Telemetry
            | Kind::ServiceLevelObjective
    );
    for field in unknown {
        diagnostics.push(if strict {
            Diagnostic::error(
                key,
                field,
                match key.kind {
                    Kind::Telemetry => {
                        "unknown or unsupported field: a Telemetry is not applied with a field ignored"
                    }
                    Kind::ServiceLevelObjective => {
                        "unknown or unsupported field: a ServiceLevelObjective is not measured with a field ignored"
                    }
                    _ => {
                        "unknown or unsupported field: a security policy is not applied with a field ignored"
                    }
                },
            )
        } else {
            Diagnostic::warning(
                key,
                field,
                "unknown or unsupported field, ignored (see the README for the supported fields)",
            )
        });
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

/// What `apiVersion` and `kind` say about a document.
enum TypeMeta {
    /// A kind Sextant reads.
    Known(Kind),
    /// A kind of another API group: skipped with an info line.
    Skipped,
    /// An Istio kind of the groups Sextant reads that it does not implement:
    /// skipped with a warning (its author expects it to take effect).
    Unsupported(String),
    /// A kind Sextant reads, under an apiVersion that does not serve it.
    WrongVersion(Kind, String),
    /// Most likely a typo of a kind Sextant reads: an unknown kind in one of
    /// its API groups, or a known kind's name with other case or a plural.
    Mistake(String),
}

/// Istio kinds of the networking and security groups that Sextant does not
/// implement, with what that means for their author: skipped with a warning.
const ISTIO_KINDS_NOT_READ: &[(&str, &str)] = &[
    ("Gateway", "ingress and egress gateways are not built"),
    ("EnvoyFilter", "Envoy configuration patches are not applied"),
    ("WorkloadGroup", "WorkloadEntries are not generated from it"),
    (
        "ProxyConfig",
        "proxy settings come from `sextant bootstrap` flags",
    ),
    (
        "RequestAuthentication",
        "request JWTs are not validated, and AuthorizationPolicy requestPrincipals are refused",
    ),
];

fn classify(api_version: &str, kind_name: &str) -> TypeMeta {
    if let Some(kind) = Kind::from_type_meta(api_version, kind_name) {
        return TypeMeta::Known(kind);
    }
    let known = Kind::ALL.map(|k| (k, k.api_version()));
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let read_groups = [
        "",
        "discovery.k8s.io",
        crate::model::NETWORKING_GROUP,
        crate::model::ISTIO_NETWORKING_GROUP,
        crate::model::SECURITY_GROUP,
        crate::model::ISTIO_SECURITY_GROUP,
        crate::model::TELEMETRY_GROUP,
        crate::model::ISTIO_TELEMETRY_GROUP,
    ];
    if !read_groups.contains(&group) {
        // One of our kinds under a misspelt mesh group (`security.sextnt.dev`)
        // was meant for Sextant: an error, so a security policy fails closed
        // instead of being skipped with an info line.
        let mesh_groups = &read_groups[2..];
        let meant = known
            .iter()
            .find(|(k, _)| k.as_str() == kind_name)
            .and_then(|(kind, _)| {
                let near = mesh_groups
                    .iter()
                    .find(|g| strsim::damerau_levenshtein(group, g) <= 2)?;
                Some((*kind, *near))
            });
        if let Some((kind, near)) = meant {
            return TypeMeta::WrongVersion(
                kind,
                format!(
                    "API group {group:?} is not one Sextant reads; did you mean {near:?} (use {})?",
                    kind.api_version()
                ),
            );
        }
        return TypeMeta::Skipped;
    }
    if let Some((kind, expected)) = known.iter().find(|(k, _)| k.as_str() == kind_name) {
        let istio = if expected.starts_with("networking.") {
            " (or networking.istio.io/v1, v1beta1, v1alpha3)"
        } else if expected.starts_with("security.") {
            " (or security.istio.io/v1, v1beta1)"
        } else if *kind == Kind::Telemetry {
            " (or telemetry.istio.io/v1, v1alpha1)"
        } else {
            ""
        };
        return TypeMeta::WrongVersion(
            *kind,
            format!("{api_version:?} does not serve {kind_name}; use {expected}{istio}"),
        );
    }
    if let Some((_, consequence)) = ISTIO_KINDS_NOT_READ.iter().find(|(k, _)| *k == kind_name) {
        return TypeMeta::Unsupported(format!(
            "Sextant does not implement Istio's {kind_name}; it is skipped: {consequence}"
        ));
    }
    // A typo: the same letters in another case, a plural, or, for a kind of
    // the document's own API group, one edit away (two for long names:
    // `AuthorizationPolcy`; one only for short ones, so that `v1/Node` is
    // not taken for `Pod`).
    let given = kind_name.to_ascii_lowercase();
    let canonical = |group: &str| match group {
        crate::model::ISTIO_NETWORKING_GROUP => crate::model::NETWORKING_GROUP.to_string(),
        crate::model::ISTIO_SECURITY_GROUP => crate::model::SECURITY_GROUP.to_string(),
        other => other.to_string(),
    };
    let near = known.iter().find(|(k, expected)| {
        let name = k.as_str().to_ascii_lowercase();
        let same_group =
            canonical(expected.rsplit_once('/').map_or("", |(g, _)| g)) == canonical(group);
        let allowed = if name.len() >= 8 { 2 } else { 1 };
        given.trim_end_matches('s') == name
            || given == format!("{name}s")
            || (same_group && strsim::damerau_levenshtein(&given, &name) <= allowed)
    });
    if let Some((kind, _)) = near {
        return TypeMeta::Mistake(format!("unknown kind {kind_name:?}; did you mean {kind}?"));
    }
    let ours = [
        crate::model::NETWORKING_GROUP,
        crate::model::ISTIO_NETWORKING_GROUP,
        crate::model::SECURITY_GROUP,
        crate::model::ISTIO_SECURITY_GROUP,
    ]
    .contains(&group);
    if ours {
        return TypeMeta::Mistake(format!("unknown kind {kind_name:?} in API group {group}"));
    }
    TypeMeta::Skipped
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

mod fail_closed;

#[cfg(test)]
mod tests;
