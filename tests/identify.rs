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
        assert_eq!(id["model"], state["model"], "{profile}");
        assert_eq!(id["bootloader"], state["bootloader"], "{profile}");
        for field in ["serial", "hardware_revision", "bootloader_version"] {
            assert_eq!(id[field], state["fields"][field], "{profile}: {field}");
        }
        // Every field the device reports, with where it came from.
        for field in [
            "serial",
            "hardware_revision",
            "bootloader_version",
            "battery_percent",
            "therapy_running",
        ] {
            assert_eq!(
                id["fields"][field]["value"], state["fields"][field],
                "{profile}: {field}"
            );
            assert_eq!(
                id["fields"][field]["source"], "vendor",
                "{profile}: {field}"
            );
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
        "Battery (%)              87",
        "Infusion running         false",
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
    let cases: [(&[&str], &str); 4] = [
        // Nothing ever comes back: fieldkit waits out the profile's reset time (the device
        // may be restarting), then says what it saw.
        (
            &["--fault", "never-answer"],
            "the device did not answer within 30 s (its profile's reset time, in case it was restarting): are you there (echo): no reply within 500 ms: is the device powered",
        ),
        // It answers, too late: it is there, so the words are not about power.
        (
            &["--fault", "answer-late=4000"],
            "read identity: no reply within 3000 ms (last problem on the line: a reply with sequence number",
        ),
        (&["--fault", "wrong-seq"], "(group 64, command 0), required"),
        (
            &["--fault", "corrupt=1"],
            "the device did not answer within 30 s",
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

/// A device that drops the line in the middle of a reply is read again once it is back.
#[test]
fn a_reply_cut_by_a_cable_pull_is_asked_again() {
    let sim = Sim::start("acme-infusion-p7", &["--fault", "disconnect-mid-reply"]);
    let home = home();
    let run = fieldkit(
        home.path(),
        &[
            "--json",
            "identify",
            "--port",
            sim.port(),
            "--profile",
            "acme-infusion-p7",
        ],
    );
    run.ok();
    assert_eq!(run.json()["serial"], "P7-004217");
    sim.wait_for("cable plugged back in", std::time::Duration::from_secs(10));
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
