//! `fieldkit entitlement`: issue and inspect entitlements.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::{NaiveDate, Utc};
use fieldkit_core::Home;
use fieldkit_core::trust_store::{self, MAX_DOCUMENT, TrustMaterial, read_small};
use fieldkit_trust::ContractState;

use crate::cmd::identify::open_audit;
use fieldkit_trust::{DeviceGrant, Entitlement, KeyId};
use serde::Serialize;

use crate::cmd::material::{self, parse_date};
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Issue an entitlement signed by an entitlement key.
    Issue {
        /// Entitlement private key.
        #[arg(long, value_name = "PRIV")]
        key: PathBuf,
        /// Customer name.
        #[arg(long, value_name = "NAME")]
        customer: String,
        /// A device covered, MODEL:SERIAL (MODEL:* for every device of the model); repeat.
        #[arg(long, value_name = "MODEL:SERIAL", required = true)]
        device: Vec<String>,
        /// A feature code granted; repeat.
        #[arg(long, value_name = "CODE", required = true)]
        feature: Vec<String>,
        /// First day of the contract, YYYY-MM-DD.
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        valid_from: NaiveDate,
        /// Last day of the contract, YYYY-MM-DD.
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        valid_until: NaiveDate,
        /// Releases dated on or before this day stay installable after the contract ends.
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        maintenance_through: Option<NaiveDate>,
        /// A site of the customer; repeat.
        #[arg(long, value_name = "NAME")]
        site: Vec<String>,
        /// Entitlement id (recall lists revoke by it); default: a new random id.
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// Generation, raised on each reissue.
        #[arg(long, value_name = "N", default_value_t = 1)]
        generation: u32,
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Show an entitlement; checks its signature against the home's trust root if there is one.
    Inspect {
        /// The entitlement file.
        file: PathBuf,
    },
}

#[derive(Serialize)]
struct Inspected {
    file: PathBuf,
    kid: KeyId,
    /// `verified`, `failed` or `not-checked` (no trust root installed).
    signature: &'static str,
    signature_detail: String,
    /// `in-force`, `not-yet-valid`, `ended` (today, UTC).
    contract: &'static str,
    revoked: Option<bool>,
    entitlement: Entitlement,
}

pub(crate) fn run(home: &Home, out: &Output, args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Issue {
            key,
            customer,
            device,
            feature,
            valid_from,
            valid_until,
            maintenance_through,
            site,
            id,
            generation,
            out: out_file,
        } => {
            if valid_until < valid_from {
                bail!(
                    "--valid-until {valid_until} is before --valid-from {valid_from}; required a contract that ends on or after it starts"
                );
            }
            let profiles = home.profiles()?;
            let mut grants: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for d in &device {
                let Some((model, serial)) = d
                    .split_once(':')
                    .filter(|(m, s)| !m.is_empty() && !s.is_empty())
                else {
                    bail!("--device {d:?}: required MODEL:SERIAL (or MODEL:*)");
                };
                if profiles.get(model).is_none() {
                    bail!(
                        "--device {d}: unknown model {model:?}; required one of {}",
                        profiles.ids().join(", ")
                    );
                }
                grants.entry(model.into()).or_default().push(serial.into());
            }
            let key = material::private_key(&key)?;
            let id = id.unwrap_or_else(|| {
                let mut raw = [0u8; 8];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
                format!("ENT-{}", hex::encode(raw))
            });
            let e = Entitlement {
                id,
                customer,
                sites: site,
                devices: grants
                    .into_iter()
                    .map(|(model, serials)| DeviceGrant { model, serials })
                    .collect(),
                features: feature,
                valid_from,
                valid_until,
                maintenance_through,
                issued: Utc::now(),
                generation,
            };
            material::write_out(&out_file, &e.issue(&key))?;
            let kid = KeyId::of(&key.verifying_key());
            let v = serde_json::json!({ "out": out_file, "kid": kid, "entitlement": e });
            out.print(&v, || {
                format!(
                    "Issued entitlement {} -> {}\n{}",
                    e.id,
                    out_file.display(),
                    render(&e)
                )
            });
            Ok(())
        }
        Command::Inspect { file } => inspect(home, out, file),
    }
}

fn inspect(home: &Home, out: &Output, file: PathBuf) -> anyhow::Result<()> {
    let bytes = read_small(&file, MAX_DOCUMENT)?;
    let (env, e) = Entitlement::inspect(&bytes).with_context(|| format!("{}", file.display()))?;
    let root = trust_store::load_root(home).ok();
    let (signature, signature_detail) = match &root {
        None => ("not-checked", "no trust root installed".to_owned()),
        Some(root) => match Entitlement::open(&bytes, root) {
            Ok(_) => (
                "verified",
                format!(
                    "signed by an entitlement key of trust root version {}",
                    root.version()
                ),
            ),
            Err(err) => ("failed", err.to_string()),
        },
    };
    // Trusted time, as every trust decision uses: a clock set back cannot revive a contract.
    let audit = open_audit(home)?;
    let material = TrustMaterial::load(home, &audit).ok();
    let now = match &material {
        Some(m) => m.now(Utc::now())?,
        None => Utc::now(),
    };
    let contract = match e.contract_at(now) {
        ContractState::NotYetValid => "not-yet-valid",
        ContractState::InForce => "in-force",
        ContractState::Ended => "ended",
    };
    let revoked = material
        .and_then(|m| m.recall)
        .map(|r| r.entitlements.contains(&e.id));
    let v = Inspected {
        file: file.clone(),
        kid: env.kid,
        signature,
        signature_detail,
        contract,
        revoked,
        entitlement: e,
    };
    out.print(&v, || {
        let mut s = render(&v.entitlement);
        s += &format!(
            "Contract     {}\n",
            match v.contract {
                "in-force" => "in force today".to_owned(),
                "ended" => format!(
                    "ended {}{}",
                    v.entitlement.valid_until,
                    v.entitlement
                        .maintenance_through
                        .map(|m| format!("; releases dated up to {m} stay installable"))
                        .unwrap_or_default()
                ),
                _ => format!("starts {}", v.entitlement.valid_from),
            }
        );
        s += &format!("Signature    {}: {}\n", v.signature, v.signature_detail);
        if let Some(r) = v.revoked {
            s += &format!(
                "Recall list  {}\n",
                if r { "REVOKED" } else { "not revoked" }
            );
        }
        s
    });
    if v.signature == "failed" {
        bail!("{}: {}", file.display(), v.signature_detail);
    }
    Ok(())
}

fn render(e: &Entitlement) -> String {
    let mut s = String::new();
    s += &format!("Entitlement  {} (generation {})\n", e.id, e.generation);
    s += &format!("Customer     {}\n", e.customer);
    if !e.sites.is_empty() {
        s += &format!("Sites        {}\n", e.sites.join(", "));
    }
    for d in &e.devices {
        s += &format!("Devices      {}: {}\n", d.model, d.serials.join(", "));
    }
    s += &format!("Features     {}\n", e.features.join(", "));
    s += &format!("Valid        {} to {}\n", e.valid_from, e.valid_until);
    if let Some(m) = e.maintenance_through {
        s += &format!("Maintenance  releases dated up to {m}\n");
    }
    s += &format!("Issued       {}\n", material::date(e.issued));
    s
}
