//! A monitor in MCUboot's serial recovery, serviced end to end by the CLI: probed without a
//! profile (it has no vendor group; the probe tells it from the application), identified with
//! the fields the technician types off the rating plate, checked (the plan carries the "no
//! test slot" risk), updated in place once the risk is accepted, read back by image hash, and
//! reset into the new application. The audit log says "applied in place" and which fields
//! were typed.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Sim, fieldkit};

const RECOVERY: &str = "vitalis-monitor-m3-recovery";

/// What the technician reads off the monitor's rating plate and states about its use.
const TYPED: [&str; 10] = [
    "--typed",
    "serial=VM3-1180-2291",
    "--typed",
    "hardware_revision=B2",
    "--typed",
    "bootloader_version=1.10.0",
    "--typed",
    "therapy_running=false",
    "--typed",
    "on_mains=true",
];

fn demo_home() -> tempfile::TempDir {
    let home = support::home();
    fieldkit(home.path(), &["demo", "init"]).ok();
    home
}

fn args<'a>(head: &[&'a str], port: &'a str) -> Vec<&'a str> {
    let mut v = head.to_vec();
    v.extend(["--port", port]);
    v.extend(TYPED);
    v
}

fn slot0(sim: &Sim) -> Value {
    sim.state()["images"][0]["primary"].clone()
}

#[test]
fn a_device_in_serial_recovery_is_probed_and_identified_with_typed_fields() {
    let sim = Sim::start(RECOVERY, &[]);
    let home = support::home();
    // Without the typed fields, the error names each one and how to give it.
    let reason = fieldkit(home.path(), &["identify", "--port", sim.port()])
        .fails()
        .to_owned();
    assert!(
        reason.contains("profile vitalis-monitor-m3-recovery needs fields without a value")
            && reason.contains("--typed serial=VALUE")
            && reason.contains("--typed hardware_revision=VALUE"),
        "{reason}"
    );
    // A field the device reports cannot be typed over.
    let run = fieldkit(
        home.path(),
        &[
            "identify",
            "--port",
            sim.port(),
            "--profile",
            "vitalis-monitor-m3",
            "--typed",
            "serial=X",
        ],
    );
    assert!(run.fails().contains("field serial is read from the device"));

    let run = fieldkit(home.path(), &args(&["--json", "identify"], sim.port()));
    run.ok();
    let id = run.json();
    assert_eq!(
        id["profile"], RECOVERY,
        "the probe tells recovery from the application"
    );
    assert_eq!(id["model"], "VM-3 Patient Monitor");
    assert_eq!(id["serial"], "VM3-1180-2291");
    assert_eq!(id["fields"]["serial"]["source"], "typed");
    assert_eq!(id["fields"]["on_mains"]["value"], true);
    // MCUboot's serial recovery has no bootloader info: nothing is claimed.
    assert_eq!(id["bootloader"], Value::Null);
    let slots = id["slots"].as_array().unwrap();
    assert_eq!(
        slots.len(),
        1,
        "only slots that validate are listed: {slots:?}"
    );
    assert_eq!(slots[0]["slot"], 0);
    assert_eq!(slots[0]["version"], slot0(&sim)["version"]);
    assert_eq!(slots[0]["hash"], slot0(&sim)["hash"]);
    // The text form marks typed values.
    let text = fieldkit(home.path(), &args(&["identify"], sim.port()));
    assert!(
        text.ok()
            .contains("Connected to mains power true  (typed by the technician)"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_device_in_serial_recovery_is_updated_in_place_with_the_risk_accepted() {
    let home = demo_home();
    let sim = Sim::start(RECOVERY, &[]);
    let before = slot0(&sim)["version"].as_str().unwrap().to_owned();

    let check = fieldkit(home.path(), &args(&["--json", "check"], sim.port()));
    check.ok();
    let plan = &check.json()["plan"];
    assert_eq!(plan["verdict"], "go", "{plan}");
    let risks = plan["risks"].as_array().unwrap();
    assert!(
        risks.len() == 1 && risks[0].as_str().unwrap().contains("no test slot"),
        "{risks:?}"
    );
    // The device takes its application's packages; the demo's monitor needs a stepping stone.
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["package"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["vitalis-monitor-m3@4.1.0", "vitalis-monitor-m3@5.0.0"]
    );

    // Not without the risk accepted: nothing reaches the device.
    let reason = fieldkit(home.path(), &args(&["update", "--yes"], sim.port()))
        .fails()
        .to_owned();
    assert!(reason.contains("--accept-risk"), "{reason}");
    assert_eq!(slot0(&sim)["version"], before.as_str());

    // The first step is written in place, read back by its hash, and the reset boots the
    // application: the rest is for the application profile, with a test boot.
    let run = fieldkit(
        home.path(),
        &args(&["--json", "update", "--yes", "--accept-risk"], sim.port()),
    );
    let reason = run.fails().to_owned();
    assert_eq!(
        reason,
        "error: 1 step applied in place; the device restarted into its application: check it again with profile vitalis-monitor-m3 to apply the remaining 1 step"
    );
    let result: Vec<Value> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "result")
        .collect();
    let result = &result[0]["result"];
    assert_eq!(result["continue_as"], "vitalis-monitor-m3");
    let steps = result["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(
        steps[0]["verdict"]["verdict"], "applied_in_place",
        "{steps:?}"
    );
    assert_eq!(steps[1]["verdict"]["verdict"], "not_attempted", "{steps:?}");
    assert_eq!(slot0(&sim)["version"], "4.1.0");
    sim.wait_for("slot 0 erased", Duration::from_secs(5));
    sim.wait_for("MCUboot boots the application", Duration::from_secs(5));

    // The audit log: intent, then the outcome, with the typed fields marked.
    let entries = fieldkit(home.path(), &["--json", "audit", "list"]).json();
    let entries = entries.as_array().unwrap();
    let outcome = entries.last().unwrap();
    assert_eq!(outcome["event"], "update_succeeded");
    assert_eq!(
        outcome["details"]["result"]["verdict"], "applied_in_place",
        "{outcome}"
    );
    assert_eq!(outcome["device"]["serial"], "VM3-1180-2291");
    let intent = &entries[entries.len() - 2];
    assert_eq!(intent["event"], "update_started");
    let typed: Vec<&str> = intent["device"]["typed"]
        .as_array()
        .unwrap_or_else(|| panic!("typed fields are recorded: {intent}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        typed,
        [
            "bootloader_version",
            "hardware_revision",
            "on_mains",
            "serial",
            "therapy_running"
        ]
    );
    assert_eq!(
        intent["details"]["risks_accepted"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The monitor now runs its application: the last step is a normal swap update.
    let run = fieldkit(
        home.path(),
        &[
            "update",
            "--port",
            sim.port(),
            "--profile",
            "vitalis-monitor-m3",
            "--yes",
        ],
    );
    run.ok();
    assert_eq!(slot0(&sim)["version"], "5.0.0");
    assert_eq!(sim.state()["images"][0]["primary_confirmed"], true);
}

#[test]
fn an_interrupted_recovery_upload_starts_over_from_the_beginning() {
    let home = demo_home();
    // The cable comes out 6 KB into the upload: the old image is already erased.
    let sim = Sim::start(
        RECOVERY,
        &[
            "--fault",
            "disconnect-after=6000",
            "--fault",
            "unplug-ms=200",
        ],
    );
    let package = home.path().join("packages/vitalis-monitor-m3-4.1.0.fkpkg");
    let mut a = args(&["--json", "update", "--yes", "--accept-risk"], sim.port());
    a.extend(["--package", package.to_str().unwrap()]);
    let run = fieldkit(home.path(), &a);
    run.ok();
    // Serial recovery cannot resume: the upload began again at offset 0 (a second erase).
    let started: Vec<String> = sim
        .events_until("MCUboot boots the application", Duration::from_secs(10))
        .into_iter()
        .filter(|e| e.contains("upload of"))
        .collect();
    assert_eq!(started.len(), 2, "{started:?}");
    assert!(
        run.stdout.contains("starting the upload over"),
        "{}",
        run.stdout
    );
    assert_eq!(slot0(&sim)["version"], "4.1.0");
}
