//! `fieldkit identify`.

use std::path::PathBuf;

use anyhow::Context;
use fieldkit_core::Home;
use fieldkit_core::session::{Visit, identify_and_record};
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
    let audit = open_audit(home)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let visit = Visit {
        home,
        audit: &audit,
    };
    let identity = runtime.block_on(identify_and_record(
        visit,
        &args.port,
        args.profile.as_deref(),
    ))?;
    out.print(&identity, || render(&identity));
    Ok(())
}

/// Opens the home's audit log; every command that touches a device records what it did.
pub(crate) fn open_audit(home: &Home) -> anyhow::Result<fieldkit_audit::AuditLog> {
    home.ensure()?;
    fieldkit_audit::AuditLog::open_in_home(home.root())
        .with_context(|| format!("cannot open the audit log in {}", home.root().display()))
}

pub(crate) fn render(id: &Identity) -> String {
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
