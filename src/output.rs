//! Printing: one JSON document under `--json`, text otherwise; errors on one line.
//!
//! Everything printed goes through `fieldkit_inert`: device and file strings (serial numbers,
//! model names, file names) cannot move the cursor, rewrite a line or reorder text, whether
//! they arrive as text, as JSON or inside an error.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

/// Where command results go.
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Output {
        Output { json }
    }

    /// Whether `--json` was given.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// Prints the result: `value` as JSON, or `text` for people.
    pub(crate) fn print<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            let doc = serde_json::to_string_pretty(value).unwrap_or_default();
            let _ = writeln!(stdout, "{}", fieldkit_inert::json(&doc));
        } else {
            let _ = write!(stdout, "{}", fieldkit_inert::terminal_lines(&text()));
        }
        let _ = stdout.flush();
    }

    /// Prints one line immediately (progress, simulator events): a JSON object per line under
    /// `--json`.
    pub(crate) fn line<T: Serialize>(&self, value: &T, text: &str) {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            let doc = serde_json::to_string(value).unwrap_or_default();
            let _ = writeln!(stdout, "{}", fieldkit_inert::json(&doc));
        } else {
            let _ = writeln!(stdout, "{}", fieldkit_inert::terminal_lines(text));
        }
        let _ = stdout.flush();
    }

    /// Reports a failure on stderr, on one line, and returns the exit code.
    pub(crate) fn fail(&self, error: &anyhow::Error) -> ExitCode {
        let chain: Vec<String> = error
            .chain()
            .map(|e| e.to_string().replace('\n', "; "))
            .collect();
        // Errors that already include their cause's text would repeat it: keep the longest
        // distinct pieces only.
        let mut parts: Vec<&str> = Vec::new();
        for c in &chain {
            if !parts.iter().any(|p| p.contains(c.as_str())) {
                parts.push(c);
            }
        }
        eprintln!("error: {}", fieldkit_inert::terminal(&parts.join(": ")));
        ExitCode::FAILURE
    }
}
