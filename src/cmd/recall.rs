//! `fieldkit recall`: issue, inspect and import recall lists.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::Utc;
use fieldkit_core::Home;
use fieldkit_core::session::Settings;
use fieldkit_core::trust_store::{self, MAX_DOCUMENT, TrustMaterial, read_small};

use crate::cmd::identify::open_audit;
use fieldkit_trust::{KeyId, RecallList};
use serde::Serialize;

use crate::cmd::material;
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Issue a recall list signed by recall keys.
    #[command(disable_version_flag = true)]
    Issue {
        /// Recall private key; repeat to reach the role's threshold.
        #[arg(long, value_name = "PRIV", required = true)]
        key: Vec<PathBuf>,
        /// Version of the list; must be higher than any list already published.
        #[arg(long, value_name = "N")]
        version: u64,
        /// A recalled package, PRODUCT@VERSION; repeat.
        #[arg(long, value_name = "ID")]
        package: Vec<String>,
        /// A revoked entitlement id; repeat.
        #[arg(long, value_name = "ID")]
        entitlement: Vec<String>,
        /// Lowest installable release of a product, PRODUCT=VERSION; repeat.
        #[arg(long, value_name = "PRODUCT=VERSION")]
        min_version: Vec<String>,
        /// Lowest installable security counter of a product, PRODUCT=N; repeat.
        #[arg(long, value_name = "PRODUCT=N")]
        min_security_counter: Vec<String>,
        /// When the list goes stale (YYYY-MM-DD, UTC midnight): after it nothing is installed
        /// until a newer list arrives. Default: 90 days from now.
        #[arg(long, value_name = "DATE")]
        expires: Option<chrono::NaiveDate>,
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Show a recall list; checks it against the home's trust root if there is one.
    Inspect {
        /// The recall list file.
        file: PathBuf,
    },
    /// Verify a recall list (signatures, not older than one seen) and keep it in the home.
    Import {
        /// The recall list file.
        file: PathBuf,
    },
}

#[derive(Serialize)]
struct Inspected {
    file: PathBuf,
    /// `verified`, `failed` or `not-checked` (no trust root installed).
    signature: &'static str,
    detail: String,
    highest_seen: Option<u64>,
    list: RecallList,
}

pub(crate) fn run(home: &Home, out: &Output, args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Issue {
            key,
            version,
            package,
            entitlement,
            min_version,
            min_security_counter,
            expires,
            out: out_file,
        } => {
            let now = Utc::now();
            let expires = expires.map_or(now + chrono::Duration::days(90), |d| {
                d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
            });
            if expires <= now {
                bail!(
                    "--expires {}: required a day after today; an expired recall list freezes every update",
                    expires.date_naive()
                );
            }
            let mut list = RecallList::new(version, now, expires);
            for id in &package {
                let ok = id
                    .split_once('@')
                    .is_some_and(|(p, v)| !p.is_empty() && v.parse::<semver::Version>().is_ok());
                if !ok {
                    bail!(
                        "--package {id:?}: required PRODUCT@VERSION, the product being a profile id (see `fieldkit profiles`)"
                    );
                }
            }
            list.packages = package;
            list.entitlements = entitlement;
            for spec in &min_version {
                let (product, v) = material::key_value(spec, "--min-version")?;
                let v: semver::Version = v
                    .parse()
                    .with_context(|| format!("--min-version {spec}: required PRODUCT=SEMVER"))?;
                list.minimums.entry(product).or_default().version = Some(v);
            }
            for spec in &min_security_counter {
                let (product, n) = material::key_value(spec, "--min-security-counter")?;
                let n: u32 = n.parse().with_context(|| {
                    format!("--min-security-counter {spec}: required PRODUCT=N")
                })?;
                list.minimums.entry(product).or_default().security_counter = Some(n);
            }
            let keys: Vec<_> = key
                .iter()
                .map(|k| material::private_key(k))
                .collect::<anyhow::Result<_>>()?;
            let refs: Vec<_> = keys.iter().collect();
            material::write_out(&out_file, &list.sign(&refs))?;
            let signed_by: Vec<KeyId> =
                keys.iter().map(|k| KeyId::of(&k.verifying_key())).collect();
            let v = serde_json::json!({ "out": out_file, "signed_by": signed_by, "list": list });
            out.print(&v, || {
                format!(
                    "Issued recall list version {} -> {}\n{}",
                    list.version,
                    out_file.display(),
                    render(&list)
                )
            });
            Ok(())
        }
        Command::Inspect { file } => {
            let bytes = read_small(&file, MAX_DOCUMENT)?;
            let list =
                RecallList::inspect(&bytes).with_context(|| format!("{}", file.display()))?;
            let root = trust_store::load_root(home).ok();
            let seen = trust_store::load_state(home)
                .ok()
                .and_then(|s| s.recall_version);
            let (signature, detail) = match &root {
                None => ("not-checked", "no trust root installed".to_owned()),
                Some(root) => match RecallList::open(&bytes, root, seen) {
                    Ok(_) => (
                        "verified",
                        format!(
                            "signed by the recall keys of trust root version {}{}",
                            root.version(),
                            seen.map(|s| format!(", not older than version {s} seen"))
                                .unwrap_or_default()
                        ),
                    ),
                    Err(e) => ("failed", e.to_string()),
                },
            };
            let v = Inspected {
                file: file.clone(),
                signature,
                detail,
                highest_seen: seen,
                list,
            };
            out.print(&v, || {
                format!(
                    "{}Signature    {}: {}\n",
                    render(&v.list),
                    v.signature,
                    v.detail
                )
            });
            if v.signature == "failed" {
                bail!("{}: {}", file.display(), v.detail);
            }
            Ok(())
        }
        Command::Import { file } => {
            let audit = open_audit(home)?;
            let settings = Settings::load(home)?;
            let recorder = trust_store::Recorder {
                audit: &audit,
                technician: &settings.technician,
                site: &settings.site,
            };
            let mut material = TrustMaterial::load(home, &audit)?;
            let (kept, list) = trust_store::import_recall(home, &recorder, &mut material, &file)?;
            let v = serde_json::json!({ "file": file, "kept_as": kept, "list": list });
            out.print(&v, || {
                format!(
                    "Imported recall list version {} -> {}\n{}",
                    list.version,
                    kept.display(),
                    render(&list)
                )
            });
            Ok(())
        }
    }
}

fn render(l: &RecallList) -> String {
    let mut s = format!(
        "Recall list  version {}, issued {}, current until {}\n",
        l.version,
        material::date(l.issued),
        material::date(l.expires)
    );
    let none = |v: &Vec<String>| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    s += &format!("Recalled     {}\n", none(&l.packages));
    s += &format!("Revoked      {}\n", none(&l.entitlements));
    for (product, m) in &l.minimums {
        s += &format!(
            "Minimum      {product}:{}{}\n",
            m.version
                .as_ref()
                .map(|v| format!(" version {v}"))
                .unwrap_or_default(),
            m.security_counter
                .map(|c| format!(" security counter {c}"))
                .unwrap_or_default()
        );
    }
    s
}
