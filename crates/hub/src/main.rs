//! The `fieldkit-hub` binary: serve the API and dashboard, enrol laptops, add managers, export.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fieldkit_hub::export::Format;
use fieldkit_hub::ingest::CrashPoint;
use fieldkit_hub::{AppState, auth, open_store, router};

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

#[derive(Subcommand)]
enum Command {
    /// Serve the sync API and the dashboard.
    Serve {
        /// Database URL, e.g. sqlite:hub.db
        #[arg(long, env = "FIELDKIT_HUB_DB")]
        db: String,
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Enrol a laptop's public key (SPKI PEM, from `fieldkit audit id`).
    EnrollLaptop {
        /// Database URL.
        #[arg(long, env = "FIELDKIT_HUB_DB")]
        db: String,
        /// A name for the laptop.
        #[arg(long)]
        name: String,
        /// The laptop's public key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Add a manager account; the password is read from standard input.
    AddManager {
        /// Database URL.
        #[arg(long, env = "FIELDKIT_HUB_DB")]
        db: String,
        /// The manager's sign-in name.
        #[arg(long)]
        name: String,
    },
    /// Export every entry to standard output.
    Export {
        /// Database URL.
        #[arg(long, env = "FIELDKIT_HUB_DB")]
        db: String,
        /// json (a verification bundle) or csv.
        #[arg(long, default_value = "json")]
        format: String,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "fieldkit_hub=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("fieldkit-hub: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { db, listen } => {
            let store = open_store(&db)?;
            let state = AppState {
                store,
                crash: CrashPoint::from_env(),
            };
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                let addr = listener.local_addr()?;
                // Tests and scripts read this line to learn the port.
                println!("listening on http://{addr}");
                tracing::info!("fieldkit-hub listening on http://{addr}");
                axum::serve(listener, router(state))
                    .with_graceful_shutdown(async {
                        let _ = tokio::signal::ctrl_c().await;
                    })
                    .await?;
                anyhow::Ok(())
            })
        }
        Command::EnrollLaptop { db, name, key } => {
            let pem = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read {}", key.display()))?;
            let key = fieldkit_audit::identity::parse_public_key_pem(&pem)
                .with_context(|| format!("{}", key.display()))?;
            let laptop = open_store(&db)?.enroll_laptop(&name, &key)?;
            println!("enrolled {} as {}", laptop.name, laptop.origin);
            Ok(())
        }
        Command::AddManager { db, name } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let hash = auth::hash_password(password)?;
            open_store(&db)?.add_manager(&name, &hash)?;
            println!("added manager {name}");
            Ok(())
        }
        Command::Export { db, format } => {
            let format: Format = format.parse().map_err(anyhow::Error::msg)?;
            let store = open_store(&db)?;
            let bytes = fieldkit_hub::export::export(&*store, &Default::default(), format)?;
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
            Ok(())
        }
    }
}
