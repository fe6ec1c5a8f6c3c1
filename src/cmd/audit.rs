//! `fieldkit audit`: read, verify, export and sync the laptop's audit log.

use anyhow::Context;
use fieldkit_audit::export::Format;
use fieldkit_audit::{AuditLog, Entry};
use fieldkit_core::Home;
use serde::Serialize;

use crate::output::Output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List entries, oldest first.
    List {
        /// First seq to list.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// How many entries to list.
        #[arg(long, default_value_t = 1000)]
        limit: u64,
    },
    /// Show one entry in full.
    Show {
        /// The entry's seq (from 0).
        seq: u64,
    },
    /// Recompute every hash, chain, tree and signature; name the first bad entry.
    Verify,
    /// Export every entry with its exact bytes and leaf hash.
    Export {
        /// csv or json.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Upload the entries the hub does not hold yet and store its receipt.
    Sync {
        /// The hub, e.g. https://hub.example:8443
        #[arg(long, env = "FIELDKIT_HUB", value_name = "URL")]
        hub: String,
        /// At the first sync: pin the key the hub presents, after checking with the hub's
        /// operator that it is this one (its name fieldkit-hub/… or its key id).
        #[arg(long, value_name = "KEY")]
        accept_hub_key: Option<String>,
        /// A root certificate (PEM) to trust for the hub's TLS certificate.
        #[arg(long, env = "FIELDKIT_HUB_CA", value_name = "FILE")]
        hub_ca: Option<std::path::PathBuf>,
    },
    /// Pin the hub's public key (the one `fieldkit-hub enroll-laptop` or `fieldkit-hub key`
    /// prints): every sync then requires receipts cosigned by it.
    PinHub {
        /// The hub's public key (SPKI PEM).
        #[arg(long, value_name = "FILE")]
        key: std::path::PathBuf,
    },
    /// Print this laptop's log origin and public key (to enrol it on a hub).
    Id,
}

pub(crate) fn run(home: &Home, out: &Output, args: Args) -> anyhow::Result<()> {
    let log = AuditLog::open_in_home(home.root())
        .with_context(|| format!("opening the audit log in {}", home.root().display()))?;
    match args.command {
        Command::List { from, limit } => {
            let entries = log.entries(from..from.saturating_add(limit))?;
            out.print(&entries, || entries.iter().map(line).collect());
        }
        Command::Show { seq } => {
            let entry = log.get(seq)?.with_context(|| {
                format!(
                    "entry {seq} does not exist: the log has {} entries",
                    log.size().unwrap_or(0)
                )
            })?;
            out.print(&entry, || {
                serde_json::to_string_pretty(&entry).unwrap_or_default() + "\n"
            });
        }
        Command::Verify => {
            let report = log.verify()?;
            out.print(&report, || {
                let mut s = format!(
                    "audit log OK: {} entries, root {}, {} checkpoints and {} hub receipts checked, {} acknowledged by a hub\n",
                    report.size, report.root, report.checkpoints, report.receipts, report.acked_size
                );
                for f in &report.clock_flags {
                    s += &format!(
                        "clock: entry {} moved the wall clock {} s while {} s passed\n",
                        f.seq, f.wall_delta_secs, f.mono_delta_secs
                    );
                }
                if report.pending_intents > 0 {
                    s += &format!("{} update(s) in progress\n", report.pending_intents);
                }
                s
            });
        }
        Command::Export { format } => export(&log, &format)?,
        Command::Sync {
            hub,
            accept_hub_key,
            hub_ca,
        } => {
            let mut config = fieldkit_sync::SyncConfig::default();
            if let Some(ca) = &hub_ca {
                config.extra_roots_pem.push(
                    std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?,
                );
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let pinned = match fieldkit_sync::pin::load_pin(home.root())? {
                Some(key) => key,
                None => {
                    let info = runtime.block_on(fieldkit_sync::fetch_hub_info(&hub, &config))?;
                    let Some(confirmed) = accept_hub_key else {
                        anyhow::bail!(
                            "this laptop has not pinned a hub key yet: the hub at {hub} presents key {} (key id {}); check it with the hub's operator (fieldkit-hub key), then run again with --accept-hub-key {}",
                            info.name,
                            info.key_id,
                            info.name
                        );
                    };
                    fieldkit_sync::pin::pin_confirmed(home.root(), &info, &confirmed)?;
                    fieldkit_sync::pin::load_pin(home.root())?
                        .context("the hub key was pinned but cannot be read back")?
                }
            };
            let client = fieldkit_sync::SyncClient::with_config(&hub, pinned, config)?;
            let report = runtime.block_on(client.sync(&log))?;
            out.print(&report, || {
                format!(
                    "synced: {} new entries, the hub now acknowledges {} entries\n",
                    report.sent, report.acked_size
                )
            });
        }
        Command::PinHub { key } => {
            let pem = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read {}", key.display()))?;
            let key = fieldkit_audit::identity::parse_public_key_pem(&pem)
                .with_context(|| format!("{}", key.display()))?;
            let name = fieldkit_sync::pin::save_pin(home.root(), &key)?;
            #[derive(Serialize)]
            struct Pinned {
                hub_key: String,
            }
            out.print(
                &Pinned {
                    hub_key: name.clone(),
                },
                || format!("pinned hub key {name}: syncs now require receipts cosigned by it\n"),
            );
        }
        Command::Id => {
            #[derive(Serialize)]
            struct Id {
                origin: String,
                key_id: String,
                public_key: String,
                note_verifier_key: String,
            }
            let me = log.identity();
            let id = Id {
                origin: me.name().into(),
                key_id: me.key_id(),
                public_key: me.public_key_pem(),
                note_verifier_key: me.verifier_key(),
            };
            out.print(&id, || {
                format!(
                    "origin: {}\nkey id: {}\n{}",
                    id.origin, id.key_id, id.public_key
                )
            });
        }
    }
    Ok(())
}

/// One entry on one line. Technician, site and device strings are as recorded: made inert
/// (each on its own, so none can break the line).
fn line(e: &Entry) -> String {
    let t = |s: &str| fieldkit_inert::terminal(s).into_owned();
    format!(
        "{:>6}  {}  {:<12} {:<24} {:<14} {:<20} {}\n",
        e.seq,
        e.time.format("%Y-%m-%d %H:%M:%S"),
        t(&e.technician),
        t(&e.site),
        t(&e.device_serial().unwrap_or_else(|| "-".into())),
        e.event,
        t(&fieldkit_audit::export::summary(e)),
    )
}

fn export(log: &AuditLog, format: &str) -> anyhow::Result<()> {
    let format: Format = format.parse()?;
    let records = log.records(..)?;
    let stdout = std::io::stdout().lock();
    match format {
        Format::Json => fieldkit_audit::export::json(stdout, &records)?,
        Format::Csv => {
            fieldkit_audit::export::csv(stdout, &[], records.iter().map(|r| (r, vec![])))?
        }
    }
    Ok(())
}
