//! `cargo xtask bench [GROUP]...`: builds the release binaries the figures are measured with
//! and runs `fieldkit-bench` (`crates/bench`), which measures them.
//!
//! The measuring code lives in `crates/bench` because it links the workspace's crates; xtask
//! only builds and starts things. The groups are `crates/bench`'s; the `hub` group measures the
//! release `fieldkit-hub`, and the `app` group (the default runs both) also needs the web view,
//! the release app and an X display, which are prepared here.

use std::process::Command;

use anyhow::{Context, bail};

use crate::app::{Xvfb, build_ui};
use crate::{root, run_cmd, target_dir};

pub(crate) fn run(groups: &[String]) -> anyhow::Result<()> {
    let app = groups.is_empty() || groups.iter().any(|g| g == "app");
    let mut build = vec![
        "build",
        "--release",
        "--locked",
        "--quiet",
        "--package",
        "fieldkit",
        "--package",
        "fieldkit-bench",
    ];
    if groups.is_empty() || groups.iter().any(|g| g == "hub") {
        build.extend(["--package", "fieldkit-hub"]);
    }
    if app {
        build_ui()?;
        build.extend(["--package", "fieldkit-app"]);
    }
    run_cmd("cargo", &build)?;
    let display = if app {
        Some(Xvfb::start_if_needed()?)
    } else {
        None
    };
    let bin = target_dir().join("release/fieldkit-bench");
    let mut cmd = Command::new(&bin);
    cmd.args(groups).current_dir(root());
    if let Some(d) = &display {
        cmd.env("DISPLAY", &d.display);
    }
    eprintln!("$ {} {}", bin.display(), groups.join(" "));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    if !status.success() {
        bail!("the benchmarks failed ({status})");
    }
    Ok(())
}
