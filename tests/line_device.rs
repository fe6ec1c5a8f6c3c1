//! The legacy line-command device end to end: the real simulator process on a real
//! pseudo-terminal, identified by the real CLI, updated by the client's YMODEM upload, with
//! each fault of issue 7.

mod support;

use std::time::Duration;

use fieldkit_core::apply::{Cancel, Progress, Stage};
use fieldkit_core::{LineClient, LineError, Uploaded, ymodem_upload};
use fieldkit_profile::{Profile, ProfileSet};
use fieldkit_sim::DeviceState;
use support::{Sim, fieldkit, home};

const PROFILE: &str = "labcore-analyzer-l2";

fn profile() -> Profile {
    ProfileSet::builtin().get(PROFILE).unwrap().clone()
}

/// An MCUboot image of the analyzer's firmware at `version`, built the way the simulator
/// builds its factory images.
fn firmware(version: &str) -> Vec<u8> {
    let mut p = profile();
    *p.simulator.installed.get_mut("firmware").unwrap().get_mut() = version.into();
    DeviceState::factory(&p).images[0]
        .primary
        .clone()
        .unwrap()
        .bytes
}

/// Checks that progress only grows, and cancels once `cancel_at` bytes are acknowledged.
struct Watch {
    last: u64,
    cancel_at: Option<u64>,
    cancel: Cancel,
}

impl Progress for Watch {
    fn stage(&mut self, _: Stage, _: &str) {}
    fn bytes(&mut self, _: &str, acked: u64, total: u64) {
        assert!(
            acked >= self.last && acked <= total,
            "progress {acked}/{total}"
        );
        self.last = acked;
        if self.cancel_at.is_some_and(|c| acked >= c) {
            self.cancel.cancel();
        }
    }
}

/// Uploads `image` to the simulator; cancels once `cancel_at` bytes are acknowledged.
fn upload(sim: &Sim, image: &[u8], cancel_at: Option<u64>) -> Result<Uploaded, LineError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let p = profile();
        let link = fieldkit_link::open(&sim.port, &p.line).unwrap();
        let mut client = LineClient::new(link, &p).unwrap();
        let cancel = Cancel::new();
        let mut watch = Watch {
            last: 0,
            cancel_at,
            cancel: cancel.clone(),
        };
        ymodem_upload(
            &mut client,
            "analyzer.img",
            image.to_vec(),
            "firmware",
            &mut watch,
            &cancel,
        )
        .await
    })
}

/// The firmware version `fieldkit identify` reports, or "none".
fn identified_firmware(sim: &Sim) -> String {
    let home = home();
    let run = fieldkit(
        home.path(),
        &[
            "--json",
            "identify",
            "--port",
            sim.port(),
            "--profile",
            PROFILE,
        ],
    );
    run.ok();
    let id = run.json();
    match id["slots"].as_array().unwrap().as_slice() {
        [] => "none".into(),
        [slot] => {
            assert_eq!(slot["component"], "firmware");
            assert_eq!(slot["active"], true);
            slot["version"].as_str().unwrap().to_owned()
        }
        more => panic!("one slot expected, found {more:?}"),
    }
}

const EVENT: Duration = Duration::from_secs(30);

#[test]
fn identify_reads_the_line_device() {
    let sim = Sim::start(PROFILE, &[]);
    let home = home();
    // Without --profile the CLI probes: SMP first, then the line profiles' first query.
    for args in [
        vec!["--json", "identify", "--port", sim.port()],
        vec![
            "--json",
            "identify",
            "--port",
            sim.port(),
            "--profile",
            PROFILE,
        ],
    ] {
        let run = fieldkit(home.path(), &args);
        run.ok();
        let id = run.json();
        let state = sim.state();
        assert_eq!(id["profile"], PROFILE);
        assert_eq!(id["model"], state["model"]);
        for field in ["serial", "hardware_revision", "bootloader_version"] {
            assert_eq!(id[field], state["fields"][field], "{field}");
            assert_eq!(id["fields"][field]["source"], "line", "{field}");
        }
        assert_eq!(id["fields"]["therapy_running"]["value"], false);
        assert_eq!(id["slots"][0]["version"], "3.4.0");
        assert_eq!(id["slots"][0]["confirmed"], true);
    }
    let text = fieldkit(
        home.path(),
        &["identify", "--port", sim.port(), "--profile", PROFILE],
    );
    for want in [
        "L2 Chemistry Analyzer",
        "L2-77810",
        "REV-D",
        "1.3.0",
        "firmware",
        "3.4.0",
    ] {
        assert!(
            text.ok().contains(want),
            "missing {want:?} in:\n{}",
            text.stdout
        );
    }
}

/// Each fault of issue 7 is recovered from, and the device ends with the new image.
#[test]
fn uploads_recover_from_each_fault() {
    let image = firmware("3.5.0");
    let cases: [(&[&str], &[&str]); 5] = [
        (&[], &["upload of analyzer.img", "firmware 3.5.0 written"]),
        (
            &["--fault", "lose-ack=3"],
            &[
                "ACK of block 3 lost",
                "block 3 received again",
                "firmware 3.5.0 written",
            ],
        ),
        (
            &["--fault", "duplicate-block=2"],
            &[
                "garbled into NAK",
                "block 2 received again",
                "firmware 3.5.0 written",
            ],
        ),
        (
            &["--fault", "nak-storm=4"],
            &["NAK storm", "firmware 3.5.0 written"],
        ),
        // Longer than an ordinary reply may take, shorter than the first block's timeout.
        (
            &["--fault", "erase-delay=3000"],
            &["erased in 3", "firmware 3.5.0 written"],
        ),
    ];
    for (faults, events) in cases {
        let sim = Sim::start(PROFILE, faults);
        let done = upload(&sim, &image, None).unwrap_or_else(|e| panic!("{faults:?}: {e}"));
        assert_eq!(done.bytes, image.len() as u64, "{faults:?}");
        for e in events {
            sim.wait_for(e, EVENT);
        }
        sim.wait_for("booted (boot", EVENT);
        assert_eq!(identified_firmware(&sim), "3.5.0", "{faults:?}");
        assert_eq!(sim.state()["images"][0]["primary"]["version"], "3.5.0");
    }
}

/// A cable pull mid-transfer: a clear error, a device in its bootloader with no firmware, and
/// the next attempt succeeds.
#[test]
fn a_cable_pull_is_survived_by_the_next_attempt() {
    let image = firmware("3.5.0");
    let sim = Sim::start(PROFILE, &["--fault", "disconnect-after=9000"]);
    let err = upload(&sim, &image, None).unwrap_err();
    assert_eq!(err.kind(), "disconnected", "{err}");
    sim.wait_for("transfer abandoned", EVENT);
    sim.wait_for("cable plugged back in", EVENT);
    assert_eq!(identified_firmware(&sim), "none");
    upload(&sim, &image, None).unwrap();
    sim.wait_for("booted (boot", EVENT);
    assert_eq!(identified_firmware(&sim), "3.5.0");
}

#[test]
fn refusals_and_cancels_are_typed_errors() {
    let image = firmware("3.5.0");
    // An assay is running: the device refuses to enter its bootloader; nothing is erased.
    let sim = Sim::start(PROFILE, &["--fault", "therapy-running"]);
    let err = upload(&sim, &image, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "BOOT UPDATE: the device answered \"ERR BUSY\", required a reply matching ^READY YMODEM$"
    );
    assert_eq!(identified_firmware(&sim), "3.4.0");

    // The technician cancels: the device is told, and waits in its bootloader.
    let sim = Sim::start(PROFILE, &[]);
    let err = upload(&sim, &image, Some(4096)).unwrap_err();
    assert!(
        matches!(err, LineError::Cancelled { acked, total } if acked >= 4096 && total == image.len() as u64),
        "{err}"
    );
    sim.wait_for("transfer failed: the other side cancelled", EVENT);
    sim.wait_for("staying in the bootloader", EVENT);
    assert_eq!(identified_firmware(&sim), "none");
}
