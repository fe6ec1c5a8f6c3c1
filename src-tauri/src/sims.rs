//! Simulated devices run inside the app, one per device profile, so that a laptop with nothing
//! plugged in can walk through the whole flow.
//!
//! Each is `fieldkit_sim::run` on a thread of this process, on a real pseudo-terminal behind a
//! stable path in `<home>/simulators/`, with its state (slots, versions, flags) persisted
//! beside it: an updated simulated device stays updated, as a real one would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use fieldkit_profile::Profile;

use crate::error::AppError;

/// A simulated device running in this process.
struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    port: PathBuf,
}

/// The simulated devices of this app.
#[derive(Default)]
pub(crate) struct Simulators {
    running: BTreeMap<String, Running>,
}

impl Simulators {
    /// The serial number the simulated device of `profile` reports (its simulator default).
    pub(crate) fn serial_of(profile: &Profile) -> String {
        profile.simulator.text("serial")
    }

    /// The port of a running simulated device of `profile`.
    pub(crate) fn port(&self, profile: &str) -> Option<&Path> {
        self.running.get(profile).map(|r| r.port.as_path())
    }

    /// Whether `port` is one of ours, and for which profile.
    pub(crate) fn profile_of(&self, port: &Path) -> Option<&str> {
        self.running
            .iter()
            .find(|(_, r)| r.port == port)
            .map(|(id, _)| id.as_str())
    }

    /// Starts a simulated `profile` (or returns the running one's port).
    pub(crate) fn start(
        &mut self,
        profile: &Profile,
        application: Option<Profile>,
        dir: &Path,
    ) -> Result<PathBuf, AppError> {
        if let Some(r) = self.running.get(profile.id())
            && r.thread.as_ref().is_some_and(|t| !t.is_finished())
        {
            return Ok(r.port.clone());
        }
        fieldkit_private::create_dir_all(dir).map_err(|e| {
            AppError::new("simulator", format!("cannot create {}: {e}", dir.display()))
        })?;
        let config = fieldkit_sim::SimConfig {
            baud: *profile.line.baud.get_ref(),
            profile: profile.clone(),
            application,
            state_path: Some(dir.join(format!("{}.json", profile.id()))),
            port_path: dir.join(format!("{}.tty", profile.id())),
            latency: Duration::ZERO,
            boot_time: Duration::from_millis(400),
            faults: Vec::new(),
            seed: None,
            strict: false,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Result<PathBuf, String>>();
        let thread = {
            let stop = stop.clone();
            let tx = tx.clone();
            std::thread::Builder::new()
                .name(format!("sim-{}", profile.id()))
                .spawn(move || {
                    let result = fieldkit_sim::run(config, stop, |event| {
                        if let Some(port) = event.strip_prefix("port ") {
                            let _ = tx.send(Ok(PathBuf::from(port)));
                        }
                    });
                    if let Err(e) = result {
                        let _ = tx.send(Err(e.to_string()));
                    }
                })
                .map_err(|e| AppError::new("simulator", e.to_string()))?
        };
        let port = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(port)) => port,
            Ok(Err(e)) => return Err(AppError::new("simulator", e)),
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                return Err(AppError::new(
                    "simulator",
                    format!(
                        "the simulated {} did not open its port within 10 s",
                        profile.model
                    ),
                ));
            }
        };
        self.running.insert(
            profile.id().to_owned(),
            Running {
                stop,
                thread: Some(thread),
                port: port.clone(),
            },
        );
        Ok(port)
    }

    /// Stops the simulated `profile`, if it runs.
    pub(crate) fn stop(&mut self, profile: &str) {
        if let Some(mut r) = self.running.remove(profile) {
            r.stop.store(true, Ordering::Relaxed);
            if let Some(t) = r.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Stops them all.
    pub(crate) fn stop_all(&mut self) {
        let ids: Vec<String> = self.running.keys().cloned().collect();
        for id in ids {
            self.stop(&id);
        }
    }
}
