//! Property tests: round trips through both framings with log text and arbitrary split
//! points, recovery after corruption, and the fuzz body on arbitrary bytes.

use fieldkit_wire::framing::{self, Decoder, Framing};
use fieldkit_wire::smp::{Header, Op, Packet};
use proptest::prelude::*;

const MAX_PACKET: usize = 8 * 1024 + Header::SIZE;

fn arb_packet() -> impl Strategy<Value = Vec<u8>> {
    let op = prop_oneof![
        Just(Op::Read),
        Just(Op::ReadRsp),
        Just(Op::Write),
        Just(Op::WriteRsp)
    ];
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 0..=8 * 1024),
    ];
    (
        op,
        0u8..4,
        any::<u8>(),
        any::<u16>(),
        any::<u8>(),
        any::<u8>(),
        body,
    )
        .prop_map(|(op, version, flags, group, seq, id, body)| {
            let header = Header {
                op,
                version,
                flags,
                len: 0,
                group,
                seq,
                id,
            };
            Packet { header, body }.encode()
        })
}

/// Console text as devices print it: no SMP markers, lines usually ending in a newline.
fn arb_log() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        "[ -~]{0,80}\r?\n".prop_map(String::into_bytes),
        proptest::collection::vec(
            any::<u8>().prop_filter("no marker bytes", |b| *b != 4 && *b != 6),
            0..100
        )
        .prop_map(|mut v| {
            v.push(b'\n');
            v
        }),
    ]
}

/// Pushes `input` cut at `cuts` (positions taken modulo the length) and collects the items.
fn decode_split(
    framing: Framing,
    input: &[u8],
    cuts: &[usize],
) -> Vec<Result<Vec<u8>, framing::FrameError>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.push(0);
    points.push(input.len());
    points.sort_unstable();
    let mut decoder = Decoder::new(framing, MAX_PACKET);
    let mut items = Vec::new();
    for pair in points.windows(2) {
        decoder.push(&input[pair[0]..pair[1]]);
        items.extend(std::iter::from_fn(|| decoder.next()));
    }
    assert!(!decoder.pending(), "a frame left pending at the end");
    items
}

proptest! {
    #[test]
    fn console_round_trip(
        frames in proptest::collection::vec((arb_packet(), arb_log(), arb_log()), 1..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut input = Vec::new();
        for (packet, before, inside) in &frames {
            input.extend_from_slice(before);
            // Log lines may even come between the lines of one frame.
            for line in framing::encode(Framing::Console, packet).split_inclusive(|&b| b == b'\n') {
                input.extend_from_slice(line);
                input.extend_from_slice(inside);
            }
        }
        let items = decode_split(Framing::Console, &input, &cuts);
        let expected: Vec<_> = frames.iter().map(|(p, _, _)| Ok(p.clone())).collect();
        prop_assert_eq!(items, expected);
    }

    #[test]
    fn console_lines_are_zephyr_shaped(packet in arb_packet()) {
        let wire = framing::encode(Framing::Console, &packet);
        let lines: Vec<&[u8]> = wire.split_inclusive(|&b| b == b'\n').collect();
        for (i, line) in lines.iter().enumerate() {
            prop_assert!(line.len() <= framing::MAX_LINE);
            prop_assert_eq!(&line[..2], if i == 0 { &framing::START } else { &framing::CONTINUATION });
            prop_assert_eq!((line.len() - 3) % 4, 0, "split on 4-character boundaries");
            if i + 1 < lines.len() {
                prop_assert_eq!(line.len(), framing::MAX_LINE, "only the last line is short");
            }
        }
    }

    #[test]
    fn raw_round_trip(
        packets in proptest::collection::vec(arb_packet(), 1..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let input: Vec<u8> = packets.iter().flat_map(|p| framing::encode(Framing::Raw, p)).collect();
        let items = decode_split(Framing::Raw, &input, &cuts);
        prop_assert_eq!(items, packets.into_iter().map(Ok).collect::<Vec<_>>());
    }

    /// One damaged byte costs at most its own frame: the frames around it still decode,
    /// and no damaged frame is ever delivered as a packet (CRC-16 catches every error burst
    /// of up to 16 bits, and one base64 character carries 6).
    #[test]
    fn console_recovers_after_corruption(
        packets in proptest::collection::vec(arb_packet(), 3),
        at in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let frames: Vec<Vec<u8>> = packets.iter().map(|p| framing::encode(Framing::Console, p)).collect();
        let mut input = frames.concat();
        let start = frames[0].len();
        let i = start + at % frames[1].len();
        prop_assume!(input[i] != byte);
        input[i] = byte;

        let mut decoder = Decoder::new(Framing::Console, MAX_PACKET);
        decoder.push(&input);
        let items: Vec<_> = std::iter::from_fn(|| decoder.next()).collect();
        let oks: Vec<&Vec<u8>> = items.iter().filter_map(|r| r.as_ref().ok()).collect();
        prop_assert_eq!(oks.first(), Some(&&packets[0]));
        prop_assert_eq!(oks.last(), Some(&&packets[2]));
        match oks.len() {
            // The damage hit a spot the decoder tolerates (a lost newline before a marker).
            3 => prop_assert_eq!(oks[1], &packets[1]),
            // A frame whose start marker is gone looks like log text: it is skipped silently.
            // Any other lost frame is reported.
            2 => prop_assert!(i - start < 2 || items.iter().any(Result::is_err), "a lost frame is reported"),
            n => prop_assert!(false, "{} packets", n),
        }
    }

    #[test]
    fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        fieldkit_wire::fuzz::decode_all(&data);
    }

    /// Arbitrary input made of frame-like pieces reaches the decoder's deeper states.
    #[test]
    fn decoders_never_panic_on_frame_like_input(
        pieces in proptest::collection::vec(prop_oneof![
            Just(b"\x06\x09".to_vec()),
            Just(b"\x04\x14".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"AAsIAAABAAAABqBzEw==".to_vec()),
            "[A-Za-z0-9+/=]{0,200}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..16),
            arb_packet().prop_map(|p| framing::encode(Framing::Console, &p)),
        ], 0..24),
        max_packet in 0usize..600,
    ) {
        let data = pieces.concat();
        fieldkit_wire::fuzz::decode_all(&data);
        for framing in [Framing::Console, Framing::Raw] {
            let mut decoder = Decoder::new(framing, max_packet);
            decoder.push(&data);
            while let Some(item) = decoder.next() {
                if let Ok(packet) = item {
                    prop_assert!(packet.len() <= max_packet);
                }
            }
        }
    }
}
