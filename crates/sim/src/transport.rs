//! The device's serial input, as strict as the real transports: what reaches the SMP server
//! and what is lost on the way.
//!
//! Rules, and the code they follow:
//! - A console input line holds at most [`DEVICE_LINE`] bytes, marker and newline included;
//!   the rest of a longer line is lost (Zephyr `smp_shell.c` stops adding bytes when its line
//!   buffer is full, `uart_mcumgr.c` drops the line; MCUboot `serial_adapter.c` copies at most
//!   `BOOT_MAX_LINE_INPUT_LEN` bytes). A frame with a cut line then fails to decode.
//! - A request's decoded frame (length field, packet and CRC) must fit in `buf_size`: Zephyr
//!   `serial_util.c` (`mcumgr_serial_process_frag`) base64-decodes into one buffer of that size
//!   and MCUboot `boot_serial.c` (`boot_serial_in_dec`) likewise; a frame that does not fit
//!   is dropped, with no reply.
//! - Damaged frames (bad base64, CRC, length) are dropped without a reply too.
//!
//! Everything dropped is reported as an [`Input::Dropped`] with the rule it broke, so the IO
//! loop can log it and, in strict mode, turn the client's oversize frame into a failure.

use fieldkit_wire::framing::{DEVICE_LINE, Decoder, FrameError, Framing};
use fieldkit_wire::smp::Packet;

/// What the transport made of the bytes pushed.
#[derive(Debug)]
pub enum Input {
    /// A complete request.
    Packet(Packet),
    /// Something the device lost; the string says what and why.
    Dropped(Drop),
}

/// Why input was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drop {
    /// The client sent a frame larger than the device's buffer: a client error a real device
    /// answers with silence.
    Oversize {
        /// Decoded frame size the client announced.
        decoded: usize,
        /// The device's `buf_size`.
        buf_size: usize,
    },
    /// The client sent a console line longer than the device keeps: also a client error.
    LongLine {
        /// The line's length, newline included.
        found: usize,
    },
    /// A damaged frame (line noise): not the client's fault.
    Damaged(String),
}

impl Drop {
    /// Whether the client, not the line, broke a rule: strict mode fails on these.
    pub fn is_client_error(&self) -> bool {
        matches!(self, Drop::Oversize { .. } | Drop::LongLine { .. })
    }
}

impl std::fmt::Display for Drop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drop::Oversize { decoded, buf_size } => write!(
                f,
                "frame of {decoded} decoded bytes (length, packet and CRC) dropped: buf_size is {buf_size}"
            ),
            Drop::LongLine { found } => write!(
                f,
                "console line of {found} bytes cut to {DEVICE_LINE}: the frame it carried is lost"
            ),
            Drop::Damaged(why) => write!(f, "damaged frame dropped: {why}"),
        }
    }
}

/// The device side of the serial line.
#[derive(Debug)]
pub struct Transport {
    framing: Framing,
    buf_size: usize,
    decoder: Decoder,
    /// The console line under way: its length so far (kept bytes go to the decoder).
    line_len: usize,
}

impl Transport {
    /// A transport for `framing` with SMP buffers of `buf_size` bytes.
    pub fn new(framing: Framing, buf_size: usize) -> Transport {
        Transport {
            framing,
            buf_size,
            decoder: Decoder::new(framing, framing.max_packet(buf_size)),
            line_len: 0,
        }
    }

    /// Forgets a partial request, as a reboot or a replugged cable does.
    pub fn clear(&mut self) {
        self.decoder.clear();
        self.line_len = 0;
    }

    /// Takes bytes as they arrive; returns what they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Input> {
        let mut out = Vec::new();
        match self.framing {
            Framing::Raw => self.decoder.push(bytes),
            Framing::Console => {
                for &b in bytes {
                    self.line_len += 1;
                    if b == b'\n' {
                        if self.line_len > DEVICE_LINE {
                            // The line was cut: end what was kept, so it fails to decode.
                            self.decoder.push(b"\n");
                            out.push(Input::Dropped(Drop::LongLine {
                                found: self.line_len,
                            }));
                        } else {
                            self.decoder.push(b"\n");
                        }
                        self.line_len = 0;
                    } else if self.line_len < DEVICE_LINE {
                        // The last byte of a full buffer is the newline's place.
                        self.decoder.push(&[b]);
                    }
                }
            }
        }
        while let Some(frame) = self.decoder.next() {
            out.push(match frame {
                Ok(bytes) => match Packet::decode(&bytes) {
                    Ok(p) => Input::Packet(p),
                    Err(e) => Input::Dropped(Drop::Damaged(format!("malformed packet: {e}"))),
                },
                Err(FrameError::LengthTooLarge { found, .. }) => Input::Dropped(Drop::Oversize {
                    decoded: self.framing.decoded_len(found),
                    buf_size: self.buf_size,
                }),
                Err(e) => Input::Dropped(Drop::Damaged(e.to_string())),
            });
        }
        // A cut line's frame is reported once, as the long line; its decode error is noise.
        if out
            .iter()
            .any(|i| matches!(i, Input::Dropped(Drop::LongLine { .. })))
        {
            out.retain(|i| !matches!(i, Input::Dropped(Drop::Damaged(_))));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use fieldkit_wire::framing::{self, Framing};
    use fieldkit_wire::smp::{Op, Packet, os};

    use super::{Drop, Input, Transport};

    /// An echo request of exactly `size` bytes (header and body).
    fn echo(size: usize) -> Vec<u8> {
        (0..size)
            .map(|n| {
                Packet::request(
                    Op::Write,
                    os::GROUP,
                    os::ECHO,
                    0,
                    &os::EchoReq { d: "x".repeat(n) },
                )
                .encode()
            })
            .find(|p| p.len() == size)
            .expect("an echo of that size exists")
    }

    fn outcome(t: &mut Transport, wire: &[u8]) -> Vec<String> {
        t.push(wire)
            .into_iter()
            .map(|i| match i {
                Input::Packet(p) => format!("packet {}", p.encode().len()),
                Input::Dropped(d) => d.to_string(),
            })
            .collect()
    }

    #[test]
    fn the_decoded_frame_counts_against_buf_size() {
        let mut t = Transport::new(Framing::Console, 256);
        // Packets of 252 bytes make frames of exactly 256: accepted; 253 is one too many.
        let fits = echo(252);
        assert_eq!(
            outcome(&mut t, &framing::encode(Framing::Console, &fits)),
            ["packet 252"]
        );
        let over = echo(253);
        assert_eq!(
            outcome(&mut t, &framing::encode(Framing::Console, &over)),
            ["frame of 257 decoded bytes (length, packet and CRC) dropped: buf_size is 256"]
        );
        // The transport recovers at the next frame.
        assert_eq!(
            outcome(&mut t, &framing::encode(Framing::Console, &fits)),
            ["packet 252"]
        );
    }

    #[test]
    fn raw_frames_count_the_packet_alone() {
        let mut t = Transport::new(Framing::Raw, 256);
        let fits = echo(256);
        assert_eq!(outcome(&mut t, &fits), ["packet 256"]);
        let over = echo(257);
        let got = outcome(&mut t, &over);
        assert!(
            matches!(&got[..], [d] if d.starts_with("frame of 257 decoded")),
            "{got:?}"
        );
    }

    #[test]
    fn console_lines_over_128_bytes_are_cut() {
        let packet = echo(100);
        let mut t = Transport::new(Framing::Console, 1024);
        // The whole frame on one line, as some clients send it: 2 + base64 + 1 > 128.
        let raw = framing::encode(Framing::Console, &packet);
        let mut one_line = vec![0x06, 0x09];
        for line in raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            one_line.extend_from_slice(&line[2..]);
        }
        one_line.push(b'\n');
        assert!(one_line.len() > 128);
        let got = t.push(&one_line);
        assert!(
            matches!(&got[..], [Input::Dropped(Drop::LongLine { found })] if *found == one_line.len()),
            "{got:?}"
        );
        // Lines of at most 128 bytes, as Zephyr cuts them, arrive whole.
        assert_eq!(outcome(&mut t, &raw), ["packet 100"]);
    }

    #[test]
    fn a_line_of_exactly_128_bytes_is_kept() {
        // 2 marker bytes + 124 base64 + newline = 127; pad the base64 with a CR to reach 128.
        let packet = echo(104);
        let raw = framing::encode(Framing::Console, &packet);
        let first_end = raw.iter().position(|&b| b == b'\n').unwrap();
        assert_eq!(first_end + 1, 127);
        let mut wire = raw[..first_end].to_vec();
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(&raw[first_end + 1..]);
        let mut t = Transport::new(Framing::Console, 1024);
        assert_eq!(outcome(&mut t, &wire), ["packet 104"]);
    }
}
