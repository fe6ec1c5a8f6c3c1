//! `fieldkit identify`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use fieldkit_core::{Home, identify_device, probe};
use fieldkit_profile::Identity;

use crate::output::Output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Serial port of the device (see `fieldkit ports`), or a simulator's port path.
    #[arg(long, value_name = "PATH")]
    port: PathBuf,
    /// Device profile; by default the one matching the port's USB identity, else the one
    /// matching the model the device reports.
    #[arg(long, value_name = "ID")]
    profile: Option<String>,
}

pub(crate) fn run(home: &Home, out: &Output, args: Args) -> anyhow::Result<()> {
    let profiles = home.profiles()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let identity = runtime.block_on(async {
        let by_usb = fieldkit_link::discover(&profiles)
            .ok()
            .and_then(|ports| {
                let wanted = std::fs::canonicalize(&args.port).ok();
                ports
                    .into_iter()
                    .find(|p| Some(PathBuf::from(&p.path)) == wanted)
            })
            .and_then(|p| p.profile);
        let chosen = match args.profile.as_deref().or(by_usb.as_deref()) {
            Some(id) => match profiles.get(id) {
                Some(p) => Some(p),
                None => bail!(
                    "unknown profile {id:?}: required one of {}",
                    profiles.ids().join(", ")
                ),
            },
            None => None,
        };
        // Open with the chosen profile's line settings, or the first profile's for probing.
        let line_profile = chosen
            .or_else(|| profiles.iter().next())
            .context("no device profiles")?;
        let mut link = fieldkit_link::open(&args.port, &line_profile.line)?;
        let profile = match chosen {
            Some(p) => p,
            None => probe(&mut link, &profiles).await?,
        };
        Ok::<Identity, anyhow::Error>(identify_device(link, profile).await?)
    })?;
    out.print(&identity, || render(&identity));
    Ok(())
}

fn render(id: &Identity) -> String {
    let mut s = String::new();
    s += &format!("Device       {} (profile {})\n", id.model, id.profile);
    s += &format!("Serial       {}\n", id.serial);
    s += &format!("Hardware     revision {}\n", id.hardware_revision);
    s += &format!(
        "Bootloader   {} {}\n",
        id.bootloader.as_deref().unwrap_or("?"),
        id.bootloader_version.as_deref().unwrap_or("")
    );
    if let Some(b) = id.battery_percent {
        s += &format!("Battery      {b} %\n");
    }
    if let Some(t) = id.therapy_running {
        s += &format!(
            "Therapy      {}\n",
            if t { "RUNNING" } else { "not running" }
        );
    }
    if let Some((size, count)) = id.buffers {
        s += &format!("SMP buffers  {count} x {size} bytes\n");
    }
    s += "Images\n";
    for slot in &id.slots {
        let mut flags = Vec::new();
        for (on, name) in [
            (slot.active, "active"),
            (slot.confirmed, "confirmed"),
            (slot.pending, "pending"),
            (slot.permanent, "permanent"),
            (!slot.bootable, "NOT BOOTABLE"),
        ] {
            if on {
                flags.push(name);
            }
        }
        s += &format!(
            "  image {} slot {}  {:<10} {:<12} {}  {}\n",
            slot.image,
            slot.slot,
            slot.component.as_deref().unwrap_or("?"),
            slot.version,
            &slot.hash[..slot.hash.len().min(16)],
            flags.join(", ")
        );
    }
    s
}
