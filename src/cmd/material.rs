//! Small helpers the release-engineering commands share: reading key files, parsing dates,
//! writing output files, and printing findings and packages.

use std::path::Path;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use fieldkit_trust::{Finding, VerifiedPackage, keys};

/// Reads a PKCS#8 PEM private key, refusing a key file others can read (as ssh does). A file
/// that holds no private key at all (a public key given by mistake) is refused for that.
pub(crate) fn private_key(path: &Path) -> anyhow::Result<SigningKey> {
    let mut head = String::new();
    let peeked = std::fs::File::open(path).and_then(|f| {
        use std::io::Read;
        f.take(fieldkit_private::MAX_KEY_FILE)
            .read_to_string(&mut head)
    });
    let text = match peeked {
        Ok(_) if !head.contains("PRIVATE KEY") => head,
        _ => fieldkit_private::read_private_key(path)?,
    };
    keys::private_key_from_pem(&text).with_context(|| format!("{}", path.display()))
}

/// Reads an SPKI PEM public key (or derives it from a private key file, which must then be
/// private like any private key).
pub(crate) fn public_key(path: &Path) -> anyhow::Result<VerifyingKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading public key {}", path.display()))?;
    if text.contains("PRIVATE KEY") {
        return private_key(path).map(|k| k.verifying_key());
    }
    keys::public_key_from_pem(&text).with_context(|| format!("{}", path.display()))
}

/// Parses a `YYYY-MM-DD` date.
pub(crate) fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("date {s:?}: {e}; required YYYY-MM-DD"))
}

/// The last second of `day` (UTC): a document "expiring DATE" is valid through that day.
pub(crate) fn end_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(23, 59, 59).unwrap_or_default().and_utc()
}

/// `YYYY-MM-DD` (UTC).
pub(crate) fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Writes an output file atomically, refusing to write over an input.
pub(crate) fn write_out(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fieldkit_core::trust_store::write_atomic(path, bytes)?;
    Ok(())
}

/// Splits `KEY=VALUE`.
pub(crate) fn key_value(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => bail!("{what} {s:?}: required the form NAME=VALUE"),
    }
}

/// One line per finding.
pub(crate) fn findings(list: &[Finding]) -> String {
    list.iter()
        .map(|f| {
            format!(
                "  {} {:<22} {} (found {}; required {})\n",
                if f.passed { "ok  " } else { "FAIL" },
                f.rule,
                f.explanation,
                f.found,
                f.required
            )
        })
        .collect()
}

/// A package for people: what it is, what it carries, what it needs.
pub(crate) fn package(p: &VerifiedPackage) -> String {
    let m = &p.manifest;
    let mut s = String::new();
    s += &format!("Package      {}\n", m.id());
    s += &format!(
        "Release      {} {:?}, dated {}, security counter {}\n",
        m.version, m.class, m.release_date, m.security_counter
    )
    .replace("Security", "security")
    .replace("Feature", "feature")
    .replace("Maintenance", "maintenance");
    s += &format!("Metadata     expires {}\n", date(m.expires));
    s += &format!(
        "Entitlement  {}\n",
        m.entitlement_feature
            .as_deref()
            .map_or("none needed".into(), |f| format!("feature {f}"))
    );
    let r = &m.requires;
    s += &format!(
        "Requires     hardware {}; bootloader {}",
        if r.hardware_revisions.is_empty() {
            "any".into()
        } else {
            r.hardware_revisions.join(" or ")
        },
        r.bootloader
            .as_ref()
            .map_or("any".into(), ToString::to_string)
    );
    for (c, req) in &r.components {
        s += &format!("; {c} {req}");
    }
    s += "\n";
    s += "Payloads\n";
    for (decl, got) in m.payloads.iter().zip(&p.payloads) {
        s += &format!(
            "  {:<10} image {}  {:<10} {:>9} bytes  sha256 {}\n",
            decl.component,
            decl.image,
            decl.version.to_string(),
            decl.size,
            &got.sha256[..16]
        );
        if let Some(h) = &got.image_hash {
            s += &format!("             MCUboot hash {}", &h[..16]);
            if let Some(c) = got.security_counter {
                s += &format!(", security counter {c}");
            }
            for d in &got.dependencies {
                s += &format!(", needs image {} >= {}", d.image, d.min_version);
            }
            if let Some(k) = &got.image_signed_by {
                s += &format!(", signed by key {}", &k.0[..16]);
            }
            s += "\n";
        }
    }
    s += &format!(
        "SBOM         CycloneDX {}, {} component(s)\n",
        p.sbom.spec_version,
        p.sbom.components.len()
    );
    for c in &p.sbom.components {
        s += &format!(
            "  {:<28} {:<10} {}  {}\n",
            c.name,
            c.version,
            c.purl,
            c.licenses.join(", ")
        );
    }
    if !p.signed_by.is_empty() {
        s += &format!(
            "Signed by    {}\n",
            p.signed_by
                .iter()
                .map(|k| k.0[..16].to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    s
}
