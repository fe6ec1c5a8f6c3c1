//! Serial framings of SMP packets: console (base64 lines) and raw.
//!
//! Console framing (Zephyr `serial_util.c`, `smp_transport.rst`) wraps a packet as
//! `len u16 BE` (packet + 2) + packet + CRC-16/XMODEM BE over the packet, encodes that in
//! base64 and cuts it into lines of at most 127 bytes: a two-byte marker (`06 09` on the first
//! line, `04 14` on continuations), up to 124 base64 characters (cut on 4-character
//! boundaries, so every line decodes on its own) and `0a`. The same UART carries the device's
//! shell and logs, so the [`Decoder`] ignores every line that does not start with a marker.
//!
//! Raw framing (newer Zephyr, `CONFIG_UART_MCUMGR_RAW_PROTOCOL`) sends the packets back to
//! back; the header's `len` is the only delimiter, so nothing but the length bound guards
//! against noise.
//!
//! The decoder is pull-style and sans-IO: [`Decoder::push`] what arrived, then call
//! [`Decoder::next`] until it returns `None`. Damage yields a [`FrameError`] and the decoder
//! carries on with the next frame. Memory is bounded by `max_packet`: a frame line may be
//! longer than 127 bytes (some clients send a whole frame on one line) but never longer than
//! the base64 of the largest acceptable frame.

use std::collections::VecDeque;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crc::{CRC_16_XMODEM, Crc};
use serde::{Deserialize, Serialize};

use crate::smp::Header;

/// Marker that opens the first line of a console frame.
pub const START: [u8; 2] = [0x06, 0x09];
/// Marker that opens every further line of a console frame.
pub const CONTINUATION: [u8; 2] = [0x04, 0x14];
/// Longest line we send: marker, 124 base64 characters, newline (Zephyr's
/// `MCUMGR_SERIAL_MAX_FRAME`).
pub const MAX_LINE: usize = 127;
/// Longest console input line a device keeps: Zephyr's SMP shell and UART transports and
/// MCUboot's serial adapter (`BOOT_MAX_LINE_INPUT_LEN`) hold 128 bytes a line, marker and
/// newline included; the rest of a longer line is lost.
pub const DEVICE_LINE: usize = 128;
/// Base64 characters per line we send.
const LINE_CHARS: usize = MAX_LINE - 3;
/// Bytes of framing around a packet before base64: length field and CRC.
const ENVELOPE: usize = 4;

const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);

/// CRC-16/XMODEM (poly 0x1021, init 0), the console framing's checksum.
pub fn crc16(bytes: &[u8]) -> u16 {
    CRC16.checksum(bytes)
}

/// How packets are framed on the serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Framing {
    /// Base64 lines with markers, length and CRC, mixed with console text.
    #[default]
    Console,
    /// Packets back to back, delimited by the SMP header's length.
    Raw,
}

impl Framing {
    /// The largest packet (header and body) a device with this `buf_size` accepts.
    ///
    /// Over console framing Zephyr (`serial_util.c`, `mcumgr_serial_process_frag`) decodes a
    /// request into one buffer of `buf_size` bytes: the length field, the packet and the CRC
    /// must all fit, so the packet gets `buf_size - 4`. MCUboot's serial recovery counts the
    /// same way (`boot_serial_in_dec` into a `MCUBOOT_SERIAL_MAX_RECEIVE_SIZE` buffer). Raw
    /// framing has no length field or CRC: the packet itself gets the whole buffer. A frame
    /// over the limit is dropped without a reply.
    pub fn max_packet(self, buf_size: usize) -> usize {
        match self {
            Framing::Console => buf_size.saturating_sub(ENVELOPE),
            Framing::Raw => buf_size,
        }
    }

    /// The size of the decoded frame that carries a packet of `packet_len` bytes: what a
    /// device counts against its `buf_size`.
    pub fn decoded_len(self, packet_len: usize) -> usize {
        match self {
            Framing::Console => packet_len + ENVELOPE,
            Framing::Raw => packet_len,
        }
    }
}

/// Frames one SMP packet (header and body) for the line.
///
/// # Panics
///
/// With console framing, if the packet is longer than 65533 bytes, which the 16-bit length
/// field (packet + CRC) cannot express.
pub fn encode(framing: Framing, packet: &[u8]) -> Vec<u8> {
    match framing {
        Framing::Raw => packet.to_vec(),
        Framing::Console => {
            let len = u16::try_from(packet.len() + 2).expect("SMP packet longer than 65533 bytes");
            let mut raw = Vec::with_capacity(packet.len() + ENVELOPE);
            raw.extend_from_slice(&len.to_be_bytes());
            raw.extend_from_slice(packet);
            raw.extend_from_slice(&crc16(packet).to_be_bytes());
            let text = STANDARD.encode(raw);
            let mut out = Vec::with_capacity(text.len() + 3 * text.len().div_ceil(LINE_CHARS));
            for (i, chunk) in text.as_bytes().chunks(LINE_CHARS).enumerate() {
                out.extend_from_slice(if i == 0 { &START } else { &CONTINUATION });
                out.extend_from_slice(chunk);
                out.push(b'\n');
            }
            out
        }
    }
}

/// A damaged or unacceptable frame. The decoder has already moved on to the next one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The CRC at the end of the frame does not match its packet.
    #[error("frame CRC mismatch: found {found:#06x}, computed {computed:#06x}")]
    BadCrc {
        /// CRC carried by the frame.
        found: u16,
        /// CRC of the packet as received.
        computed: u16,
    },
    /// A frame line is not valid base64.
    #[error("frame line is not valid base64: {source}")]
    BadBase64 {
        /// What the base64 decoder found.
        #[source]
        source: base64::DecodeError,
    },
    /// A frame stopped before all the bytes its length field announced (a new frame
    /// started, or the caller gave up waiting).
    #[error("{}", truncated_message(*expected, *got))]
    Truncated {
        /// Bytes the frame announced (console: packet + CRC, after the length field; raw:
        /// header + body), 0 if its length never arrived.
        expected: usize,
        /// Bytes of those that arrived.
        got: usize,
    },
    /// More bytes arrived than the length field announced.
    #[error("frame longer than announced: length field says {expected} bytes, got {got}")]
    TrailingData {
        /// Bytes announced by the length field (packet + CRC).
        expected: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// The frame announces a packet larger than the decoder accepts.
    #[error("frame announces a {found}-byte packet, more than the maximum of {max}")]
    LengthTooLarge {
        /// Announced packet length.
        found: usize,
        /// Largest packet accepted.
        max: usize,
    },
    /// The length field cannot hold an SMP header and the CRC.
    #[error("frame length field {found} too small: required at least {}", Header::SIZE + 2)]
    LengthTooSmall {
        /// The length field's value.
        found: usize,
    },
    /// A continuation line arrived while no frame was open.
    #[error("frame continuation line without a start line")]
    ContinuationWithoutStart,
    /// A frame line is longer than any acceptable frame could need.
    #[error("frame line longer than {max} base64 characters")]
    LineTooLong {
        /// Longest line accepted, in base64 characters.
        max: usize,
    },
}

fn truncated_message(expected: usize, got: usize) -> String {
    if expected == 0 {
        format!("truncated frame: only {got} bytes, not even its length field")
    } else {
        format!("truncated frame: length field says {expected} bytes, got {got}")
    }
}

/// Pull-style reassembler: push bytes as they arrive, then call [`Decoder::next`] until it
/// returns `None`.
#[derive(Debug, Clone)]
pub struct Decoder {
    framing: Framing,
    max_packet: usize,
    /// Bytes pushed and not yet consumed (from `pos`).
    input: Vec<u8>,
    pos: usize,
    out: VecDeque<Result<Vec<u8>, FrameError>>,
    console: Console,
}

impl Decoder {
    /// A decoder for `framing` that accepts packets (header and body) of at most
    /// `max_packet` bytes.
    pub fn new(framing: Framing, max_packet: usize) -> Decoder {
        // A whole frame on one line is the longest line worth accepting.
        let max_line = LINE_CHARS.max(4 * (max_packet + ENVELOPE).div_ceil(3)) + 1;
        Decoder {
            framing,
            max_packet,
            input: Vec::new(),
            pos: 0,
            out: VecDeque::new(),
            console: Console {
                max_line,
                max_packet,
                ..Console::default()
            },
        }
    }

    /// The framing this decoder expects.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Adds bytes as they came off the line.
    pub fn push(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// The next complete packet (header and body), or an error for a damaged frame; `None`
    /// when the bytes pushed so far hold nothing more.
    #[allow(clippy::should_implement_trait)] // Not an iterator: `None` only means "push more".
    pub fn next(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some(item);
            }
            let progressed = match self.framing {
                Framing::Console => self.step_console(),
                Framing::Raw => self.step_raw(),
            };
            if !progressed {
                self.input.drain(..self.pos);
                self.pos = 0;
                return None;
            }
        }
    }

    /// Whether a frame has started but not finished, e.g. to tell "disconnected mid-reply"
    /// from "no reply" when the line goes quiet.
    pub fn pending(&self) -> bool {
        match self.framing {
            Framing::Console => self.console.in_frame,
            Framing::Raw => self.pos < self.input.len(),
        }
    }

    /// Drops everything buffered, including a partial frame, as after a timeout.
    pub fn clear(&mut self) {
        *self = Decoder::new(self.framing, self.max_packet);
    }

    /// Consumes console bytes until an item is ready; false once the input is exhausted.
    fn step_console(&mut self) -> bool {
        let Decoder {
            input,
            pos,
            out,
            console: c,
            ..
        } = self;
        while out.is_empty() {
            let rest = &input[*pos..];
            let Some(&first) = rest.first() else {
                return false;
            };
            if let Some(held) = c.held.take() {
                match (held, first) {
                    (0x06, 0x09) => c.start(out),
                    (0x04, 0x14) => c.continuation(out),
                    // Not a marker after all: an ordinary byte of whatever line this is.
                    _ => {
                        c.text(&[held], out);
                        continue;
                    }
                }
                *pos += 1;
                continue;
            }
            let run = rest
                .iter()
                .position(|b| matches!(b, b'\n' | 0x04 | 0x06))
                .unwrap_or(rest.len());
            c.text(&rest[..run], out);
            *pos += run;
            if let Some(&special) = rest.get(run) {
                *pos += 1;
                if special == b'\n' {
                    c.end_line(out);
                } else {
                    c.held = Some(special);
                }
            }
        }
        true
    }

    /// Takes one raw packet off the input; false when it needs more bytes.
    fn step_raw(&mut self) -> bool {
        let rest = &self.input[self.pos..];
        let Some(head) = rest.first_chunk::<{ Header::SIZE }>() else {
            return false;
        };
        let total = Header::SIZE + usize::from(u16::from_be_bytes([head[2], head[3]]));
        if total > self.max_packet {
            // Without markers there is no telling where the next packet starts: drop what
            // is buffered and start afresh with the next bytes that arrive.
            self.out.push_back(Err(FrameError::LengthTooLarge {
                found: total,
                max: self.max_packet,
            }));
            self.pos = self.input.len();
            return true;
        }
        let Some(packet) = rest.get(..total) else {
            return false;
        };
        self.out.push_back(Ok(packet.to_vec()));
        self.pos += total;
        true
    }
}

/// Console reassembly state between calls.
#[derive(Debug, Clone, Default)]
struct Console {
    /// Longest frame line accepted, in base64 characters (including a trailing `\r`).
    max_line: usize,
    /// Largest packet accepted.
    max_packet: usize,
    /// A possible first marker byte, waiting for the byte after it.
    held: Option<u8>,
    /// Collecting a frame line's base64 into `line`; otherwise the line is ignored.
    in_line: bool,
    line: Vec<u8>,
    /// A start line has been seen and the frame is not finished; decoded bytes in `frame`.
    in_frame: bool,
    frame: Vec<u8>,
    /// The frame in progress was reported as damaged: skip its continuation lines quietly.
    orphan: bool,
}

impl Console {
    fn start(&mut self, out: &mut Queue) {
        if self.in_frame {
            let (expected, got) = self.progress();
            out.push_back(Err(FrameError::Truncated { expected, got }));
        }
        self.frame.clear();
        self.line.clear();
        self.in_frame = true;
        self.in_line = true;
        self.orphan = false;
    }

    fn continuation(&mut self, out: &mut Queue) {
        if self.in_line {
            self.end_line(out);
        }
        if self.in_frame {
            self.line.clear();
            self.in_line = true;
        } else if !self.orphan {
            out.push_back(Err(FrameError::ContinuationWithoutStart));
            self.orphan = true;
        }
    }

    /// Ordinary bytes of the current line: base64 of a frame line, or text to ignore.
    fn text(&mut self, bytes: &[u8], out: &mut Queue) {
        if !self.in_line || bytes.is_empty() {
            return;
        }
        if self.line.len() + bytes.len() > self.max_line {
            out.push_back(Err(FrameError::LineTooLong { max: self.max_line }));
            self.abort();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, out: &mut Queue) {
        if !std::mem::take(&mut self.in_line) {
            return;
        }
        let text = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
        if let Err(source) = STANDARD.decode_vec(text, &mut self.frame) {
            out.push_back(Err(FrameError::BadBase64 { source }));
            return self.abort();
        }
        self.line.clear();
        let Some(len) = self.frame.first_chunk::<2>() else {
            return;
        };
        let len = usize::from(u16::from_be_bytes(*len));
        let result = if len < Header::SIZE + 2 {
            Err(FrameError::LengthTooSmall { found: len })
        } else if len - 2 > self.max_packet {
            Err(FrameError::LengthTooLarge {
                found: len - 2,
                max: self.max_packet,
            })
        } else {
            let got = self.frame.len() - 2;
            if got < len {
                return;
            }
            if got > len {
                Err(FrameError::TrailingData { expected: len, got })
            } else {
                let (packet, crc) = self.frame[2..].split_at(len - 2);
                let found = u16::from_be_bytes([crc[0], crc[1]]);
                let computed = crc16(packet);
                if found == computed {
                    Ok(packet.to_vec())
                } else {
                    Err(FrameError::BadCrc { found, computed })
                }
            }
        };
        match result {
            Ok(packet) => {
                out.push_back(Ok(packet));
                self.frame.clear();
                self.in_frame = false;
            }
            Err(e) => {
                out.push_back(Err(e));
                self.abort();
            }
        }
    }

    /// (announced, received) bytes of the frame in progress after the length field,
    /// counting the whole base64 groups of a line cut short.
    fn progress(&self) -> (usize, usize) {
        let mut frame = self.frame.clone();
        if self.in_line {
            let whole = self.line.len() / 4 * 4;
            // A line cut short may hold anything; what does not decode does not count.
            if let Ok(tail) = STANDARD.decode(&self.line[..whole]) {
                frame.extend_from_slice(&tail);
            }
        }
        match frame.first_chunk::<2>() {
            Some(len) => (usize::from(u16::from_be_bytes(*len)), frame.len() - 2),
            None => (0, frame.len()),
        }
    }

    /// Drops the frame in progress; its remaining lines are skipped without more errors.
    fn abort(&mut self) {
        self.in_line = false;
        self.line.clear();
        self.in_frame = false;
        self.frame.clear();
        self.orphan = true;
    }
}

type Queue = VecDeque<Result<Vec<u8>, FrameError>>;

impl Decoder {
    /// Reports a frame left unfinished when the caller stops waiting (a timeout, a closed
    /// port) as [`FrameError::Truncated`] and resets the decoder; `None` if no frame was
    /// pending. Call it after [`Decoder::next`] has returned `None`.
    pub fn finish(&mut self) -> Option<FrameError> {
        let err = match self.framing {
            Framing::Console if self.console.in_frame => {
                let (expected, got) = self.console.progress();
                FrameError::Truncated { expected, got }
            }
            Framing::Raw if self.pending() => {
                let rest = &self.input[self.pos..];
                let expected = match rest.get(2..4) {
                    Some(len) => Header::SIZE + usize::from(u16::from_be_bytes([len[0], len[1]])),
                    None => 0,
                };
                FrameError::Truncated {
                    expected,
                    got: rest.len(),
                }
            }
            _ => return None,
        };
        self.clear();
        Some(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_value() {
        assert_eq!(crc16(b"123456789"), 0x31c3);
    }

    #[test]
    fn params_read_vector() {
        let line = b"\x06\x09AAsIAAABAAAABqBzEw==\n";
        let packet = [0x08, 0, 0, 1, 0, 0, 0, 6, 0xa0];
        assert_eq!(encode(Framing::Console, &packet), line);
        let mut d = Decoder::new(Framing::Console, 256);
        d.push(line);
        assert_eq!(d.next(), Some(Ok(packet.to_vec())));
        assert_eq!(d.next(), None);
        assert!(!d.pending());
    }
}
