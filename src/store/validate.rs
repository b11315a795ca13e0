//! Per-object validation that needs no other object: field shapes, ranges and
//! regular expressions. Reference checks (does the host exist?) happen when
//! the IR is built, because they depend on the rest of the world.

use crate::diagnostic::Diagnostic;
use crate::model::{Object, ObjectKey, StringMatch};
use std::collections::BTreeSet;

/// Checks one object; errors make the source keep the object's last good version.
pub fn object(object: &Object) -> Vec<Diagnostic> {
    let key = object.key();
    let mut out = Vec::new();
    match object {
        Object::VirtualService(vs) => {
            export_to(&key, &vs.spec.export_to, &mut out);
            if vs.spec.hosts.is_empty() {
                out.push(Diagnostic::error(
                    &key,
                    "spec.hosts",
                    "at least one host is required",
                ));
            }
            for (i, host) in vs.spec.hosts.iter().enumerate() {
                if host.trim().is_empty() {
                    out.push(Diagnostic::error(
                        &key,
                        format!("spec.hosts[{i}]"),
                        "host must not be empty",
                    ));
                }
            }
            for (i, http) in vs.spec.http.iter().enumerate() {
                for (j, m) in http.matches.iter().enumerate() {
                    let base = format!("spec.http[{i}].match[{j}]");
                    if let Some(uri) = &m.uri {
                        string_match(&key, &format!("{base}.uri"), uri, &mut out);
                    }
                    for (name, value) in &m.headers {
                        let field = format!("{base}.headers.{name}");
                        if name.is_empty() || name.chars().any(|c| c.is_ascii_uppercase()) {
                            out.push(Diagnostic::error(
                                &key,
                                &field,
                                "header names must be non-empty and lower-case",
                            ));
                        }
                        string_match(&key, &field, value, &mut out);
                    }
                }
                if http.route.is_empty() {
                    out.push(Diagnostic::error(
                        &key,
                        format!("spec.http[{i}].route"),
                        "at least one destination is required",
                    ));
                }
                for (j, dest) in http.route.iter().enumerate() {
                    let base = format!("spec.http[{i}].route[{j}]");
                    if dest.destination.host.trim().is_empty() {
                        out.push(Diagnostic::error(
                            &key,
                            format!("{base}.destination.host"),
                            "host must not be empty",
                        ));
                    }
                    if let Some(port) = &dest.destination.port {
                        port_number(
                            &key,
                            &format!("{base}.destination.port.number"),
                            i64::from(port.number),
                            &mut out,
                        );
                    }
                    if matches!(dest.weight, Some(w) if w < 0) {
                        out.push(Diagnostic::error(
                            &key,
                            format!("{base}.weight"),
                            "weight must not be negative",
                        ));
                    }
                }
            }
        }
        Object::DestinationRule(dr) => {
            if dr.spec.host.trim().is_empty() {
                out.push(Diagnostic::error(
                    &key,
                    "spec.host",
                    "host must not be empty",
                ));
            }
            let mut names = BTreeSet::new();
            for (i, subset) in dr.spec.subsets.iter().enumerate() {
                let field = format!("spec.subsets[{i}].name");
                if subset.name.is_empty() || subset.name.contains('|') {
                    out.push(Diagnostic::error(
                        &key,
                        &field,
                        "subset name must be non-empty and must not contain '|'",
                    ));
                } else if !names.insert(subset.name.as_str()) {
                    out.push(Diagnostic::error(
                        &key,
                        &field,
                        format!("duplicate subset name {:?}", subset.name),
                    ));
                }
            }
        }
        Object::WorkloadEntry(we) => {
            if we.spec.address.parse::<std::net::IpAddr>().is_err() {
                out.push(Diagnostic::error(
                    &key,
                    "spec.address",
                    format!("{:?} is not an IP address", we.spec.address),
                ));
            }
            for (name, port) in &we.spec.ports {
                port_number(
                    &key,
                    &format!("spec.ports.{name}"),
                    i64::from(*port),
                    &mut out,
                );
            }
        }
        Object::Service(svc) => {
            let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
            for (i, port) in ports.into_iter().flatten().enumerate() {
                port_number(
                    &key,
                    &format!("spec.ports[{i}].port"),
                    i64::from(port.port),
                    &mut out,
                );
                if let Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(
                    target,
                )) = &port.target_port
                {
                    port_number(
                        &key,
                        &format!("spec.ports[{i}].targetPort"),
                        i64::from(*target),
                        &mut out,
                    );
                }
            }
        }
        Object::EndpointSlice(slice) => {
            let labels = slice.metadata.labels.as_ref();
            if labels
                .and_then(|l| l.get(crate::ir::SERVICE_NAME_LABEL))
                .is_none()
            {
                out.push(Diagnostic::warning(
                    &key,
                    "metadata.labels",
                    format!(
                        "no {} label: the slice belongs to no Service and is ignored",
                        crate::ir::SERVICE_NAME_LABEL
                    ),
                ));
            }
        }
        Object::Pod(_) => {}
        Object::Sidecar(sidecar) => {
            for (i, egress) in sidecar.spec.egress.iter().enumerate() {
                for (j, host) in egress.hosts.iter().enumerate() {
                    let valid = host
                        .split_once('/')
                        .is_some_and(|(ns, h)| !ns.is_empty() && !h.is_empty() && !h.contains('/'));
                    if !valid {
                        out.push(Diagnostic::error(
                            &key,
                            format!("spec.egress[{i}].hosts[{j}]"),
                            format!("{host:?} is not namespace/host (e.g. \"./*\" or \"istio-system/*\")"),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// `exportTo` entries: `*`, `.`, `~` or a namespace name.
fn export_to(key: &ObjectKey, entries: &[String], out: &mut Vec<Diagnostic>) {
    for (i, entry) in entries.iter().enumerate() {
        let name_ok = !entry.is_empty()
            && entry.len() <= 63
            && entry
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !(matches!(entry.as_str(), "*" | "." | "~") || name_ok) {
            out.push(Diagnostic::error(
                key,
                format!("spec.exportTo[{i}]"),
                format!("{entry:?} is not *, ., ~ or a namespace name"),
            ));
        }
    }
}

fn port_number(key: &ObjectKey, field: &str, port: i64, out: &mut Vec<Diagnostic>) {
    if !(1..=65535).contains(&port) {
        out.push(Diagnostic::error(
            key,
            field,
            format!("port {port} is outside 1-65535"),
        ));
    }
}

/// Checks that exactly one of exact/prefix/regex is set and that a regex is
/// one Envoy's RE2 engine accepts.
fn string_match(key: &ObjectKey, field: &str, m: &StringMatch, out: &mut Vec<Diagnostic>) {
    let set = [m.exact.is_some(), m.prefix.is_some(), m.regex.is_some()];
    if set.iter().filter(|s| **s).count() != 1 {
        out.push(Diagnostic::error(
            key,
            field,
            "exactly one of exact, prefix or regex must be set",
        ));
    }
    if let Some(regex) = &m.regex {
        if let Err(reason) = re2_compatible(regex) {
            out.push(Diagnostic::error(key, format!("{field}.regex"), reason));
        }
    }
}

/// Envoy's default limit on a regex's RE2 program size (runtime key
/// `re2.max_program_size.error_level`): larger regexes make it reject the
/// whole RouteConfiguration.
pub const ENVOY_RE2_MAX_PROGRAM_SIZE: u64 = 100;

/// Checks a regex against RE2's dialect and Envoy's program-size limit (what
/// Envoy's `safe_regex` compiles).
///
/// The `regex` crate's parser is used as the model of RE2: both reject
/// look-around and back-references. Character-class set operations (`&&`,
/// `--`, `~~`), which the `regex` crate accepts and RE2 does not, are rejected
/// explicitly. The program size is estimated by [`re2_program_size`].
///
/// # Errors
/// A message saying why RE2 or Envoy would reject the pattern.
pub fn re2_compatible(pattern: &str) -> Result<(), String> {
    use regex_syntax::ast::{parse::Parser, Ast, ClassSet};
    let ast = Parser::new()
        .parse(pattern)
        .map_err(|e| format!("not a valid RE2 regular expression: {}", e.kind()))?;
    fn has_set_op(ast: &Ast) -> bool {
        match ast {
            Ast::ClassBracketed(c) => matches!(c.kind, ClassSet::BinaryOp(_)),
            Ast::Repetition(r) => has_set_op(&r.ast),
            Ast::Group(g) => has_set_op(&g.ast),
            Ast::Alternation(a) => a.asts.iter().any(has_set_op),
            Ast::Concat(c) => c.asts.iter().any(has_set_op),
            _ => false,
        }
    }
    if has_set_op(&ast) {
        return Err("not a valid RE2 regular expression: character class set operations (&&, --, ~~) are not RE2 syntax".into());
    }
    if let Some(reason) = re2_unsupported(&ast) {
        return Err(format!("not a valid RE2 regular expression: {reason}"));
    }
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .map_err(|e| format!("not a valid RE2 regular expression: {e}"))?;
    let size = re2_program_size(&hir);
    if size > ENVOY_RE2_MAX_PROGRAM_SIZE {
        return Err(format!(
            "the regex compiles to an RE2 program of about {size} instructions; Envoy rejects more than {ENVOY_RE2_MAX_PROGRAM_SIZE} (shorten repetition counts such as {{1,200}})"
        ));
    }
    Ok(())
}

/// Estimates the size of the RE2 program a regex compiles to, the way RE2's
/// compiler spends instructions: one per literal byte, about one per ASCII
/// range of a class (plus one for any non-ASCII part), two per capture group,
/// one per alternation branch point, loop or optional, and `{n,m}` expanded
/// into `m` copies; plus 4 for the program's frame. Calibrated against
/// Envoy 1.40's own figures (`a{1,50}` → 103, `(ab){1,20}` → 103,
/// `\w{1,30}` → 123); the end-to-end test `regex_dialect` checks the verdict
/// against a real Envoy on a corpus.
pub fn re2_program_size(hir: &regex_syntax::hir::Hir) -> u64 {
    4 + hir_size(hir)
}

fn hir_size(hir: &regex_syntax::hir::Hir) -> u64 {
    use regex_syntax::hir::{Class, HirKind};
    match hir.kind() {
        HirKind::Empty => 0,
        HirKind::Literal(literal) => literal.0.len() as u64,
        HirKind::Class(class) => {
            // (starts in ASCII, ends in ASCII) per range.
            let ranges: Vec<(bool, bool)> = match class {
                Class::Unicode(c) => c
                    .ranges()
                    .iter()
                    .map(|r| (r.start().is_ascii(), r.end().is_ascii()))
                    .collect(),
                Class::Bytes(c) => c
                    .ranges()
                    .iter()
                    .map(|r| (r.start().is_ascii(), r.end().is_ascii()))
                    .collect(),
            };
            let ascii = ranges.iter().filter(|(start, _)| *start).count() as u64;
            let wide = ranges.iter().any(|(_, end)| !end);
            ascii.saturating_sub(1).max(1) + u64::from(wide && ascii > 0)
        }
        HirKind::Look(_) => 1,
        HirKind::Capture(capture) => 2u64.saturating_add(hir_size(&capture.sub)),
        HirKind::Concat(items) => items.iter().map(hir_size).fold(0, u64::saturating_add),
        HirKind::Alternation(items) => {
            let branches = (items.len() as u64).saturating_sub(1);
            items
                .iter()
                .map(hir_size)
                .fold(branches, u64::saturating_add)
        }
        HirKind::Repetition(rep) => {
            let sub = hir_size(&rep.sub);
            let min = u64::from(rep.min);
            let copies = sub.saturating_mul(min);
            match rep.max {
                None => copies.saturating_add(sub).saturating_add(1),
                Some(max) => {
                    let optional = u64::from(max).saturating_sub(min);
                    copies.saturating_add(optional.saturating_mul(sub.saturating_add(1)))
                }
            }
        }
    }
}

/// The first construct of `ast` that the `regex` crate accepts and RE2 (so
/// Envoy) rejects: a flag other than `i`, `m`, `s` and `U`; a `\u` or `\U`
/// escape; a repetition operator applied directly to another (`a**`, `a++`,
/// `a{2}{3}`).
fn re2_unsupported(ast: &regex_syntax::ast::Ast) -> Option<&'static str> {
    use regex_syntax::ast::{Ast, ClassSet, GroupKind};
    match ast {
        Ast::Flags(set) => re2_unsupported_flag(&set.flags),
        Ast::Literal(literal) => re2_unsupported_escape(literal),
        Ast::ClassBracketed(class) => match &class.kind {
            ClassSet::Item(item) => re2_unsupported_in_class(item),
            ClassSet::BinaryOp(_) => None,
        },
        Ast::Repetition(r) if matches!(*r.ast, Ast::Repetition(_)) => {
            Some("a repetition operator cannot follow another (e.g. `a**`, `a++`, `a{2}{3}`)")
        }
        Ast::Repetition(r) => re2_unsupported(&r.ast),
        Ast::Group(group) => match &group.kind {
            GroupKind::NonCapturing(flags) => re2_unsupported_flag(flags),
            _ => None,
        }
        .or_else(|| re2_unsupported(&group.ast)),
        Ast::Alternation(a) => a.asts.iter().find_map(re2_unsupported),
        Ast::Concat(c) => c.asts.iter().find_map(re2_unsupported),
        Ast::Empty(_)
        | Ast::Dot(_)
        | Ast::Assertion(_)
        | Ast::ClassUnicode(_)
        | Ast::ClassPerl(_) => None,
    }
}

fn re2_unsupported_flag(flags: &regex_syntax::ast::Flags) -> Option<&'static str> {
    use regex_syntax::ast::{Flag, FlagsItemKind};
    flags
        .items
        .iter()
        .any(|item| {
            matches!(
                item.kind,
                FlagsItemKind::Flag(Flag::Unicode | Flag::CRLF | Flag::IgnoreWhitespace)
            )
        })
        .then_some("RE2 supports only the flags i, m, s and U")
}

fn re2_unsupported_escape(literal: &regex_syntax::ast::Literal) -> Option<&'static str> {
    use regex_syntax::ast::{HexLiteralKind, LiteralKind};
    matches!(
        literal.kind,
        LiteralKind::HexFixed(HexLiteralKind::UnicodeShort | HexLiteralKind::UnicodeLong)
            | LiteralKind::HexBrace(HexLiteralKind::UnicodeShort | HexLiteralKind::UnicodeLong)
    )
    .then_some("RE2 has no \\u or \\U escapes; use \\x{...}")
}

fn re2_unsupported_in_class(item: &regex_syntax::ast::ClassSetItem) -> Option<&'static str> {
    use regex_syntax::ast::ClassSetItem;
    match item {
        ClassSetItem::Literal(literal) => re2_unsupported_escape(literal),
        ClassSetItem::Range(range) => {
            re2_unsupported_escape(&range.start).or(re2_unsupported_escape(&range.end))
        }
        ClassSetItem::Bracketed(class) => match &class.kind {
            regex_syntax::ast::ClassSet::Item(item) => re2_unsupported_in_class(item),
            regex_syntax::ast::ClassSet::BinaryOp(_) => None,
        },
        ClassSetItem::Union(union) => union.items.iter().find_map(re2_unsupported_in_class),
        ClassSetItem::Empty(_)
        | ClassSetItem::Ascii(_)
        | ClassSetItem::Unicode(_)
        | ClassSetItem::Perl(_) => None,
    }
}
