//! A config file's documents, each parsed once: when a file changes, only
//! the documents whose text changed are parsed again, so one WorkloadEntry
//! edited in a file of 400 objects costs one document's parse rather than
//! the file's.
//!
//! The file is split at YAML's document markers: a line that is `---` and
//! nothing else (trailing spaces and tabs allowed) starts a document, which
//! counts even when empty; the text before the first marker is a document
//! when, parsed alone, it holds one (not only blank lines and comments).
//! YAML 1.2 forbids a marker at the start of a line inside any scalar
//! (production `c-forbidden`), so a marker line always separates
//! documents. A file using what this splitter does not follow — directives
//! (`%YAML`, `%TAG`), document end markers (`...`), content after a marker
//! on its line (`--- !tag`, `--- # note`), a byte-order mark anywhere, a
//! line break other than a line feed (a carriage return alone, U+0085,
//! U+2028, U+2029: YAML breaks lines there too) — is parsed whole, with
//! [`parse_documents`](super::parse::parse_documents). So is a file with a
//! piece that does not parse alone as at most one document (a syntax
//! error, whose message then carries its line in the whole file) or with
//! a document that makes the file unreadable (the store then keeps
//! the file's last good content, and the whole-file parse decides what else
//! to report).
//!
//! A document parsed alone gives what it gives within the file, numbered
//! by its position: a document is reused only at the same position, with
//! the same text and the same kind of start (marker or file start), so its
//! diagnostics still name the right document.

use super::parse::{finish_file, parse_alone, parse_documents, Alone, ParsedFile};
use std::ops::Range;

/// A file's text and, when it could be parsed by document, what each of its
/// documents parsed to.
#[derive(Debug, Default)]
pub struct ParsedText {
    text: String,
    /// Its documents in file order; empty when the file was parsed whole.
    documents: Vec<Document>,
}

/// One document of a file.
#[derive(Debug)]
struct Document {
    /// Its bytes in the file's text (after its marker line, if any).
    range: Range<usize>,
    /// Whether a marker line starts it (else it is the text before the
    /// first marker, which is a document only when it holds one).
    after_marker: bool,
    /// What it parsed to alone.
    parsed: ParsedFile,
}

impl ParsedText {
    /// A file whose text is `text`, with nothing parsed by document (the
    /// next [`ParsedText::parse`] parses every document).
    pub fn unparsed(text: String) -> Self {
        ParsedText {
            text,
            documents: Vec::new(),
        }
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Parses `text`, the new content of `file`: what
    /// [`parse_documents`]`(file, &text)` returns, computed by parsing only
    /// the documents that are not at the same position with the same text
    /// in `previous`. Returns the state to hand to the next call, and the
    /// parse.
    pub fn parse(file: &str, text: String, previous: Option<&ParsedText>) -> (Self, ParsedFile) {
        match parse_by_document(file, &text, previous) {
            Some((documents, parsed)) => (ParsedText { text, documents }, parsed),
            None => {
                let parsed = parse_documents(file, &text);
                (ParsedText::unparsed(text), parsed)
            }
        }
    }
}

/// The documents of `text` and the file's parse, re-using `previous`'s
/// documents that did not change; `None` when the file must be parsed
/// whole (see the module docs).
fn parse_by_document(
    file: &str,
    text: &str,
    previous: Option<&ParsedText>,
) -> Option<(Vec<Document>, ParsedFile)> {
    let pieces = split(text)?;
    let mut documents: Vec<Document> = Vec::with_capacity(pieces.len());
    for (range, after_marker) in pieces {
        let index = documents.len();
        let piece = &text[range.clone()];
        let unchanged = previous.and_then(|p| {
            let old = p.documents.get(index)?;
            let same = old.after_marker == after_marker && &p.text[old.range.clone()] == piece;
            same.then(|| old.parsed.clone())
        });
        let parsed = match unchanged {
            Some(parsed) => parsed,
            None => match parse_alone(file, index, piece)? {
                Alone::Document(parsed) => parsed,
                // After a marker, an empty document (it counts).
                Alone::Nothing if after_marker => ParsedFile::default(),
                // Before the first marker: no document.
                Alone::Nothing => continue,
            },
        };
        if parsed.unreadable {
            return None;
        }
        documents.push(Document {
            range,
            after_marker,
            parsed,
        });
    }
    let mut out = ParsedFile {
        empty: text.trim().is_empty(),
        ..ParsedFile::default()
    };
    for Document { parsed, .. } in &documents {
        out.objects.extend(parsed.objects.iter().cloned());
        out.rejected.extend(parsed.rejected.iter().cloned());
        out.diagnostics.extend(parsed.diagnostics.iter().cloned());
        out.fallbacks.extend(parsed.fallbacks.iter().cloned());
    }
    finish_file(file, &mut out);
    Some((documents, out))
}

/// The pieces of `text` in stream order, each with whether a marker line
/// starts it: the text before the first marker (possibly empty), then the
/// text after each marker line. `None` when the file uses a construct this
/// splitter does not follow (see the module docs).
fn split(text: &str) -> Option<Vec<(Range<usize>, bool)>> {
    // A byte-order mark; a lone carriage return or a NEL, LS or PS, which
    // YAML takes for line breaks where this splitter does not cut.
    if text.contains(['\u{feff}', '\u{85}', '\u{2028}', '\u{2029}']) || lone_carriage_return(text) {
        return None;
    }
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut after_marker = false;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let next = at + line.len();
        if line.starts_with('%') {
            return None;
        }
        match marker(line) {
            Some(Marker::Start) => {
                pieces.push((start..at, after_marker));
                start = next;
                after_marker = true;
            }
            Some(Marker::Other) => return None,
            None => {}
        }
        at = next;
    }
    pieces.push((start..text.len(), after_marker));
    Some(pieces)
}

/// Whether `text` has a carriage return not followed by a line feed.
fn lone_carriage_return(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
}

/// What a line that starts with a document marker holds.
#[derive(Debug, PartialEq)]
enum Marker {
    /// `---` alone: a document starts on the next line.
    Start,
    /// Anything this splitter does not follow: `...`, or content after `---`.
    Other,
}

/// The marker `line` starts with, if any: `---` or `...` followed by a
/// space, a tab or the line's end (YAML's blanks are those two only).
fn marker(line: &str) -> Option<Marker> {
    let rest = line
        .strip_prefix("---")
        .map(|rest| (true, rest))
        .or_else(|| line.strip_prefix("...").map(|rest| (false, rest)));
    let (start, rest) = rest?;
    let rest = rest
        .strip_suffix('\n')
        .map(|r| r.strip_suffix('\r').unwrap_or(r))
        .unwrap_or(rest);
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None; // `---foo` is a plain scalar, not a marker
    }
    Some(if start && rest.chars().all(|c| c == ' ' || c == '\t') {
        Marker::Start
    } else {
        Marker::Other
    })
}

#[cfg(test)]
mod tests;
