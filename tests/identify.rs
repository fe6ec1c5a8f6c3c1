//! `fieldkit identify` against the simulator, as a technician runs it.

mod support;

use support::{Sim, fieldkit, home};

/// Every identity field the CLI reports equals what the simulated device holds.
#[test]
fn identify_reports_every_field_of_the_device() {
    for profile in ["acme-infusion-p7", "vitalis-monitor-m3"] {
        let sim = Sim::start(profile, &[]);
        let home = home();
        let run = fieldkit(home.path(), &["--json", "identify", "--port", sim.port()]);
        run.ok();
        let id = run.json();
        let state = sim.state();
        assert_eq!(id["profile"], profile);
        for (id_field, state_field) in [
            ("model", "model"),
            ("serial", "serial"),
            ("hardware_revision", "hardware_revision"),
            ("bootloader", "bootloader"),
            ("bootloader_version", "bootloader_version"),
            ("battery_percent", "battery_percent"),
            ("therapy_running", "therapy_running"),
        ] {
            assert_eq!(id[id_field], state[state_field], "{profile}: {id_field}");
        }
        let slots = id["slots"].as_array().unwrap();
        let images = state["images"].as_array().unwrap();
        assert_eq!(
            slots.len(),
            images.len(),
            "{profile}: one active slot per image"
        );
        for img in images {
            let n = img["image"].as_u64().unwrap();
            let slot = slots
                .iter()
                .find(|s| s["image"] == n && s["slot"] == 0)
                .unwrap();
            assert_eq!(slot["version"], img["primary"]["version"]);
            assert_eq!(slot["hash"], img["primary"]["hash"]);
            assert_eq!(slot["active"], true);
            assert_eq!(slot["confirmed"], img["primary_confirmed"]);
        }
        assert!(id["buffers"].is_array());
    }
}

#[test]
fn identify_prints_a_readable_summary() {
    let sim = Sim::start("acme-infusion-p7", &["--fault", "log-noise"]);
    let home = home();
    let text = fieldkit(
        home.path(),
        &[
            "identify",
            "--port",
            sim.port(),
            "--profile",
            "acme-infusion-p7",
        ],
    );
    let out = text.ok();
    for want in [
        "InfuSafe P7",
        "P7-004217",
        "revision C",
        "MCUboot 2.1.0",
        "87 %",
        "not running",
        "app",
        "2.3.1",
        "netcore",
        "1.4.0",
        "active, confirmed",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn the_wrong_profile_is_named() {
    let sim = Sim::start("vitalis-monitor-m3", &[]);
    let home = home();
    let run = fieldkit(
        home.path(),
        &[
            "identify",
            "--port",
            sim.port(),
            "--profile",
            "acme-infusion-p7",
        ],
    );
    let reason = run.fails();
    // Both models share the vendor group and the `model` key: the model they report decides.
    assert_eq!(
        reason,
        "error: the device reports model \"VM-3 Patient Monitor\", but profile acme-infusion-p7 is for \"InfuSafe P7\": pick the right profile (--profile)"
    );
}

/// A device that misbehaves on the line gives a clear, typed, one-line error in time.
#[test]
fn misbehaving_devices_give_clear_errors() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--fault", "never-answer"],
            "no reply within 3000 ms: is the device powered",
        ),
        (&["--fault", "answer-late=4000"], "no reply within 3000 ms"),
        (
            &["--fault", "wrong-seq"],
            "a reply with sequence number 2 (group 64, command 0), required 1",
        ),
        (&["--fault", "corrupt=1"], "no reply within 3000 ms"),
        (
            &["--fault", "disconnect-mid-reply"],
            "the device disconnected in the middle of its reply",
        ),
    ];
    for (faults, want) in cases {
        let sim = Sim::start("acme-infusion-p7", faults);
        let home = home();
        let run = fieldkit(
            home.path(),
            &[
                "identify",
                "--port",
                sim.port(),
                "--profile",
                "acme-infusion-p7",
            ],
        );
        let reason = run.fails();
        assert!(reason.contains(want), "{faults:?}: {reason}");
    }
}

#[test]
fn a_missing_port_and_an_unknown_profile_are_refused() {
    let home = home();
    let run = fieldkit(home.path(), &["identify", "--port", "/dev/does-not-exist"]);
    assert!(
        run.fails()
            .contains("port /dev/does-not-exist does not exist")
    );
    let sim = Sim::start("acme-infusion-p7", &[]);
    let run = fieldkit(
        home.path(),
        &["identify", "--port", sim.port(), "--profile", "toaster"],
    );
    assert!(
        run.fails()
            .contains("unknown profile \"toaster\": required one of acme-infusion-p7")
    );
}

#[test]
fn ports_lists_serial_ports_as_one_json_document() {
    let home = home();
    let run = fieldkit(home.path(), &["--json", "ports"]);
    run.ok();
    // Pseudo-terminals are not serial ports to the OS's discovery, so a machine without
    // adapters lists none; whatever is listed carries its USB details and matched profile.
    for port in run.json().as_array().expect("an array of ports") {
        assert!(
            port["path"].is_string() && port.get("profile").is_some(),
            "{port}"
        );
    }
    let text = fieldkit(home.path(), &["ports"]);
    assert!(!text.ok().is_empty());
}
