//! Regexes as Envoy's RE2 engine sees them: syntax RE2 accepts, and an
//! estimate of the compiled program's size against Envoy's limit.

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
