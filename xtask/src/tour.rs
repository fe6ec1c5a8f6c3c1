//! `cargo xtask run`: a guided tour against a simulated device. (The desktop app replaces it
//! as the first README command once it lands.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::Context;

use crate::{root, run_cmd, target_dir};

/// The device the tour simulates: the first SMP model in `device-profiles/` (its id and model
/// name), so that the tour follows the data rather than naming a model.
fn tour_device() -> anyhow::Result<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(root().join("device-profiles"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path)?;
        let value = |key: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
            })
        };
        if value("family").as_deref() == Some("smp")
            && let (Some(id), Some(model)) = (value("id"), value("model"))
        {
            return Ok((id, model));
        }
    }
    anyhow::bail!("device-profiles/ has no SMP device to tour")
}

pub(crate) fn run() -> anyhow::Result<()> {
    let (profile, model) = tour_device()?;
    run_cmd(
        "cargo",
        &["build", "--locked", "--quiet", "--bin", "fieldkit"],
    )?;
    let bin = target_dir().join("debug").join("fieldkit");
    let dir = std::env::temp_dir().join(format!("fieldkit-tour-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let home = dir.join("home");
    let state = dir.join("device.json");

    println!("\n== fieldkit tour ==\n");
    println!("1. The device profiles fieldkit knows (device-profiles/*.toml):\n");
    Command::new(&bin)
        .arg("--home")
        .arg(&home)
        .arg("profiles")
        .status()?;

    println!("\n2. A simulated {model} on a pseudo-terminal:\n");
    let mut sim = Command::new(&bin)
        .args(["sim", "--profile", &profile, "--state"])
        .arg(&state)
        .stdout(Stdio::piped())
        .spawn()
        .context("start the simulator")?;
    let mut lines = BufReader::new(sim.stdout.take().expect("piped")).lines();
    let port = lines.next().context("the simulator printed nothing")??;
    println!(
        "   fieldkit sim --profile {profile} --state {}",
        state.display()
    );
    println!("   port: {port}\n");

    println!("3. What a technician sees when plugging in (fieldkit identify):\n");
    let identify = Command::new(&bin)
        .arg("--home")
        .arg(&home)
        .args(["identify", "--port", &port])
        .status()?;

    println!("\nThe simulated device keeps running. In another terminal, try:");
    println!("   {} identify --port {port} --json", bin.display());
    println!(
        "   python3 tests/interop/smpclient_upload.py {port} IMAGE   (a third-party SMP client)"
    );
    println!(
        "Its state (slots, flags, battery) is in {}.",
        state.display()
    );
    println!("Press Ctrl-C to stop.\n");
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            println!("   [device] {line}");
        }
    });
    let status = sim.wait()?;
    anyhow::ensure!(identify.success(), "identify failed");
    anyhow::ensure!(
        status.success() || status.code().is_none(),
        "simulator failed: {status}"
    );
    Ok(())
}
