//! What is checked is what is applied, end to end: the real CLI against simulator processes on
//! pseudo-terminals. A package file that changes between `check` and `update` (replaced,
//! truncated, a FIFO serving other bytes) is refused with both digests and nothing reaches the
//! device; a package precondition that turns false refuses the step before its first byte; an
//! update killed between a test boot and its confirm ends, after `check` and `update`, with
//! every component on the newest release, confirmed; deleting the trust state does not forget a
//! recall; entitlements are scoped to the visit's customer and site.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{Sim, audit_entries, demo_home, events, fieldkit, p, runs, variant};

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// How a package file changes between `check` and `update`.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// Another genuine, applicable package is written in its place.
    Replaced,
    /// It loses its second half.
    Truncated,
    /// It is a FIFO that serves the checked package to `check` and another one to `update`.
    Fifo,
}

/// Serves `bytes` to the next reader of the FIFO at `path`.
fn serve_fifo(path: &Path, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    let path = path.to_owned();
    std::thread::spawn(move || {
        // Opening for writing waits for a reader, as a stream on a hostile stick would.
        let mut w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let _ = w.write_all(&bytes);
    })
}

/// `check` with a package file, the file changes, `update` with the same path: refused by
/// `package.changed_since_check` naming both digests, and the device is untouched.
fn changed_between_check_and_update(profile: &str, checked: &str, other: &str, change: Change) {
    let home = demo_home();
    let h = home.path();
    let sim = Sim::start(profile, &[]);
    let before = runs(&sim, 0);
    let state_before = sim.state();
    let checked_bytes = std::fs::read(h.join("packages").join(checked)).unwrap();
    let other_bytes = std::fs::read(h.join("packages").join(other)).unwrap();
    let stick = tempfile::tempdir().unwrap();
    let file = stick.path().join("update.fkpkg");
    let served = match change {
        Change::Replaced => other_bytes.clone(),
        Change::Truncated => checked_bytes[..checked_bytes.len() / 2].to_vec(),
        Change::Fifo => other_bytes.clone(),
    };
    let mut fifo = match change {
        Change::Fifo => {
            let status = Command::new("mkfifo").arg(&file).status().unwrap();
            assert!(status.success(), "mkfifo");
            Some(serve_fifo(&file, checked_bytes.clone()))
        }
        _ => {
            std::fs::write(&file, &checked_bytes).unwrap();
            None
        }
    };
    let risk: &[&str] = if profile.starts_with("labcore") {
        &["--accept-risk"]
    } else {
        &[]
    };
    let check = fieldkit(
        h,
        &[
            "--json",
            "check",
            "--port",
            sim.port(),
            "--package",
            p(&file),
        ],
    );
    check.ok();
    assert_eq!(check.json()["plan"]["verdict"], "go", "{change:?}");
    match change {
        Change::Replaced => {
            // Written beside and renamed over, as a copy tool does.
            let tmp = stick.path().join(".update.fkpkg.tmp");
            std::fs::write(&tmp, &served).unwrap();
            std::fs::rename(&tmp, &file).unwrap();
        }
        Change::Truncated => std::fs::write(&file, &served).unwrap(),
        Change::Fifo => {
            // The check has read its bytes; the next reader gets others.
            fifo.take().unwrap().join().unwrap();
            fifo = Some(serve_fifo(&file, served.clone()));
        }
    }
    let mut args = vec![
        "update",
        "--port",
        sim.port(),
        "--yes",
        "--package",
        p(&file),
    ];
    args.extend_from_slice(risk);
    let reason = fieldkit(h, &args).fails().to_owned();
    assert!(
        reason.contains("rule package.changed_since_check")
            && reason.contains(&sha256(&served))
            && reason.contains(&sha256(&checked_bytes)),
        "{profile} {change:?}: {reason}"
    );
    if let Some(t) = fifo {
        t.join().unwrap();
    }
    // Nothing reached the device: it runs what it ran, and nothing was uploaded.
    assert_eq!(runs(&sim, 0), before, "{profile} {change:?}");
    assert_eq!(sim.state()["images"], state_before["images"], "{change:?}");
    let log = events(h);
    assert!(!log.contains(&"update_started".to_owned()), "{log:?}");
    assert_eq!(log.last().unwrap(), "check_refused");
    fieldkit(h, &["audit", "verify"]).ok();
}

#[test]
fn a_package_that_changes_after_the_check_never_reaches_an_smp_device() {
    for change in [Change::Replaced, Change::Truncated, Change::Fifo] {
        changed_between_check_and_update(
            "acme-infusion-p7",
            "acme-infusion-p7-2.3.2.fkpkg",
            "acme-infusion-p7-2.4.0.fkpkg",
            change,
        );
    }
}

#[test]
fn a_package_that_changes_after_the_check_never_reaches_a_line_device() {
    for change in [Change::Replaced, Change::Truncated, Change::Fifo] {
        changed_between_check_and_update(
            "labcore-analyzer-l2",
            "labcore-analyzer-l2-3.4.1.fkpkg",
            "labcore-analyzer-l2-3.5.0.fkpkg",
            change,
        );
    }
}

#[test]
fn a_file_that_is_not_a_package_is_refused_by_its_first_bytes_and_never_quoted() {
    let home = demo_home();
    let h = home.path();
    let sim = Sim::start("acme-infusion-p7", &[]);
    let secret = h.join("secret.txt");
    std::fs::write(&secret, "password=hunter2\n".repeat(64)).unwrap();
    let link = h.join("update.fkpkg");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let run = fieldkit(
        h,
        &[
            "--json",
            "check",
            "--port",
            sim.port(),
            "--package",
            p(&link),
        ],
    );
    assert!(
        run.stderr.contains("rule package.not_a_package"),
        "{}",
        run.stderr
    );
    let log = std::fs::read(h.join("audit.db")).unwrap();
    let everything = format!(
        "{}{}{}",
        run.stdout,
        run.stderr,
        String::from_utf8_lossy(&log)
    );
    assert!(
        !everything.contains("hunter2"),
        "the file's bytes were quoted"
    );
}

#[test]
fn a_package_precondition_that_turns_false_refuses_the_step_before_its_first_byte() {
    let home = demo_home();
    let h = home.path();
    let demanding = variant(h, "acme-infusion-p7-2.4.0", "battery-60", |m| {
        m["requires"]["preconditions"] = serde_json::json!([{
            "field": "battery_percent",
            "op": ">=",
            "value": 60,
            "explanation": "Writing this release takes long: the battery needs a 60 % reserve."
        }]);
    });
    // The pump reports 87 % to the check, then 50 % (above the profile's 40 %, below the
    // package's 60 %).
    let sim = Sim::start("acme-infusion-p7", &["--fault", "battery-drain=1:50"]);
    let state_before = sim.state();
    let run = fieldkit(
        h,
        &[
            "--json",
            "update",
            "--port",
            sim.port(),
            "--profile",
            "acme-infusion-p7",
            "--yes",
            "--package",
            p(&demanding),
        ],
    );
    let reason = run.fails().to_owned();
    assert!(
        reason.contains("REFUSED before the first byte")
            && reason.contains(
                "rule package.precondition (found battery_percent = 50, required battery_percent >= 60)"
            ),
        "{reason}"
    );
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["plan"]["verdict"], "go", "the check saw 87 %");
    assert!(
        !lines.iter().any(|l| l["event"] == "progress"),
        "no byte was sent"
    );
    let result = &lines.last().unwrap()["result"];
    assert_eq!(result["completed"], false);
    assert_eq!(result["steps"][0]["verdict"]["verdict"], "refused");
    assert_eq!(sim.state()["images"], state_before["images"]);
    let entries = audit_entries(h);
    let last = entries.last().unwrap();
    assert_eq!(last["event"], "update_refused");
    assert_eq!(
        last["details"]["result"]["rules"][0]["rule"],
        "package.precondition"
    );
    assert_eq!(entries[entries.len() - 2]["event"], "update_started");
}

/// Runs `fieldkit --json update --yes` on the pump and kills it with SIGKILL as soon as the
/// `step`-th image has booted on test, before the update can confirm it (the simulated device
/// is still booting then: it answers nothing until its boot time has passed).
fn kill_after_test_boot(home: &Path, sim: &Sim, step: usize) {
    let mut child = Command::new(support::bin())
        .arg("--home")
        .arg(home)
        .args(["--json", "update", "--port", sim.port(), "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let drain = std::thread::spawn(move || for _ in BufReader::new(stdout).lines() {});
    for _ in 0..step {
        sim.wait_for("(on test)", Duration::from_secs(120));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drain.join().unwrap();
    // The device finishes its test boot on its own.
    sim.wait_for("booted (boot", Duration::from_secs(30));
}

#[test]
fn an_update_killed_between_test_boot_and_confirm_is_finished_by_the_next_update() {
    for step in 1..=3 {
        let home = demo_home();
        let h = home.path();
        let sim = Sim::start("acme-infusion-p7", &[]);
        kill_after_test_boot(h, &sim, step);
        let on_test = sim.state();
        assert!(
            on_test["images"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["primary_confirmed"] == false),
            "step {step}: an image runs on test"
        );

        // The check sees the image on test as not installed and says so.
        let check = fieldkit(h, &["--json", "check", "--port", sim.port()]);
        check.ok();
        let plan = &check.json()["plan"];
        let basis = plan["basis"].as_array().unwrap();
        assert!(
            basis.len() == 1
                && basis[0]
                    .as_str()
                    .unwrap()
                    .contains("on test (not confirmed)"),
            "step {step}: {plan}"
        );
        fieldkit(h, &["update", "--port", sim.port(), "--yes"]).ok();
        assert_eq!(runs(&sim, 0), ("3.0.0".into(), true), "step {step}");
        assert_eq!(runs(&sim, 1), ("1.5.0".into(), true), "step {step}");

        // The log tells the story: the interrupted step, the check that counted the image on
        // test as not installed, the steps that finished the plan.
        let entries = audit_entries(h);
        let log: Vec<&str> = entries
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert!(log.contains(&"update_interrupted"), "step {step}: {log:?}");
        let recorded = entries
            .iter()
            .rev()
            .filter(|e| e["event"] == "check_passed")
            .nth(1)
            .unwrap();
        assert!(
            recorded["details"]["basis"][0]
                .as_str()
                .unwrap()
                .contains("on test"),
            "step {step}: {recorded}"
        );
        assert_eq!(log.last(), Some(&"update_succeeded"), "step {step}");
        let done = fieldkit(h, &["--json", "check", "--port", sim.port()]);
        assert_eq!(done.json()["plan"]["verdict"], "up_to_date");
        fieldkit(h, &["audit", "verify"]).ok();
    }
}

#[test]
fn deleting_the_trust_state_and_the_recall_lists_does_not_forget_a_recall() {
    let home = demo_home();
    let h = home.path();
    let sim = Sim::start("acme-infusion-p7", &[]);
    let recalled = h.join("packages/acme-infusion-p7-2.4.1.fkpkg");
    let reason = fieldkit(
        h,
        &["check", "--port", sim.port(), "--package", p(&recalled)],
    )
    .fails()
    .to_owned();
    assert!(reason.contains("rule recall.package"), "{reason}");

    std::fs::remove_file(h.join("trust/state.json")).unwrap();
    for f in std::fs::read_dir(h.join("recalls")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    for args in [
        vec!["check", "--port", sim.port(), "--package", p(&recalled)],
        vec![
            "update",
            "--port",
            sim.port(),
            "--yes",
            "--package",
            p(&recalled),
        ],
    ] {
        let reason = fieldkit(h, &args).fails().to_owned();
        assert!(
            reason.contains("newest valid version is none, required 1"),
            "{args:?}: {reason}"
        );
    }
    // The state was restored from the log.
    let state: Value =
        serde_json::from_slice(&std::fs::read(h.join("trust/state.json")).unwrap()).unwrap();
    assert_eq!(state["recall_version"], 1);
    assert_eq!(runs(&sim, 0), ("2.3.1".into(), true));
}

#[test]
fn an_entitlement_is_scoped_to_the_visits_customer_and_site() {
    let home = demo_home();
    let h = home.path();
    let sim = Sim::start("acme-infusion-p7", &[]);
    let feature = h.join("packages/acme-infusion-p7-2.4.0.fkpkg");
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "--port", sim.port(), "--package", p(&feature)];
        args.extend_from_slice(extra);
        fieldkit(h, &args)
    };
    check(&[]).ok();
    let cases: [(&[&str], &str); 2] = [
        (
            &["--site", "Mercy General, ward 2"],
            "rule entitlement.site: found site Mercy General, ward 2, required one of DEMO Ward 4",
        ),
        (
            &["--customer", "Mercy General"],
            "rule entitlement.customer: found entitlement for DEMO St. Example Hospital, required the customer of this visit, Mercy General",
        ),
    ];
    for (extra, want) in cases {
        let reason = check(extra).fails().to_owned();
        assert!(reason.contains(want), "{extra:?}: {reason}");
    }
    // A visit nobody said the customer of: a finding, not a skipped rule.
    std::fs::write(
        h.join("settings.json"),
        r#"{"technician": "Dana", "site": "DEMO Ward 4", "customer": null}"#,
    )
    .unwrap();
    let reason = check(&[]).fails().to_owned();
    assert!(
        reason.contains("rule entitlement.customer: found no customer set for this visit"),
        "{reason}"
    );
    // A security release needs no entitlement, so it is not held up.
    let security = h.join("packages/acme-infusion-p7-2.3.2.fkpkg");
    fieldkit(
        h,
        &["check", "--port", sim.port(), "--package", p(&security)],
    )
    .ok();
}

#[test]
fn a_line_device_that_runs_another_image_after_the_transfer_is_a_wrong_image_not_a_revert() {
    let home = demo_home();
    let h = home.path();
    let sim = Sim::start("labcore-analyzer-l2", &["--fault", "write-ignored"]);
    let package = h.join("packages/labcore-analyzer-l2-3.4.1.fkpkg");
    let run = fieldkit(
        h,
        &[
            "--json",
            "update",
            "--port",
            sim.port(),
            "--yes",
            "--accept-risk",
            "--package",
            p(&package),
        ],
    );
    let reason = run.fails().to_owned();
    assert!(
        reason.contains("WRONG IMAGE: firmware runs") && reason.contains("the plan installs 3.4.1"),
        "{reason}"
    );
    assert!(!reason.contains("REVERTED"), "{reason}");
    let last_line = run.stdout.lines().next_back().unwrap();
    let result = &serde_json::from_str::<Value>(last_line).unwrap()["result"];
    assert_eq!(result["steps"][0]["verdict"]["verdict"], "wrong_image");
    let entries = audit_entries(h);
    let last = entries.last().unwrap();
    assert_eq!(last["event"], "update_wrong_image");
    assert_eq!(last["details"]["result"]["required"], "3.4.1");
    fieldkit(h, &["audit", "verify"]).ok();
}

#[test]
fn a_line_device_whose_flash_sums_to_other_bytes_is_a_wrong_image() {
    // The version is right but the device's SHA-256 of its flash is not that of the bytes
    // sent (flash that reads back other bytes than were written).
    let home = demo_home();
    let h = home.path();
    let other = "ab".repeat(32);
    let fault = format!("field=firmware_sha256={other}");
    let sim = Sim::start("labcore-analyzer-l2", &["--fault", &fault]);
    let package = h.join("packages/labcore-analyzer-l2-3.4.1.fkpkg");
    let run = fieldkit(
        h,
        &[
            "--json",
            "update",
            "--port",
            sim.port(),
            "--yes",
            "--accept-risk",
            "--package",
            p(&package),
        ],
    );
    let reason = run.fails().to_owned();
    assert!(
        reason.contains(&format!(
            "WRONG IMAGE: firmware runs firmware 3.4.1, firmware_sha256 {other}"
        )),
        "{reason}"
    );
    let entries = audit_entries(h);
    let last = entries.last().unwrap();
    assert_eq!(last["event"], "update_wrong_image");
    let required = last["details"]["result"]["required"].as_str().unwrap();
    let sent = required
        .strip_prefix("firmware_sha256 ")
        .and_then(|r| r.strip_suffix(" (the bytes sent)"))
        .unwrap_or_else(|| panic!("{required}"));
    assert_eq!(sent.len(), 64, "{required}");
    assert_ne!(sent, other);
    // The sum the device would have reported for those bytes is the one required: the same
    // package on a device without the fault is applied in place.
    let sim = Sim::start("labcore-analyzer-l2", &[]);
    fieldkit(
        h,
        &[
            "update",
            "--port",
            sim.port(),
            "--yes",
            "--accept-risk",
            "--package",
            p(&package),
        ],
    )
    .ok();
    assert_eq!(
        audit_entries(h).last().unwrap()["event"],
        "update_succeeded"
    );
    fieldkit(h, &["audit", "verify"]).ok();
}
