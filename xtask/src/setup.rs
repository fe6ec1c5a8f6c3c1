//! Installs what is missing on a Debian or Ubuntu machine, and nothing else.

use std::process::Command;

use anyhow::bail;

use crate::run_cmd;

/// Debian packages the build and tests need: libudev for USB port discovery, lrzsz for the
/// YMODEM interop tests, jq for the README tour (tests/readme_tour.rs), Chromium for the
/// dashboard's browser test; WebKitGTK and friends for the desktop app (Tauri 2), and Xvfb
/// with WebKitWebDriver for its end-to-end test; dpkg-dev and binutils to pack the Debian
/// packages (`dpkg-shlibdeps`, `strip`); the PostgreSQL server the hub's conformance suite starts (no Docker: initdb and postgres, run by
/// the tests themselves).
const APT: &[&str] = &[
    "pkg-config",
    "libudev-dev",
    "lrzsz",
    "jq",
    "chromium",
    "postgresql",
    "libwebkit2gtk-4.1-dev",
    "librsvg2-dev",
    "libayatana-appindicator3-dev",
    "xvfb",
    "webkit2gtk-driver",
    "dpkg-dev",
    "binutils",
];

/// Python tools the interop tests use: MCUboot's imgtool and the smpclient SMP client.
const PIP: &[(&str, &str)] = &[
    ("imgtool", "imgtool"),
    ("smpclient.transport.serial", "smpclient[serial]"),
];

/// The mcumgrctl release the interop tests and the benchmark are written against.
const MCUMGRCTL: &str = "0.20.0";

pub(crate) fn run() -> anyhow::Result<()> {
    let missing: Vec<&str> = APT.iter().copied().filter(|p| !dpkg_installed(p)).collect();
    apt_install(&missing)?;
    let missing: Vec<&str> = PIP
        .iter()
        .filter(|(module, _)| !python_has(module))
        .map(|(_, pkg)| *pkg)
        .collect();
    if !missing.is_empty() {
        run_cmd(
            "python3",
            &[&["-m", "pip", "install", "-q"], missing.as_slice()].concat(),
        )?;
    }
    // The managers' dashboard is tested with Playwright driving Debian's Chromium.
    if !has("npm") {
        apt_install(&["nodejs", "npm"])?;
    }
    if !crate::root()
        .join("crates/hub/dashboard/node_modules/playwright-core")
        .exists()
    {
        run_cmd(
            "npm",
            &[
                "ci",
                "--prefix",
                "crates/hub/dashboard",
                "--no-audit",
                "--no-fund",
            ],
        )?;
    }
    // The desktop app: its web view's npm packages, and tauri-driver for its end-to-end test.
    crate::app::ui_deps()?;
    let driver = crate::app::tauri_driver();
    if !Command::new(&driver)
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        run_cmd("cargo", &["install", "tauri-driver", "--locked"])?;
    }
    // The interop tests and the upload benchmark drive mcumgrctl (crate mcumgr-toolkit), a
    // third-party SMP client, against the simulator; the version whose JSON they read.
    if !Command::new("mcumgrctl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(MCUMGRCTL))
    {
        run_cmd(
            "cargo",
            &["install", "mcumgrctl", "--version", MCUMGRCTL, "--locked"],
        )?;
    }
    Ok(())
}

/// Installs Debian packages with apt-get (through sudo when not root); nothing when empty.
fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    if !is_root() && !has("sudo") {
        bail!(
            "missing Debian packages {}: install them with apt-get",
            packages.join(" ")
        );
    }
    let sudo = if is_root() { None } else { Some("sudo") };
    let apt = |args: &[&str]| match sudo {
        Some(s) => run_cmd(s, &[&["apt-get"], args].concat()),
        None => run_cmd("apt-get", args),
    };
    apt(&["update", "-qq"])?;
    apt(&[
        &["install", "-y", "-qq", "--no-install-recommends"],
        packages,
    ]
    .concat())
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
