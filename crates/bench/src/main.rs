//! `fieldkit-bench`: the performance figures of DESIGN.md §13, each measured side by side in
//! one run on this machine and reported with the ratio that matters.
//!
//! `cargo xtask bench [GROUP]...` builds this binary in release mode next to the release
//! `fieldkit` (and `fieldkit-app` for the `app` group), starts a display for the app when
//! needed, and runs it. It lives outside xtask because it links the workspace's crates (and
//! through them system libraries such as libudev), which xtask must not: xtask has to build
//! on a machine where its own set-up has not yet installed them.
//!
//! The binaries under test are found beside this one (`target/release/`); scripts and data
//! by the workspace path this crate was built from. A group is a function in [`GROUPS`]; no
//! argument runs them all, in that order (`postmarket` and `fleet` are parts of `hub`, so no
//! argument skips them).

mod app;
mod audit;
mod hub;
mod line;
mod postmarket;
mod smp;
mod trust;
mod upload;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

/// The figures measured so far, as `(name, value)` rows.
pub(crate) type Rows = Vec<(String, String)>;

/// A group of figures: its name on the command line, and the function that measures it.
type Group = (&'static str, fn(&mut Rows) -> anyhow::Result<()>);

/// Every group, in the order `fieldkit-bench` with no argument runs them.
const GROUPS: &[Group] = &[
    ("codec", |rows| {
        smp::codec(rows);
        Ok(())
    }),
    ("smp", smp::round_trips),
    ("upload", upload::run),
    ("line", line::run),
    ("trust", trust::run),
    ("audit", audit::run),
    // The hub for a fleet (ingest, timeline, inventory), then its post-market answers
    // (exposure, advisory import) over their own fleet: one command for every hub figure.
    ("hub", |rows| {
        hub::run(rows)?;
        postmarket::run(rows)
    }),
    ("app", app::run),
    // The post-market answers alone (already part of `hub`), to measure them without the
    // fleet's ingest figures.
    ("postmarket", postmarket::run),
    // The hub's fleet figures alone (ingest, timeline, inventory; already part of `hub`), for
    // a quick look at the hub (see `hub.rs` for a smaller fleet).
    ("fleet", hub::run),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fieldkit-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let names: Vec<&str> = GROUPS.iter().map(|(n, _)| *n).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "usage: fieldkit-bench [GROUP]...   (groups: {})",
            names.join(" ")
        );
        return Ok(());
    }
    if let Some(bad) = args.iter().find(|a| !names.contains(&a.as_str())) {
        bail!(
            "unknown benchmark group {bad:?}; required one of: {}",
            names.join(" ")
        );
    }
    if cfg!(debug_assertions) {
        bail!("figures from a debug build mean nothing: run `cargo xtask bench`");
    }
    let mut rows = Rows::new();
    for (name, group) in GROUPS {
        let by_default = !matches!(*name, "postmarket" | "fleet");
        if (args.is_empty() && by_default) || args.iter().any(|a| a == name) {
            group(&mut rows).with_context(|| format!("benchmark group {name}"))?;
        }
    }
    println!("\n{:<58} value", "figure");
    for (name, value) in &rows {
        println!("{name:<58} {value}");
    }
    Ok(())
}

/// The workspace this binary was built from (scripts and data live there).
pub(crate) fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A release binary of the workspace, beside this one.
pub(crate) fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("where is fieldkit-bench")?;
    let path = me.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} is missing: required a release build beside {} (`cargo xtask bench` builds it)",
            path.display(),
            me.display()
        );
    }
    Ok(path)
}

/// The release `fieldkit` binary the figures are measured with.
pub(crate) fn fieldkit_bin() -> anyhow::Result<PathBuf> {
    sibling("fieldkit")
}
