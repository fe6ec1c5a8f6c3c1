//! `fieldkit`: the command line over fieldkit's core, for technicians' scripts, release
//! engineering and tests.
//!
//! This file and `cmd/` parse arguments and print; every rule, format and protocol lives in
//! the crates. Each command prints one JSON document under `--json` and human text otherwise,
//! exits 0 on success, and on failure exits non-zero with a one-line reason on stderr.

mod cmd;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::Output;

/// Field-service tool for medical devices: identify devices, check and apply signed updates
/// offline, keep a tamper-evident audit log.
#[derive(Debug, Parser)]
#[command(name = "fieldkit", version, about, propagate_version = true)]
struct Cli {
    /// Data directory (trust root, packages, entitlements, audit log, keys).
    #[arg(long, global = true, env = "FIELDKIT_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Use the DEMO's own home, beside the data directory (`<home>-demo`): demo keys, trust
    /// root and packages, never mixed with real ones.
    #[arg(long, global = true)]
    demo: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List serial ports with their USB details and matching device profile.
    Ports,
    /// Run a simulated device on a pseudo-terminal until interrupted.
    Sim(cmd::sim::Args),
    /// Read a device's identity: model, serial, hardware, bootloader, images, safety state.
    Identify(cmd::identify::Args),
    /// List the device profiles fieldkit knows.
    Profiles,
    /// Check whether a device can be updated: every rule, passed or not, and the plan.
    Check(cmd::check::Args),
    /// Check, confirm and apply an update, with progress; Ctrl-C cancels before confirmation.
    Update(cmd::update::Args),
    /// Make ed25519 key pairs and show key ids.
    Keys(cmd::keys::Args),
    /// Make, show and rotate the trust root.
    Trust(cmd::trust::Args),
    /// Sign and inspect MCUboot images.
    Image(cmd::image::Args),
    /// Build, inspect, verify and import signed update packages.
    Package(cmd::package::Args),
    /// Issue and inspect entitlements.
    Entitlement(cmd::entitlement::Args),
    /// Issue, inspect and import recall lists.
    Recall(cmd::recall::Args),
    /// Fill the DEMO's home with a complete demo kit (the platform's default home's DEMO home
    /// unless --home or FIELDKIT_HOME names one).
    Demo(cmd::demo::Args),
    /// The audit log: list, show, verify, export, sync to a hub, print this laptop's id.
    Audit(cmd::audit::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to stdout as clap prints them; a usage error is one line, like
        // every other failure.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("{}; see --help", first.trim_end_matches('.'));
            return ExitCode::from(2);
        }
    };
    let out = Output::new(cli.json);
    let home = match &cli.home {
        Some(dir) => fieldkit_core::Home::at(dir),
        None => match fieldkit_core::Home::platform_default() {
            Ok(h) => h,
            Err(e) => return out.fail(&anyhow::Error::from(e)),
        },
    };
    // The DEMO is a choice, and keeps a home of its own: `--demo`, or `demo init` where no home
    // was named (the platform's default home is the technician's real one).
    let demo_init = matches!(cli.command, Command::Demo(_)) && cli.home.is_none();
    let home = if cli.demo || demo_init {
        home.demo_home()
    } else {
        home
    };
    // Everything done in a DEMO home is labelled: a line on stderr once the command is done
    // (stdout stays the command's own, for pipes; a failure stays one line).
    let label = !cli.json
        && !matches!(cli.command, Command::Demo(_) | Command::Sim(_))
        && (home.is_demo() || matches!(fieldkit_demo::read_kit(&home), Ok(Some(_))));
    let result = match cli.command {
        Command::Ports => cmd::ports::run(&home, &out),
        Command::Sim(args) => cmd::sim::run(&home, &out, args),
        Command::Identify(args) => cmd::identify::run(&home, &out, args),
        Command::Profiles => cmd::profiles::run(&home, &out),
        Command::Check(args) => cmd::check::run(&home, &out, args),
        Command::Update(args) => cmd::update::run(&home, &out, args),
        Command::Keys(args) => cmd::keys::run(&home, &out, args),
        Command::Trust(args) => cmd::trust::run(&home, &out, args),
        Command::Image(args) => cmd::image::run(&home, &out, args),
        Command::Package(args) => cmd::package::run(&home, &out, args),
        Command::Entitlement(args) => cmd::entitlement::run(&home, &out, args),
        Command::Recall(args) => cmd::recall::run(&home, &out, args),
        Command::Demo(args) => cmd::demo::run(&home, &out, args),
        Command::Audit(args) => cmd::audit::run(&home, &out, args),
    };
    match result {
        Ok(()) => {
            if label {
                eprintln!(
                    "DEMO: done in the DEMO's home {} (demo keys, trust root and packages; nothing here is trusted for real devices)",
                    fieldkit_inert::terminal(&home.root().display().to_string())
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => out.fail(&e),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks the whole command tree (names, groups, conflicts) when asked.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
