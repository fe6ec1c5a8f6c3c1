//! `fieldkit sim`: a simulated device on a pseudo-terminal.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use fieldkit_core::Home;
use fieldkit_sim::{Fault, SimConfig};
use serde_json::json;

use crate::output::Output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Device profile to play (see `fieldkit profiles`).
    #[arg(long, value_name = "ID")]
    profile: String,
    /// State file: identity, image slots and flags persist here across resets and restarts.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Line rate to model, bits per second (default: the profile's).
    #[arg(long, value_name = "N")]
    baud: Option<u32>,
    /// Turnaround latency before each reply, ms (USB-serial adapters: up to 16).
    #[arg(long, value_name = "N", default_value_t = 0)]
    latency_ms: u64,
    /// Boot time after a reset, ms.
    #[arg(long, value_name = "N", default_value_t = 400)]
    boot_ms: u64,
    /// Stable path to create for clients (a link to the pseudo-terminal); default: beside
    /// the state file, or in the temporary directory.
    #[arg(long, value_name = "PATH")]
    port_link: Option<PathBuf>,
    /// Fault to inject, e.g. `disconnect-after=4096`, `corrupt=0.001`, `refuse-confirm`.
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<Fault>,
    /// Seed of the random faults (default: a fresh one, printed at start): the same seed
    /// replays the same line damage.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Stop with an error when the client breaks a rule a real device enforces silently
    /// (a frame over `buf_size`, a console line over 128 bytes), instead of ignoring it.
    #[arg(long)]
    strict: bool,
}

pub(crate) fn run(home: &Home, out: &Output, args: Args) -> anyhow::Result<()> {
    let profiles = home.profiles()?;
    let Some(profile) = profiles.get(&args.profile) else {
        bail!(
            "unknown profile {:?}: required one of {}",
            args.profile,
            profiles.ids().join(", ")
        );
    };
    if let Some(b) = args.baud
        && !(300..=4_000_000).contains(&b)
    {
        bail!("--baud {b}: required 300 to 4000000");
    }
    let port_path = match (&args.port_link, &args.state) {
        (Some(p), _) => p.clone(),
        (None, Some(state)) => state.with_extension("tty"),
        (None, None) => std::env::temp_dir().join(format!(
            "fieldkit-sim-{}-{}",
            profile.id(),
            std::process::id()
        )),
    };
    // A device in its bootloader boots its application on reset.
    let application = profile
        .device
        .application
        .as_ref()
        .and_then(|a| profiles.get(a.get_ref()))
        .cloned();
    let config = SimConfig {
        application,
        baud: args.baud.unwrap_or(*profile.line.baud.get_ref()),
        profile: profile.clone(),
        state_path: args.state.clone(),
        port_path,
        latency: Duration::from_millis(args.latency_ms),
        boot_time: Duration::from_millis(args.boot_ms),
        faults: args.faults,
        seed: args.seed,
        strict: args.strict,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || s.store(true, Ordering::Relaxed))
        .context("install signal handler")?;
    let json = out.json();
    fieldkit_sim::run(config, stop, |event| {
        if let Some(port) = event.strip_prefix("port ") {
            if json {
                out.line(&json!({ "port": port }), port);
            } else {
                out.line(&(), port);
            }
        } else if let Some(seed) = event.strip_prefix("seed ") {
            let text = format!("seed {seed} (replay its faults with --seed {seed})");
            out.line(&json!({ "seed": seed.parse::<u64>().ok() }), &text);
        } else {
            out.line(&json!({ "event": event }), event);
        }
    })?;
    Ok(())
}
