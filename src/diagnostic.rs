//! Errors and warnings about user input, each naming the object, the field
//! path and the reason.

use crate::model::ObjectKey;
use serde::Serialize;
use std::fmt;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The input is served, but something in it was ignored (e.g. an unknown field).
    Warning,
    /// The object (or the named part of it) is not served.
    Error,
}

/// One problem found in user input.
///
/// Rendered as `FILE: Kind ns/name: field.path: message`, leaving out the
/// parts that are unknown.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// Warning or error.
    pub severity: Severity,
    /// File the object came from, when it came from a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The object, when known (a YAML syntax error names none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectKey>,
    /// Field path inside the object, e.g. `spec.http[2].match[0].uri.regex`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
    /// Why it is wrong.
    pub message: String,
}

impl Diagnostic {
    /// An error about `field` of `object`.
    pub fn error(object: &ObjectKey, field: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: None,
            object: Some(object.clone()),
            field: field.into(),
            message: message.into(),
        }
    }

    /// A warning about `field` of `object`.
    pub fn warning(
        object: &ObjectKey,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(object, field, message)
        }
    }

    /// Sets the file the object came from.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}
