//! The simulator is as strict as a real device, and its random faults replay from a seed.
//!
//! A raw client on the simulator's pseudo-terminal sends frames a Zephyr device would drop in
//! silence (a decoded frame over `buf_size`); in strict mode that stops the simulator with
//! the rule broken, so a fieldkit test that did it would fail. Random line damage is decided
//! from the seed the simulator prints at start: the same seed and the same bytes give the same
//! damage, so a failing run replays.

mod support;

use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use fieldkit_wire::framing::{self, Decoder, Framing};
use fieldkit_wire::smp::{Op, Packet, os};
use support::Sim;

/// A bare client on the simulator's port: bytes out, decoded replies in.
struct RawClient {
    port: std::fs::File,
    replies: Receiver<Packet>,
}

impl RawClient {
    fn open(sim: &Sim) -> RawClient {
        let port = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&sim.port)
            .expect("open the simulator's port");
        let mut reader = port.try_clone().unwrap();
        let (send, replies) = channel();
        std::thread::spawn(move || {
            let mut decoder = Decoder::new(Framing::Console, 1 << 16);
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                decoder.push(&buf[..n]);
                while let Some(frame) = decoder.next() {
                    if let Ok(p) = frame.map(|b| Packet::decode(&b).unwrap())
                        && send.send(p).is_err()
                    {
                        return;
                    }
                }
            }
        });
        RawClient { port, replies }
    }

    fn send(&mut self, packet: &[u8]) {
        self.port
            .write_all(&framing::encode(Framing::Console, packet))
            .unwrap();
    }
}

fn echo(seq: u8, text: &str) -> Vec<u8> {
    Packet::request(
        Op::Write,
        os::GROUP,
        os::ECHO,
        seq,
        &os::EchoReq { d: text.into() },
    )
    .encode()
}

/// An echo request whose packet is exactly `size` bytes.
fn echo_of_size(size: usize) -> Vec<u8> {
    (0..size)
        .map(|n| echo(1, &"x".repeat(n)))
        .find(|p| p.len() == size)
        .unwrap()
}

// The pump's simulator advertises buf_size 2048: the largest packet is 2044 bytes.
const PUMP_BUF_SIZE: usize = 2048;

#[test]
fn an_oversize_frame_stops_a_strict_simulator() {
    let mut sim = Sim::start("acme-infusion-p7", &[]);
    let mut client = RawClient::open(&sim);
    client.send(&echo_of_size(PUMP_BUF_SIZE - 4));
    let reply = client
        .replies
        .recv_timeout(Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        reply.header.seq, 1,
        "a frame of exactly buf_size is answered"
    );

    client.send(&echo_of_size(PUMP_BUF_SIZE - 3));
    let why = sim.wait_for("strict mode", Duration::from_secs(10));
    assert!(
        why.contains(
            "frame of 2049 decoded bytes (length, packet and CRC) dropped: buf_size is 2048"
        ),
        "{why}"
    );
    assert!(!sim.wait_exit().success());
}

#[test]
fn without_strict_mode_the_device_drops_it_in_silence() {
    let sim = Sim::start_lenient("acme-infusion-p7", &[]);
    let mut client = RawClient::open(&sim);
    client.send(&echo_of_size(PUMP_BUF_SIZE - 3));
    sim.wait_for("frame of 2049 decoded bytes", Duration::from_secs(10));
    // Nothing came back for it; the next request is answered as usual.
    client.send(&echo(9, "still there?"));
    let reply = client
        .replies
        .recv_timeout(Duration::from_secs(10))
        .unwrap();
    assert_eq!(reply.header.seq, 9);
}

#[test]
fn a_console_line_over_128_bytes_is_a_client_error() {
    let mut sim = Sim::start("acme-infusion-p7", &[]);
    let mut client = RawClient::open(&sim);
    // The whole frame on one line, as a careless client writes it.
    let wire = framing::encode(Framing::Console, &echo_of_size(200));
    let mut one_line = vec![0x06, 0x09];
    for line in wire.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        one_line.extend_from_slice(&line[2..]);
    }
    one_line.push(b'\n');
    client.port.write_all(&one_line).unwrap();
    let why = sim.wait_for("strict mode", Duration::from_secs(10));
    assert!(why.contains("cut to 128"), "{why}");
    assert!(!sim.wait_exit().success());
}

/// Sends 40 echoes in one go, then a reset until the device hears one; returns the seed in
/// force and the frames the device dropped as damaged, in order.
fn damaged_run(seed: Option<&str>) -> (u64, Vec<String>) {
    let mut args = vec!["--fault", "drop=0.01", "--fault", "corrupt=0.01"];
    if let Some(s) = seed {
        args.extend(["--seed", s]);
    }
    let sim = Sim::start("acme-infusion-p7", &args);
    let mut client = RawClient::open(&sim);
    for seq in 10..50 {
        client.send(&echo(seq, "the same bytes every run"));
    }
    // The device handles its input in order: once it hears a reset, it has judged every echo.
    let reset = Packet::request(
        Op::Write,
        os::GROUP,
        os::RESET,
        99,
        &os::ResetReq::default(),
    )
    .encode();
    let mut events = Vec::new();
    for _ in 0..20 {
        client.send(&reset);
        match sim.try_events_until("reset requested", Duration::from_secs(2)) {
            Ok(seen) => {
                events.extend(seen);
                let damaged = events
                    .into_iter()
                    .filter(|e| e.contains("damaged frame dropped"))
                    .collect();
                return (sim.seed, damaged);
            }
            Err(seen) => events.extend(seen),
        }
    }
    panic!("the device never heard the reset");
}

#[test]
fn random_faults_replay_from_the_seed() {
    let (seed, first) = damaged_run(None);
    assert!(
        first.len() >= 5,
        "at these rates most of 40 frames are damaged: {first:?}"
    );
    let (again, replayed) = damaged_run(Some(&seed.to_string()));
    assert_eq!(again, seed);
    assert_eq!(replayed, first, "the same seed damages the same bytes");
    let (_, other) = damaged_run(Some(&seed.wrapping_add(1).to_string()));
    assert_ne!(other, first, "another seed damages other bytes");
}
