//! `fieldkit demo init`: fill the home with the demo kit (see `fieldkit_demo`).

use chrono::Utc;
use fieldkit_core::Home;
use fieldkit_demo::{self as demo, DemoItem, ItemKind};

use crate::output::Output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Make a complete, clearly labelled demo kit in the home: demo keys, trust root, images
    /// and packages for every device profile, entitlements, a recall list and a README.txt.
    Init {
        /// Replace an existing demo kit with a new one.
        #[arg(long)]
        force: bool,
    },
}

pub(crate) fn run(home: &Home, out: &Output, args: Args) -> anyhow::Result<()> {
    let Command::Init { force } = args.command;
    let profiles = home.profiles()?;
    let outcome = demo::init(home, &profiles, Utc::now(), force, &mut rand::rngs::OsRng)?;
    let v = serde_json::json!({
        "home": home.root(),
        "already_initialised": outcome.already_initialised,
        "readme": home.join("README.txt"),
        "kit": outcome.kit,
    });
    out.print(&v, || {
        let mut s = if outcome.already_initialised {
            format!(
                "The demo kit made {} is already in {}; nothing changed (use --force for a new one).\n\n",
                outcome.kit.created.format("%Y-%m-%d"),
                home.root().display()
            )
        } else {
            format!("DEMO kit made in {}\n\n", home.root().display())
        };
        s += &table(&outcome.kit.items);
        s += &format!(
            "\nEverything here is DEMO material. {} explains each item.\n",
            home.join("README.txt").display()
        );
        if let Some(p) = profiles.iter().next() {
            s += &format!(
                "Try: fieldkit sim --profile {}, then check and update against its port.\n",
                p.id()
            );
        }
        s
    });
    Ok(())
}

/// The summary: one row per item, images folded into their packages.
fn table(items: &[DemoItem]) -> String {
    let rows: Vec<[String; 6]> = items
        .iter()
        .filter(|i| i.kind != ItemKind::Image)
        .map(|i| {
            [
                i.kind.name().to_owned(),
                i.label.clone(),
                i.product.clone().unwrap_or_default(),
                i.component.clone().unwrap_or_default(),
                i.version.clone().unwrap_or_default(),
                i.files
                    .first()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["KIND", "LABEL", "PRODUCT", "COMPONENT", "VERSION", "FILE"].map(String::from);
    let mut widths = [0usize; 6];
    for r in std::iter::once(&header).chain(&rows) {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    std::iter::once(&header)
        .chain(&rows)
        .map(|r| {
            let mut line = String::new();
            for (i, (c, w)) in r.iter().zip(widths).enumerate() {
                if i + 1 == r.len() {
                    line += c;
                } else {
                    line += &format!("{c:<w$}  ");
                }
            }
            line.trim_end().to_owned() + "\n"
        })
        .collect()
}
