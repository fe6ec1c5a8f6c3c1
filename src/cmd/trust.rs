//! `fieldkit trust`: make, show and rotate the trust root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, Days, NaiveDate, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use fieldkit_core::Home;
use fieldkit_core::trust_store::{self, MAX_DOCUMENT, read_small};
use fieldkit_trust::{KeyId, REQUIRED_ROLES, RootMetadata, TrustRoot};
use serde::Serialize;

use crate::cmd::material::{self, date, end_of, parse_date};
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

/// The keys of the roles, shared by `init` and `rotate`.
#[derive(Debug, clap::Args)]
struct RoleKeys {
    /// Public key of the `release` role (signs packages and MCUboot images); repeat for more.
    #[arg(long, value_name = "PUB")]
    release_key: Vec<PathBuf>,
    /// Public key of the `entitlement` role (signs entitlements); repeat for more.
    #[arg(long, value_name = "PUB")]
    entitlement_key: Vec<PathBuf>,
    /// Public key of the `recall` role (signs recall lists); repeat for more.
    #[arg(long, value_name = "PUB")]
    recall_key: Vec<PathBuf>,
    /// A further role and one of its keys, e.g. an image-key role a device profile names
    /// (`pump-image=pump.pub.pem`); repeat for more keys or roles.
    #[arg(long, value_name = "NAME=PUB")]
    role: Vec<String>,
    /// How many keys of a role must sign (`release=2`); default 1.
    #[arg(long, value_name = "ROLE=N")]
    threshold: Vec<String>,
    /// Last day (UTC) the root is valid, YYYY-MM-DD; default one year from today.
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    expires: Option<NaiveDate>,
    /// Require an entitlement for security releases too (by default they install without).
    #[arg(long)]
    security_needs_entitlement: bool,
    /// Refuse every update while no current recall list is loaded.
    #[arg(long)]
    require_recall_list: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Make a first trust root, signed by its root keys; installs it in the home unless --out.
    Init {
        /// Private key of the `root` role; repeat for more (each signs).
        #[arg(long, value_name = "PRIV", required = true)]
        root_key: Vec<PathBuf>,
        #[command(flatten)]
        keys: RoleKeys,
        /// Write the root here instead of installing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Install the manufacturer's first trust root (root.json from your service manager) in a
    /// home that has none and whose build pins none.
    Import {
        /// The root file.
        file: PathBuf,
    },
    /// Show a trust root: the home's (or the one pinned into this build), or FILE.
    Show {
        /// A root file; default: the installed root.
        file: Option<PathBuf>,
    },
    /// Make the next trust root (version + 1), signed by a threshold of the current root keys
    /// and of the new ones; or accept one made elsewhere with --accept.
    Rotate {
        /// Private key of the current root role; repeat to reach its threshold.
        #[arg(long, value_name = "PRIV", required_unless_present = "accept")]
        old_root_key: Vec<PathBuf>,
        /// Private key of the new root role; repeat for more. Default: the root keys stay.
        #[arg(long, value_name = "PRIV")]
        root_key: Vec<PathBuf>,
        #[command(flatten)]
        keys: RoleKeys,
        /// The root to rotate from; default: the installed root.
        #[arg(long, value_name = "FILE")]
        current: Option<PathBuf>,
        /// Write the new root here instead of installing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Install a new root made elsewhere, after checking it against the installed one.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["old_root_key", "root_key", "current", "out"])]
        accept: Option<PathBuf>,
    },
}

#[derive(Serialize)]
struct RoleView {
    threshold: u32,
    keyids: Vec<KeyId>,
}

#[derive(Serialize)]
struct RootView {
    file: PathBuf,
    installed: bool,
    version: u64,
    expires: String,
    expired: bool,
    roles: BTreeMap<String, RoleView>,
    security_updates_without_entitlement: bool,
    require_recall_list: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    history: Vec<u64>,
}

/// Trusted "now" for showing whether a root has expired: the later of the system clock and
/// the home's time mark, as every trust decision uses.
fn trusted_now(home: &Home) -> chrono::DateTime<Utc> {
    let system = Utc::now();
    trust_store::load_state(home)
        .ok()
        .and_then(|s| s.time_mark)
        .map_or(system, |m| m.max(system))
}

fn view(
    root: &TrustRoot,
    file: &Path,
    installed: bool,
    history: Vec<u64>,
    now: chrono::DateTime<Utc>,
) -> RootView {
    let m = root.metadata();
    RootView {
        file: file.to_owned(),
        installed,
        version: m.version,
        expires: date(m.expires),
        expired: !root.check_expiry(now).passed,
        roles: m
            .roles
            .iter()
            .map(|(n, r)| {
                (
                    n.clone(),
                    RoleView {
                        threshold: r.threshold,
                        keyids: r.keyids.clone(),
                    },
                )
            })
            .collect(),
        security_updates_without_entitlement: m.policy.security_updates_without_entitlement,
        require_recall_list: m.policy.require_recall_list,
        history,
    }
}

fn render(v: &RootView, headline: &str) -> String {
    let mut s = format!("{headline}\n");
    s += &format!("File         {}\n", v.file.display());
    s += &format!("Version      {}\n", v.version);
    s += &format!(
        "Expires      {}{}\n",
        v.expires,
        if v.expired { "  EXPIRED" } else { "" }
    );
    s += &format!(
        "Policy       security releases {}\n",
        if v.security_updates_without_entitlement {
            "install without an entitlement"
        } else {
            "need an entitlement"
        }
    );
    if v.require_recall_list {
        s += "Policy       nothing is installed without a current recall list\n";
    }
    s += "Roles\n";
    for (name, r) in &v.roles {
        s += &format!(
            "  {:<12} {} of {} key(s)\n",
            name,
            r.threshold,
            r.keyids.len()
        );
        for k in &r.keyids {
            s += &format!("               {k}\n");
        }
    }
    if !v.history.is_empty() {
        s += &format!(
            "Earlier      versions {}\n",
            v.history
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    s
}

fn history(home: &Home) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(home.trust_history_dir())
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_prefix("root.")?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .collect();
    v.sort_unstable();
    v
}

fn public_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<VerifyingKey>> {
    paths.iter().map(|p| material::public_key(p)).collect()
}

fn private_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<SigningKey>> {
    paths.iter().map(|p| material::private_key(p)).collect()
}

fn default_expiry() -> NaiveDate {
    let today = Utc::now().date_naive();
    today.checked_add_days(Days::new(365)).unwrap_or(today)
}

/// Sets the roles given on the command line into `meta`; roles not given keep their keys.
fn apply_roles(
    meta: &mut RootMetadata,
    keys: &RoleKeys,
    root: &[VerifyingKey],
) -> anyhow::Result<()> {
    let mut given: BTreeMap<String, Vec<VerifyingKey>> = BTreeMap::new();
    if !root.is_empty() {
        given.insert("root".into(), root.to_vec());
    }
    for (role, paths) in [
        ("release", &keys.release_key),
        ("entitlement", &keys.entitlement_key),
        ("recall", &keys.recall_key),
    ] {
        if !paths.is_empty() {
            given.insert(role.into(), public_keys(paths)?);
        }
    }
    for spec in &keys.role {
        let (name, path) = material::key_value(spec, "--role")?;
        let key = material::public_key(Path::new(&path))?;
        given.entry(name).or_default().push(key);
    }
    let mut thresholds = BTreeMap::new();
    for spec in &keys.threshold {
        let (role, n) = material::key_value(spec, "--threshold")?;
        let n: u32 = n
            .parse()
            .with_context(|| format!("--threshold {spec}: required a whole number"))?;
        thresholds.insert(role, n);
    }
    for (role, role_keys) in &given {
        let t = thresholds.get(role).copied().unwrap_or(1);
        meta.set_role(role, role_keys, t);
    }
    for (role, t) in &thresholds {
        match meta.roles.get_mut(role) {
            Some(r) => r.threshold = *t,
            None => {
                bail!("--threshold {role}={t}: no role {role}; required one of the root's roles")
            }
        }
    }
    // Keys no role uses any more leave the key list.
    let used: std::collections::BTreeSet<KeyId> =
        meta.roles.values().flat_map(|r| r.keyids.clone()).collect();
    meta.keys.retain(|id, _| used.contains(id));
    for role in REQUIRED_ROLES {
        if !meta.roles.contains_key(role) {
            bail!("no {role} key given; required at least one --{role}-key");
        }
    }
    meta.expires = end_of(keys.expires.unwrap_or_else(default_expiry));
    meta.policy.security_updates_without_entitlement = !keys.security_needs_entitlement;
    meta.policy.require_recall_list = keys.require_recall_list;
    Ok(())
}

fn signers(keys: &[SigningKey]) -> Vec<&SigningKey> {
    let mut seen = std::collections::BTreeSet::new();
    keys.iter()
        .filter(|k| seen.insert(KeyId::of(&k.verifying_key())))
        .collect()
}

pub(crate) fn run(home: &Home, out: &Output, args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Init {
            root_key,
            keys,
            out: out_file,
        } => {
            let root_priv = private_keys(&root_key)?;
            let root_pub: Vec<_> = root_priv.iter().map(SigningKey::verifying_key).collect();
            let mut meta = RootMetadata::new(1, DateTime::<Utc>::MIN_UTC);
            apply_roles(&mut meta, &keys, &root_pub)?;
            let bytes = meta.sign(&signers(&root_priv));
            let root = TrustRoot::load_pinned(&bytes).context("the new trust root")?;
            let (file, installed) = match out_file {
                Some(f) => {
                    material::write_out(&f, &bytes)?;
                    (f, false)
                }
                None => {
                    if let Ok(existing) = trust_store::load_root(home) {
                        bail!(
                            "{} already holds trust root version {}; required no installed root (use `fieldkit trust rotate` to replace it)",
                            home.trust_root().display(),
                            existing.version()
                        );
                    }
                    trust_store::install_root(home, &root)?;
                    (home.trust_root(), true)
                }
            };
            let v = view(&root, &file, installed, Vec::new(), trusted_now(home));
            let headline = if installed {
                "Trust root installed"
            } else {
                "Trust root written"
            };
            out.print(&v, || render(&v, headline));
        }
        Command::Import { file } => {
            let root = trust_store::import_root(home, &file)?;
            let v = view(
                &root,
                &home.trust_root(),
                true,
                Vec::new(),
                trusted_now(home),
            );
            out.print(&v, || render(&v, "Trust root installed"));
        }
        Command::Show { file } => {
            let (root, file, installed) = match file {
                Some(f) => {
                    let bytes = read_small(&f, MAX_DOCUMENT)?;
                    let root = TrustRoot::load_pinned(&bytes)
                        .with_context(|| format!("{}", f.display()))?;
                    (root, f, false)
                }
                None => {
                    let root = trust_store::load_root(home)?;
                    let file = if home.trust_root().exists() {
                        home.trust_root()
                    } else {
                        PathBuf::from(trust_store::PINNED_ROOT)
                    };
                    (root, file, true)
                }
            };
            let v = view(
                &root,
                &file,
                installed,
                if installed { history(home) } else { Vec::new() },
                trusted_now(home),
            );
            out.print(&v, || render(&v, "Trust root"));
        }
        Command::Rotate {
            old_root_key,
            root_key,
            keys,
            current,
            out: out_file,
            accept,
        } => {
            let current_root = match &current {
                Some(f) => {
                    let bytes = read_small(f, MAX_DOCUMENT)?;
                    TrustRoot::load_pinned(&bytes).with_context(|| format!("{}", f.display()))?
                }
                None => trust_store::load_root(home)?,
            };
            let (next, file, installed) = if let Some(f) = accept {
                let bytes = read_small(&f, MAX_DOCUMENT)?;
                let next = current_root
                    .rotate(&bytes)
                    .with_context(|| format!("{}", f.display()))?;
                trust_store::install_root(home, &next)?;
                (next, home.trust_root(), true)
            } else {
                let old_priv = private_keys(&old_root_key)?;
                let new_priv = private_keys(&root_key)?;
                let new_pub: Vec<_> = new_priv.iter().map(SigningKey::verifying_key).collect();
                let mut meta = current_root.metadata().clone();
                meta.version += 1;
                apply_roles(&mut meta, &keys, &new_pub)?;
                let all: Vec<SigningKey> = old_priv.into_iter().chain(new_priv).collect();
                let bytes = meta.sign(&signers(&all));
                let next = current_root.rotate(&bytes).context("the new trust root")?;
                match out_file {
                    Some(f) => {
                        material::write_out(&f, &bytes)?;
                        (next, f, false)
                    }
                    None => {
                        if current.is_some() {
                            bail!(
                                "--current FILE needs --out FILE: only the installed root is rotated in place"
                            );
                        }
                        trust_store::install_root(home, &next)?;
                        (next, home.trust_root(), true)
                    }
                }
            };
            let v = view(
                &next,
                &file,
                installed,
                if installed { history(home) } else { Vec::new() },
                trusted_now(home),
            );
            let headline = format!(
                "Trust root rotated from version {} to {}{}",
                current_root.version(),
                next.version(),
                if installed { ", installed" } else { "" }
            );
            out.print(&v, || render(&v, &headline));
        }
    }
    Ok(())
}
