//! Configuration errors: each names the file, the field and the value, and says what to fix.

use std::fmt;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The path given.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown field, or a value of the wrong type.
    #[error("{origin}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Syntax {
        /// The file (or other origin) parsed.
        origin: String,
        /// 1-based line of the offending text, when known.
        line: Option<usize>,
        /// The parser's message (names the field or value).
        message: String,
    },
    /// Well-formed, but some values do not make sense together.
    #[error("{origin}: {}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The file (or other origin) checked.
        origin: String,
        /// Every problem found.
        errors: Vec<FieldError>,
    },
}

/// One bad value: the field's path in the file, the value, and what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path, with indices for arrays (`port[1].device`).
    pub field: String,
    /// The offending value as written.
    pub value: String,
    /// What the value must be.
    pub reason: String,
}

impl FieldError {
    /// A field error.
    pub fn new(
        field: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {:?}: {}", self.field, self.value, self.reason)
    }
}
