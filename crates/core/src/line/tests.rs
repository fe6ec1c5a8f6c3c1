//! The line client against scripted devices: every way a reply can go wrong ends in a typed
//! error, in time, without a panic.

use std::time::Duration;

use fieldkit_profile::ProfileSet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{LineClient, LineError};

/// Asks `VER?` of a device that sends `unasked` first, then answers each command line with
/// `reply(command)` (nothing if `None`), and renders the outcome.
async fn run(unasked: &'static [u8], reply: fn(&str) -> Option<Vec<u8>>) -> String {
    let profile = ProfileSet::builtin()
        .get("labcore-analyzer-l2")
        .unwrap()
        .clone();
    let (client_side, mut device) = tokio::io::duplex(1 << 16);
    device.write_all(unasked).await.unwrap();
    let peer = tokio::spawn(async move {
        let mut buf = vec![0u8; 1024];
        let mut line = Vec::new();
        loop {
            let Ok(n) = device.read(&mut buf).await else {
                return;
            };
            if n == 0 {
                return;
            }
            for &b in &buf[..n] {
                if b == b'\n' {
                    let text = String::from_utf8_lossy(&line).trim().to_owned();
                    line.clear();
                    if let Some(bytes) = reply(&text) {
                        device.write_all(&bytes).await.unwrap();
                    }
                } else {
                    line.push(b);
                }
            }
        }
    });
    let mut client = LineClient::new(client_side, &profile).unwrap();
    let pattern = profile.line_protocol.as_ref().unwrap().queries[1]
        .reply
        .get_ref()
        .clone();
    let got = client
        .query("VER?", &pattern, Duration::from_millis(200))
        .await;
    drop(client);
    peer.abort();
    match got {
        Ok(fields) => format!("ok {fields:?}"),
        Err(e) => format!("{}: {e}", e.kind()),
    }
}

#[track_caller]
fn check(unasked: &'static [u8], reply: fn(&str) -> Option<Vec<u8>>, expect: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt.block_on(run(unasked, reply));
    assert!(got.starts_with(expect), "\n got: {got}\nwant: {expect}");
}

#[test]
fn replies() {
    let ok = r#"ok {"bootloader_version": "1.3.0", "version_firmware": "3.4.0"}"#;
    check(b"", |_| Some(b"FW 3.4.0 BL 1.3.0\r\n".to_vec()), ok);
    // A boot banner sent unasked is dropped; an echo of the command is skipped.
    check(
        b"LabCore L2 boot\r\n",
        |_| Some(b"FW 3.4.0 BL 1.3.0\r\n".to_vec()),
        ok,
    );
    check(
        b"",
        |c| Some(format!("{c}\r\nFW 3.4.0 BL 1.3.0\n").into_bytes()),
        ok,
    );
    check(
        b"",
        |_| Some(b"FW NONE BL 1.3.0\r\n".to_vec()),
        r#"ok {"bootloader_version": "1.3.0"}"#,
    );
    check(
        b"",
        |_| Some(b"ERR UNKNOWN COMMAND\r\n".to_vec()),
        "device: VER?: the device answered \"ERR UNKNOWN COMMAND\", required a reply matching ^FW ",
    );
    check(
        b"",
        |_| None,
        "timeout: VER?: no reply within 200 ms: is the device powered",
    );
    // A reply that never ends: memory stays bounded, and the wait ends in time.
    check(
        b"",
        |_| Some(b"FW 3.4.0".to_vec()),
        "timeout: VER?: no reply within 200 ms",
    );
    check(
        b"",
        |_| Some(vec![b'x'; 50_000]),
        "timeout: VER?: no reply within 200 ms",
    );
    check(
        b"",
        |_| Some([vec![b'x'; 5000], b"\r\n".to_vec()].concat()),
        "device: VER?: a reply line longer than 256 bytes (found at least 5000)",
    );
    check(
        b"",
        |_| Some(b"\xff\xfe\r\n".to_vec()),
        "device: VER?: a reply line that is not UTF-8 text",
    );
}

#[test]
fn a_profile_without_line_protocol_is_refused() {
    let profile = ProfileSet::builtin()
        .get("acme-infusion-p7")
        .unwrap()
        .clone();
    let (a, _b) = tokio::io::duplex(16);
    let err = LineClient::new(a, &profile).err().unwrap();
    assert!(matches!(err, LineError::NotLine(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "profile acme-infusion-p7 has no [line_protocol]: it is not a line-family device"
    );
}
