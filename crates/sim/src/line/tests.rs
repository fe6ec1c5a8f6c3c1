//! The LabCore device driven by the real YMODEM sender, on a simulated clock.

use std::time::{Duration, Instant};

use fieldkit_mcuboot::{ImageVersion, SignOptions};
use fieldkit_profile::ProfileSet;
use fieldkit_wire::line::{LineSplitter, Pattern};
use fieldkit_wire::ymodem::{Protocol, Sender, Status, Wait};
use sha2::{Digest, Sha256};

use super::LineDevice;
use crate::fault::{Fault, Faults};
use crate::state::DeviceState;

fn analyzer(faults: &[Fault]) -> LineDevice {
    let profile = ProfileSet::builtin()
        .get("labcore-analyzer-l2")
        .unwrap()
        .clone();
    let state = DeviceState::factory(&profile);
    LineDevice::new(profile, state, Faults::new(faults))
}

fn image(version: &str) -> Vec<u8> {
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fieldkit_mcuboot::sign(
        &payload,
        &SignOptions::new(version.parse::<ImageVersion>().unwrap()),
    )
    .unwrap()
}

/// Sends one command; returns the reply lines.
fn ask(dev: &mut LineDevice, command: &str) -> Vec<String> {
    let out = dev.receive(format!("{command}\r\n").as_bytes(), Instant::now());
    let mut lines = LineSplitter::default();
    lines.push(&out.bytes);
    std::iter::from_fn(|| lines.next_line())
        .map(|l| l.unwrap())
        .collect()
}

#[test]
fn replies_match_the_profile_patterns() {
    let mut dev = analyzer(&[]);
    let profile = ProfileSet::builtin()
        .get("labcore-analyzer-l2")
        .unwrap()
        .clone();
    let lp = profile.line_protocol.as_ref().unwrap();
    let mut fields = Vec::new();
    for q in &lp.queries {
        let reply = ask(&mut dev, &q.command);
        let found = Pattern::new(q.reply.get_ref()).unwrap().fields(&reply[0]);
        fields.push(format!("{} -> {:?}", reply[0], found.unwrap()));
    }
    assert_eq!(
        fields,
        [
            r#"LABCORE,L2 Chemistry Analyzer,L2-77810,REV-D -> {"hardware_revision": "REV-D", "model": "L2 Chemistry Analyzer", "serial": "L2-77810"}"#.to_owned(),
            r#"FW 3.4.0 BL 1.3.0 -> {"bootloader_version": "1.3.0", "version_firmware": "3.4.0"}"#.to_owned(),
            format!(
                r#"SHA256 {sum} -> {{"firmware_sha256": "{sum}"}}"#,
                sum = hex::encode(Sha256::digest(&dev.firmware().unwrap().bytes))
            ),
            r#"RUN=0 -> {"therapy_running": "0"}"#.to_owned(),
        ]
    );
    assert_eq!(ask(&mut dev, "FLY?"), ["ERR UNKNOWN COMMAND"]);
    let mut busy = analyzer(&["therapy-running".parse::<Fault>().unwrap()]);
    assert_eq!(ask(&mut busy, "STATUS?"), ["RUN=1"]);
    assert_eq!(ask(&mut busy, "BOOT UPDATE"), ["ERR BUSY"]);
}

/// What an upload did: the sender's outcome, the device's events, and its firmware after.
struct Run {
    sender: Status,
    events: Vec<String>,
    firmware: String,
}

/// Uploads `file` with the real sender, on a simulated clock: when nothing moves, the side
/// whose timeout falls first acts (the device's short in-block timeouts, else the sender's
/// two-second block timeout, else the device's).
fn upload(dev: &mut LineDevice, file: &[u8]) -> Run {
    let mut now = Instant::now();
    let mut events = Vec::new();
    let out = dev.receive(b"BOOT UPDATE\r\n", now);
    events.extend(out.events);
    let mut lines = LineSplitter::default();
    lines.push(&out.bytes);
    assert_eq!(lines.next_line().unwrap().unwrap(), "READY YMODEM");
    let mut s = Sender::new("analyzer.img", file.to_vec(), Protocol::Ymodem).unwrap();
    s.receive(&lines.take_rest());
    let mut rebooted = false;
    for _ in 0..10_000 {
        let mut moved = false;
        if let Some(b) = s.transmit() {
            moved = true;
            let out = dev.receive(&b, now);
            now += out.busy;
            events.extend(out.events);
            rebooted |= out.reboot;
            if !out.bytes.is_empty() {
                s.receive(&out.bytes);
            }
        }
        if *s.status() != Status::Running && (rebooted || dev.deadline().is_none()) {
            break;
        }
        if moved {
            continue;
        }
        let sender_timeout = now + Duration::from_secs(2);
        match dev.deadline() {
            Some(d) if d <= sender_timeout || s.waiting_for() == Wait::Nothing => {
                now = d;
                let out = dev.poll(now);
                events.extend(out.events);
                rebooted |= out.reboot;
                if !out.bytes.is_empty() {
                    s.receive(&out.bytes);
                }
            }
            _ => {
                now = sender_timeout;
                s.timeout();
            }
        }
    }
    if rebooted {
        events.extend(dev.reboot());
    }
    Run {
        sender: s.status().clone(),
        events,
        firmware: ask(dev, "VER?").join(""),
    }
}

#[track_caller]
fn check(faults: &[Fault], expect_events: &[&str], expect_firmware: &str) {
    let mut dev = analyzer(faults);
    let run = upload(&mut dev, &image("3.5.0"));
    assert_eq!(run.sender, Status::Done, "{:#?}", run.events);
    for want in expect_events {
        assert!(
            run.events.iter().any(|e| e.contains(want)),
            "no event {want:?} in {:#?}",
            run.events
        );
    }
    assert_eq!(run.firmware, expect_firmware);
}

#[test]
fn uploads_install_in_place_despite_the_faults() {
    let done = "firmware 3.5.0 written (20";
    check(
        &[],
        &[
            "application area erased in 256 ms",
            done,
            "booted firmware 3.5.0",
        ],
        "FW 3.5.0 BL 1.3.0",
    );
    check(
        &[Fault::LoseAck(3)],
        &["ACK of block 3 lost", "block 3 received again", done],
        "FW 3.5.0 BL 1.3.0",
    );
    check(
        &[Fault::DuplicateBlock(2)],
        &["garbled into NAK", "block 2 received again", done],
        "FW 3.5.0 BL 1.3.0",
    );
    check(
        &[Fault::NakStorm(5)],
        &["NAK storm", done],
        "FW 3.5.0 BL 1.3.0",
    );
    check(
        &[Fault::EraseDelay(1500)],
        &["erased in 1756 ms", done],
        "FW 3.5.0 BL 1.3.0",
    );
}

#[test]
fn a_failed_upload_leaves_a_bootloader_that_takes_the_next_one() {
    // A NAK storm longer than the sender's patience: the transfer fails after the erase.
    let mut dev = analyzer(&[Fault::NakStorm(12)]);
    let run = upload(&mut dev, &image("3.5.0"));
    assert!(matches!(run.sender, Status::Failed(_)), "{:?}", run.sender);
    assert_eq!(run.firmware, "FW NONE BL 1.3.0");
    assert!(dev.in_bootloader());
    // The identity is still readable, and the next upload works.
    assert_eq!(
        ask(&mut dev, "*IDN?"),
        ["LABCORE,L2 Chemistry Analyzer,L2-77810,REV-D"]
    );
    let run = upload(&mut dev, &image("3.5.1"));
    assert_eq!(
        (run.sender, run.firmware.as_str()),
        (Status::Done, "FW 3.5.1 BL 1.3.0")
    );

    // A file that is not a firmware image is received, refused, and leaves no firmware.
    let mut dev = analyzer(&[]);
    let run = upload(&mut dev, b"definitely not an image");
    assert!(
        run.events
            .iter()
            .any(|e| e.contains("not a valid firmware image")),
        "{:#?}",
        run.events
    );
    assert_eq!(run.firmware, "FW NONE BL 1.3.0");

    // A cable pull mid-transfer abandons it.
    let mut dev = analyzer(&[]);
    let now = Instant::now();
    dev.receive(b"BOOT UPDATE\r\n", now);
    let events = dev.link_reset();
    assert_eq!(events, ["USB link lost: transfer abandoned after 0 bytes"]);
    assert_eq!(ask(&mut dev, "VER?"), ["FW 3.4.0 BL 1.3.0"]);
}
