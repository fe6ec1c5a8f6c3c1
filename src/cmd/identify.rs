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
    /// An identity field the device cannot report, as read off its rating plate
    /// (`serial=VM3-1180-2291`); recorded as typed. The profile says which fields may be typed.
    #[arg(long = "typed", value_name = "FIELD=VALUE", value_parser = typed_value)]
    typed: Vec<(String, String)>,
}

/// Parses `FIELD=VALUE`.
pub(crate) fn typed_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((field, value)) if !field.trim().is_empty() => {
            Ok((field.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("found {s:?}, required FIELD=VALUE")),
    }
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
    let typed = args.typed.into_iter().collect();
    let identity = runtime.block_on(identify_and_record(
        visit,
        &args.port,
        args.profile.as_deref(),
        &typed,
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
    // Every other field the profile declares, by its label; a typed value says so.
    for (name, r) in &id.fields {
        if matches!(
            name.as_str(),
            "model" | "serial" | "hardware_revision" | "bootloader_version"
        ) {
            continue;
        }
        s += &format!(
            "{:<24} {}{}\n",
            r.label,
            r.value,
            if r.typed() {
                "  (typed by the technician)"
            } else {
                ""
            }
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
