//! The `fieldkit-hub` binary: serve the API and dashboard, enrol laptops, add managers, export,
//! and show the hub's key for laptops to pin.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use fieldkit_audit::Identity;
use fieldkit_hub::export::Format;
use fieldkit_hub::ingest::Fault;
use fieldkit_hub::rules::{EntryFilter, MAX_EXPORT_ROWS};
use fieldkit_hub::serve::{Listener, ServeOptions};
use fieldkit_hub::{AppState, auth, keyfile, open_store};

mod postmarket_cli;

#[derive(Parser)]
#[command(
    name = "fieldkit-hub",
    version,
    about = "The fieldkit audit hub and managers' dashboard"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
pub(crate) struct Db {
    /// Database URL: sqlite:PATH, or postgres://USER:PASSWORD@HOST:PORT/DB
    #[arg(long, env = "FIELDKIT_HUB_DB")]
    pub(crate) db: String,
    /// The hub's signing key (PKCS#8 PEM, 0600; created on first use). Default: beside a
    /// SQLite database (hub.db -> hub-key.pem); required with PostgreSQL.
    #[arg(long, env = "FIELDKIT_HUB_KEY", value_name = "FILE")]
    hub_key: Option<PathBuf>,
}

impl Db {
    pub(crate) fn identity(&self) -> anyhow::Result<Identity> {
        let path = match &self.hub_key {
            Some(p) => p.clone(),
            None => keyfile::default_path(&self.db)?,
        };
        Ok(keyfile::load_or_create(&path)?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the sync API and the dashboard.
    Serve {
        #[command(flatten)]
        db: Db,
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// TLS certificate chain (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, value_name = "FILE")]
        tls_key: Option<PathBuf>,
        /// Serve plain HTTP on a network address (passwords and entries travel unencrypted).
        #[arg(long)]
        insecure_http: bool,
    },
    /// Enrol a laptop's public key (SPKI PEM, from `fieldkit audit id`).
    EnrollLaptop {
        #[command(flatten)]
        db: Db,
        /// A name for the laptop.
        #[arg(long)]
        name: String,
        /// The laptop's public key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Add a manager account; the password is read from standard input.
    AddManager {
        #[command(flatten)]
        db: Db,
        /// The manager's sign-in name.
        #[arg(long)]
        name: String,
    },
    /// Export entries to standard output (oldest first, at most 100 000).
    Export {
        #[command(flatten)]
        db: Db,
        /// json (a verification bundle) or csv.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Print the hub's public key, for laptops to pin (`fieldkit audit pin-hub --key FILE`).
    Key {
        #[command(flatten)]
        db: Db,
    },
    /// The manufacturer's trust root the hub verifies releases, entitlements and recall lists
    /// against.
    #[command(subcommand)]
    Trust(postmarket_cli::TrustCmd),
    /// Releases the hub knows: fieldkit packages, or the SBOM of a package a laptop recorded.
    #[command(subcommand)]
    Releases(postmarket_cli::ImportCmd),
    /// OSV advisories: JSON documents or an ecosystem's all.zip.
    #[command(subcommand)]
    Advisories(postmarket_cli::ImportCmd),
    /// VEX: import CycloneDX VEX, OpenVEX or CSAF 2.0, or record a decision.
    #[command(subcommand)]
    Vex(postmarket_cli::VexCmd),
    /// Entitlements (who may install what; which customer a serial belongs to).
    #[command(subcommand)]
    Entitlements(postmarket_cli::ImportCmd),
    /// Recall lists.
    #[command(subcommand)]
    Recalls(postmarket_cli::ImportCmd),
    /// Which devices are exposed: to a vulnerability (--id), running a component (--component),
    /// or everything about one device (--device).
    Exposure(postmarket_cli::ExposureArgs),
    /// Devices not on the newest release they may install, by product, customer and site.
    Uptodate(postmarket_cli::UpToDateArgs),
    /// Licence policy: the report, or the hub's policy.
    #[command(subcommand)]
    Licences(postmarket_cli::LicenceCmd),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "fieldkit_hub=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = tokio::runtime::Runtime::new()
        .context("starting the runtime")
        .and_then(|rt| rt.block_on(run(Cli::parse())));
    if let Err(e) = result {
        eprintln!("fieldkit-hub: {e:#}");
        std::process::exit(1);
    }
}

fn print_key(hub: &Identity) {
    print!(
        "hub key {} (key id {})\n{}",
        hub.name(),
        hub.key_id(),
        hub.public_key_pem()
    );
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            db,
            listen,
            tls_cert,
            tls_key,
            insecure_http,
        } => {
            let hub = db.identity()?;
            let opts = ServeOptions {
                tls_cert,
                tls_key,
                insecure_http,
            };
            let listener = Listener::bind(&listen, &opts)?;
            let store = open_store(&db.db).await?;
            let mut state = AppState::new(store, hub);
            state.fault = Fault::from_env().map(Arc::new);
            // Tests and scripts read this line to learn the port.
            println!("listening on {}", listener.url());
            tracing::info!(
                "fieldkit-hub listening on {} ({:?})",
                listener.url(),
                listener.transport
            );
            listener
                .serve(state, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            Ok(())
        }
        Command::EnrollLaptop { db, name, key } => {
            let pem = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read {}", key.display()))?;
            let key = fieldkit_audit::identity::parse_public_key_pem(&pem)
                .with_context(|| format!("{}", key.display()))?;
            let hub = db.identity()?;
            let laptop = open_store(&db.db).await?.enroll_laptop(&name, &key).await?;
            println!("enrolled {} as {}", laptop.name, laptop.origin);
            println!("the laptop pins this hub's key (fieldkit audit pin-hub --key FILE):");
            print_key(&hub);
            Ok(())
        }
        Command::AddManager { db, name } => {
            let mut password = String::new();
            std::io::stdin()
                .take(4 * auth::MAX_PASSWORD_LEN as u64)
                .read_to_string(&mut password)
                .context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let hash = auth::hash_password(password)?;
            open_store(&db.db).await?.add_manager(&name, &hash).await?;
            println!("added manager {name}");
            Ok(())
        }
        Command::Export { db, format } => {
            let fmt: Format = format.parse().map_err(anyhow::Error::msg)?;
            let hub = db.identity()?;
            let store = open_store(&db.db).await?;
            let filter = EntryFilter {
                format: Some(format),
                ..Default::default()
            };
            let q = filter.to_query(MAX_EXPORT_ROWS, MAX_EXPORT_ROWS)?;
            let bytes = fieldkit_hub::export::export(&*store, &hub, &filter, &q, fmt)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.body.message))?;
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
            Ok(())
        }
        Command::Key { db } => {
            // The PEM alone on stdout, so `fieldkit-hub key > hub.pub.pem` makes the file
            // `fieldkit audit pin-hub --key` takes; its name, to read out to the technician,
            // on stderr.
            let hub = db.identity()?;
            eprintln!("hub key {} (key id {})", hub.name(), hub.key_id());
            print!("{}", hub.public_key_pem());
            Ok(())
        }
        Command::Trust(c) => postmarket_cli::trust_cmd(c).await,
        Command::Releases(c) => postmarket_cli::releases_cmd(c).await,
        Command::Advisories(c) => postmarket_cli::advisories_cmd(c).await,
        Command::Vex(c) => postmarket_cli::vex_cmd(c).await,
        Command::Entitlements(c) => postmarket_cli::entitlements_cmd(c).await,
        Command::Recalls(c) => postmarket_cli::recalls_cmd(c).await,
        Command::Exposure(a) => postmarket_cli::exposure_cmd(a).await,
        Command::Uptodate(a) => postmarket_cli::uptodate_cmd(a).await,
        Command::Licences(c) => postmarket_cli::licences_cmd(c).await,
    }
}
