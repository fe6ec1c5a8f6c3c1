//! `cargo xtask`: the project's own commands, the same for a developer and for CI.
//!
//! - `cargo xtask setup`: installs what the build and the tests need and is missing (Debian
//!   packages, Python tools), and does nothing when everything is there.
//! - `cargo xtask run`: the README's first command: opens the desktop app, with simulated
//!   devices and the DEMO kit when nothing is plugged in.
//! - `cargo xtask tour`: the command-line tour (the CLI against a simulated pump).
//! - `cargo xtask test`: the README's second command: the architecture's invariants
//!   ([`tidy`]), formatting, lints, every test, the UI's unit tests and the app's end-to-end
//!   test under Xvfb.
//! - `cargo xtask tidy`: the architecture's invariants alone, from `cargo metadata` and the
//!   sources.
//! - `cargo xtask screenshots`: the app's end-to-end test, saving every screen to
//!   `docs/screenshots/app-*.png`.
//! - `cargo xtask bench [GROUP]...`: the performance figures, each a ratio measured side by
//!   side in one run (`crates/bench`, built in release mode after set-up).
//! - `cargo xtask dist [--trust-root FILE]`: the Debian packages of the app (with the CLI) and
//!   of the hub, in `target/dist/` ([`dist`]).
//! - `cargo xtask dist-test`: builds them with a trust root pinned, installs them on this
//!   machine, starts the installed CLI, hub and app, and removes them ([`dist_test`]; CI).
//!
//! xtask itself depends on nothing but pure-Rust crates (today `anyhow` and `serde_json`): it must build
//! on a machine that has only Rust, because installing the system libraries the workspace
//! links (libudev, WebKitGTK) is its own first job. Whatever needs the workspace's crates is a
//! binary of the workspace that xtask builds and runs after [`setup`] (`fieldkit-bench`, the
//! app, the CLI). `.ci/run` proves it by building xtask with no system library visible.

mod app;
mod bench;
mod dist;
mod dist_test;
mod setup;
mod tidy;
mod tour;

use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::run(),
        Some("run") => setup::run().and_then(|()| app::run()),
        Some("tour") => setup::run().and_then(|()| tour::run()),
        Some("test") => setup::run().and_then(|()| test()),
        Some("tidy") => tidy::run(),
        Some("screenshots") => {
            setup::run().and_then(|()| app::e2e(Some(&root().join("docs/screenshots"))))
        }
        Some("bench") => setup::run().and_then(|()| bench::run(&args[1..])),
        Some("dist") => setup::run().and_then(|()| dist::run(&args[1..])),
        Some("dist-test") => setup::run().and_then(|()| dist_test::run()),
        _ => {
            eprintln!(
                "usage: cargo xtask <setup|run|tour|test|tidy|bench|screenshots|dist [--trust-root FILE]|dist-test>"
            );
            return ExitCode::FAILURE;
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command in the workspace root, failing with its command line if it fails.
pub(crate) fn run_cmd(program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot start {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The workspace root.
pub(crate) fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_owned()
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, or `target/` in the workspace.
pub(crate) fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map(Into::into)
        .unwrap_or_else(|| root().join("target"))
}

fn test() -> anyhow::Result<()> {
    tidy::run()?;
    run_cmd("cargo", &["fmt", "--all", "--", "--check"])?;
    // The app embeds the built web view; build it first so every later step sees the real one.
    app::build_ui()?;
    run_cmd(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run_cmd("cargo", &["test", "--workspace", "--locked"])?;
    app::test_ui()?;
    app::e2e(None)?;
    Ok(())
}
