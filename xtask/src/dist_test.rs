//! `cargo xtask dist-test`: builds the packages with a trust root pinned, installs them on this
//! machine for real (`dpkg -i`, `apt-get install -f` for missing dependencies), starts what they
//! installed, and removes everything again.
//!
//! - The packages declare what they must ([`crate::dist`] checks the fields).
//! - The installed CLI, in a fresh user's home, trusts the pinned root, refuses the DEMO kit in
//!   that home, and makes the DEMO in its own home beside it; every file it made is 0600 in a
//!   0700 directory.
//! - The installed hub runs as its own system user, from the settings the package installed,
//!   answers `GET /api/v1/hub` on loopback, and keeps its database and key 0600 in its 0700
//!   directory. systemd is not PID 1 in CI containers, so the hub is started here the way its
//!   unit starts it (same user, same settings) rather than by `systemctl`.
//! - The installed app opens its first screen under Xvfb, driven by tauri-driver
//!   (`ui/e2e/installed-app.mjs`), which saves it as `docs/screenshots/app-installed.png`.
//!
//! It needs root (it installs packages and a system user) and refuses to run where fieldkit is
//! already installed or the `fieldkit-hub` user already exists: it never touches an
//! installation it did not make.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail, ensure};

use crate::app::{Xvfb, tauri_driver};
use crate::dist::{self, capture};
use crate::{root, run_cmd, target_dir};

/// The Debian packages `dist` makes, by name.
const PACKAGES: [&str; 2] = ["fieldkit", "fieldkit-hub"];
/// The hub's system user (made by its postinst).
const HUB_USER: &str = "fieldkit-hub";
/// The hub's state directory (its database and key).
const HUB_STATE: &str = "/var/lib/fieldkit-hub";

pub(crate) fn run() -> anyhow::Result<()> {
    ensure!(
        capture("id", &["-u"])? == "0",
        "installing packages needs root; required `cargo xtask dist-test` as root (CI runs as root)"
    );
    for p in PACKAGES {
        ensure!(
            !installed(p),
            "{p} is already installed on this machine; required a machine without it (this test removes what it installs)"
        );
    }
    ensure!(
        Command::new("getent")
            .args(["passwd", HUB_USER])
            .stdout(Stdio::null())
            .status()?
            .code()
            == Some(2),
        "the user {HUB_USER} already exists; required none (a leftover of an interrupted run is removed with `userdel {HUB_USER}; rm -rf {HUB_STATE}`)"
    );
    let scratch = Scratch::new()?;
    let root_file = test_trust_root(&scratch.0)?;
    let started = std::time::Instant::now();
    let packages = dist::build(Some(&root_file))?;
    eprintln!(
        "xtask: dist built both packages in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let _installed = Installation;
    install(&[&packages.app, &packages.hub])?;
    cli(&scratch.0.join("technician"))?;
    hub()?;
    app(&scratch.0.join("app-user"))?;
    eprintln!("xtask: the installed packages work; removing them");
    Ok(())
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let dir = target_dir().join(format!("dist-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A manufacturer's root made for this run with the workspace's CLI: four fresh keys, the
/// root signed by its root key. The keys stay in the scratch directory and go with it.
fn test_trust_root(dir: &Path) -> anyhow::Result<PathBuf> {
    run_cmd(
        "cargo",
        &["build", "--locked", "--quiet", "--bin", "fieldkit"],
    )?;
    let cli = target_dir().join("debug/fieldkit");
    let keys = dir.join("keys");
    let home = dir.join("engineer-home");
    for role in ["root", "release", "entitlement", "recall"] {
        ok(Command::new(&cli)
            .arg("--home")
            .arg(&home)
            .args(["keys", "generate", "--name", role, "--out"])
            .arg(&keys))?;
    }
    let root_file = dir.join("root.json");
    let k = |name: &str| keys.join(name);
    ok(Command::new(&cli)
        .arg("--home")
        .arg(&home)
        .args(["trust", "init", "--root-key"])
        .arg(k("root.key.pem"))
        .arg("--release-key")
        .arg(k("release.pub.pem"))
        .arg("--entitlement-key")
        .arg(k("entitlement.pub.pem"))
        .arg("--recall-key")
        .arg(k("recall.pub.pem"))
        .arg("--out")
        .arg(&root_file))?;
    Ok(root_file)
}

/// `dpkg -i`, then `apt-get install -f` when dependencies are missing; both must end installed.
fn install(debs: &[&Path]) -> anyhow::Result<()> {
    let mut args = vec!["-i".to_owned()];
    args.extend(debs.iter().map(|d| d.to_string_lossy().into_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if run_cmd("dpkg", &args).is_err() {
        eprintln!("xtask: dpkg left dependencies missing; apt-get installs them");
        run_cmd(
            "apt-get",
            &["install", "-f", "-y", "--no-install-recommends"],
        )?;
    }
    for p in PACKAGES {
        ensure!(installed(p), "{p} did not end up installed");
    }
    for file in [
        "/usr/bin/fieldkit",
        "/usr/bin/fieldkit-app",
        "/usr/share/applications/fieldkit.desktop",
        "/usr/bin/fieldkit-hub",
        "/usr/lib/systemd/system/fieldkit-hub.service",
        "/etc/default/fieldkit-hub",
    ] {
        ensure!(
            Path::new(file).exists(),
            "the packages did not install {file}"
        );
    }
    // The hub's own system user, no login, and a state directory only it can enter.
    let passwd = capture("getent", &["passwd", HUB_USER])?;
    let fields: Vec<&str> = passwd.split(':').collect();
    let uid: u32 = fields.get(2).and_then(|u| u.parse().ok()).context("uid")?;
    ensure!(
        uid < 1000 && fields.get(6) == Some(&"/usr/sbin/nologin"),
        "{HUB_USER} must be a system user without a login shell: {passwd}"
    );
    let meta = std::fs::metadata(HUB_STATE).with_context(|| HUB_STATE.to_owned())?;
    ensure!(
        unix::mode(&meta) == 0o700 && unix::uid(&meta) == uid,
        "{HUB_STATE}: mode {:o} owner {}; required 0700 owned by {HUB_USER}",
        unix::mode(&meta),
        unix::uid(&meta)
    );
    Ok(())
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout) == "install ok installed")
}

/// The installed CLI, as a technician with a fresh home.
fn cli(user: &Path) -> anyhow::Result<()> {
    let data = user.join(".local/share");
    let fieldkit = |args: &[&str]| {
        let mut c = Command::new("/usr/bin/fieldkit");
        c.args(args)
            .env("HOME", user)
            .env("XDG_DATA_HOME", &data)
            .env_remove("FIELDKIT_HOME")
            .stdin(Stdio::null());
        c
    };
    // The pinned root is trusted with nothing installed in the home.
    let shown = ok(&mut fieldkit(&["--json", "trust", "show"]))?;
    let shown: serde_json::Value = serde_json::from_str(&shown)?;
    ensure!(
        shown["version"] == 1 && shown["file"].as_str().is_some_and(|f| f.contains("pinned")),
        "the installed CLI does not trust its pinned root: {shown}"
    );
    // The DEMO kit never goes into the installation's home...
    let home = data.join("fieldkit");
    let refused = fieldkit(&["--home", &home.to_string_lossy(), "demo", "init"]).output()?;
    let said = String::from_utf8_lossy(&refused.stderr);
    ensure!(
        !refused.status.success() && said.contains("installation's own home"),
        "the installed CLI made the DEMO kit in the installation's home: {said}"
    );
    // ...but into its own, beside it.
    ok(&mut fieldkit(&["--demo", "demo", "init"]))?;
    ensure!(data.join("fieldkit-demo/demo/kit.json").exists());
    ensure!(
        !home.join("demo").exists(),
        "DEMO material in the installation's home"
    );
    let mut open = not_private(&data.join("fieldkit"))?;
    open.extend(not_private(&data.join("fieldkit-demo"))?);
    ensure!(
        open.is_empty(),
        "the installed CLI made files others can read: {open:?}"
    );
    Ok(())
}

/// The installed hub, run as its system user with the package's settings.
fn hub() -> anyhow::Result<()> {
    let settings = std::fs::read_to_string("/etc/default/fieldkit-hub")?;
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={HUB_USER}"),
        &format!("--regid={HUB_USER}"),
        "--init-groups",
        "--",
        "/usr/bin/fieldkit-hub",
        "serve",
        "--listen",
        "127.0.0.1:0",
    ])
    .env_clear()
    .env("PATH", "/usr/bin:/bin")
    .current_dir(HUB_STATE)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for line in settings.lines().map(str::trim) {
        if let Some((k, v)) = line.split_once('=')
            && !k.starts_with('#')
        {
            cmd.env(k, v);
        }
    }
    eprintln!("$ {cmd:?}");
    let mut child = cmd.spawn().context("cannot start the installed hub")?;
    let answered = (|| -> anyhow::Result<()> {
        // The hub prints `listening on URL` on stdout once it accepts connections.
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let addr = stdout
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                l.trim()
                    .strip_prefix("listening on http://")
                    .map(str::to_owned)
            })
            .context("the installed hub exited without listening")?;
        let mut stream = TcpStream::connect(&addr)?;
        write!(
            stream,
            "GET /api/v1/hub HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        ensure!(
            answer.starts_with("HTTP/1.1 200"),
            "the installed hub answered: {answer}"
        );
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        let info: serde_json::Value = serde_json::from_str(body)
            .with_context(|| format!("the hub's answer is not JSON: {body}"))?;
        ensure!(
            info["public_key"]
                .as_str()
                .is_some_and(|k| k.contains("BEGIN PUBLIC KEY")),
            "the installed hub did not say its key: {info}"
        );
        eprintln!(
            "xtask: the installed hub answers on {addr}: {}",
            info["name"]
        );
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    answered?;
    let uid: u32 = capture("id", &["-u", HUB_USER])?.parse()?;
    let mut files = 0;
    for entry in walk(Path::new(HUB_STATE))? {
        let meta = std::fs::symlink_metadata(&entry)?;
        files += usize::from(meta.is_file());
        ensure!(
            unix::uid(&meta) == uid,
            "{}: not owned by {HUB_USER}",
            entry.display()
        );
    }
    ensure!(files >= 2, "the hub made no database or key in {HUB_STATE}");
    let open = not_private(Path::new(HUB_STATE))?;
    ensure!(
        open.is_empty(),
        "the installed hub made files others can read: {open:?}"
    );
    Ok(())
}

/// The installed app's first screen, under Xvfb, saved to docs/screenshots/.
fn app(user: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(user)?;
    let display = Xvfb::start_if_needed()?;
    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-reporter=spec", "ui/e2e/installed-app.mjs"])
        .current_dir(root())
        .env("DISPLAY", &display.display)
        .env("HOME", user)
        .env_remove("XDG_DATA_HOME")
        .env_remove("FIELDKIT_HOME")
        .env("FIELDKIT_APP", "/usr/bin/fieldkit-app")
        .env("TAURI_DRIVER", tauri_driver())
        .env("FIELDKIT_SCREENSHOTS", root().join("docs/screenshots"));
    eprintln!(
        "$ node --test ui/e2e/installed-app.mjs  (DISPLAY={})",
        display.display
    );
    let status = cmd.status().context("cannot start node")?;
    ensure!(
        status.success(),
        "the installed app's first start failed ({status})"
    );
    let open = not_private(&user.join(".local/share/fieldkit"))?;
    ensure!(
        open.is_empty(),
        "the installed app made files others can read: {open:?}"
    );
    Ok(())
}

/// What this run installed; removed when dropped, whether the run passed or not.
struct Installation;

impl Drop for Installation {
    fn drop(&mut self) {
        let mut purge = Command::new("dpkg");
        purge.arg("--purge").args(PACKAGES);
        let _ = purge.status();
        // The package keeps the hub's records and user on purge, on purpose (a fleet's audit
        // logs); this test's are its own.
        let _ = Command::new("userdel").arg(HUB_USER).status();
        if Command::new("getent")
            .args(["group", HUB_USER])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            let _ = Command::new("groupdel").arg(HUB_USER).status();
        }
        let _ = std::fs::remove_dir_all(HUB_STATE);
        for p in PACKAGES {
            if installed(p) {
                eprintln!("xtask: warning: {p} is still installed");
            }
        }
    }
}

/// Runs `cmd`, failing with its stderr; returns its stdout.
fn ok(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every path under `dir` (itself included), without following links.
fn walk(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = vec![dir.to_owned()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if std::fs::symlink_metadata(&p)?.is_dir() {
            for e in std::fs::read_dir(&p)? {
                out.push(e?.path());
            }
        }
        i += 1;
    }
    Ok(out)
}

/// Directories under `dir` other than 0700 and files other than 0600 (a second look, from
/// outside, at what `fieldkit-private` promises).
fn not_private(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for p in walk(dir)? {
        let meta = std::fs::symlink_metadata(&p)?;
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = unix::mode(&meta);
        if mode != want {
            out.push(format!("{} {mode:o}", p.display()));
        }
    }
    Ok(out)
}

mod unix {
    //! Mode and owner of a file (Debian packages exist on Unix only).
    use std::os::unix::fs::MetadataExt;

    pub(super) fn mode(m: &std::fs::Metadata) -> u32 {
        m.mode() & 0o7777
    }

    pub(super) fn uid(m: &std::fs::Metadata) -> u32 {
        m.uid()
    }
}
