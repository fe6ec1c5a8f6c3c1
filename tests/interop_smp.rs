//! The interop matrix: third-party SMP clients against the simulator in both of its modes, as
//! they would work against a Zephyr application and against MCUboot's serial recovery.
//! `smpclient` (PyPI) and `mcumgrctl` (crate `mcumgr-toolkit`) each do echo, image list,
//! upload, test, confirm and reset, as far as the mode allows: serial recovery has no test
//! slot (the upload lands in slot 0, a reset boots it), the application mode tests the new
//! image in slot 1 and confirms it after the reset. Every simulator runs in strict mode, so a
//! frame either tool made too large for the device fails the test. `cargo xtask setup`
//! installs both tools; a missing one fails the test, never skips it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::Sim;

const APP: &str = "vitalis-monitor-m3";
const RECOVERY: &str = "vitalis-monitor-m3-recovery";

fn run(program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (cargo xtask setup): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// An image signed by MCUboot's `imgtool`, as a firmware build makes it.
fn imgtool_image(dir: &Path, version: &str) -> (PathBuf, String) {
    let key = dir.join("key.pem");
    let bin = dir.join("app.bin");
    let signed = dir.join("app-signed.bin");
    std::fs::write(
        &bin,
        (0..30_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let p = |p: &Path| p.to_str().unwrap().to_owned();
    run("imgtool", &["keygen", "-k", &p(&key), "-t", "ed25519"]);
    run(
        "imgtool",
        &[
            "sign",
            "--key",
            &p(&key),
            "--version",
            version,
            "--header-size",
            "0x200",
            "--pad-header",
            "--slot-size",
            "0xC0000",
            &p(&bin),
            &p(&signed),
        ],
    );
    let bytes = std::fs::read(&signed).unwrap();
    let hash = hex::encode(
        fieldkit_mcuboot::Image::parse(&bytes)
            .unwrap()
            .hash_tlv()
            .unwrap(),
    );
    (signed, hash)
}

/// One of the two third-party clients.
#[derive(Clone, Copy, Debug)]
enum Tool {
    Smpclient,
    Mcumgrctl,
}

impl Tool {
    /// Runs one action; returns the image list it reports, when the action has one.
    fn act(self, port: &str, action: &str, arg: Option<&str>) -> Value {
        match self {
            Tool::Smpclient => {
                let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/smpclient_do.py");
                let mut args = vec![script, port, action];
                args.extend(arg);
                let out = run("python3", &args);
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(v["ok"], true, "smpclient {action}: {v}");
                v
            }
            Tool::Mcumgrctl => {
                let mut args = vec!["--serial", port, "--json", "--quiet"];
                match action {
                    "echo" => args.extend(["os", "echo", arg.unwrap()]),
                    "list" => args.extend(["image", "get-state"]),
                    "upload" => args.extend(["image", "upload", arg.unwrap()]),
                    "test" => args.extend(["image", "set-state", "--hash", arg.unwrap()]),
                    "confirm" => args.extend(["image", "set-state", "--confirm"]),
                    "reset" => args.extend(["os", "system-reset"]),
                    _ => panic!("no action {action}"),
                }
                let out = run("mcumgrctl", &args);
                let text = String::from_utf8_lossy(&out.stdout);
                match action {
                    "list" | "test" | "confirm" => {
                        serde_json::json!({ "images": serde_json::from_str::<Value>(&text).unwrap() })
                    }
                    _ => serde_json::json!({ "out": text.trim() }),
                }
            }
        }
    }
}

/// `image/slot version flags` of each listed slot.
fn slots(v: &Value) -> Vec<String> {
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut flags = String::new();
            for (k, c) in [("active", 'A'), ("confirmed", 'C'), ("pending", 'P')] {
                if s[k] == true {
                    flags.push(c);
                }
            }
            format!(
                "{}/{} {} {flags}",
                s["image"],
                s["slot"],
                s["version"].as_str().unwrap()
            )
        })
        .collect()
}

fn application_mode(tool: Tool) {
    let dir = tempfile::tempdir().unwrap();
    let (image, hash) = imgtool_image(dir.path(), "4.2.0+3");
    let sim = Sim::start(APP, &[]);
    let port = sim.port();
    let echo = tool.act(port, "echo", Some("hello device"));
    assert!(
        echo.to_string().contains("hello device"),
        "{tool:?}: {echo}"
    );
    assert_eq!(
        slots(&tool.act(port, "list", None)),
        ["0/0 4.0.2 AC"],
        "{tool:?}"
    );
    tool.act(port, "upload", Some(image.to_str().unwrap()));
    assert_eq!(
        slots(&tool.act(port, "list", None)),
        ["0/0 4.0.2 AC", "0/1 4.2.0.3 "],
        "{tool:?}"
    );
    let tested = tool.act(port, "test", Some(&hash));
    assert_eq!(
        slots(&tested),
        ["0/0 4.0.2 AC", "0/1 4.2.0.3 P"],
        "{tool:?}"
    );
    tool.act(port, "reset", None);
    sim.wait_for("booted", Duration::from_secs(10));
    assert_eq!(
        slots(&tool.act(port, "list", None)),
        ["0/0 4.2.0.3 A", "0/1 4.0.2 C"],
        "{tool:?}: the new image runs on test"
    );
    let confirmed = tool.act(port, "confirm", None);
    assert_eq!(
        slots(&confirmed),
        ["0/0 4.2.0.3 AC", "0/1 4.0.2 "],
        "{tool:?}"
    );
    assert_eq!(sim.state()["images"][0]["primary"]["hash"], hash.as_str());
}

fn serial_recovery(tool: Tool) {
    let dir = tempfile::tempdir().unwrap();
    let (image, hash) = imgtool_image(dir.path(), "4.2.0+3");
    let sim = Sim::start(RECOVERY, &[]);
    let port = sim.port();
    let echo = tool.act(port, "echo", Some("hello bootloader"));
    assert!(
        echo.to_string().contains("hello bootloader"),
        "{tool:?}: {echo}"
    );
    // Only slots that validate are listed: slot 0, no image number, no splitStatus.
    assert_eq!(
        slots(&tool.act(port, "list", None)),
        ["0/0 4.0.2 AC"],
        "{tool:?}"
    );
    // The upload lands in slot 0, in place.
    tool.act(port, "upload", Some(image.to_str().unwrap()));
    sim.wait_for("slot 0 erased (was 4.0.2)", Duration::from_secs(5));
    assert_eq!(
        slots(&tool.act(port, "list", None)),
        ["0/0 4.2.0.3 AC"],
        "{tool:?}"
    );
    assert_eq!(sim.state()["images"][0]["primary"]["hash"], hash.as_str());
    // No test slot: a reset boots the new image, which runs the application.
    tool.act(port, "reset", None);
    sim.wait_for("MCUboot boots the application", Duration::from_secs(10));
    sim.wait_for("booted", Duration::from_secs(10));
    let info = tool.act(port, "echo", Some("hello application"));
    assert!(
        info.to_string().contains("hello application"),
        "{tool:?}: {info}"
    );
}

#[test]
fn smpclient_in_application_mode() {
    application_mode(Tool::Smpclient);
}

#[test]
fn smpclient_in_serial_recovery() {
    serial_recovery(Tool::Smpclient);
}

#[test]
fn mcumgrctl_in_application_mode() {
    application_mode(Tool::Mcumgrctl);
}

#[test]
fn mcumgrctl_in_serial_recovery() {
    serial_recovery(Tool::Mcumgrctl);
}
