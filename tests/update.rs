//! `fieldkit check` and `fieldkit update` as a technician runs them: the real CLI, a real
//! simulator process on a pseudo-terminal, the demo kit in a scratch home. After every run the
//! device runs a valid, confirmed image, its state file agrees, and the audit log says what
//! happened and why.

mod support;

use serde_json::Value;
use support::{Run, Sim, audit_entries, demo_home, events, fieldkit, p, runs, variant};

#[test]
fn a_two_image_update_goes_network_core_first() {
    let home = demo_home();
    let sim = Sim::start("acme-infusion-p7", &[]);
    let check = fieldkit(home.path(), &["--json", "check", "--port", sim.port()]);
    check.ok();
    let plan = &check.json()["plan"];
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["package"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "acme-infusion-p7@1.5.0",
            "acme-infusion-p7@2.4.0",
            "acme-infusion-p7@3.0.0"
        ]
    );

    let run = fieldkit(home.path(), &["update", "--port", sim.port(), "--yes"]);
    let out = run.ok();
    assert!(
        out.contains("acme-infusion-p7@3.0.0: applied; the new firmware runs"),
        "{out}"
    );
    assert_eq!(runs(&sim, 0), ("3.0.0".into(), true));
    assert_eq!(runs(&sim, 1), ("1.5.0".into(), true));

    // The device agrees with its state file, and the log tells the story in order.
    let id = fieldkit(home.path(), &["--json", "identify", "--port", sim.port()]).json();
    let active: Vec<(String, String)> = id["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["active"] == true)
        .map(|s| {
            (
                s["component"].as_str().unwrap().to_owned(),
                s["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        active,
        [
            ("app".to_owned(), "3.0.0".to_owned()),
            ("netcore".to_owned(), "1.5.0".to_owned())
        ]
    );
    assert_eq!(
        events(home.path()),
        [
            "check_passed",
            "check_passed",
            "update_started",
            "update_succeeded",
            "update_started",
            "update_succeeded",
            "update_started",
            "update_succeeded",
            "device_identified"
        ]
    );
    let entries = audit_entries(home.path());
    assert_eq!(
        entries[7]["device"]["firmware"]["app"], "3.0.0",
        "the outcome records the device after the update"
    );
    assert_eq!(entries[7]["details"]["intent_seq"], 6);
    fieldkit(home.path(), &["audit", "verify"]).ok();
}

/// Each rule refuses with its name, the value found and the value required, on stderr in one
/// line, and the refusal is in the audit log. Nothing reaches the device.
#[test]
fn every_rule_refuses_with_its_reason() {
    let home = demo_home();
    let h = home.path();
    let sim = Sim::start("acme-infusion-p7", &[]);
    let packages = h.join("packages");
    let pkg = |name: &str| packages.join(name).to_str().unwrap().to_owned();
    let check = |extra: &[&str]| -> Run {
        let mut args = vec!["check", "--port", sim.port()];
        args.extend_from_slice(extra);
        fieldkit(h, &args)
    };
    let old_bootloader = variant(h, "acme-infusion-p7-2.4.0", "old-bootloader", |m| {
        m["requires"]["bootloader"] = ">=3.0.0".into()
    });
    let expired = variant(h, "acme-infusion-p7-2.4.0", "expired", |m| {
        m["expires"] = "2026-01-01T00:00:00Z".into()
    });
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--package".into(), pkg("vitalis-monitor-m3-5.0.0.fkpkg")],
            "rule target.product: found acme-infusion-p7, required vitalis-monitor-m3",
        ),
        (
            vec!["--package".into(), pkg("acme-infusion-p7-2.5.0.fkpkg")],
            "rule target.hardware: found C, required D",
        ),
        (
            vec!["--package".into(), p(&old_bootloader).into()],
            "rule target.bootloader: found 2.1.0, required >=3.0.0",
        ),
        (
            vec!["--package".into(), pkg("acme-infusion-p7-2.4.1.fkpkg")],
            "rule recall.package: found acme-infusion-p7@2.4.1 recalled",
        ),
        (
            vec!["--package".into(), p(&expired).into()],
            "rule manifest.expiry",
        ),
    ];
    for (extra, want) in &cases {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let reason = check(&extra).fails().to_owned();
        assert!(reason.contains(want), "{extra:?}: {reason}");
    }
    // Not entitled: without the technician's entitlement, a feature release is refused; with
    // an entitlement for another device, too. (The security release 2.3.2 would still go
    // ahead: the trust root's policy lets patches reach every device.)
    std::fs::rename(
        h.join("entitlements/demo-valid.json"),
        h.join("demo-valid.json"),
    )
    .unwrap();
    let feature = pkg("acme-infusion-p7-2.4.0.fkpkg");
    let reason = check(&["--package", &feature]).fails().to_owned();
    assert!(
        reason.contains("rule entitlement.present: found no entitlement"),
        "{reason}"
    );
    let summary = fieldkit(h, &["--json", "check", "--port", sim.port()]);
    assert_eq!(summary.json()["plan"]["target"], "acme-infusion-p7@2.3.2");
    let other = h.join("demo/entitlements/demo-other-device.json");
    let reason = check(&["--package", &feature, "--entitlement", p(&other)])
        .fails()
        .to_owned();
    assert!(
        reason.contains("rule entitlement.device: found acme-infusion-p7:P7-004217"),
        "{reason}"
    );
    // Contract over, but the release is within the maintenance period: allowed.
    let maintained = h.join("maintained.json");
    fieldkit(
        h,
        &[
            "entitlement",
            "issue",
            "--key",
            p(&h.join("keys/demo-entitlement.key.pem")),
            "--customer",
            "DEMO St. Example Hospital",
            "--device",
            "acme-infusion-p7:P7-004217",
            "--feature",
            "firmware-updates",
            "--valid-from",
            "2025-01-01",
            "--valid-until",
            "2025-12-31",
            "--maintenance-through",
            "2026-12-31",
            "--out",
            p(&maintained),
        ],
    )
    .ok();
    let run = fieldkit(
        h,
        &[
            "--json",
            "check",
            "--port",
            sim.port(),
            "--package",
            &feature,
            "--entitlement",
            p(&maintained),
        ],
    );
    run.ok();
    let window: Vec<Value> = run.json()["plan"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["findings"].as_array().unwrap().clone())
        .filter(|f| f["rule"] == "entitlement.window")
        .collect();
    assert!(
        window
            .iter()
            .all(|f| f["passed"] == true
                && f["explanation"].as_str().unwrap().contains("maintenance")),
        "{window:?}"
    );
    std::fs::rename(
        h.join("demo-valid.json"),
        h.join("entitlements/demo-valid.json"),
    )
    .unwrap();

    // The clock set back more than a day behind the newest signed time seen.
    let state_path = h.join("trust/state.json");
    let saved = std::fs::read(&state_path).unwrap();
    let mut state: Value = serde_json::from_slice(&saved).unwrap();
    state["time_mark"] = (chrono::Utc::now() + chrono::Duration::days(3))
        .to_rfc3339()
        .into();
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let reason = check(&[]).fails().to_owned();
    assert!(reason.contains("rule time.clock"), "{reason}");
    std::fs::write(&state_path, saved).unwrap();

    // None of this touched the device; every refusal is in the log.
    assert_eq!(runs(&sim, 0), ("2.3.1".into(), true));
    let refused = events(h).iter().filter(|e| *e == "check_refused").count();
    assert_eq!(refused, cases.len() + 3, "{:?}", events(h));
    fieldkit(h, &["audit", "verify"]).ok();
}

#[test]
fn a_downgrade_and_a_lower_security_counter_are_refused() {
    let home = demo_home();
    let h = home.path();
    let sim = Sim::start("acme-infusion-p7", &[]);
    let pkg = |name: &str| h.join("packages").join(name).to_str().unwrap().to_owned();
    fieldkit(
        h,
        &[
            "update",
            "--port",
            sim.port(),
            "--yes",
            "--package",
            &pkg("acme-infusion-p7-2.4.0.fkpkg"),
        ],
    )
    .ok();
    assert_eq!(runs(&sim, 0), ("2.4.0".into(), true));
    let reason = fieldkit(
        h,
        &[
            "check",
            "--port",
            sim.port(),
            "--package",
            &pkg("acme-infusion-p7-2.3.2.fkpkg"),
        ],
    )
    .fails()
    .to_owned();
    assert!(
        reason.contains("rule target.downgrade: found app 2.3.2, required app 2.4.0 or later"),
        "{reason}"
    );
    // A newer version signed with an older security counter: the device's counter is 2 now.
    let stale = variant(h, "acme-infusion-p7-3.0.0", "stale-counter", |m| {
        m["security_counter"] = 1.into()
    });
    let reason = fieldkit(h, &["check", "--port", sim.port(), "--package", p(&stale)])
        .fails()
        .to_owned();
    assert!(
        reason.contains("rule target.security_counter: found 1, required 2 or more"),
        "{reason}"
    );
}

#[test]
fn an_unsafe_device_is_refused() {
    for (fault, want) in [
        (
            "battery=12",
            "rule safety.precondition: found battery_percent = 12, required battery_percent >= 40",
        ),
        (
            "therapy-running",
            "rule safety.precondition: found therapy_running = true, required therapy_running == false",
        ),
    ] {
        let home = demo_home();
        let sim = Sim::start("acme-infusion-p7", &["--fault", fault]);
        let reason = fieldkit(home.path(), &["update", "--port", sim.port(), "--yes"])
            .fails()
            .to_owned();
        assert!(reason.contains(want), "{fault}: {reason}");
        assert_eq!(runs(&sim, 0), ("2.3.1".into(), true));
        assert!(!events(home.path()).contains(&"update_started".to_owned()));
    }
}

/// One update, of `package` on a simulated `profile` under `faults`: the home, the device
/// and the result.
fn update_under(
    profile: &str,
    package: &str,
    faults: &[&str],
    extra: &[&str],
) -> (tempfile::TempDir, Sim, Run) {
    let home = demo_home();
    let fault_args: Vec<&str> = faults.iter().flat_map(|f| ["--fault", f]).collect();
    let sim = Sim::start(profile, &fault_args);
    let pkg = home.path().join("packages").join(package);
    let mut args = vec![
        "update",
        "--port",
        sim.port(),
        "--yes",
        "--package",
        p(&pkg),
    ];
    args.extend_from_slice(extra);
    let run = fieldkit(home.path(), &args);
    (home, sim, run)
}

/// One step (the network core) under a fault.
fn netcore_update(faults: &[&str]) -> (tempfile::TempDir, Sim, Run) {
    update_under(
        "acme-infusion-p7",
        "acme-infusion-p7-1.5.0.fkpkg",
        faults,
        &[],
    )
}

/// The bytes the device receives before the upload starts (identify and check traffic),
/// then the upload's share: the encoded image is about 4/3 of its 17 KiB plus framing.
const BEFORE_UPLOAD: u64 = 1_500;
const UPLOAD_ON_WIRE: u64 = 24_000;

#[test]
fn a_cable_pull_anywhere_in_the_upload_is_resumed() {
    for tenth in 1..=10 {
        let at = BEFORE_UPLOAD + UPLOAD_ON_WIRE * tenth / 10;
        let (home, sim, run) =
            netcore_update(&[&format!("disconnect-after={at}"), "unplug-ms=150"]);
        assert_eq!(
            run.code, 0,
            "pulled at {at}: {}\n{}",
            run.stderr, run.stdout
        );
        assert_eq!(runs(&sim, 1), ("1.5.0".into(), true), "pulled at {at}");
        let log = events(home.path());
        assert_eq!(
            &log[log.len() - 2..],
            ["update_started", "update_succeeded"],
            "pulled at {at}"
        );
    }
}

#[test]
fn corrupted_bytes_a_reboot_mid_upload_are_survived() {
    for faults in [
        &["corrupt=0.0002"][..],
        &["reboot-at=8000"],
        &["lose-reply=7"],
        &["log-noise"],
    ] {
        let (home, sim, run) = netcore_update(faults);
        assert_eq!(run.code, 0, "{faults:?}: {}", run.stderr);
        assert_eq!(runs(&sim, 1), ("1.5.0".into(), true), "{faults:?}");
        assert_eq!(events(home.path()).last().unwrap(), "update_succeeded");
    }
}

#[test]
fn a_flash_failure_is_reported_and_the_old_image_runs() {
    let (home, sim, run) = netcore_update(&["flash-fail-at=6000"]);
    let reason = run.fails();
    assert!(
        reason.contains("uploading failed") && reason.contains("writing the flash area failed"),
        "{reason}"
    );
    assert_eq!(runs(&sim, 1), ("1.4.0".into(), true));
    let entries = audit_entries(home.path());
    let last = entries.last().unwrap();
    assert_eq!(last["event"], "update_failed");
    assert_eq!(last["details"]["result"]["verdict"], "failed");
    assert_eq!(last["details"]["result"]["stage"], "uploading");
    assert_eq!(last["device"]["firmware"]["netcore"], "1.4.0");
}

#[test]
fn a_device_that_refuses_to_confirm_is_reported_as_reverted() {
    let (home, sim, run) = netcore_update(&["refuse-confirm"]);
    let reason = run.fails();
    assert!(
        reason.contains("acme-infusion-p7@1.5.0: REVERTED")
            && reason.contains("refused to confirm"),
        "{reason}"
    );
    assert_eq!(runs(&sim, 1), ("1.4.0".into(), true));
    let entries = audit_entries(home.path());
    assert_eq!(entries.last().unwrap()["event"], "update_reverted");
    fieldkit(home.path(), &["audit", "verify"]).ok();
}

#[test]
fn json_progress_is_one_event_per_line() {
    let home = demo_home();
    let sim = Sim::start("acme-infusion-p7", &[]);
    let pkg = home.path().join("packages/acme-infusion-p7-1.5.0.fkpkg");
    let run = fieldkit(
        home.path(),
        &[
            "--json",
            "update",
            "--port",
            sim.port(),
            "--yes",
            "--package",
            p(&pkg),
        ],
    );
    run.ok();
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.first().unwrap()["event"], "plan");
    assert_eq!(lines.last().unwrap()["event"], "result");
    let progress: Vec<u64> = lines
        .iter()
        .filter(|l| l["event"] == "progress")
        .map(|l| l["done"].as_u64().unwrap())
        .collect();
    assert!(
        progress.len() > 3 && progress.windows(2).all(|w| w[0] <= w[1]),
        "{progress:?}"
    );
    assert_eq!(
        *progress.last().unwrap(),
        lines.iter().find(|l| l["event"] == "progress").unwrap()["total"]
            .as_u64()
            .unwrap()
    );
}

#[test]
fn without_yes_and_without_a_terminal_nothing_is_applied() {
    let home = demo_home();
    let sim = Sim::start("acme-infusion-p7", &[]);
    let reason = fieldkit(home.path(), &["update", "--port", sim.port()])
        .fails()
        .to_owned();
    assert!(
        reason.contains("refusing to update without confirmation: pass --yes"),
        "{reason}"
    );
    assert_eq!(runs(&sim, 0), ("2.3.1".into(), true));
}

/// The legacy analyser through the same plan and apply path: YMODEM into a bootloader with
/// no test slot, so the plan carries a risk the technician must accept.
fn analyser_update(faults: &[&str]) -> (tempfile::TempDir, Sim, Run) {
    update_under(
        "labcore-analyzer-l2",
        "labcore-analyzer-l2-3.5.0.fkpkg",
        faults,
        &["--accept-risk"],
    )
}

#[test]
fn the_legacy_analyser_needs_the_risk_accepted() {
    let home = demo_home();
    let sim = Sim::start("labcore-analyzer-l2", &[]);
    let reason = fieldkit(home.path(), &["update", "--port", sim.port(), "--yes"])
        .fails()
        .to_owned();
    assert!(
        reason.contains("no test slot") && reason.contains("--accept-risk"),
        "{reason}"
    );
    assert_eq!(runs(&sim, 0).0, "3.4.0");
}

#[test]
fn the_legacy_analyser_is_updated_through_each_fault() {
    for faults in [
        &[][..],
        &["lose-ack=3"],
        &["duplicate-block=5"],
        &["nak-storm=4"],
        &["erase-delay=1500"],
    ] {
        let (home, sim, run) = analyser_update(faults);
        assert_eq!(run.code, 0, "{faults:?}: {}\n{}", run.stderr, run.stdout);
        assert_eq!(runs(&sim, 0).0, "3.5.0", "{faults:?}");
        let entries = audit_entries(home.path());
        let last = entries.last().unwrap();
        assert_eq!(last["event"], "update_succeeded", "{faults:?}");
        assert_eq!(last["device"]["firmware"]["firmware"], "3.5.0");
        assert_eq!(
            entries[entries.len() - 2]["details"]["risks_accepted"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
}

#[test]
fn a_cable_pull_during_ymodem_fails_cleanly_and_the_retry_succeeds() {
    // 4 KiB into the transfer: after block 0 erased the old firmware.
    let (home, sim, run) = analyser_update(&["disconnect-after=6000", "unplug-ms=150"]);
    let reason = run.fails().to_owned();
    assert!(reason.contains("disconnect"), "{reason}");
    let entries = audit_entries(home.path());
    assert_eq!(entries.last().unwrap()["event"], "update_failed");
    // The device waits in its bootloader; once the cable is back, the same update brings it
    // back.
    sim.wait_for("cable plugged back in", std::time::Duration::from_secs(10));
    let pkg = home.path().join("packages/labcore-analyzer-l2-3.5.0.fkpkg");
    fieldkit(
        home.path(),
        &[
            "update",
            "--port",
            sim.port(),
            "--yes",
            "--accept-risk",
            "--package",
            p(&pkg),
        ],
    )
    .ok();
    assert_eq!(runs(&sim, 0).0, "3.5.0");
    assert_eq!(events(home.path()).last().unwrap(), "update_succeeded");
    fieldkit(home.path(), &["audit", "verify"]).ok();
}

/// Power loss on the laptop (kill -9) in the middle of an upload: the intent stays in the log
/// and is marked interrupted at the next start, the device still runs its old image, and the
/// next update resumes where the device says it is.
#[test]
fn a_killed_update_is_recorded_as_interrupted_and_resumes() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let home = demo_home();
    let sim = Sim::start("acme-infusion-p7", &[]);
    let pkg = home.path().join("packages/acme-infusion-p7-1.5.0.fkpkg");
    let mut child = Command::new(support::bin())
        .arg("--home")
        .arg(home.path())
        .args([
            "--json",
            "update",
            "--port",
            sim.port(),
            "--yes",
            "--package",
            p(&pkg),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if event["event"] == "progress" && event["done"].as_u64().unwrap() > 2_000 {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(runs(&sim, 1), ("1.4.0".into(), true), "the old image runs");
    let log = events(home.path());
    assert_eq!(
        &log[log.len() - 2..],
        ["update_started", "update_interrupted"],
        "{log:?}"
    );

    let run = fieldkit(
        home.path(),
        &[
            "update",
            "--port",
            sim.port(),
            "--yes",
            "--package",
            p(&pkg),
        ],
    );
    run.ok();
    sim.wait_for("upload resumed", std::time::Duration::from_secs(1));
    assert_eq!(runs(&sim, 1), ("1.5.0".into(), true));
    fieldkit(home.path(), &["audit", "verify"]).ok();
}
