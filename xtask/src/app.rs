//! The desktop app's part of `cargo xtask`: build the web view (`ui/`), open the app, run the
//! UI's unit tests and the app's end-to-end test in a real window under Xvfb.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

use crate::{root, run_cmd, target_dir};

/// The web view's sources.
fn ui_dir() -> PathBuf {
    root().join("ui")
}

/// Installs ui/'s npm packages when they are missing or older than the lock file.
///
/// `npm install` rather than `npm ci`: npm 11 writes lock files that list only this platform's
/// optional rollup binaries, and `npm ci` then refuses the lock as out of sync. `npm install`
/// honours the locked versions and leaves the lock file as it is.
pub(crate) fn ui_deps() -> anyhow::Result<()> {
    let ui = ui_dir();
    let stamp = ui.join("node_modules/.package-lock.json");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let fresh = match (modified(&stamp), modified(&ui.join("package-lock.json"))) {
        (Some(installed), Some(lock)) => installed >= lock,
        _ => false,
    };
    if !fresh {
        run_cmd(
            "npm",
            &[
                "install",
                "--prefix",
                "ui",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ],
        )?;
    }
    Ok(())
}

/// Builds the web view into ui/dist, which the app embeds.
pub(crate) fn build_ui() -> anyhow::Result<()> {
    ui_deps()?;
    run_cmd("npm", &["run", "--prefix", "ui", "--silent", "build"])
}

/// `cargo xtask run`: builds the app and opens the DEMO (`fieldkit-app --demo`, in its own
/// home beside the data directory): simulated devices and the DEMO kit, plus whatever is
/// plugged in.
pub(crate) fn run() -> anyhow::Result<()> {
    build_ui()?;
    run_cmd("cargo", &["build", "--locked", "--package", "fieldkit-app"])?;
    let bin = target_dir().join("debug/fieldkit-app");
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        bail!(
            "no display: the app needs a desktop session (DISPLAY or WAYLAND_DISPLAY); `cargo xtask tour` runs the command-line tour instead"
        );
    }
    eprintln!("$ {} --demo", bin.display());
    let status = Command::new(&bin)
        .arg("--demo")
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    if !status.success() {
        bail!("the app exited with {status}");
    }
    Ok(())
}

/// The UI's unit tests (vitest, with `@tauri-apps/api/mocks`).
pub(crate) fn test_ui() -> anyhow::Result<()> {
    ui_deps()?;
    run_cmd("npm", &["test", "--prefix", "ui", "--silent"])
}

/// The end-to-end test: the real app in a real window, driven through tauri-driver and
/// WebKitWebDriver, against a real hub. `screenshots` saves every screen there.
pub(crate) fn e2e(screenshots: Option<&Path>) -> anyhow::Result<()> {
    build_ui()?;
    run_cmd(
        "cargo",
        &[
            "build",
            "--locked",
            "--package",
            "fieldkit-app",
            "--package",
            "fieldkit-hub",
            "--package",
            "fieldkit",
        ],
    )?;
    let display = Xvfb::start_if_needed()?;
    let bin = target_dir().join("debug");
    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-reporter=spec", "ui/e2e/"])
        .current_dir(root())
        .env("DISPLAY", &display.display)
        .env("FIELDKIT_APP", bin.join("fieldkit-app"))
        .env("FIELDKIT_HUB", bin.join("fieldkit-hub"))
        .env("FIELDKIT_CLI", bin.join("fieldkit"))
        .env("TAURI_DRIVER", tauri_driver());
    if let Some(dir) = screenshots {
        cmd.env("FIELDKIT_SCREENSHOTS", dir);
    }
    eprintln!("$ node --test ui/e2e/  (DISPLAY={})", display.display);
    let status = cmd.status().context("cannot start node")?;
    if !status.success() {
        bail!("the app's end-to-end test failed ({status})");
    }
    Ok(())
}

/// tauri-driver: on PATH, or where `cargo install` put it.
pub(crate) fn tauri_driver() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(p) = cargo_home.map(|c| c.join("bin/tauri-driver"))
        && p.exists()
    {
        return p;
    }
    PathBuf::from("tauri-driver")
}

/// An X display for the app: the desktop's own, or a virtual one started here (and stopped
/// when this is dropped).
pub(crate) struct Xvfb {
    child: Option<Child>,
    /// The `DISPLAY` value.
    pub(crate) display: String,
}

impl Xvfb {
    /// Uses `DISPLAY` when set; otherwise starts Xvfb, which picks a free display number and
    /// reports it once it accepts connections (`-displayfd`), so nothing waits on a timer.
    pub(crate) fn start_if_needed() -> anyhow::Result<Xvfb> {
        if let Some(d) = std::env::var_os("DISPLAY").filter(|d| !d.is_empty()) {
            return Ok(Xvfb {
                child: None,
                display: d.to_string_lossy().into_owned(),
            });
        }
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start Xvfb (Debian package xvfb)")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .context("reading Xvfb's display number")?;
        let n = line.trim();
        if n.is_empty() {
            let _ = child.kill();
            bail!("Xvfb exited before reporting a display number");
        }
        Ok(Xvfb {
            display: format!(":{n}"),
            child: Some(child),
        })
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
