//! A config file's documents, each parsed once: when a file changes, only
//! the documents whose text changed are parsed again, so one WorkloadEntry
//! edited in a file of 400 objects costs one document's parse rather than
//! the file's.
//!
//! The file is split at YAML's document markers: a line that is `---` and
//! nothing else (trailing white space allowed) starts a document, and the
//! text before the first marker is a document when it holds more than
//! blank lines and comments. YAML 1.2 forbids a marker at the start of a
//! line inside any scalar (production `c-forbidden`), so a marker line
//! always separates documents. A file using what this splitter does not
//! follow — directives (`%YAML`, `%TAG`), document end markers (`...`),
//! content after a marker on its line (`--- !tag`, `--- # note`), a
//! byte-order mark — is parsed whole, with
//! [`parse_documents`](super::parse::parse_documents). So is a file with a
//! document that does not parse alone (a syntax error, whose message then
//! carries its line in the whole file) or that makes the file unreadable
//! (the store then keeps the file's last good content, and the whole-file
//! parse decides what else to report).
//!
//! A document parsed alone gives what it gives within the file, numbered
//! by its position: a document is reused only at the same position with
//! the same text, so its diagnostics still name the right document.

use super::parse::{finish_file, parse_documents, parse_one_document, ParsedFile};
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
    /// Its bytes in the file's text.
    range: Range<usize>,
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
    let ranges = split(text)?;
    let mut documents = Vec::with_capacity(ranges.len());
    for (index, range) in ranges.into_iter().enumerate() {
        let unchanged = previous
            .and_then(|p| {
                let old = p.documents.get(index)?;
                Some((&p.text[old.range.clone()], &old.parsed))
            })
            .filter(|(old, _)| *old == &text[range.clone()])
            .map(|(_, parsed)| parsed.clone());
        let parsed = match unchanged {
            Some(parsed) => parsed,
            None => parse_one_document(file, index, &text[range.clone()])?,
        };
        if parsed.unreadable {
            return None;
        }
        documents.push(Document { range, parsed });
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

/// Byte ranges of the documents of `text` in stream order (a marker line
/// belongs to no document); `None` when the file uses a construct this
/// splitter does not follow (see the module docs).
fn split(text: &str) -> Option<Vec<Range<usize>>> {
    if text.starts_with('\u{feff}') {
        return None;
    }
    let mut documents = Vec::new();
    let mut start = 0;
    // Whether the current document began at a marker (it then counts even
    // when empty), and whether it holds more than blank lines and comments.
    let mut explicit = false;
    let mut content = false;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let next = at + line.len();
        if line.starts_with('%') {
            return None;
        }
        if let Some(marker) = marker(line) {
            if marker != Marker::Start {
                return None;
            }
            if explicit || content {
                documents.push(start..at);
            }
            start = next;
            explicit = true;
            content = false;
        } else {
            let trimmed = line.trim_start();
            content |= !trimmed.is_empty() && !trimmed.starts_with('#');
        }
        at = next;
    }
    if explicit || content {
        documents.push(start..text.len());
    }
    Some(documents)
}

/// What a line that starts with a document marker holds.
#[derive(Debug, PartialEq)]
enum Marker {
    /// `---` alone: a document starts on the next line.
    Start,
    /// Anything this splitter does not follow: `...`, or content after `---`.
    Other,
}

/// The marker `line` starts with, if any: `---` or `...` followed by white
/// space or the end of the line.
fn marker(line: &str) -> Option<Marker> {
    let rest = line
        .strip_prefix("---")
        .map(|rest| (true, rest))
        .or_else(|| line.strip_prefix("...").map(|rest| (false, rest)));
    let (start, rest) = rest?;
    if !(rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n'])) {
        return None; // `---foo` is a plain scalar, not a marker
    }
    Some(if start && rest.trim().is_empty() {
        Marker::Start
    } else {
        Marker::Other
    })
}

#[cfg(test)]
mod tests;
