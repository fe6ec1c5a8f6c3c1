//! YMODEM against known vectors, scripted peers, and itself over a damaged line.

use proptest::prelude::*;

use super::*;

/// Renders what a side wrote, one token per control byte or block.
fn render(bytes: &[u8], check: Check) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let len = match b {
            SOH => 3 + 128 + check.len(),
            STX => 3 + 1024 + check.len(),
            _ => 1,
        };
        out.push(match b {
            SOH | STX if i + len <= bytes.len() => {
                format!("{}#{}", if b == SOH { "SOH" } else { "STX" }, bytes[i + 1])
            }
            EOT => "EOT".into(),
            ACK => "ACK".into(),
            NAK => "NAK".into(),
            CAN => "CAN".into(),
            CRC_REQUEST => "C".into(),
            other => format!("{other:02x}"),
        });
        i += len;
    }
    out.join(" ")
}

fn render_events(r: &mut Receiver) -> String {
    let mut out = Vec::new();
    while let Some(e) = r.poll_event() {
        out.push(match e {
            RxEvent::FileStart { header: Some(h) } => format!("start {} {:?}", h.name, h.size),
            RxEvent::FileStart { header: None } => "start xmodem".into(),
            RxEvent::Data { block, bytes } => format!("data {block} {}", bytes.len()),
            RxEvent::Duplicate { block } => format!("dup {block}"),
            RxEvent::FileEnd { received } => format!("end {received}"),
        });
    }
    out.join(", ")
}

/// One step of a script driving one side.
enum Step<'a> {
    /// Bytes from the peer.
    In(&'a [u8]),
    /// The caller's wait ran out.
    Timeout,
    /// The caller cancels.
    Cancel,
}

/// Drives a receiver through `steps` and renders, per step, what it wrote and reported.
#[track_caller]
fn check_receiver(config: ReceiverConfig, steps: &[Step<'_>], expect: &str) {
    let mut r = Receiver::new(config);
    let mut lines = vec![render(&r.transmit().unwrap_or_default(), config.check)];
    for step in steps {
        match step {
            Step::In(b) => r.receive(b),
            Step::Timeout => r.timeout(),
            Step::Cancel => r.cancel(),
        }
        let mut line = render(&r.transmit().unwrap_or_default(), config.check);
        let events = render_events(&mut r);
        if !events.is_empty() {
            line = format!("{line} [{events}]");
        }
        lines.push(line);
    }
    lines.push(format!("{:?}", r.status()));
    let got = lines.join(" | ");
    assert_eq!(got, expect, "\n got: {got}\nwant: {expect}");
}

/// Drives a sender of `data` through `steps`, rendering what it wrote after each.
#[track_caller]
fn check_sender(data: &[u8], protocol: Protocol, steps: &[Step<'_>], expect: &str) {
    let mut s = Sender::new("fw.bin", data.to_vec(), protocol).unwrap();
    let mut lines = Vec::new();
    for step in steps {
        match step {
            Step::In(b) => s.receive(b),
            Step::Timeout => s.timeout(),
            Step::Cancel => s.cancel(),
        }
        lines.push(render(&s.transmit().unwrap_or_default(), s.mode().1));
    }
    lines.push(format!("{:?} acked {}", s.status(), s.acked()));
    let got = lines.join(" | ");
    assert_eq!(got, expect, "\n got: {got}\nwant: {expect}");
}

fn header(name: &str, size: u64) -> Vec<u8> {
    encode_block(0, &header_data(name, size), Check::Crc16)
}

fn block(n: u8, len: usize) -> Vec<u8> {
    encode_block(n, &vec![n; len], Check::Crc16)
}

fn damaged(mut b: Vec<u8>) -> Vec<u8> {
    let last = b.len() - 1;
    b[last] ^= 0x01;
    b
}

const CRC: ReceiverConfig = ReceiverConfig {
    check: Check::Crc16,
    max_size: 10_000,
    max_retries: MAX_RETRIES,
};

#[test]
fn forsberg_figure_6_block_0() {
    // sz's block 0 for `bbcsched.txt`, 6347 bytes, as printed in the protocol reference.
    let mut data = b"bbcsched.txt\x006347 3314742513 100644".to_vec();
    data.resize(128, 0);
    let block = encode_block(0, &data, Check::Crc16);
    assert_eq!(&block[..3], &[SOH, 0x00, 0xff]);
    assert_eq!(&block[131..], &[0xca, 0x56]);
    let h = parse_header(&data).unwrap().unwrap();
    assert_eq!(
        h,
        FileHeader {
            name: "bbcsched.txt".into(),
            size: Some(6347)
        }
    );
}

#[test]
fn block_encoding() {
    let b = encode_block(1, &[1; 128], Check::Checksum);
    assert_eq!(
        (b.len(), b[0], b[1], b[2], b[131]),
        (132, SOH, 1, 0xfe, 0x80)
    );
    let b = encode_block(2, b"abc", Check::Crc16);
    assert_eq!((b.len(), b[0], b[6]), (133, SOH, PAD));
    let b = encode_block(255, &[0; 129], Check::Crc16);
    assert_eq!(
        (b.len(), b[0], b[1], b[2], b[1026]),
        (1029, STX, 255, 0, PAD)
    );
    // CRC-16/XMODEM's check value: "123456789" -> 0x31C3.
    assert_eq!(Check::Crc16.compute(b"123456789"), vec![0x31, 0xc3]);
}

#[test]
fn headers_parse_or_say_why_not() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"a.bin\x00123\x00",
            "Ok(Some(FileHeader { name: \"a.bin\", size: Some(123) }))",
        ),
        (
            b"a.bin\x00123 14 100644\x00",
            "Ok(Some(FileHeader { name: \"a.bin\", size: Some(123) }))",
        ),
        (
            b"a.bin\x00\x00",
            "Ok(Some(FileHeader { name: \"a.bin\", size: None }))",
        ),
        (b"\x00\x00\x00", "Ok(None)"),
        (
            b"a.bin",
            "block 0 is not a YMODEM header: no NUL after the file name in 5 bytes",
        ),
        (
            b"a\x0012x\x00",
            "block 0 is not a YMODEM header: file length \"12x\" is not a decimal number",
        ),
        (
            b"a\x00-1\x00",
            "block 0 is not a YMODEM header: file length \"-1\" is not a decimal number",
        ),
        (
            b"a\x00+1\x00",
            "block 0 is not a YMODEM header: file length \"+1\" is not a decimal number",
        ),
        (
            b"a\x0099999999999999999999\x00",
            "block 0 is not a YMODEM header: file length \"99999999999999999999\" is not a decimal number",
        ),
        (
            b"\xff\x001\x00",
            "block 0 is not a YMODEM header: the file name is not UTF-8",
        ),
    ];
    for (data, want) in cases {
        let got = match parse_header(data) {
            Ok(v) => format!("Ok({v:?})"),
            Err(e) => e.to_string(),
        };
        assert_eq!(&got, want, "{:?}", String::from_utf8_lossy(data));
    }
}

#[test]
fn bad_names_are_refused() {
    for (name, reason) in [
        ("", "it is empty"),
        ("a b", "NUL or a space"),
        (&"x".repeat(1010), "does not fit"),
    ] {
        let err = Sender::new(name, vec![1], Protocol::Ymodem).unwrap_err();
        assert!(err.to_string().contains(reason), "{err}");
    }
    // XMODEM sends no name, so any will do.
    assert!(Sender::new("", vec![1], Protocol::Xmodem).is_ok());
}

#[test]
fn receiver_sessions() {
    use Step::*;
    let h = header("fw.bin", 1100);
    let (b1, b2) = (block(1, 1024), block(2, 76));
    let ok = "C | ACK C [start fw.bin Some(1100)] | ACK [data 1 1024] | ACK [data 2 76]";
    // The whole exchange as lrzsz does it: the first EOT is NAKed, the second ACKed.
    check_receiver(
        CRC,
        &[
            In(&h),
            In(&b1),
            In(&b2),
            In(&[EOT]),
            In(&[EOT]),
            In(&header("", 0)),
        ],
        &format!("{ok} | NAK | ACK C [end 1100] | ACK | Done"),
    );
    // A lost ACK: the sender repeats block 2, which is acknowledged and not kept.
    check_receiver(
        CRC,
        &[In(&h), In(&b1), In(&b2), In(&b2)],
        &format!("{ok} | ACK [dup 2] | Running"),
    );
    // Block 0 repeated (our ACK C was lost): ACK it and ask for data again.
    check_receiver(
        CRC,
        &[In(&h), In(&h)],
        "C | ACK C [start fw.bin Some(1100)] | ACK C [dup 0] | Running",
    );
    // A damaged block is refused only once the line is quiet: with `C` while no data has
    // come (as lrzsz does), with NAK afterwards.
    check_receiver(
        CRC,
        &[In(&h), In(&damaged(block(1, 1024))), Timeout, In(&b1)],
        "C | ACK C [start fw.bin Some(1100)] |  | C | ACK [data 1 1024] | Running",
    );
    // A truncated block waits for its end, then is NAKed.
    check_receiver(
        CRC,
        &[In(&h), In(&b1), In(&b2[..50]), Timeout, In(&b2)],
        "C | ACK C [start fw.bin Some(1100)] | ACK [data 1 1024] |  | NAK | ACK [data 2 76] | Running",
    );
    // Garbage where a block should start is purged, then NAKed.
    check_receiver(
        CRC,
        &[In(b"hello\r\n"), Timeout, Timeout],
        "C |  | C | C | Running",
    );
    // A block from the future is a loss of synchronisation: cancel.
    check_receiver(
        CRC,
        &[In(&h), In(&block(3, 10))],
        "C | ACK C [start fw.bin Some(1100)] | CAN CAN CAN CAN CAN CAN CAN CAN | Failed(Sync { found: 3, expected: 1, previous: 0 })",
    );
    // The sender cancels.
    check_receiver(
        CRC,
        &[In(&h), In(&[CAN]), In(&[CAN])],
        "C | ACK C [start fw.bin Some(1100)] |  |  | Failed(CancelledByPeer { step: \"receiving block 1\" })",
    );
    // A single CAN is a line hit, not an abort.
    check_receiver(
        CRC,
        &[In(&[CAN]), In(&h)],
        "C |  | ACK C [start fw.bin Some(1100)] | Running",
    );
    // Too large, announced.
    check_receiver(
        CRC,
        &[In(&header("big", 10_001))],
        "C | CAN CAN CAN CAN CAN CAN CAN CAN | Failed(TooLarge { size: 10001, max: 10000 })",
    );
    // A file that ends early.
    check_receiver(
        CRC,
        &[In(&h), In(&b1), In(&[EOT]), In(&[EOT])],
        "C | ACK C [start fw.bin Some(1100)] | ACK [data 1 1024] | NAK | CAN CAN CAN CAN CAN CAN CAN CAN | Failed(ShortFile { received: 1024, declared: 1100 })",
    );
    // Our ACK of the last EOT was lost: the sender repeats EOT, and is answered again.
    check_receiver(
        CRC,
        &[In(&h), In(&b1), In(&b2), In(&[EOT]), In(&[EOT]), In(&[EOT])],
        &format!("{ok} | NAK | ACK C [end 1100] | ACK C | Running"),
    );
    // An XMODEM sender starts with block 1: no name, no size, padding kept.
    check_receiver(
        CRC,
        &[In(&b2[..0]), In(&block(1, 100)), In(&[EOT]), In(&[EOT])],
        "C |  | ACK [start xmodem, data 1 128] | NAK | ACK [end 128] | Done",
    );
    // The receiver gives up after ten silent waits.
    let mut steps = vec![];
    steps.resize_with(10, || Timeout);
    check_receiver(
        CRC,
        &steps,
        "C | C | C | C | C | C | C | C | C | C | CAN CAN CAN CAN CAN CAN CAN CAN | Failed(TooManyRetries { step: \"waiting for a file\", tries: 10, last: \"no good block in time\" })",
    );
}

#[test]
fn sender_sessions() {
    use Step::*;
    let data = vec![7u8; 1100];
    let ok = "SOH#0 |  | STX#1 | SOH#2 | EOT | EOT";
    check_sender(
        &data,
        Protocol::Ymodem,
        &[
            In(b"C"),
            In(&[ACK]),
            In(b"C"),
            In(&[ACK]),
            In(&[ACK]),
            In(&[NAK]),
            In(&[ACK, b'C']),
            In(&[ACK]),
        ],
        &format!("{ok} | SOH#0 |  | Done acked 1100"),
    );
    // Noise before the start, `C` and ACK together, a NAK storm on block 1, a timeout.
    check_sender(
        &data,
        Protocol::Ymodem,
        &[
            In(b"READY\r\nC"),
            In(&[ACK, b'C']),
            In(&[NAK]),
            In(&[NAK]),
            Timeout,
            In(&[ACK]),
        ],
        "SOH#0 | STX#1 | STX#1 | STX#1 | STX#1 | SOH#2 | Running acked 1024",
    );
    // Bytes after the one that made the sender transmit are stale: the second ACK here must
    // not acknowledge block 2.
    check_sender(
        &data,
        Protocol::Ymodem,
        &[In(b"C"), In(&[ACK, b'C']), In(&[ACK, ACK])],
        "SOH#0 | STX#1 | SOH#2 | Running acked 1024",
    );
    // A receiver that opens with NAK gets XMODEM with the checksum, no block 0.
    check_sender(
        &data,
        Protocol::Ymodem,
        &[In(&[NAK]), In(&[ACK]), In(&[ACK]), In(&[ACK])],
        "STX#1 | SOH#2 | EOT |  | Done acked 1100",
    );
    // Explicit XMODEM-1K with CRC.
    check_sender(
        &data,
        Protocol::Xmodem,
        &[In(b"C"), In(&[ACK]), In(&[ACK]), In(&[NAK]), In(&[ACK])],
        "STX#1 | SOH#2 | EOT | EOT |  | Done acked 1100",
    );
    // The receiver cancels; a single CAN is ignored.
    check_sender(
        &data,
        Protocol::Ymodem,
        &[In(b"C"), In(&[CAN]), In(&[ACK, CAN, CAN])],
        "SOH#0 |  |  | Failed(CancelledByPeer { step: \"waiting for the receiver to ask for data\" }) acked 0",
    );
    // The user cancels.
    check_sender(
        &data,
        Protocol::Ymodem,
        &[In(b"C"), Cancel],
        "SOH#0 | CAN CAN CAN CAN CAN CAN CAN CAN | Failed(Cancelled) acked 0",
    );
    // An empty file: straight to EOT.
    check_sender(
        &[],
        Protocol::Ymodem,
        &[In(b"C"), In(&[ACK, b'C']), In(&[ACK, b'C']), In(&[ACK])],
        "SOH#0 | EOT | SOH#0 |  | Done acked 0",
    );
    // A receiver that never ends the batch: the file was delivered, so that is not a failure.
    check_sender(
        &[1],
        Protocol::Ymodem,
        &[
            In(b"C"),
            In(&[ACK, b'C']),
            In(&[ACK]),
            In(&[NAK]),
            In(&[ACK]),
            Timeout,
            Timeout,
            Timeout,
        ],
        "SOH#0 | SOH#1 | EOT | EOT |  |  |  |  | Done acked 1",
    );
    // Ten refusals of one block end the transfer.
    let mut steps = vec![In(b"C".as_slice()), In(&[ACK, b'C'])];
    steps.resize_with(12, || In(&[NAK]));
    check_sender(
        &data,
        Protocol::Ymodem,
        &steps,
        "SOH#0 | STX#1 | STX#1 | STX#1 | STX#1 | STX#1 | STX#1 | STX#1 | STX#1 | STX#1 | STX#1 | CAN CAN CAN CAN CAN CAN CAN CAN | Failed(TooManyRetries { step: \"sending the block at byte 0 of 1100\", tries: 10, last: \"NAK\" }) acked 0",
    );
}

/// A fault on the line: in one direction, at the n-th byte of that direction's stream.
#[derive(Debug, Clone, Copy)]
struct LineFault {
    to_receiver: bool,
    at: usize,
    /// `None` drops the byte; `Some(bit)` flips that bit.
    flip: Option<u8>,
}

/// Carries bytes one way, damaging those the faults name.
struct Wire {
    sent: usize,
    faults: Vec<LineFault>,
}

impl Wire {
    fn carry(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            let at = self.sent;
            self.sent += 1;
            match self.faults.iter().find(|f| f.at == at) {
                Some(LineFault { flip: None, .. }) => {}
                Some(LineFault {
                    flip: Some(bit), ..
                }) => out.push(b ^ (1 << bit)),
                None => out.push(b),
            }
        }
        out
    }
}

/// Runs a sender against a receiver over a damaged line, delivering in chunks of `chunk`
/// bytes. When the line is quiet, the side a real peer would hear from first times out: a
/// receiver inside a block or purging (its timeouts are short), else the sender if it has
/// something to repeat, else the receiver.
fn exchange(
    data: &[u8],
    config: ReceiverConfig,
    faults: &[LineFault],
    chunk: usize,
) -> (Status, Status, Vec<u8>, u64) {
    let mut s = Sender::new("image.bin", data.to_vec(), Protocol::Ymodem).unwrap();
    let mut r = Receiver::new(config);
    let split = |to_receiver| Wire {
        sent: 0,
        faults: faults
            .iter()
            .filter(|f| f.to_receiver == to_receiver)
            .copied()
            .collect(),
    };
    let (mut to_r, mut to_s) = (split(true), split(false));
    let mut file = Vec::new();
    for _ in 0..100_000 {
        let mut quiet = true;
        if let Some(b) = s.transmit() {
            quiet = false;
            for piece in to_r.carry(&b).chunks(chunk) {
                r.receive(piece);
            }
        }
        while let Some(e) = r.poll_event() {
            if let RxEvent::Data { bytes, .. } = e {
                file.extend(bytes);
            }
        }
        if let Some(b) = r.transmit() {
            quiet = false;
            let b = to_s.carry(&b);
            if !b.is_empty() {
                s.receive(&b);
            }
        }
        let done = |st: &Status| *st != Status::Running;
        if done(s.status()) && done(r.status()) {
            break;
        }
        if quiet {
            let receiver_first = matches!(r.waiting_for(), Wait::InBlock | Wait::Purge)
                || matches!(s.waiting_for(), Wait::Start | Wait::Request | Wait::Nothing);
            if receiver_first && !done(r.status()) {
                r.timeout();
            } else {
                s.timeout();
            }
        }
    }
    (s.status().clone(), r.status().clone(), file, s.acked())
}

fn fault() -> impl Strategy<Value = LineFault> {
    (any::<bool>(), 0..12_000usize, prop::option::of(0u8..8)).prop_map(|(to_receiver, at, flip)| {
        LineFault {
            to_receiver,
            // Replies are short: aim the receiver-to-sender faults at them.
            at: if to_receiver { at } else { at % 24 },
            flip,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any file arrives byte for byte over a clean line, in any chunking.
    #[test]
    fn round_trip(data in prop::collection::vec(any::<u8>(), 0..5000), chunk in 1..2000usize) {
        let (s, r, file, acked) = exchange(&data, ReceiverConfig::default(), &[], chunk);
        prop_assert_eq!(s, Status::Done);
        prop_assert_eq!(r, Status::Done);
        prop_assert_eq!(acked, data.len() as u64);
        prop_assert_eq!(file, data);
    }

    /// Dropped and flipped bytes in both directions are recovered by retries.
    #[test]
    fn round_trip_over_a_damaged_line(
        data in prop::collection::vec(any::<u8>(), 1..6000),
        faults in prop::collection::vec(fault(), 0..8),
        chunk in 1..1100usize,
    ) {
        let (s, r, file, _) = exchange(&data, ReceiverConfig::default(), &faults, chunk);
        prop_assert_eq!(s, Status::Done);
        prop_assert_eq!(r, Status::Done);
        prop_assert_eq!(file, data);
    }

    /// A checksum receiver gets XMODEM-1K: the data, then only padding.
    #[test]
    fn xmodem_fallback(data in prop::collection::vec(any::<u8>(), 1..3000)) {
        let config = ReceiverConfig { check: Check::Checksum, ..ReceiverConfig::default() };
        let (s, r, file, _) = exchange(&data, config, &[], 512);
        prop_assert_eq!(s, Status::Done);
        prop_assert_eq!(r, Status::Done);
        prop_assert_eq!(&file[..data.len()], &data[..]);
        prop_assert!(file[data.len()..].iter().all(|b| *b == PAD));
        prop_assert!(file.len() - data.len() < 1024);
    }

    /// Hostile input never panics the receiver and never grows its buffer past one block.
    #[test]
    fn receiver_survives_garbage(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..1500), 0..20)) {
        let mut r = Receiver::new(ReceiverConfig { max_size: 4096, ..ReceiverConfig::default() });
        for (i, c) in chunks.iter().enumerate() {
            r.receive(c);
            prop_assert!(r.buf.len() <= 1029);
            if i % 3 == 2 {
                r.timeout();
            }
            let _ = r.transmit();
            while r.poll_event().is_some() {}
        }
    }

    /// Hostile input never panics the sender.
    #[test]
    fn sender_survives_garbage(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..40)) {
        let mut s = Sender::new("a", vec![1; 3000], Protocol::Ymodem).unwrap();
        for (i, c) in chunks.iter().enumerate() {
            s.receive(c);
            if i % 5 == 4 {
                s.timeout();
            }
            let _ = s.transmit();
            prop_assert!(s.acked() <= s.len());
        }
    }
}
