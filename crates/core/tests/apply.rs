//! Applying updates to the simulated pump over a real pseudo-terminal, with the simulator in a
//! thread of this test process: every fault ends with a valid image running and an outcome
//! that says what happened.

use std::path::PathBuf;
use std::sync::Arc;

use sha2::Digest as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fieldkit_core::SmpDriver;
use fieldkit_core::apply::{
    ApplyError, Cancel, ImageToInstall, PortConnector, Progress, Stage, StepOutcome,
};
use fieldkit_mcuboot::{ImageVersion, SignOptions};
use fieldkit_profile::ProfileSet;
use fieldkit_sim::{DeviceState, Fault, SimConfig};

struct Sim {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    port: PathBuf,
    state: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sim {
    fn start(faults: Vec<Fault>) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let profile = ProfileSet::builtin()
            .get("acme-infusion-p7")
            .unwrap()
            .clone();
        let port = dir.path().join("pump.tty");
        let state = dir.path().join("pump.json");
        let config = SimConfig {
            application: None,
            baud: 921_600,
            profile,
            state_path: Some(state.clone()),
            port_path: port.clone(),
            latency: Duration::ZERO,
            boot_time: Duration::from_millis(100),
            faults,
            seed: None,
            strict: true,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            fieldkit_sim::run(config, s, |e| {
                let _ = ready_tx.send(e.to_owned());
            })
            .expect("the simulator (strict mode) saw the client break a device rule");
        });
        let first = ready.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(first.starts_with("port "), "{first}");
        std::thread::spawn(move || for _ in ready {});
        Sim {
            stop,
            thread: Some(thread),
            port,
            state,
            _dir: dir,
        }
    }

    fn state(&self) -> DeviceState {
        DeviceState::load(&self.state).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let ended = t.join();
            if !std::thread::panicking() {
                ended.expect("the simulator thread failed");
            }
        }
    }
}

fn image(version: &str, size: usize) -> ImageToInstall {
    let payload: Vec<u8> = (0..size).map(|i| (i * 13 % 256) as u8).collect();
    let bytes = fieldkit_mcuboot::sign(
        &payload,
        &SignOptions::new(version.parse::<ImageVersion>().unwrap()),
    )
    .unwrap();
    let hash = fieldkit_mcuboot::Image::parse(&bytes)
        .unwrap()
        .hash_tlv()
        .unwrap();
    ImageToInstall {
        component: "app".into(),
        image: 0,
        sha256: hex::encode(sha2::Sha256::digest(&bytes)),
        bytes: Arc::new(bytes),
        image_hash: hex::encode(hash),
        version: version.into(),
    }
}

#[derive(Default)]
struct Recorder {
    stages: Vec<Stage>,
    last_bytes: u64,
    cancel_at: Option<(u64, Cancel)>,
}

impl Progress for Recorder {
    fn stage(&mut self, stage: Stage, _: &str) {
        if self.stages.last() != Some(&stage) {
            self.stages.push(stage);
        }
    }
    fn bytes(&mut self, _: &str, done: u64, _: u64) {
        self.last_bytes = done;
        if let Some((at, c)) = &self.cancel_at
            && done >= *at
        {
            c.cancel();
        }
    }
}

fn apply(
    sim: &Sim,
    img: &ImageToInstall,
    cancel: Cancel,
    progress: &mut Recorder,
) -> Result<StepOutcome, ApplyError> {
    let profile = ProfileSet::builtin()
        .get("acme-infusion-p7")
        .unwrap()
        .clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let connector = PortConnector {
            path: sim.port.clone(),
            line: profile.line.clone(),
        };
        let mut device = SmpDriver::new(connector, &profile, Default::default());
        device.identify().await.expect("the device is read first");
        device
            .apply(std::slice::from_ref(img), progress, &cancel)
            .await
    })
}

/// The device runs `version` in slot 0, confirmed.
#[track_caller]
fn runs(sim: &Sim, version: &str) {
    let state = sim.state();
    let app = state.image(0).unwrap();
    assert_eq!(app.primary.as_ref().unwrap().version, version);
    assert!(app.primary_confirmed, "the running image is confirmed");
}

#[test]
fn a_clean_update_goes_through_every_stage() {
    let sim = Sim::start(vec![]);
    let img = image("2.4.0", 60_000);
    let mut p = Recorder::default();
    assert_eq!(
        apply(&sim, &img, Cancel::new(), &mut p).unwrap(),
        StepOutcome::Applied
    );
    use Stage::*;
    assert_eq!(
        p.stages,
        [
            Preparing,
            Uploading,
            Verifying,
            MarkingForTest,
            Resetting,
            WaitingForDevice,
            ReadingBack,
            Confirming,
            ReadingBack,
            Done
        ]
    );
    runs(&sim, "2.4.0");
    // Again: nothing to do.
    assert_eq!(
        apply(&sim, &img, Cancel::new(), &mut Recorder::default()).unwrap(),
        StepOutcome::AlreadyInstalled
    );
}

#[test]
fn a_cable_pull_mid_upload_resumes() {
    let sim = Sim::start(vec![Fault::DisconnectAfter(30_000), Fault::UnplugMs(200)]);
    let img = image("2.4.0", 60_000);
    assert_eq!(
        apply(&sim, &img, Cancel::new(), &mut Recorder::default()).unwrap(),
        StepOutcome::Applied
    );
    runs(&sim, "2.4.0");
}

#[test]
fn corrupted_bytes_are_survived() {
    let sim = Sim::start(vec![Fault::Corrupt(0.0002)]);
    let img = image("2.4.0", 40_000);
    assert_eq!(
        apply(&sim, &img, Cancel::new(), &mut Recorder::default()).unwrap(),
        StepOutcome::Applied
    );
    runs(&sim, "2.4.0");
}

#[test]
fn a_reboot_mid_upload_starts_over_and_finishes() {
    let sim = Sim::start(vec![Fault::RebootAt(20_000)]);
    let img = image("2.4.0", 40_000);
    assert_eq!(
        apply(&sim, &img, Cancel::new(), &mut Recorder::default()).unwrap(),
        StepOutcome::Applied
    );
    runs(&sim, "2.4.0");
}

#[test]
fn a_flash_failure_stops_with_the_old_image_running() {
    let sim = Sim::start(vec![Fault::FlashFailAt(10_000)]);
    let img = image("2.4.0", 40_000);
    let err = apply(&sim, &img, Cancel::new(), &mut Recorder::default()).unwrap_err();
    assert_eq!(err.stage(), Stage::Uploading);
    assert!(
        err.to_string().contains("writing the flash area failed"),
        "{err}"
    );
    runs(&sim, "2.3.1");
}

#[test]
fn a_refused_confirmation_reverts() {
    let sim = Sim::start(vec![Fault::RefuseConfirm]);
    let img = image("2.4.0", 20_000);
    match apply(&sim, &img, Cancel::new(), &mut Recorder::default()).unwrap() {
        StepOutcome::Reverted { reason, stage } => {
            assert_eq!(stage, Stage::Confirming);
            assert!(reason.contains("refused to confirm"), "{reason}")
        }
        other => panic!("expected a revert, got {other:?}"),
    }
    runs(&sim, "2.3.1");
}

#[test]
fn cancelling_mid_upload_leaves_the_old_image() {
    let sim = Sim::start(vec![]);
    let img = image("2.4.0", 60_000);
    let cancel = Cancel::new();
    let mut p = Recorder {
        cancel_at: Some((20_000, cancel.clone())),
        ..Recorder::default()
    };
    assert_eq!(
        apply(&sim, &img, cancel, &mut p).unwrap(),
        StepOutcome::Cancelled {
            stage: Stage::Uploading
        }
    );
    assert!(p.last_bytes < 60_000);
    runs(&sim, "2.3.1");
}
