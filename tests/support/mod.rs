//! Shared harness for end-to-end tests: the real `fieldkit` binary, a real simulator process
//! on a real pseudo-terminal, and a scratch home directory.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fieldkit")
}

/// What a finished command left behind.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "command failed: {}\n{}",
            self.stderr, self.stdout
        );
        &self.stdout
    }

    /// Asserts failure with a one-line reason on stderr, and returns it.
    #[track_caller]
    pub fn fails(&self) -> &str {
        assert_ne!(self.code, 0, "command should have failed:\n{}", self.stdout);
        let line = self.stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "reason must be one line: {line:?}");
        assert!(line.starts_with("error: "), "{line}");
        line
    }

    /// Parses stdout as one JSON document.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }
}

/// Runs `fieldkit --home HOME ARGS...`.
pub fn fieldkit(home: &Path, args: &[&str]) -> Run {
    let out = Command::new(bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run fieldkit");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A simulator process, in strict mode: a frame the client makes too large for the device, or
/// a console line too long for it, stops the simulator with an error, and the test fails when
/// the simulator is dropped (a real device would have ignored the request in silence).
pub struct Sim {
    child: Child,
    /// The port clients open.
    pub port: PathBuf,
    /// The simulator's state file.
    pub state: PathBuf,
    /// The seed of its random faults, as it printed it.
    pub seed: u64,
    events: Receiver<String>,
    /// The test expected the simulator to stop and saw it stop.
    exited: bool,
    _dir: tempfile::TempDir,
}

impl Sim {
    /// Starts `fieldkit sim --strict --profile PROFILE` with extra arguments, and waits for its
    /// port.
    pub fn start(profile: &str, extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("device.json");
        Sim::start_with_state(profile, extra, state, dir)
    }

    /// Starts a strict simulator of a profile from `home`'s extra profiles
    /// (`<home>/profiles/*.toml`).
    pub fn start_in_home(home: &Path, profile: &str, extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("device.json");
        Sim::spawn_with_env(profile, extra, state, dir, true, Some(home))
    }

    /// Starts a simulator that is not in strict mode, as a technician runs it: it ignores what
    /// a device ignores.
    pub fn start_lenient(profile: &str, extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("device.json");
        Sim::spawn(profile, extra, state, dir, false)
    }

    /// Starts a simulator on an existing state file (a restart).
    pub fn start_with_state(
        profile: &str,
        extra: &[&str],
        state: PathBuf,
        dir: tempfile::TempDir,
    ) -> Sim {
        Sim::spawn(profile, extra, state, dir, true)
    }

    fn spawn(
        profile: &str,
        extra: &[&str],
        state: PathBuf,
        dir: tempfile::TempDir,
        strict: bool,
    ) -> Sim {
        Sim::spawn_with_env(profile, extra, state, dir, strict, None)
    }

    fn spawn_with_env(
        profile: &str,
        extra: &[&str],
        state: PathBuf,
        dir: tempfile::TempDir,
        strict: bool,
        home: Option<&Path>,
    ) -> Sim {
        let mode: &[&str] = if strict { &["--strict"] } else { &[] };
        let mut command = Command::new(bin());
        if let Some(h) = home {
            command.arg("--home").arg(h);
        }
        let mut child = command
            .args(["--json", "sim"])
            .args(mode)
            .args(["--profile", profile, "--state"])
            .arg(&state)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start simulator");
        let stdout = child.stdout.take().unwrap();
        let (send, events) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let first = events
            .recv_timeout(Duration::from_secs(20))
            .expect("simulator printed its port");
        let v: serde_json::Value = serde_json::from_str(&first).expect("first line is JSON");
        let port = PathBuf::from(v["port"].as_str().expect("first line has the port"));
        let second = events
            .recv_timeout(Duration::from_secs(20))
            .expect("simulator printed its seed");
        let v: serde_json::Value = serde_json::from_str(&second).expect("second line is JSON");
        let seed = v["seed"].as_u64().expect("second line has the seed");
        Sim {
            child,
            port,
            state,
            seed,
            events,
            exited: false,
            _dir: dir,
        }
    }

    /// The port as a string, for command lines.
    pub fn port(&self) -> &str {
        self.port.to_str().unwrap()
    }

    /// Waits for a simulator event containing `needle`; returns it.
    #[track_caller]
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .events
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("simulator never said {needle:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("simulator exited before {needle:?}"),
            }
        }
    }

    /// Every event up to and including the first containing `needle`.
    #[track_caller]
    pub fn events_until(&self, needle: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            match self
                .events
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("simulator never said {needle:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("simulator exited before {needle:?}"),
            }
        }
    }

    /// Like [`Sim::events_until`], but a timeout hands back what was seen instead of failing.
    pub fn try_events_until(
        &self,
        needle: &str,
        timeout: Duration,
    ) -> Result<Vec<String>, Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            match self
                .events
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return Ok(seen);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Err(seen),
                Err(RecvTimeoutError::Disconnected) => panic!("simulator exited before {needle:?}"),
            }
        }
    }

    /// Waits for the simulator to stop by itself (strict mode saw a client error), and returns
    /// how it ended. Call it after [`Sim::wait_for`] saw the reason.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().expect("wait for the simulator");
        self.exited = true;
        status
    }

    /// The device's persisted state.
    pub fn state(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.state).unwrap()).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // A simulator that stopped by itself broke strict mode (its reason is on stderr).
        let stopped = self.child.try_wait().ok().flatten();
        if std::thread::panicking() {
            // A failed run replays: the same seed makes the same random faults.
            eprintln!(
                "the simulator's random faults ran from seed {0}: `--seed {0}` replays them",
                self.seed
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(status) = stopped
            && !self.exited
            && !std::thread::panicking()
        {
            panic!("the simulator stopped by itself ({status}): the client broke a device rule");
        }
    }
}

/// A scratch home directory.
pub fn home() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A home with the demo kit.
pub fn demo_home() -> tempfile::TempDir {
    let home = home();
    fieldkit(home.path(), &["demo", "init"]).ok();
    home
}

/// A path as a string, for command lines.
pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The version image `n` runs in the simulator's state file, and whether it is confirmed.
pub fn runs(sim: &Sim, image: u64) -> (String, bool) {
    let state = sim.state();
    let img = state["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["image"] == image)
        .unwrap()
        .clone();
    (
        img["primary"]["version"].as_str().unwrap().to_owned(),
        img["primary_confirmed"].as_bool().unwrap(),
    )
}

/// The audit log's entries, in order.
pub fn audit_entries(home: &Path) -> Vec<serde_json::Value> {
    fieldkit(home, &["--json", "audit", "list"])
        .json()
        .as_array()
        .unwrap()
        .clone()
}

/// The audit log's events, in order.
pub fn events(home: &Path) -> Vec<String> {
    audit_entries(home)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

/// Rebuilds a demo package with its manifest changed by `edit`, signed with the demo release
/// key; returns the new file.
pub fn variant(
    home: &Path,
    package: &str,
    label: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let src = home.join("demo/build").join(package);
    let dir = home.join("variants").join(label);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let manifest_path = dir.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let out = dir.join("variant.fkpkg");
    let key = home.join("keys/demo-release.key.pem");
    fieldkit(
        home,
        &[
            "package",
            "build",
            "--manifest",
            p(&manifest_path),
            "--key",
            p(&key),
            "--out",
            p(&out),
        ],
    )
    .ok();
    out
}

/// The `fieldkit-hub` binary built beside the binary under test.
pub fn hub_bin() -> PathBuf {
    let path = Path::new(bin()).with_file_name("fieldkit-hub");
    assert!(
        path.exists(),
        "{} is missing: `cargo test --workspace` builds it",
        path.display()
    );
    path
}

/// A `fieldkit-hub serve` process on loopback, stopped when dropped.
pub struct Served {
    child: Child,
    /// The hub's address, as it printed it.
    pub url: String,
}

impl Served {
    /// Serves the hub database `db` on a free loopback port and waits for its first line.
    pub fn start(db: &str) -> Self {
        let child = Command::new(hub_bin())
            .args(["serve", "--db", db, "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Owned before reading, so a hub that prints something else is still stopped.
        let mut served = Served {
            child,
            url: String::new(),
        };
        let mut line = String::new();
        BufReader::new(served.child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        served.url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{line:?}"))
            .to_owned();
        served
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
