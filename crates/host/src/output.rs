//! What a host command produces: text for a person (the default) and a JSON value for scripts
//! (`--json`). Every command builds both from the same decoded data.

use serde::Serialize;

/// A command's result.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// Lines for a person, newline-terminated.
    pub text: String,
    /// The same facts as one JSON value (an object).
    pub json: serde_json::Value,
    /// Parts that failed although the command produced output (e.g. one path of several):
    /// one line each on stderr, and exit status 2.
    pub failures: Vec<String>,
}

impl Output {
    pub fn new(text: String, json: serde_json::Value) -> Output {
        Output {
            text,
            json,
            failures: Vec::new(),
        }
    }

    /// `data` serialized as the JSON side.
    pub fn from_serialize(text: String, data: &impl Serialize) -> Output {
        let json = serde_json::to_value(data).unwrap_or_else(
            |e| serde_json::json!({ "error": format!("cannot serialize the output: {e}") }),
        );
        Output {
            text,
            json,
            failures: Vec::new(),
        }
    }

    /// What the CLI prints: pretty JSON or the text.
    pub fn render(&self, json: bool) -> String {
        if json {
            let mut s = serde_json::to_string_pretty(&self.json).unwrap_or_default();
            s.push('\n');
            s
        } else {
            self.text.clone()
        }
    }
}

/// Bytes as lowercase hex without separators.
pub fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

/// Text as sent, with trailing spaces and NULs removed (INQUIRY's ASCII fields).
pub fn ascii_field(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_end_matches([' ', '\0'])
        .to_string()
}
