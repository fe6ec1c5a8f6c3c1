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

/// A simulator process.
pub struct Sim {
    child: Child,
    /// The port clients open.
    pub port: PathBuf,
    /// The simulator's state file.
    pub state: PathBuf,
    events: Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Sim {
    /// Starts `fieldkit sim --profile PROFILE` with extra arguments, and waits for its port.
    pub fn start(profile: &str, extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("device.json");
        Sim::start_with_state(profile, extra, state, dir)
    }

    /// Starts a simulator on an existing state file (a restart).
    pub fn start_with_state(
        profile: &str,
        extra: &[&str],
        state: PathBuf,
        dir: tempfile::TempDir,
    ) -> Sim {
        let mut child = Command::new(bin())
            .args(["--json", "sim", "--profile", profile, "--state"])
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
        Sim {
            child,
            port,
            state,
            events,
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

    /// The device's persisted state.
    pub fn state(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.state).unwrap()).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch home directory.
pub fn home() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
