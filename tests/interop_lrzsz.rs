//! YMODEM interop with lrzsz over real pseudo-terminals: our sender (the client's upload loop)
//! to `rb --ymodem`, `sb --ymodem` to our receiver (the simulator's state machine), and the
//! XMODEM fallback against `rx`. Files must arrive byte for byte. lrzsz is a test requirement
//! (Debian package `lrzsz`, installed by CI): without it these tests fail, they never skip.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fieldkit_core::{YmodemTiming, ymodem_send};
use fieldkit_link::PtyPair;
use fieldkit_wire::ymodem::{
    Check, FileHeader, Protocol, Receiver, ReceiverConfig, RxEvent, Sender, Status, Wait,
};

/// Deterministic file content.
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// Starts `program args` with the client side of a fresh pseudo-terminal as its stdin and
/// stdout, in `dir`; returns it with the pair (whose device side we talk through; its reads
/// time out after 100 ms).
fn spawn_on_pty(program: &str, args: &[&str], dir: &Path) -> (Child, PtyPair) {
    let pty = fieldkit_link::pty_pair().expect("pseudo-terminal");
    let tty = File::options()
        .read(true)
        .write(true)
        .open(&pty.path)
        .expect("open the client side");
    let child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::from(tty.try_clone().unwrap()))
        .stdout(Stdio::from(tty))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): install lrzsz (Debian package `lrzsz`)")
        });
    (child, pty)
}

/// Waits for an lrzsz program and asserts it succeeded.
#[track_caller]
fn finished(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `data` as `name` with the client's upload loop to whatever listens on `device`.
/// The pseudo-terminal's device side is a blocking port, so two threads carry bytes between
/// it and an in-memory async stream the sender talks through.
fn send_with_our_sender(
    pty: PtyPair,
    name: &str,
    data: &[u8],
) -> Result<(Protocol, Check), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (mut ours, theirs) = tokio::io::duplex(1 << 16);
    let (mut their_read, mut their_write) = tokio::io::split(theirs);
    let stop = Arc::new(AtomicBool::new(false));
    let mut from_device = pty.device.try_clone_native().unwrap();
    let mut to_device = pty.device;
    let _client = pty.client;
    let handle = rt.handle().clone();
    let s = stop.clone();
    let up = std::thread::spawn(move || {
        use tokio::io::AsyncWriteExt;
        let mut buf = [0u8; 4096];
        while !s.load(Ordering::Relaxed) {
            match from_device.read(&mut buf) {
                Ok(n) if n > 0 => {
                    if handle.block_on(their_write.write_all(&buf[..n])).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
    });
    let handle = rt.handle().clone();
    let down = std::thread::spawn(move || {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        while let Ok(n) = handle.block_on(their_read.read(&mut buf)) {
            if n == 0 || to_device.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    // lrzsz purges its input right after asking for a block; on a pseudo-terminal our answer
    // can beat the purge and be lost. A real line's turnaround prevents that; here a short
    // timeout makes the repeat (which lands while lrzsz waits) come soon.
    let timing = YmodemTiming {
        response: Duration::from_secs(1),
        first_block: Duration::from_secs(1),
        char_time: Duration::ZERO,
    };
    let sender = Sender::new(name, data.to_vec(), Protocol::Ymodem).unwrap();
    let result = rt.block_on(ymodem_send(
        &mut ours,
        sender,
        &[],
        timing,
        &mut |_, _| {},
        &fieldkit_core::apply::Cancel::new(),
    ));
    drop(ours);
    stop.store(true, Ordering::Relaxed);
    up.join().unwrap();
    down.join().unwrap();
    result
        .map(|u| {
            assert_eq!(u.bytes, data.len() as u64);
            (u.protocol, u.check)
        })
        .map_err(|e| e.to_string())
}

/// Receives a batch on `device` with the receiver state machine, as the simulated bootloader
/// does; returns each file with its header.
fn receive_with_our_receiver(pty: PtyPair) -> Vec<(FileHeader, Vec<u8>)> {
    let mut device = pty.device;
    let _client = pty.client;
    let mut quiet = Duration::ZERO;
    let mut r = Receiver::new(ReceiverConfig::default());
    let mut files: Vec<(FileHeader, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(out) = r.transmit() {
            device.write_all(&out).unwrap();
        }
        while let Some(e) = r.poll_event() {
            match e {
                RxEvent::FileStart { header } => {
                    files.push((header.expect("sb sends block 0"), Vec::new()))
                }
                RxEvent::Data { bytes, .. } => files.last_mut().unwrap().1.extend(bytes),
                RxEvent::Duplicate { .. } | RxEvent::FileEnd { .. } => {}
            }
        }
        match r.status() {
            Status::Running => {}
            Status::Done => return files,
            Status::Failed(e) => panic!("our receiver failed: {e}"),
        }
        let wait = Duration::from_millis(match r.waiting_for() {
            Wait::Purge => 200,
            Wait::InBlock => 1_000,
            _ => 5_000,
        });
        // Each read gives up after the port's 100 ms: count them as quiet time.
        match device.read(&mut buf) {
            Ok(n) => {
                quiet = Duration::ZERO;
                r.receive(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                quiet += Duration::from_millis(100);
                if quiet >= wait {
                    quiet = Duration::ZERO;
                    r.timeout();
                }
            }
            Err(e) => panic!("reading the pseudo-terminal: {e}"),
        }
    }
}

/// Sizes around every block boundary, and past 255 blocks so block numbers wrap.
const SIZES: [usize; 9] = [1, 127, 128, 129, 1023, 1024, 1025, 5000, 300_000];

#[test]
fn our_sender_to_rb() {
    for (i, size) in SIZES.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let (child, device) = spawn_on_pty("rb", &["--ymodem", "--binary", "--quiet"], dir.path());
        let data = content(size, i as u8);
        let name = format!("fw-{size}.bin");
        let mode = send_with_our_sender(device, &name, &data).unwrap();
        finished(child, "rb");
        assert_eq!(mode, (Protocol::Ymodem, Check::Crc16));
        let got = std::fs::read(dir.path().join(&name)).unwrap();
        assert!(
            got == data,
            "{name}: {} bytes arrived, {} sent, or they differ",
            got.len(),
            data.len()
        );
    }
}

#[test]
fn sb_to_our_receiver() {
    for (i, one_k) in [(0, true), (1, false)] {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<(String, Vec<u8>)> = SIZES
            .iter()
            .map(|&size| (format!("part-{i}-{size}.bin"), content(size, 7 + i)))
            .collect();
        for (name, data) in &files {
            std::fs::write(dir.path().join(name), data).unwrap();
        }
        let mut args = vec!["--ymodem", "--binary", "--quiet"];
        if one_k {
            args.push("--1k");
        }
        args.extend(files.iter().map(|(n, _)| n.as_str()));
        let (child, device) = spawn_on_pty("sb", &args, dir.path());
        let got = receive_with_our_receiver(device);
        finished(child, "sb");
        assert_eq!(got.len(), files.len(), "one received file per file sent");
        for ((header, bytes), (name, data)) in got.iter().zip(&files) {
            assert_eq!(&header.name, name);
            assert_eq!(header.size, Some(data.len() as u64), "{name}");
            assert!(
                bytes == data,
                "{name} ({} KiB blocks): contents differ",
                if one_k { 1 } else { 0 }
            );
        }
    }
}

/// `rx` without `-c` asks with NAK: the fallback is XMODEM-1K with the 8-bit checksum and no
/// block 0; XMODEM has no length, so the file arrives padded with ^Z.
///
/// `rx` acknowledges the EOT, then drains and flushes its terminal (TCIOFLUSH) and exits. On a
/// pseudo-terminal, flushing the slave's output also discards what the master has not read yet
/// (Linux's pty flush empties the other side's buffer), so under load that last ACK can vanish:
/// the file has arrived whole and `rx` exits 0, while our sender, hearing nothing more, gives up
/// at the EOT. A serial line cannot take back bytes it has sent. So the sender either succeeds,
/// or fails at the EOT and nowhere else, with every byte acknowledged; in both cases `rx` must
/// have exited 0 with the file byte for byte, padded with ^Z (which only XMODEM does).
#[test]
fn our_sender_falls_back_to_xmodem_with_rx() {
    let data = content(5000, 3);
    let dir = tempfile::tempdir().unwrap();
    let (child, device) = spawn_on_pty("rx", &["--binary", "--quiet", "fw.bin"], dir.path());
    match send_with_our_sender(device, "fw.bin", &data) {
        Ok(mode) => assert_eq!(mode, (Protocol::Xmodem, Check::Checksum)),
        Err(e) => assert!(
            e.contains(&format!(
                "after {0} of {0} bytes: ending the file (EOT)",
                data.len()
            )),
            "our sender failed before the end of the file: {e}"
        ),
    }
    finished(child, "rx");
    let got = std::fs::read(dir.path().join("fw.bin")).unwrap();
    assert_eq!(&got[..data.len()], &data[..]);
    assert!(
        got[data.len()..].iter().all(|b| *b == 0x1a),
        "padding is ^Z"
    );
}
