//! `fieldkit package`: build, inspect, verify and import signed `.fkpkg` packages.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::Utc;
use fieldkit_core::Home;
use fieldkit_core::session::Settings;
use fieldkit_core::trust_store::{self, TrustMaterial};
use fieldkit_licence::{Policy, Verdict};
use fieldkit_trust::{
    ComponentLicence, KeyId, Limits, Manifest, VerifiedPackage, build_release, inspect_package,
};
use serde::Serialize;

use crate::cmd::identify::open_audit;
use serde_json::Value;

use crate::cmd::material;
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Build and sign a package from a manifest, its SBOM and its payload files.
    Build {
        /// The manifest (JSON, as in a package, without sizes and hashes: the builder fills
        /// them). Payload files are read from the manifest's directory by their `file` name.
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        /// The CycloneDX SBOM; default: sbom.cdx.json next to the manifest.
        #[arg(long, value_name = "FILE")]
        sbom: Option<PathBuf>,
        /// Release private key; repeat to sign with more.
        #[arg(long, value_name = "PRIV", required = true)]
        key: Vec<PathBuf>,
        /// Where to write the package.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The release licence policy (TOML); default: fieldkit's shipped release policy. A
        /// component whose licence it denies refuses the build.
        #[arg(long, value_name = "FILE")]
        licence_policy: Option<PathBuf>,
    },
    /// Show what a package claims (structure, hashes and SBOM checked; signatures not).
    Inspect {
        /// The package.
        file: PathBuf,
    },
    /// Verify a package against the home's trust root, at trusted time, and its recall list.
    Verify {
        /// The package.
        file: PathBuf,
    },
    /// Verify packages and keep them in the home.
    Import {
        /// The packages.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// The package as JSON, with each payload's MCUboot dependencies spelled out.
fn package_json(p: &VerifiedPackage) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    v["id"] = Value::String(p.manifest.id());
    if let Some(list) = v["payloads"].as_array_mut() {
        for (out, got) in list.iter_mut().zip(&p.payloads) {
            out["dependencies"] = got
                .dependencies
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "image": d.image,
                        "min_version": d.min_version.to_string(),
                    })
                })
                .collect();
        }
    }
    v
}

#[derive(Serialize)]
struct Built {
    out: PathBuf,
    id: String,
    size: u64,
    signed_by: Vec<KeyId>,
    manifest: Manifest,
    licences: Vec<ComponentLicence>,
}

#[derive(Serialize)]
struct ImportRow {
    file: PathBuf,
    imported: bool,
    already_present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    kept_as: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finding: Option<fieldkit_trust::Finding>,
}

pub(crate) fn run(home: &Home, out: &Output, args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Build {
            manifest,
            sbom,
            key,
            out: out_file,
            licence_policy,
        } => build(out, &manifest, sbom, &key, out_file, licence_policy),
        Command::Inspect { file } => {
            let f = std::fs::File::open(&file)
                .with_context(|| format!("reading package {}", file.display()))?;
            let p = inspect_package(f, &Limits::default())
                .with_context(|| format!("{}", file.display()))?;
            let mut v = package_json(&p);
            v["signatures_checked"] = Value::Bool(false);
            out.print(&v, || {
                format!(
                    "{}(structure, hashes and SBOM checked; signatures not: use `fieldkit package verify`)\n",
                    material::package(&p)
                )
            });
            Ok(())
        }
        Command::Verify { file } => {
            let audit = open_audit(home)?;
            let material = TrustMaterial::load(home, &audit)?;
            let now = material
                .now(Utc::now())
                .with_context(|| format!("{}", file.display()))?;
            let p = material.verify_package_file(&file, now)?;
            let mut v = package_json(&p);
            v["verified"] = Value::Bool(true);
            out.print(&v, || {
                format!(
                    "{}\n{}Verified: genuine, intact and current, against trust root version {}.\n",
                    material::package(&p),
                    material::findings(&p.findings),
                    material.root.version()
                )
            });
            Ok(())
        }
        Command::Import { files } => import(home, out, &files),
    }
}

fn build(
    out: &Output,
    manifest_path: &Path,
    sbom: Option<PathBuf>,
    keys: &[PathBuf],
    out_file: PathBuf,
    licence_policy: Option<PathBuf>,
) -> anyhow::Result<()> {
    let policy = match &licence_policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading licence policy {}", path.display()))?;
            Policy::parse(&text).with_context(|| format!("{}", path.display()))?
        }
        None => Policy::release_default(),
    };
    let text = std::fs::read(manifest_path)
        .with_context(|| format!("reading manifest {}", manifest_path.display()))?;
    let manifest: Manifest = serde_json::from_slice(&text).with_context(|| {
        format!(
            "manifest {}: required a package manifest in JSON",
            manifest_path.display()
        )
    })?;
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let sbom_path = sbom.unwrap_or_else(|| dir.join("sbom.cdx.json"));
    let sbom_bytes = std::fs::read(&sbom_path)
        .with_context(|| format!("reading SBOM {}", sbom_path.display()))?;
    let mut payloads = Vec::new();
    for p in &manifest.payloads {
        if !fieldkit_trust::valid_file_name(&p.file) {
            bail!(
                "payload file {:?}: required a plain file name (letters, digits, '.', '_', '-') in the manifest's directory",
                p.file
            );
        }
        let path = dir.join(&p.file);
        payloads.push(
            std::fs::read(&path).with_context(|| format!("reading payload {}", path.display()))?,
        );
    }
    let signing: Vec<_> = keys
        .iter()
        .map(|k| material::private_key(k))
        .collect::<anyhow::Result<_>>()?;
    let refs: Vec<_> = signing.iter().collect();
    let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let mut bytes = Vec::new();
    let built = build_release(&manifest, &sbom_bytes, &slices, &refs, &policy, &mut bytes)
        .with_context(|| format!("building from {}", manifest_path.display()))?;
    let written = built.manifest;
    material::write_out(&out_file, &bytes)?;
    let b = Built {
        out: out_file,
        id: written.id(),
        size: bytes.len() as u64,
        signed_by: signing
            .iter()
            .map(|k| KeyId::of(&k.verifying_key()))
            .collect(),
        manifest: written,
        licences: built.licences,
    };
    out.print(&b, || {
        let mut s = format!("Built {} ({} bytes) -> {}\n", b.id, b.size, b.out.display());
        for p in &b.manifest.payloads {
            s += &format!(
                "  {:<10} {:<10} {:>9} bytes  sha256 {}\n",
                p.component,
                p.version.to_string(),
                p.size,
                p.sha256
            );
        }
        s += &format!(
            "Signed by    {}\n",
            b.signed_by
                .iter()
                .map(|k| k.0.clone())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let flagged: Vec<_> = b
            .licences
            .iter()
            .filter(|c| c.evaluation.verdict == Verdict::Flag)
            .collect();
        s += &format!(
            "Licences     {} component(s) allowed, {} flagged for review{}\n",
            b.licences.len() - flagged.len(),
            flagged.len(),
            if licence_policy.is_none() {
                " (fieldkit's release policy)"
            } else {
                ""
            }
        );
        for c in flagged {
            s += &format!("  flagged    {}\n", c.describe());
        }
        s
    });
    Ok(())
}

fn import(home: &Home, out: &Output, files: &[PathBuf]) -> anyhow::Result<()> {
    let audit = open_audit(home)?;
    let settings = Settings::load(home)?;
    let recorder = trust_store::Recorder {
        audit: &audit,
        technician: &settings.technician,
        site: &settings.site,
    };
    let mut material = TrustMaterial::load(home, &audit)?;
    let mut rows = Vec::new();
    let mut first_error = None;
    for file in files {
        match trust_store::import_package(home, &recorder, &mut material, file, Utc::now()) {
            Ok(i) => rows.push(ImportRow {
                file: file.clone(),
                imported: true,
                already_present: i.already_present,
                kept_as: Some(i.path),
                id: Some(i.package.manifest.id()),
                error: None,
                finding: None,
            }),
            Err(e) => {
                let finding = e.finding();
                let message = e.to_string();
                first_error.get_or_insert_with(|| message.clone());
                rows.push(ImportRow {
                    file: file.clone(),
                    imported: false,
                    already_present: false,
                    kept_as: None,
                    id: None,
                    error: Some(message),
                    finding,
                });
            }
        }
    }
    out.print(&rows, || {
        rows.iter()
            .map(|r| match (&r.kept_as, &r.error) {
                (Some(kept), _) => format!(
                    "{} {} -> {}{}\n",
                    if r.already_present {
                        "already there"
                    } else {
                        "imported     "
                    },
                    r.id.as_deref().unwrap_or(""),
                    kept.display(),
                    ""
                ),
                (None, Some(e)) => format!("REFUSED       {e}\n"),
                _ => String::new(),
            })
            .collect()
    });
    match first_error {
        Some(e) => {
            let refused = rows.iter().filter(|r| !r.imported).count();
            bail!("{refused} of {} package(s) refused; first: {e}", rows.len())
        }
        None => Ok(()),
    }
}
