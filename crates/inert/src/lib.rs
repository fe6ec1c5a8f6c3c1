//! Text that came from a device or a file, made inert before a person's tool interprets it.
//!
//! A device chooses its own serial number, model name and version strings, and a file chooses
//! its own name. Printed raw, such a string can rewrite the terminal (an escape sequence that
//! moves the cursor back over the "Serial" line, a carriage return, a bidirectional override that
//! reorders what is shown) or run in a manager's spreadsheet (a cell starting with `=` is a
//! formula: `=HYPERLINK(...)`). This crate is the one place that rule lives; the CLI, both CSV
//! exports (the laptop's and the hub's) and anything else that writes such text to a person go
//! through it. The hub's dashboard shows text through DOM text nodes, which are inert by
//! construction.
//!
//! The functions are total and allocation-free when nothing needs changing:
//!
//! - [`terminal`] escapes every control character (C0, DEL, C1), every Unicode bidirectional
//!   control, and the line and paragraph separators, as `\x1b`, `\n`, `\u{202e}`: what the
//!   device sent stays visible, and nothing it sent acts. [`terminal_lines`] does the same to
//!   a whole block of text but keeps its line breaks, for output printed as a whole.
//! - [`json`] does it to serialised JSON, as `\u009b` escapes, which keep the document's
//!   meaning (JSON itself escapes only C0).
//! - [`csv_cell`] prefixes a `'` to a cell that a spreadsheet would read as a formula (first
//!   character `=`, `+`, `-`, `@`, tab or carriage return, as OWASP's CSV-injection guidance
//!   lists them), and escapes control characters the same way as [`terminal`]. Quoting stays
//!   the CSV writer's job.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal or a cell as itself.
fn acts(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200e}' | '\u{200f}'          // Arabic letter mark, LRM, RLM
            | '\u{202a}'..='\u{202e}'                     // embeddings and overrides
            | '\u{2066}'..='\u{2069}'                     // isolates
            | '\u{2028}' | '\u{2029}'                     // line and paragraph separators
        )
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        if !acts(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
        }
    }
}

/// `s` with every character that would act on a terminal escaped (see the crate docs).
pub fn terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(acts) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    escape(s, &mut out);
    Cow::Owned(out)
}

/// A block of text for a terminal: as [`terminal`], except that its line breaks (`\n`) stay.
pub fn terminal_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && acts(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        escape(line, &mut out);
    }
    Cow::Owned(out)
}

/// Serialised JSON with every character that would act on a terminal written as a `\uXXXX`
/// escape: the same document, safe to show. Outside strings JSON holds only ASCII structure
/// and whitespace, which is left alone.
pub fn json(s: &str) -> Cow<'_, str> {
    let needs = |c: char| acts(c) && !matches!(c, '\n' | '\r' | '\t');
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{:04x}", u);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The characters that make a spreadsheet read a cell as a formula when they come first.
pub const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `s` as a CSV cell that a spreadsheet shows as text (see the crate docs).
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    let formula = s.starts_with(FORMULA_STARTS);
    if !formula && !s.chars().any(acts) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    if formula {
        out.push('\'');
    }
    escape(s, &mut out);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: fn(&str) -> Cow<'_, str>, cases: &[(&str, &str)]) {
        for (input, want) in cases {
            assert_eq!(f(input), *want, "{input:?}");
        }
    }

    #[test]
    fn terminal_escapes_what_acts() {
        check(
            terminal,
            &[
                ("P7-004217", "P7-004217"),
                ("", ""),
                ("Größe 5 µl", "Größe 5 µl"),
                ("\x1b[2K\rSerial: FAKE", "\\x1b[2K\\rSerial: FAKE"),
                ("a\nb\tc", "a\\nb\\tc"),
                ("bell\x07", "bell\\x07"),
                ("del\x7f", "del\\x7f"),
                ("c1\u{9b}31m", "c1\\x9b31m"),
                ("abc\u{202e}txt.exe", "abc\\u{202e}txt.exe"),
                ("iso\u{2066}x\u{2069}", "iso\\u{2066}x\\u{2069}"),
                ("line\u{2028}sep", "line\\u{2028}sep"),
                ("=HYPERLINK(\"x\")", "=HYPERLINK(\"x\")"),
            ],
        );
    }

    #[test]
    fn csv_cells_are_never_formulas() {
        check(
            csv_cell,
            &[
                ("P7-004217", "P7-004217"),
                ("", ""),
                (
                    "=HYPERLINK(\"http://x\",\"y\")",
                    "'=HYPERLINK(\"http://x\",\"y\")",
                ),
                ("+1", "'+1"),
                ("-1+2", "'-1+2"),
                ("@SUM(A1)", "'@SUM(A1)"),
                ("\t=1", "'\\t=1"),
                ("\r=1", "'\\r=1"),
                ("a=b", "a=b"),
                ("x\n=1", "x\\n=1"),
                ("\x1b]8;;http://x\x07", "\\x1b]8;;http://x\\x07"),
            ],
        );
    }

    #[test]
    fn blocks_keep_their_lines_and_json_keeps_its_meaning() {
        check(
            terminal_lines,
            &[
                ("a\nb", "a\nb"),
                ("Serial: \x1b[1AP7\r\nok", "Serial: \\x1b[1AP7\\r\nok"),
            ],
        );
        let value = "\u{9b}31m\u{202e}\x7f=1";
        let text = serde_json_like(value);
        let inert = json(&text);
        assert_eq!(inert, "\"\\u009b31m\\u202e\\u007f=1\"");
        assert!(!inert.chars().any(acts));
    }

    /// What a JSON serialiser writes for a string: C0 escaped, the rest verbatim.
    fn serde_json_like(s: &str) -> String {
        format!("\"{s}\"")
    }

    #[test]
    fn unchanged_text_is_borrowed() {
        assert!(matches!(terminal("plain"), Cow::Borrowed(_)));
        assert!(matches!(csv_cell("plain"), Cow::Borrowed(_)));
    }
}
