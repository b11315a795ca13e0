//! Regexes as Envoy's RE2 engine sees them: syntax RE2 accepts, and an
//! estimate of the compiled program's size against Envoy's limit.

/// Envoy's default limit on a regex's RE2 program size (runtime key
/// `re2.max_program_size.error_level`): larger regexes make it reject the
/// whole RouteConfiguration.
pub const ENVOY_RE2_MAX_PROGRAM_SIZE: u64 = 100;

/// Checks a regex against RE2's dialect and Envoy's program-size limit (what
/// Envoy's `safe_regex` compiles).
///
/// Envoy 1.40 compiles patterns as Latin-1 bytes: `\x{100}` and above are
/// invalid escapes, and a non-ASCII character is its UTF-8 bytes (so `é+`
/// repeats only the second byte). The pattern is first rewritten into the
/// `regex` crate's byte-oriented syntax with those semantics ([`latin1_syntax`]),
/// then parsed with `regex-syntax` as the model of RE2: both reject look-around
/// and back-references. What the `regex` crate accepts and RE2 does not is
/// rejected explicitly (class set operations, some flags and escapes, stacked
/// repetitions). The program size is estimated by [`re2_program_size`].
/// `integration/regex_dialect.rs` checks the verdicts against a real Envoy.
///
/// # Errors
/// A message saying why RE2 or Envoy would reject the pattern.
pub fn re2_compatible(pattern: &str) -> Result<(), String> {
    use regex_syntax::ast::{parse::Parser, Ast, ClassSet};
    let invalid = |reason: String| format!("not a valid RE2 regular expression: {reason}");
    let translated = latin1_syntax(pattern).map_err(invalid)?;
    let ast = Parser::new()
        .parse(&translated)
        .map_err(|e| invalid(e.kind().to_string()))?;
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
        return Err(invalid(
            "character class set operations (&&, --, ~~) are not RE2 syntax".into(),
        ));
    }
    if let Some(reason) = re2_unsupported(&ast) {
        return Err(invalid(reason.into()));
    }
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(&translated)
        .map_err(|e| match e {
            regex_syntax::Error::Parse(e) => invalid(e.kind().to_string()),
            regex_syntax::Error::Translate(e) => invalid(e.kind().to_string()),
            e => invalid(e.to_string()),
        })?;
    let size = re2_program_size(&hir);
    if size > ENVOY_RE2_MAX_PROGRAM_SIZE {
        return Err(format!(
            "the regex compiles to an RE2 program of about {size} instructions; Envoy rejects more than {ENVOY_RE2_MAX_PROGRAM_SIZE} (shorten repetition counts such as {{1,200}})"
        ));
    }
    Ok(())
}

/// Rewrites an RE2 pattern into the `regex` crate's syntax, byte-oriented as
/// Envoy's RE2 is: non-ASCII characters become `\xHH` per UTF-8 byte;
/// `\Q...\E` becomes escaped text; `\C` becomes any byte; octal escapes
/// become `\xHH`; `{,n}` (literal text in RE2) is escaped.
///
/// # Errors
/// An escape RE2 rejects (an octal escape above `\377`, an escaped non-ASCII character).
pub fn latin1_syntax(pattern: &str) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len());
    let push_bytes = |out: &mut String, c: char| {
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    };
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                None => out.push('\\'),
                Some('Q') => {
                    let mut quoted = String::new();
                    while let Some(q) = chars.next() {
                        if q == '\\' && chars.peek() == Some(&'E') {
                            chars.next();
                            break;
                        }
                        quoted.push(q);
                    }
                    for q in quoted.chars() {
                        if q.is_ascii() {
                            out.push_str(&regex_syntax::escape(&q.to_string()));
                        } else {
                            push_bytes(&mut out, q);
                        }
                    }
                }
                Some('C') => out.push_str("(?s:.)"),
                Some(d @ '0'..='7') => {
                    // Octal: \0 with up to two more digits, or \[1-7] with one or two more.
                    let mut digits = d.to_string();
                    while digits.len() < 3 && chars.peek().is_some_and(|c| ('0'..='7').contains(c))
                    {
                        digits.push(chars.next().expect("peeked"));
                    }
                    if d != '0' && digits.len() == 1 {
                        return Err("backreferences are not supported".into());
                    }
                    let value = u32::from_str_radix(&digits, 8).expect("octal digits");
                    if value > 0xFF {
                        return Err(format!("invalid escape sequence \\{digits}"));
                    }
                    out.push_str(&format!("\\x{value:02X}"));
                }
                Some('x') if chars.peek() == Some(&'{') => {
                    let hex: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                    match u32::from_str_radix(&hex, 16) {
                        Ok(value) if value <= 0xFF => out.push_str(&format!("\\x{value:02X}")),
                        _ => return Err(format!("invalid escape sequence \\x{{{hex}}} (Envoy's RE2 reads patterns as Latin-1: at most \\x{{FF}})")),
                    }
                }
                Some(p @ ('p' | 'P')) => {
                    let name: String = match chars.next() {
                        Some('{') => chars.by_ref().take_while(|c| *c != '}').collect(),
                        Some(one) => one.to_string(),
                        None => return Err("missing Unicode class name".into()),
                    };
                    out.push_str(&latin1_class(&name, p == 'P', in_class)?);
                }
                Some(e) if !e.is_ascii() => return Err(format!("invalid escape sequence \\{e}")),
                Some(e) => {
                    out.push('\\');
                    out.push(e);
                }
            },
            '{' if chars.peek() == Some(&',') => out.push_str("\\{"),
            '[' => {
                in_class = true;
                out.push('[');
                // A `]` right after `[` or `[^` is a literal.
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().expect("peeked"));
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            c if !c.is_ascii() => push_bytes(&mut out, c),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A Unicode class (`\pN`, `\p{Greek}`, negated with `\P`) as RE2 reads it in
/// Latin-1: its code points up to U+00FF, written as byte ranges (bare when
/// `in_class`, else bracketed).
///
/// # Errors
/// An unknown class name.
fn latin1_class(name: &str, negated: bool, in_class: bool) -> Result<String, String> {
    use regex_syntax::hir::{Class, HirKind};
    let hir = regex_syntax::Parser::new()
        .parse(&format!("\\p{{{name}}}"))
        .map_err(|_| format!("unknown Unicode class {name:?}"))?;
    let HirKind::Class(Class::Unicode(class)) = hir.kind() else {
        return Err(format!("unknown Unicode class {name:?}"));
    };
    let mut bytes = [false; 256];
    for range in class.ranges() {
        for c in u32::from(range.start())..=u32::from(range.end()).min(0xFF) {
            bytes[c as usize] = true;
        }
    }
    let mut ranges = String::new();
    let mut i = 0;
    while i < 256 {
        if bytes[i] != negated {
            let start = i;
            while i + 1 < 256 && bytes[i + 1] != negated {
                i += 1;
            }
            ranges.push_str(&format!("\\x{start:02X}-\\x{i:02X}"));
        }
        i += 1;
    }
    if ranges.is_empty() {
        // Matches nothing in Latin-1; any one-byte class has the same cost.
        ranges.push_str("\\x00");
    }
    Ok(if in_class {
        ranges
    } else {
        format!("[{ranges}]")
    })
}

/// Estimates the size of the RE2 program a (byte-oriented) regex compiles
/// to, the way RE2's compiler spends instructions: one per literal byte; one
/// per range of a class, ranges that differ only by ASCII case counting once;
/// alternatives of literals
/// factored by common prefix, as RE2 simplifies them; two per capture group,
/// one per alternation branch point, loop or optional; `{n,m}` expanded into
/// `m` copies; plus 4 for the program's frame. Calibrated against Envoy 1.40's
/// own figures (`a{1,50}` → 103, `(ab){1,20}` → 103, `\w{1,30}` → 123,
/// `/[α-ω]{1,35}` → 109).
pub fn re2_program_size(hir: &regex_syntax::hir::Hir) -> u64 {
    hir_size(hir).saturating_add(4)
}

fn hir_size(hir: &regex_syntax::hir::Hir) -> u64 {
    use regex_syntax::hir::{Class, HirKind};
    match hir.kind() {
        HirKind::Empty => 0,
        HirKind::Literal(literal) => literal.0.len() as u64,
        HirKind::Class(class) => {
            let ranges: Vec<(u32, u32)> = match class {
                Class::Unicode(c) => c
                    .ranges()
                    .iter()
                    .map(|r| (u32::from(r.start()), u32::from(r.end())))
                    .collect(),
                Class::Bytes(c) => c
                    .ranges()
                    .iter()
                    .map(|r| (u32::from(r.start()), u32::from(r.end())))
                    .collect(),
            };
            class_size(&ranges)
        }
        HirKind::Look(_) => 1,
        HirKind::Capture(capture) => 2u64.saturating_add(hir_size(&capture.sub)),
        HirKind::Concat(items) => items.iter().map(hir_size).fold(0, u64::saturating_add),
        HirKind::Alternation(items) => {
            let literals: Option<Vec<&[u8]>> = items
                .iter()
                .map(|h| match h.kind() {
                    HirKind::Literal(l) => Some(&l.0[..]),
                    _ => None,
                })
                .collect();
            match literals {
                Some(literals) => factored_size(&literals),
                None => {
                    let branches = (items.len() as u64).saturating_sub(1);
                    items
                        .iter()
                        .map(hir_size)
                        .fold(branches, u64::saturating_add)
                }
            }
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

/// One instruction per range, a lower-case ASCII range whose upper-case twin
/// is also present counting once.
fn class_size(ranges: &[(u32, u32)]) -> u64 {
    let upper = |(a, b): (u32, u32)| (a - 32, b - 32);
    let lower_case = |(a, b): &(u32, u32)| {
        (u32::from(b'a')..=u32::from(b'z')).contains(a) && *b <= u32::from(b'z')
    };
    let folded = ranges
        .iter()
        .filter(|r| lower_case(r) && ranges.contains(&upper(**r)))
        .count();
    (ranges.len() - folded).max(1) as u64
}

/// The size of an alternation of literals once RE2 factors common prefixes:
/// one per trie edge, single-byte leaves at one node merged into a class, one
/// per extra branch.
fn factored_size(literals: &[&[u8]]) -> u64 {
    let mut groups: std::collections::BTreeMap<u8, Vec<&[u8]>> = std::collections::BTreeMap::new();
    let mut ends_here = false;
    for literal in literals {
        match literal.split_first() {
            None => ends_here = true,
            Some((first, rest)) => groups.entry(*first).or_default().push(rest),
        }
    }
    let (leaves, inner): (Vec<_>, Vec<_>) = groups
        .iter()
        .partition(|(_, rests)| rests.iter().all(|r| r.is_empty()));
    let mut size = 0u64;
    let mut branches = u64::from(ends_here) + u64::from(!leaves.is_empty());
    for (_, rests) in inner {
        branches += 1;
        size = size.saturating_add(1).saturating_add(factored_size(rests));
    }
    size += u64::from(!leaves.is_empty());
    size + branches.saturating_sub(1)
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
