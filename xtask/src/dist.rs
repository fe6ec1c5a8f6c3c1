//! `cargo xtask dist [--trust-root FILE]`: the installable packages, and `cargo xtask dist-test`,
//! which installs them for real and starts what they installed.
//!
//! Two Debian packages, in `target/dist/`:
//!
//! - `fieldkit_VERSION_ARCH.deb`, the technician's desktop app with the `fieldkit` CLI, built by
//!   Tauri's own bundler (`tauri build --bundles deb`, the `@tauri-apps/cli` npm package of
//!   `ui/`): the desktop entry, icons and WebKitGTK dependencies are Tauri's; the CLI and the
//!   copyright file are added through `bundle.linux.deb.files`.
//! - `fieldkit-hub_VERSION_ARCH.deb`, the hub as a system service, assembled here and packed by
//!   `dpkg-deb` (see [`hub_deb`] for why not cargo-deb): the binary, a hardened systemd unit,
//!   `/etc/default/fieldkit-hub`, and maintainer scripts that create the `fieldkit-hub` system
//!   user and its private state directory.
//!
//! Both declare version (the workspace's `fieldkit` package version), licence (Apache-2.0, in
//! `/usr/share/doc/PACKAGE/copyright`), maintainer and dependencies (the hub's computed by
//! `dpkg-shlibdeps` from the libraries the binary links).
//!
//! `--trust-root FILE` pins the manufacturer's first trust root into the build (core embeds it
//! through `FIELDKIT_TRUST_ROOT`). Without it the packages install an app that refuses to check
//! or apply anything until a root is imported, and offers the demo in a home of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail, ensure};

use crate::{root, run_cmd, target_dir};

/// Who maintains the packages (the control files' `Maintainer`).
const MAINTAINER: &str = "fieldkit maintainers <maintainers@fieldkit.invalid>";
/// The licence every package declares.
const LICENSE: &str = "Apache-2.0";

/// The packages `dist` made.
pub(crate) struct Packages {
    pub(crate) app: PathBuf,
    pub(crate) hub: PathBuf,
}

/// `cargo xtask dist [--trust-root FILE]`.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let trust_root = match args {
        [] => None,
        [flag, file] if flag == "--trust-root" => Some(PathBuf::from(file)),
        _ => bail!("usage: cargo xtask dist [--trust-root FILE]"),
    };
    let p = build(trust_root.as_deref())?;
    println!("{}\n{}", p.app.display(), p.hub.display());
    Ok(())
}

/// Builds both packages into `target/dist/`.
pub(crate) fn build(trust_root: Option<&Path>) -> anyhow::Result<Packages> {
    let pinned = match trust_root {
        Some(f) => Some(
            std::fs::canonicalize(f)
                .with_context(|| format!("trust root {}: cannot read it", f.display()))?,
        ),
        None => {
            eprintln!(
                "xtask: no --trust-root: the packaged app will refuse to check or apply anything until the technician imports the manufacturer's trust root"
            );
            None
        }
    };
    let version = workspace_version()?;
    let arch = capture("dpkg", &["--print-architecture"])?;
    let out = target_dir().join("dist");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let doc = out.join("copyright");
    std::fs::write(&doc, copyright())?;

    crate::app::build_ui()?;
    // The CLI and the hub first, with the same pinned root as the app Tauri builds next.
    let mut cargo = Command::new("cargo");
    cargo
        .args([
            "build",
            "--release",
            "--locked",
            "--package",
            "fieldkit",
            "--package",
            "fieldkit-hub",
        ])
        .current_dir(root());
    pin(&mut cargo, pinned.as_deref());
    status(&mut cargo)?;
    let release = target_dir().join("release");
    check_pinned(&release.join("fieldkit"), pinned.as_deref(), &out)?;

    // The app: Tauri's bundler builds it (cargo build --release of src-tauri) and packs it,
    // with the CLI beside it. Tauri declares WebKitGTK and GTK; the libraries the CLI links
    // (libudev, libc) are declared from what it really links.
    // Debian ships binaries without their debug sections (dh_strip); so do these packages.
    let cli = out.join("fieldkit");
    std::fs::copy(release.join("fieldkit"), &cli)?;
    run_cmd("strip", &["--strip-debug", &cli.to_string_lossy()])?;
    let cli_depends = shlib_depends(&out, "fieldkit", &cli)?;
    let config = serde_json::json!({
        "version": version,
        "bundle": {
            "active": true,
            "targets": ["deb"],
            "publisher": MAINTAINER,
            "license": LICENSE,
            "category": "Utility",
            "shortDescription": "Field service of medical devices: identify, check and apply signed updates offline",
            "longDescription": "The technician's desktop app (fieldkit-app) and command-line tool (fieldkit): read a device's identity over serial/USB, see whether an update applies and why, apply entitled, signed updates offline (MCUmgr/SMP with MCUboot, text commands with YMODEM), and keep a tamper-evident audit log that syncs to the manufacturer's hub.",
            "linux": { "deb": {
                "depends": cli_depends.split(", ").collect::<Vec<_>>(),
                "section": "utils",
                "priority": "optional",
                "files": {
                    "/usr/bin/fieldkit": cli,
                    "/usr/share/doc/fieldkit/copyright": doc,
                },
            }},
        },
    })
    .to_string();
    let mut tauri = Command::new(root().join("ui/node_modules/.bin/tauri"));
    tauri
        .args(["build", "--bundles", "deb", "--ci", "--config", &config])
        .args(["--", "--locked"])
        .current_dir(root().join("src-tauri"));
    pin(&mut tauri, pinned.as_deref());
    status(&mut tauri)?;
    let built = release
        .join("bundle/deb")
        .join(format!("fieldkit_{version}_{arch}.deb"));
    ensure!(
        built.exists(),
        "Tauri's bundler did not make {}",
        built.display()
    );
    let app = out.join(built.file_name().expect("a file"));
    std::fs::copy(&built, &app)?;

    let hub = hub_deb(&out, &version, &arch, &release.join("fieldkit-hub"), &doc)?;
    // Tauri's build leaves its own copy of the package and its staging tree, and the stripped
    // CLI and copyright were only inputs: only the two packages stay.
    let _ = std::fs::remove_dir_all(release.join("bundle"));
    std::fs::remove_file(&cli)?;
    std::fs::remove_file(&doc)?;
    for p in [&app, &hub] {
        declared(p)?;
        eprintln!(
            "xtask: {} ({:.1} MiB)",
            p.display(),
            std::fs::metadata(p)?.len() as f64 / 1048576.0
        );
    }
    Ok(Packages { app, hub })
}

/// A package must declare what the issue and Debian ask: version, maintainer, dependencies,
/// and a copyright file naming the licence.
fn declared(deb: &Path) -> anyhow::Result<()> {
    let path = deb.to_string_lossy();
    for field in [
        "Package",
        "Version",
        "Architecture",
        "Maintainer",
        "Depends",
        "Description",
    ] {
        let value = capture("dpkg-deb", &["--field", &path, field])?;
        ensure!(
            !value.is_empty(),
            "{}: no {field} field; required one",
            deb.display()
        );
        eprintln!(
            "xtask: {}: {field}: {}",
            deb.display(),
            value.lines().next().unwrap_or("")
        );
    }
    let package = capture("dpkg-deb", &["--field", &path, "Package"])?;
    let listing = capture("dpkg-deb", &["--contents", &path])?;
    // dpkg-deb lists members as tar stored them: `./usr/...` or `usr/...`.
    let copyright = format!("usr/share/doc/{package}/copyright");
    ensure!(
        listing
            .lines()
            .any(|l| l.ends_with(&format!(" {copyright}"))
                || l.ends_with(&format!(" ./{copyright}"))),
        "{}: no {copyright}; required the licence ({LICENSE})",
        deb.display()
    );
    Ok(())
}

/// Passes the pinned root to the build (and makes sure an old one is not inherited).
fn pin(cmd: &mut Command, pinned: Option<&Path>) {
    match pinned {
        Some(p) => cmd.env("FIELDKIT_TRUST_ROOT", p),
        None => cmd.env_remove("FIELDKIT_TRUST_ROOT"),
    };
}

/// The built CLI, in an empty home, must show the pinned root (or say that there is none).
fn check_pinned(cli: &Path, pinned: Option<&Path>, scratch: &Path) -> anyhow::Result<()> {
    let home = scratch.join("pin-check-home");
    let out = Command::new(cli)
        .arg("--home")
        .arg(&home)
        .args(["trust", "show"])
        .output()?;
    let _ = std::fs::remove_dir_all(&home);
    match (pinned, out.status.success()) {
        (Some(_), true) | (None, false) => Ok(()),
        (Some(f), false) => bail!(
            "the build does not load the trust root {} it pins: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        (None, true) => bail!("a build without --trust-root shows a trust root in an empty home"),
    }
}

/// The `fieldkit-hub` package, assembled in `out/` and packed with `dpkg-deb`.
///
/// Why dpkg-deb and not cargo-deb: everything it needs is Debian's own (`dpkg-deb`, and
/// `dpkg-shlibdeps` for the dependencies), so nothing is compiled or downloaded for it; the unit
/// and maintainer scripts are plain files under `crates/hub/debian/`, reviewed like code; and
/// cargo-deb, a `cargo install` away, would add minutes of compiling to every fresh CI machine
/// to write the same control file.
fn hub_deb(
    out: &Path,
    version: &str,
    arch: &str,
    binary: &Path,
    copyright: &Path,
) -> anyhow::Result<PathBuf> {
    let name = format!("fieldkit-hub_{version}_{arch}");
    let stage = out.join(&name);
    let debian = root().join("crates/hub/debian");
    let place = |from: &Path, to: &str, mode: u32| -> anyhow::Result<()> {
        let dest = stage.join(to);
        std::fs::create_dir_all(dest.parent().expect("a directory"))?;
        std::fs::copy(from, &dest).with_context(|| format!("{}", from.display()))?;
        set_mode(&dest, mode)
    };
    place(binary, "usr/bin/fieldkit-hub", 0o755)?;
    run_cmd(
        "strip",
        &[
            "--strip-debug",
            &stage.join("usr/bin/fieldkit-hub").to_string_lossy(),
        ],
    )?;
    place(
        &debian.join("fieldkit-hub.service"),
        "usr/lib/systemd/system/fieldkit-hub.service",
        0o644,
    )?;
    place(&debian.join("default"), "etc/default/fieldkit-hub", 0o644)?;
    place(copyright, "usr/share/doc/fieldkit-hub/copyright", 0o644)?;
    for script in ["postinst", "prerm", "postrm"] {
        place(&debian.join(script), &format!("DEBIAN/{script}"), 0o755)?;
    }
    place(&debian.join("conffiles"), "DEBIAN/conffiles", 0o644)?;

    let depends = shlib_depends(out, "fieldkit-hub", &stage.join("usr/bin/fieldkit-hub"))?;
    let size_kib = du_kib(&stage)?;
    let control = format!(
        "Package: fieldkit-hub\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: {MAINTAINER}\n\
         Installed-Size: {size_kib}\n\
         Depends: {depends}, passwd\n\
         Recommends: systemd\n\
         Section: net\n\
         Priority: optional\n\
         Description: fieldkit hub: audit-log sync server and service managers' dashboard\n \
         Receives the tamper-evident audit logs of fieldkit laptops (each batch checked\n \
         against the laptop's enrolled key, its sequence, hash chain and Merkle root),\n \
         cosigns them as receipts, and serves the managers' web dashboard. Runs as the\n \
         fieldkit-hub system user with its data in /var/lib/fieldkit-hub (SQLite), or on\n \
         PostgreSQL. Licence: {LICENSE}.\n"
    );
    std::fs::write(stage.join("DEBIAN/control"), control)?;
    let deb = out.join(format!("{name}.deb"));
    run_cmd(
        "dpkg-deb",
        &[
            "--root-owner-group",
            "--build",
            &stage.to_string_lossy(),
            &deb.to_string_lossy(),
        ],
    )?;
    std::fs::remove_dir_all(&stage)?;
    Ok(deb)
}

/// The `Depends` of a binary's shared libraries, as `dpkg-shlibdeps` computes them for
/// `package` (it wants a `debian/control` beside it; a minimal one is made in a scratch
/// directory).
fn shlib_depends(out: &Path, package: &str, binary: &Path) -> anyhow::Result<String> {
    let scratch = out.join("shlibdeps");
    std::fs::create_dir_all(scratch.join("debian"))?;
    std::fs::write(
        scratch.join("debian/control"),
        format!("Source: fieldkit\n\nPackage: {package}\nArchitecture: any\n"),
    )?;
    let line = Command::new("dpkg-shlibdeps")
        .arg("-O")
        .arg(format!("-x{package}"))
        .arg(binary)
        .current_dir(&scratch)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot start dpkg-shlibdeps (Debian package dpkg-dev)")?;
    let _ = std::fs::remove_dir_all(&scratch);
    ensure!(line.status.success(), "dpkg-shlibdeps failed");
    let text = String::from_utf8_lossy(&line.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(str::to_owned)
        .context("dpkg-shlibdeps printed no shlibs:Depends")
}

/// The copyright file both packages carry (machine-readable, DEP-5).
fn copyright() -> String {
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: fieldkit\n\
         \n\
         Files: *\n\
         Copyright: fieldkit maintainers\n\
         License: {LICENSE}\n \
         On Debian systems, the full text of the Apache License, Version 2.0 is in\n \
         /usr/share/common-licenses/Apache-2.0.\n"
    )
}

/// The version of the workspace's `fieldkit` package (the root `Cargo.toml`).
fn workspace_version() -> anyhow::Result<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml"))?;
    let package = manifest
        .split("\n[")
        .find(|s| s.starts_with("[package]") || s.starts_with("package]"))
        .context("Cargo.toml has a [package]")?;
    package
        .lines()
        .find_map(|l| {
            l.strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
        })
        .map(str::to_owned)
        .context("the fieldkit package has a version")
}

fn du_kib(dir: &Path) -> anyhow::Result<u64> {
    let text = capture("du", &["-sk", &dir.to_string_lossy()])?;
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("du's answer")
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Runs a command and returns its trimmed stdout.
pub(crate) fn capture(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot start {program}"))?;
    ensure!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn status(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {cmd:?}");
    let st = cmd
        .status()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    ensure!(st.success(), "{:?} failed ({st})", cmd.get_program());
    Ok(())
}
