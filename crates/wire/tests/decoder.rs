//! The reassembler on bad input: every kind of damage gives its typed error and the decoder
//! recovers at the next frame. One table per framing, one helper that feeds each case whole
//! and byte by byte and expects the same items both ways.

use fieldkit_wire::framing::{self, Decoder, FrameError, Framing};
use fieldkit_wire::smp::{Op, Packet, os};

const MAX: usize = 256;

type Item = Result<Vec<u8>, FrameError>;

/// A small valid packet: an echo of `text`.
fn packet(text: &str) -> Vec<u8> {
    Packet::request(
        Op::Write,
        os::GROUP,
        os::ECHO,
        1,
        &os::EchoReq { d: text.into() },
    )
    .encode()
}

fn console(packet: &[u8]) -> Vec<u8> {
    framing::encode(Framing::Console, packet)
}

/// A console frame whose decoded content (length field, packet, CRC) is `raw`, on one line.
fn console_raw(raw: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let mut out = b"\x06\x09".to_vec();
    out.extend(
        base64::engine::general_purpose::STANDARD
            .encode(raw)
            .bytes(),
    );
    out.push(b'\n');
    out
}

fn decode(framing: Framing, max: usize, chunks: &[&[u8]]) -> Vec<Item> {
    let mut decoder = Decoder::new(framing, max);
    let mut items = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        items.extend(std::iter::from_fn(|| decoder.next()));
    }
    items
}

fn check(framing: Framing, name: &str, input: &[u8], expected: &[Item]) {
    let whole = decode(framing, MAX, &[input]);
    assert_eq!(whole, expected, "{name}: pushed whole");
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(
        decode(framing, MAX, &bytes),
        expected,
        "{name}: pushed byte by byte"
    );
}

#[test]
fn console_cases() {
    let a = packet("a");
    let b = packet("b");
    let fa = console(&a);
    let fb = console(&b);
    let big = Packet {
        body: vec![0x60; 200],
        ..Packet::decode(&a).unwrap()
    }
    .encode();
    let fbig = console(&big);
    let oversized = Packet {
        body: vec![0x60; 400],
        ..Packet::decode(&a).unwrap()
    }
    .encode();
    assert!(
        fbig.iter().filter(|&&c| c == b'\n').count() > 2,
        "multi-line frame"
    );
    let first_line_of_big = &fbig[..=fbig.iter().position(|&c| c == b'\n').unwrap()];

    let crc = framing::crc16(&a);
    let bad_crc = console_raw(
        &[
            &(a.len() as u16 + 2).to_be_bytes()[..],
            &a,
            &(crc ^ 1).to_be_bytes(),
        ]
        .concat(),
    );

    let mut bad_b64 = fa.clone();
    bad_b64[5] = b'!';

    let mut crlf = fa.clone();
    crlf.insert(crlf.len() - 1, b'\r');

    let len_field = |n: u16| {
        let mut raw = n.to_be_bytes().to_vec();
        raw.extend_from_slice(&a);
        raw.extend_from_slice(&framing::crc16(&a).to_be_bytes());
        console_raw(&raw)
    };

    let cases: Vec<(&str, Vec<u8>, Vec<Item>)> = vec![
        ("one frame", fa.clone(), vec![Ok(a.clone())]),
        ("nothing", vec![], vec![]),
        ("multi-line frame", fbig.clone(), vec![Ok(big.clone())]),
        (
            "log text around and between frames",
            [
                &b"*** Booting Zephyr OS build v3.7.0 ***\r\n"[..],
                &fa,
                b"[00:00:01.000,000] <inf> app: tick\r\nuart:~$ ",
                &fb,
                b"trailing log\n",
            ]
            .concat(),
            vec![Ok(a.clone()), Ok(b.clone())],
        ),
        (
            "log text between the lines of one frame",
            fbig.split_inclusive(|&c| c == b'\n')
                .flat_map(|line| [line, b"<dbg> interleaved\n"].concat())
                .collect(),
            vec![Ok(big.clone())],
        ),
        (
            "binary garbage between frames",
            [
                &[0x00, 0xff, 0x06, 0x06, 0x04, 0x0a, 0x09, 0x14, 0x80][..],
                &fa,
                &[0x06, 0x41, 0x04],
                &fb,
            ]
            .concat(),
            vec![Ok(a.clone()), Ok(b.clone())],
        ),
        ("CRLF line ending", crlf, vec![Ok(a.clone())]),
        (
            "bad CRC, then recovery",
            [&bad_crc[..], &fb].concat(),
            vec![
                Err(FrameError::BadCrc {
                    found: crc ^ 1,
                    computed: crc,
                }),
                Ok(b.clone()),
            ],
        ),
        (
            "bad base64, then recovery",
            [&bad_b64[..], &fb].concat(),
            vec![
                Err(FrameError::BadBase64 {
                    source: base64::DecodeError::InvalidByte(3, b'!'),
                }),
                Ok(b.clone()),
            ],
        ),
        (
            "truncated multi-line frame, then a new frame",
            [first_line_of_big, &fb].concat(),
            vec![
                Err(FrameError::Truncated {
                    expected: big.len() + 2,
                    got: 93 - 2,
                }),
                Ok(b.clone()),
            ],
        ),
        (
            "frame cut mid-line, then a new frame",
            [&fa[..10], &fb].concat(),
            vec![
                Err(FrameError::Truncated {
                    expected: a.len() + 2,
                    got: 4,
                }),
                Ok(b.clone()),
            ],
        ),
        (
            "frame cut before its length arrived",
            [&fa[..4], &fb].concat(),
            vec![
                Err(FrameError::Truncated {
                    expected: 0,
                    got: 0,
                }),
                Ok(b.clone()),
            ],
        ),
        (
            "length field larger than any buffer",
            [&len_field(0xffff)[..], &fb].concat(),
            vec![
                Err(FrameError::LengthTooLarge {
                    found: 0xfffd,
                    max: MAX,
                }),
                Ok(b.clone()),
            ],
        ),
        (
            "length field larger than max_packet, continuation lines skipped",
            [&console(&vec![0x42; 400])[..], &fb].concat(),
            vec![
                Err(FrameError::LengthTooLarge {
                    found: 400,
                    max: MAX,
                }),
                Ok(b.clone()),
            ],
        ),
        (
            "length field too small",
            [&len_field(3)[..], &fb].concat(),
            vec![Err(FrameError::LengthTooSmall { found: 3 }), Ok(b.clone())],
        ),
        (
            "length field shorter than the frame",
            [&len_field(a.len() as u16)[..], &fb].concat(),
            vec![
                Err(FrameError::TrailingData {
                    expected: a.len(),
                    got: a.len() + 2,
                }),
                Ok(b.clone()),
            ],
        ),
        (
            "continuation lines without a start line, reported once",
            [&fbig[first_line_of_big.len()..], &fb].concat(),
            vec![Err(FrameError::ContinuationWithoutStart), Ok(b.clone())],
        ),
        (
            "line longer than any frame",
            [&b"\x06\x09"[..], &[b'A'; 2000], b"\n", &fb].concat(),
            vec![
                Err(FrameError::LineTooLong {
                    max: 4 * (MAX + 4).div_ceil(3) + 1,
                }),
                Ok(b.clone()),
            ],
        ),
        (
            "whole oversized frame on one line",
            console_raw(
                &[
                    &(oversized.len() as u16 + 2).to_be_bytes()[..],
                    &oversized,
                    &framing::crc16(&oversized).to_be_bytes(),
                ]
                .concat(),
            ),
            vec![Err(FrameError::LineTooLong {
                max: 4 * (MAX + 4).div_ceil(3) + 1,
            })],
        ),
    ];
    for (name, input, expected) in cases {
        check(Framing::Console, name, &input, &expected);
    }

    // A frame on one line longer than 127 bytes is fine when the packet is within bounds.
    let long = console_raw(
        &[
            &(a.len() as u16 + 2).to_be_bytes()[..],
            &a,
            &crc.to_be_bytes(),
        ]
        .concat(),
    );
    assert_eq!(decode(Framing::Console, MAX, &[&long]), [Ok(a.clone())]);
    let one_line = console_raw(
        &[
            &(big.len() as u16 + 2).to_be_bytes()[..],
            &big,
            &framing::crc16(&big).to_be_bytes(),
        ]
        .concat(),
    );
    assert!(one_line.len() > 127);
    assert_eq!(
        decode(Framing::Console, 1024, &[&one_line]),
        [Ok(big.clone())]
    );
}

#[test]
fn console_pending_and_finish() {
    let big = Packet {
        body: vec![0x60; 600],
        ..Packet::decode(&packet("a")).unwrap()
    }
    .encode();
    let frame = console(&big);
    let mut decoder = Decoder::new(Framing::Console, 1024);
    assert!(!decoder.pending());
    decoder.push(b"log text without a frame\n");
    assert_eq!(decoder.next(), None);
    assert!(!decoder.pending());

    decoder.push(&frame[..200]);
    assert_eq!(decoder.next(), None);
    assert!(decoder.pending(), "a started frame is pending");
    assert_eq!(
        decoder.finish(),
        Some(FrameError::Truncated {
            expected: big.len() + 2,
            got: 142
        })
    );
    assert!(!decoder.pending());
    assert_eq!(decoder.finish(), None);

    decoder.push(&frame);
    assert_eq!(decoder.next(), Some(Ok(big)));
    assert!(!decoder.pending());
}

#[test]
fn raw_cases() {
    let a = packet("a");
    let b = packet("b");
    let mut huge = a.clone();
    huge[2..4].copy_from_slice(&1000u16.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>, Vec<Item>)> = vec![
        ("one packet", a.clone(), vec![Ok(a.clone())]),
        (
            "back to back",
            [&a[..], &b].concat(),
            vec![Ok(a.clone()), Ok(b.clone())],
        ),
        ("partial packet waits", a[..a.len() - 1].to_vec(), vec![]),
        (
            "length larger than max_packet",
            huge[..8].to_vec(),
            vec![Err(FrameError::LengthTooLarge {
                found: 1008,
                max: MAX,
            })],
        ),
    ];
    for (name, input, expected) in cases {
        check(Framing::Raw, name, &input, &expected);
    }

    // After a bad length the buffered bytes are dropped and decoding resumes with new ones.
    let mut decoder = Decoder::new(Framing::Raw, MAX);
    decoder.push(&[&huge[..], &a].concat());
    assert_eq!(
        decoder.next(),
        Some(Err(FrameError::LengthTooLarge {
            found: 1008,
            max: MAX
        }))
    );
    assert_eq!(decoder.next(), None);
    assert!(!decoder.pending());
    decoder.push(&b);
    assert_eq!(decoder.next(), Some(Ok(b.clone())));

    decoder.push(&a[..5]);
    assert_eq!(decoder.next(), None);
    assert!(decoder.pending());
    assert_eq!(
        decoder.finish(),
        Some(FrameError::Truncated {
            expected: a.len(),
            got: 5
        })
    );
    assert!(!decoder.pending());
}

#[test]
fn error_messages_name_found_and_required() {
    let cases = [
        (
            FrameError::BadCrc {
                found: 0x1234,
                computed: 0xabcd,
            },
            "found 0x1234, computed 0xabcd",
        ),
        (
            FrameError::Truncated {
                expected: 11,
                got: 4,
            },
            "length field says 11 bytes, got 4",
        ),
        (
            FrameError::LengthTooLarge {
                found: 65533,
                max: 256,
            },
            "65533-byte packet, more than the maximum of 256",
        ),
        (
            FrameError::LengthTooSmall { found: 3 },
            "field 3 too small: required at least 10",
        ),
        (FrameError::LineTooLong { max: 349 }, "longer than 349"),
    ];
    for (err, want) in cases {
        assert!(err.to_string().contains(want), "{err} lacks {want:?}");
    }
}
