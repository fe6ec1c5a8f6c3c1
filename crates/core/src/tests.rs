//! The SMP client against scripted peers: every way a device can answer badly ends in a typed
//! error, in time, without a panic.

use std::time::Duration;

use fieldkit_wire::framing::{self, Framing};
use fieldkit_wire::smp::{Header, Op, Packet, os};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::smp::{SessionError, SmpClient};

/// What the scripted device does with the request it receives.
enum Peer {
    /// Replies with these bytes (built from the request header).
    Reply(fn(&Header) -> Vec<u8>),
    /// Replies, then closes the line.
    ReplyThenClose(fn(&Header) -> Vec<u8>),
    /// Replies after a delay.
    Late(Duration),
}

fn good(h: &Header) -> Vec<u8> {
    framing::encode(
        Framing::Console,
        &Packet::response(h, &os::EchoRsp { r: "hi".into() }).encode(),
    )
}

/// Sends an echo to a scripted peer and renders the outcome.
async fn run(peer: Peer) -> String {
    let (client_side, mut device_side) = tokio::io::duplex(1 << 16);
    let device = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let mut decoder = framing::Decoder::new(Framing::Console, 4096);
        let header = loop {
            let n = device_side.read(&mut buf).await.unwrap();
            decoder.push(&buf[..n]);
            if let Some(Ok(frame)) = decoder.next() {
                break Packet::decode(&frame).unwrap().header;
            }
        };
        match peer {
            Peer::Reply(f) => {
                device_side.write_all(&f(&header)).await.unwrap();
                // Keep the line open until the client is done.
                let _ = device_side.read(&mut buf).await;
            }
            Peer::ReplyThenClose(f) => device_side.write_all(&f(&header)).await.unwrap(),
            Peer::Late(d) => {
                tokio::time::sleep(d).await;
                let _ = device_side.write_all(&good(&header)).await;
            }
        }
    });
    let mut client = SmpClient::new(client_side, Framing::Console);
    let result: Result<os::EchoRsp, SessionError> = client
        .request(
            "echo",
            Op::Write,
            os::GROUP,
            os::ECHO,
            &os::EchoReq { d: "hi".into() },
            Duration::from_millis(200),
        )
        .await;
    drop(client);
    device.abort();
    match result {
        Ok(r) => format!("ok {}", r.r),
        Err(e) => format!("{}: {e}", e.kind()),
    }
}

#[track_caller]
fn check(peer: Peer, expect: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt.block_on(run(peer));
    assert!(got.starts_with(expect), "\n got: {got}\nwant: {expect}");
}

fn with_text_around(h: &Header) -> Vec<u8> {
    let mut v = b"[00:00:01.000] <inf> main: booting\r\ngarbage \x00\xff\r\n".to_vec();
    v.extend(good(h));
    v.extend_from_slice(b"<dbg> tail\n");
    v
}

fn bad_crc(h: &Header) -> Vec<u8> {
    // Re-encode with the CRC bytes flipped.
    let packet = Packet::response(h, &os::EchoRsp { r: "hi".into() }).encode();
    let mut raw = ((packet.len() + 2) as u16).to_be_bytes().to_vec();
    raw.extend(&packet);
    raw.extend((!framing::crc16(&packet)).to_be_bytes());
    let mut line = vec![6, 9];
    line.extend(base64_encode(&raw));
    line.push(b'\n');
    line
}

fn bad_base64(_: &Header) -> Vec<u8> {
    b"\x06\x09AAsI!!!!AAAABqBzEw==\n".to_vec()
}

fn truncated(h: &Header) -> Vec<u8> {
    let full = good(h);
    full[..full.len() / 2].to_vec()
}

fn huge_length(_: &Header) -> Vec<u8> {
    let mut line = vec![6, 9];
    line.extend(base64_encode(&[0xff, 0xff, 0, 0, 0, 0]));
    line.push(b'\n');
    line
}

fn wrong_seq(h: &Header) -> Vec<u8> {
    good(&Header {
        seq: h.seq.wrapping_add(7),
        ..*h
    })
}

fn base64_encode(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into_bytes()
}

#[test]
fn a_good_reply_is_read() {
    check(Peer::Reply(good), "ok hi");
}

#[test]
fn log_text_and_garbage_between_frames_are_ignored() {
    check(Peer::Reply(with_text_around), "ok hi");
}

#[test]
fn bad_replies_end_in_typed_errors() {
    let t = "timeout: echo: no reply within 200 ms";
    check(
        Peer::Reply(bad_crc),
        &format!(
            "{t} (last problem on the line: damaged frame: frame CRC mismatch: found 0x5adc, computed 0xa523)"
        ),
    );
    check(
        Peer::Reply(bad_base64),
        &format!("{t} (last problem on the line: damaged frame: frame line is not valid base64"),
    );
    check(
        Peer::Reply(truncated),
        &format!(
            "{t} (last problem on the line: damaged frame: truncated frame: length field says 16 bytes, got 4)"
        ),
    );
    check(
        Peer::Reply(huge_length),
        &format!(
            "{t} (last problem on the line: damaged frame: frame announces a 65533-byte packet, more than the maximum of 16384)"
        ),
    );
    check(
        Peer::Reply(wrong_seq),
        &format!(
            "{t} (last problem on the line: a reply with sequence number 7 (group 0, command 0), required 0 (group 0, command 0))"
        ),
    );
    check(
        Peer::Reply(|_| Vec::new()),
        &format!("{t}: is the device powered, in service mode, and on this port?"),
    );
    check(
        Peer::Late(Duration::from_millis(600)),
        &format!("{t}: is the device powered"),
    );
    check(
        Peer::ReplyThenClose(truncated),
        "disconnected: echo: the device disconnected in the middle of its reply: check the cable, then try again",
    );
    check(
        Peer::ReplyThenClose(|_| Vec::new()),
        "disconnected: echo: the device disconnected: check the cable, then try again",
    );
}
