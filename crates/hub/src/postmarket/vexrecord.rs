//! Signed VEX records: every VEX document the hub holds, imported or decided on the hub, with
//! who put it there, signed by the hub's key.
//!
//! A manager's decision ("CVE-X does not affect netcore 1.4 to 1.6: the vulnerable code is not
//! in the execute path") is written as an OpenVEX document (a standard format any other tool
//! reads) whose author is the manager, and recorded like an imported document. The record's
//! signature covers the document's SHA-256 and every field that says who, when and how, under a
//! domain of its own, so neither the document nor its author can be changed afterwards without
//! the hub noticing: a record that does not verify under the hub's key is left out of the
//! analysis and reported.

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use fieldkit_audit::Identity;
use fieldkit_vuln::vex::{Justification, Scope, State};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::store::VexRow;
use super::trust::PostmarketError;

/// The signature domain of VEX records.
pub const DOMAIN: &str = "fieldkit-hub/vex-record/v1";

/// The longest free text a decision accepts (impact statement, action).
pub const MAX_TEXT: usize = 2000;

/// The bytes a record's signature covers.
pub fn message(row: &VexRow) -> Vec<u8> {
    #[derive(Serialize)]
    struct Signed<'a> {
        domain: &'a str,
        origin: &'a str,
        format: &'a str,
        document_id: &'a str,
        author: &'a str,
        recorded_by: &'a str,
        recorded_us: i64,
        body_sha256: String,
        signer: &'a str,
    }
    serde_json::to_vec(&Signed {
        domain: DOMAIN,
        origin: &row.origin,
        format: &row.format,
        document_id: &row.document_id,
        author: &row.author,
        recorded_by: &row.recorded_by,
        recorded_us: row.recorded_us,
        body_sha256: hex::encode(Sha256::digest(&row.body)),
        signer: &row.signer,
    })
    .unwrap_or_default()
}

/// Signs a record with the hub's key (fills `signer` and `signature`).
pub fn sign(hub: &Identity, row: &mut VexRow) {
    row.signer = hub.key_id();
    row.signature = hex::encode(hub.sign(&message(row)));
}

/// Whether a record is signed by `key` (whose id is `key_id`).
pub fn verify(key: &VerifyingKey, key_id: &str, row: &VexRow) -> bool {
    if row.signer != key_id {
        return false;
    }
    let Ok(bytes) = hex::decode(&row.signature) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&bytes) else {
        return false;
    };
    key.verify(&message(row), &sig).is_ok()
}

/// A decision a manager makes on the hub, as it arrives (dashboard form or CLI).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The vulnerability (any of its ids).
    pub vulnerability: String,
    /// The product: a purl, optionally with a version (`@1.4.0`) or a range
    /// (`@vers:semver/>=1.4.0|<1.6.0`).
    pub product: String,
    /// Limit to these subcomponents of the product (purls), if any.
    #[serde(default)]
    pub subcomponents: Vec<String>,
    /// `not_affected`, `affected`, `fixed` or `under_investigation`.
    pub status: String,
    /// For `not_affected`: one of the five justifications.
    #[serde(default)]
    pub justification: Option<String>,
    /// Why, in the manager's words.
    #[serde(default)]
    pub impact: Option<String>,
    /// What to do.
    #[serde(default)]
    pub action: Option<String>,
}

const STATES: [&str; 4] = ["not_affected", "affected", "fixed", "under_investigation"];
const JUSTIFICATIONS: [&str; 5] = [
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];

fn bad(field: &str, found: &str, required: String) -> PostmarketError {
    PostmarketError::refused(
        "VEX decision",
        "vex.decision",
        format!(
            "{field} = {:?}",
            found.chars().take(120).collect::<String>()
        ),
        required,
    )
}

fn text(field: &str, v: &Option<String>) -> Result<Option<String>, PostmarketError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.chars().count() > MAX_TEXT => {
            Err(bad(field, t, format!("at most {MAX_TEXT} characters")))
        }
        Some(t) if t.chars().any(|c| c.is_control() && c != '\n') => {
            Err(bad(field, t, "text without control characters".into()))
        }
        Some(t) => Ok(Some(t.to_owned())),
    }
}

impl Decision {
    /// Checks the decision and writes it as an OpenVEX document by `author` at `now`, under
    /// the document id `id`. Every field is validated with the rule it breaks; the document
    /// is then read back by the OpenVEX reader, so a decision means exactly what an imported
    /// document with the same words would.
    pub fn to_openvex(
        &self,
        id: &str,
        author: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>, PostmarketError> {
        let vuln = self.vulnerability.trim();
        let id_ok = !vuln.is_empty()
            && vuln.len() <= 128
            && vuln
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !id_ok {
            return Err(bad(
                "vulnerability",
                vuln,
                "a vulnerability id (letters, digits, - _ . :), at most 128 characters".into(),
            ));
        }
        let scope = |field: &str, p: &str| -> Result<String, PostmarketError> {
            let s = Scope::from_purl(p.trim()).map_err(|e| bad(field, p, e))?;
            s.to_purl().ok_or_else(|| bad(field, p, "a purl".into()))
        };
        let product = scope("product", &self.product)?;
        let subs: Vec<String> = self
            .subcomponents
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| scope("subcomponents", s))
            .collect::<Result<_, _>>()?;
        if !STATES.contains(&self.status.as_str()) {
            return Err(bad(
                "status",
                &self.status,
                format!("one of {}", STATES.join(", ")),
            ));
        }
        let justification = match self.justification.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(j) if JUSTIFICATIONS.contains(&j) => Some(j.to_owned()),
            Some(j) => {
                return Err(bad(
                    "justification",
                    j,
                    format!("one of {}", JUSTIFICATIONS.join(", ")),
                ));
            }
        };
        let impact = text("impact", &self.impact)?;
        let action = text("action", &self.action)?;
        if self.status == "not_affected" && justification.is_none() && impact.is_none() {
            return Err(bad(
                "justification",
                "",
                "a justification or an impact statement for not_affected".into(),
            ));
        }
        let when = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut statement = serde_json::json!({
            "vulnerability": { "name": vuln },
            "timestamp": when,
            "products": [{
                "@id": product,
                "subcomponents": subs.iter().map(|s| serde_json::json!({ "@id": s })).collect::<Vec<_>>(),
            }],
            "status": self.status,
        });
        if let Some(j) = justification {
            statement["justification"] = j.into();
        }
        if let Some(i) = impact {
            statement["impact_statement"] = i.into();
        }
        if let Some(a) = action {
            statement["action_statement"] = a.into();
        }
        let doc = serde_json::json!({
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": id,
            "author": author,
            "role": "service manager, recorded on the fieldkit hub",
            "timestamp": when,
            "version": 1,
            "statements": [statement],
        });
        let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        bytes.push(b'\n');
        // The decision must read back as exactly one statement.
        let read = fieldkit_vuln::vex::parse(id, &bytes, &fieldkit_vuln::Limits::default())?;
        if read.statements.len() != 1 || !read.skipped.is_empty() {
            return Err(bad(
                "product",
                &self.product,
                "a product the OpenVEX reader accepts".into(),
            ));
        }
        Ok(bytes)
    }
}

/// The state words, for forms.
pub fn states() -> &'static [&'static str] {
    &STATES
}

/// The justification words, for forms.
pub fn justifications() -> &'static [&'static str] {
    &JUSTIFICATIONS
}

/// Whether a state hides an exposure.
pub fn clears(state: State) -> bool {
    matches!(state, State::NotAffected | State::Fixed)
}

/// Justification as its word.
pub fn justification_word(j: Justification) -> &'static str {
    match j {
        Justification::ComponentNotPresent => JUSTIFICATIONS[0],
        Justification::VulnerableCodeNotPresent => JUSTIFICATIONS[1],
        Justification::VulnerableCodeNotInExecutePath => JUSTIFICATIONS[2],
        Justification::VulnerableCodeCannotBeControlledByAdversary => JUSTIFICATIONS[3],
        Justification::InlineMitigationsAlreadyExist => JUSTIFICATIONS[4],
    }
}
