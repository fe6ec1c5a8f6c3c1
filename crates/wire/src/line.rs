//! The text side of legacy line-command devices: commands out, reply lines in.
//!
//! A device of the "line" family (ST AN4657 style) takes a command terminated by the profile's
//! end-of-line and answers with one line of text, which the profile's regular expression reads.
//! This module is the pure part of that: [`command`] builds the bytes of a command,
//! [`LineSplitter`] cuts incoming bytes into lines (CR, LF and CRLF all end a line; a line is
//! bounded so a device that never sends a terminator cannot grow memory), and [`Pattern`]
//! matches a reply and hands back its named groups. The session (timeouts, draining stale
//! input, what a field means) lives in `fieldkit-core`.

use std::collections::{BTreeMap, VecDeque};

/// The longest reply line accepted by default.
pub const MAX_LINE: usize = 256;

/// Why a command could not be built or a reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// A line longer than the bound.
    #[error("a reply line longer than {max} bytes (found at least {found})")]
    TooLong {
        /// Bytes seen before giving up on the line.
        found: usize,
        /// The bound.
        max: usize,
    },
    /// A line that is not text.
    #[error("a reply line that is not UTF-8 text: {line:?}")]
    NotText {
        /// The line, lossily decoded.
        line: String,
    },
    /// A command that would not be one line.
    #[error("command {command:?} contains a line break; required one line")]
    MultiLineCommand {
        /// The command.
        command: String,
    },
    /// A regular expression that does not compile.
    #[error("reply pattern {pattern:?} is not a valid regular expression: {message}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// What the regex engine said.
        message: String,
    },
}

/// The bytes of `command` followed by `eol`.
pub fn command(command: &str, eol: &str) -> Result<Vec<u8>, LineError> {
    if command.contains(['\r', '\n']) {
        return Err(LineError::MultiLineCommand {
            command: command.to_owned(),
        });
    }
    let mut out = command.as_bytes().to_vec();
    out.extend_from_slice(eol.as_bytes());
    Ok(out)
}

/// Cuts a byte stream into lines. Empty lines are skipped: a CRLF pair ends one line, and
/// devices print blank lines around prompts.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    buf: Vec<u8>,
    /// The line under way overflowed; it is dropped up to its terminator.
    overflow: Option<usize>,
    lines: VecDeque<Result<String, LineError>>,
}

impl LineSplitter {
    /// A splitter for lines of at most `max` bytes.
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            max,
            buf: Vec::new(),
            overflow: None,
            lines: VecDeque::new(),
        }
    }

    /// Takes bytes that arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if let Some(found) = self.overflow.take() {
                    self.lines.push_back(Err(LineError::TooLong {
                        found,
                        max: self.max,
                    }));
                } else if !self.buf.is_empty() {
                    let line = std::mem::take(&mut self.buf);
                    self.lines
                        .push_back(String::from_utf8(line).map_err(|e| LineError::NotText {
                            line: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                        }));
                }
                continue;
            }
            if let Some(found) = &mut self.overflow {
                *found += 1;
            } else if self.buf.len() == self.max {
                self.overflow = Some(self.buf.len() + 1);
                self.buf.clear();
            } else {
                self.buf.push(b);
            }
        }
    }

    /// The next complete line, or why it could not be read.
    pub fn next_line(&mut self) -> Option<Result<String, LineError>> {
        self.lines.pop_front()
    }

    /// Bytes after the last complete line (the start of whatever follows a reply, such as a
    /// YMODEM receiver's first `C`), leaving the splitter empty.
    pub fn take_rest(&mut self) -> Vec<u8> {
        self.overflow = None;
        self.lines.clear();
        std::mem::take(&mut self.buf)
    }

    /// Forgets everything, e.g. before a new command.
    pub fn clear(&mut self) {
        self.take_rest();
    }
}

impl Default for LineSplitter {
    fn default() -> Self {
        LineSplitter::new(MAX_LINE)
    }
}

/// A reply pattern: a regular expression whose named groups are fields. It must match the
/// whole line (the profile's patterns are anchored with `^...$`).
#[derive(Debug, Clone)]
pub struct Pattern {
    regex: regex::Regex,
}

/// The named groups of a matched reply, by name; groups that did not take part are absent.
pub type Fields = BTreeMap<String, String>;

impl Pattern {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Pattern, LineError> {
        regex::Regex::new(pattern)
            .map(|regex| Pattern { regex })
            .map_err(|e| LineError::BadPattern {
                pattern: pattern.to_owned(),
                message: e.to_string(),
            })
    }

    /// The pattern's source.
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    /// The named groups that took part in the match, or `None` if `line` does not match.
    pub fn fields(&self, line: &str) -> Option<Fields> {
        let caps = self.regex.captures(line)?;
        Some(
            self.regex
                .capture_names()
                .flatten()
                .filter_map(|name| {
                    caps.name(name)
                        .map(|m| (name.to_owned(), m.as_str().to_owned()))
                })
                .collect(),
        )
    }

    /// Names of the pattern's named groups.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.regex.capture_names().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(chunks: &[&[u8]], max: usize, expect: &[&str], rest: &[u8]) {
        let mut s = LineSplitter::new(max);
        let mut got = Vec::new();
        for c in chunks {
            s.push(c);
            while let Some(l) = s.next_line() {
                got.push(match l {
                    Ok(l) => l,
                    Err(e) => format!("error: {e}"),
                });
            }
        }
        assert_eq!(got, expect);
        assert_eq!(s.take_rest(), rest);
    }

    #[test]
    fn lines_split_on_cr_lf_and_crlf() {
        check(&[b"A\r\nB\nC\rD"], 16, &["A", "B", "C"], b"D");
        check(&[b"A\r", b"\nB\r", b"\n"], 16, &["A", "B"], b"");
        check(&[b"\r\n\r\nREADY YMODEM\r\nC"], 16, &["READY YMODEM"], b"C");
        check(&[b"", b"x"], 16, &[], b"x");
    }

    #[test]
    fn long_and_binary_lines_are_errors_not_panics() {
        check(
            &[b"0123456789", b"abcdef\r\nok\n"],
            8,
            &[
                "error: a reply line longer than 8 bytes (found at least 16)",
                "ok",
            ],
            b"",
        );
        check(
            &[b"\xff\xfe\n"],
            8,
            &["error: a reply line that is not UTF-8 text: \"\u{fffd}\u{fffd}\""],
            b"",
        );
        // Memory stays bounded however long the line.
        let mut s = LineSplitter::new(8);
        for _ in 0..10_000 {
            s.push(&[b'x'; 100]);
        }
        assert!(s.buf.len() <= 8);
    }

    #[test]
    fn commands() {
        assert_eq!(command("*IDN?", "\r\n").unwrap(), b"*IDN?\r\n");
        assert_eq!(
            command("A\nB", "\r").unwrap_err().to_string(),
            "command \"A\\nB\" contains a line break; required one line"
        );
    }

    #[test]
    fn patterns_hand_back_named_groups() {
        let p = Pattern::new(r"^FW (?:(?P<version_firmware>\d+\.\d+\.\d+)|NONE) BL (?P<bl>\S+)$")
            .unwrap();
        let render = |line: &str| format!("{:?}", p.fields(line));
        assert_eq!(
            render("FW 3.4.0 BL 1.3.0"),
            r#"Some({"bl": "1.3.0", "version_firmware": "3.4.0"})"#
        );
        assert_eq!(render("FW NONE BL 1.3.0"), r#"Some({"bl": "1.3.0"})"#);
        assert_eq!(render("ERR"), "None");
        assert!(
            Pattern::new("(")
                .unwrap_err()
                .to_string()
                .contains("not a valid regular expression")
        );
    }
}
