//! Third-party SMP clients work against the simulator as against a Zephyr device: `smpclient`
//! (PyPI) reads the image state and uploads an image made by MCUboot's `imgtool`, which then
//! shows in slot 1. `.ci/run` installs both; a missing tool fails this test, never skips it.

mod support;

use std::process::Command;

use support::Sim;

fn run(program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (.ci/run installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn smpclient_uploads_an_imgtool_image_to_slot_1() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let bin = dir.path().join("app.bin");
    let signed = dir.path().join("app-signed.bin");
    std::fs::write(
        &bin,
        (0..40_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let p = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    run("imgtool", &["keygen", "-k", &p(&key), "-t", "ed25519"]);
    run(
        "imgtool",
        &[
            "sign",
            "--key",
            &p(&key),
            "--version",
            "2.4.0+7",
            "--header-size",
            "0x200",
            "--pad-header",
            "--slot-size",
            "0x100000",
            &p(&bin),
            &p(&signed),
        ],
    );

    let sim = Sim::start("acme-infusion-p7", &[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/smpclient_upload.py"
    );
    let out = run("python3", &[script, sim.port(), &p(&signed)]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let before = report["before"].as_array().unwrap();
    assert!(
        before.iter().all(|s| s["slot"] == 0),
        "nothing in slot 1 before: {before:?}"
    );
    let after = report["after"].as_array().unwrap();
    let slot1 = after
        .iter()
        .find(|s| s["image"] == 0 && s["slot"] == 1)
        .expect("image in slot 1");
    assert_eq!(slot1["version"], "2.4.0.7");
    assert_eq!(
        report["last_offset"],
        std::fs::metadata(&signed).unwrap().len()
    );

    // The simulator's flash holds exactly imgtool's bytes, and reports their hash TLV.
    let state = sim.state();
    let secondary = &state["images"][0]["secondary"];
    assert_eq!(secondary["version"], "2.4.0.7");
    assert_eq!(slot1["hash"], secondary["hash"]);
    use base64::Engine as _;
    let stored = base64::engine::general_purpose::STANDARD
        .decode(secondary["bytes"].as_str().unwrap())
        .unwrap();
    assert_eq!(stored, std::fs::read(&signed).unwrap());
}
