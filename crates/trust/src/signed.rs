//! Signatures over exact bytes, with a domain prefix, and threshold checks.
//!
//! Every signature in fieldkit is ed25519 over `DOMAIN + "/" + bytes`, where the bytes are
//! exactly those in the file (no canonicalisation) and the domain names the kind of document
//! (`root`, `manifest`, `recall`, `entitlement`). The prefix keeps a signature made for one
//! kind of document from being replayed as another.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature as EdSignature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Result, TrustError};
use crate::keys::KeyId;
use crate::rules;

/// One signature: who signed, and the base64 signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Key id of the signer.
    pub keyid: KeyId,
    /// Base64 of the 64-byte ed25519 signature.
    pub sig: String,
}

pub(crate) fn message(domain: &str, bytes: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + 1 + bytes.len());
    m.extend_from_slice(domain.as_bytes());
    m.push(b'/');
    m.extend_from_slice(bytes);
    m
}

/// Signs `bytes` in `domain`.
pub fn sign(key: &SigningKey, domain: &str, bytes: &[u8]) -> Signature {
    Signature {
        keyid: KeyId::of(&key.verifying_key()),
        sig: B64.encode(key.sign(&message(domain, bytes)).to_bytes()),
    }
}

/// Whether `sig` is a valid signature by `key` over `bytes` in `domain`.
pub fn verify_one(key: &VerifyingKey, domain: &str, bytes: &[u8], sig: &str) -> bool {
    let Some(raw) = B64
        .decode(sig)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
    else {
        return false;
    };
    key.verify_strict(&message(domain, bytes), &EdSignature::from_bytes(&raw))
        .is_ok()
}

/// Counts distinct keys of `keys` with a valid signature among `sigs` and requires at least
/// `threshold`. Returns the ids of the keys that signed.
pub fn verify_threshold(
    what: &str,
    role: &str,
    domain: &str,
    bytes: &[u8],
    sigs: &[Signature],
    keys: &[(KeyId, VerifyingKey)],
    threshold: u32,
) -> Result<Vec<KeyId>> {
    let mut valid = BTreeSet::new();
    for s in sigs {
        if let Some((id, key)) = keys.iter().find(|(id, _)| *id == s.keyid)
            && verify_one(key, domain, bytes, &s.sig)
        {
            valid.insert(id.clone());
        }
    }
    if (valid.len() as u64) < u64::from(threshold) || threshold == 0 {
        return Err(TrustError::refused(
            rules::SIGNATURE_THRESHOLD,
            format!("{} valid signature(s) by {role} keys", valid.len()),
            format!("{threshold} of the {} {role} key(s)", keys.len()),
            format!(
                "The {what} is not signed by enough of the trust root's {role} keys, so it is not genuine."
            ),
        ));
    }
    Ok(valid.into_iter().collect())
}

/// A signed JSON document: `{"signed": ..., "signatures": [...]}`, where the signatures cover
/// the exact bytes of the `signed` value as they appear in the file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Envelope<'a> {
    #[serde(borrow)]
    pub(crate) signed: &'a RawValue,
    pub(crate) signatures: Vec<Signature>,
}

/// Serialises `value` pretty, signs it with every key, and wraps it in an envelope.
pub(crate) fn seal<T: Serialize>(value: &T, domain: &str, keys: &[&SigningKey]) -> Vec<u8> {
    // Serialising plain data structures to JSON cannot fail.
    let body = serde_json::to_string_pretty(value).unwrap_or_default();
    let signatures = keys
        .iter()
        .map(|k| sign(k, domain, body.as_bytes()))
        .collect();
    let raw = RawValue::from_string(body).expect("serde_json's own output is valid JSON");
    let env = Envelope {
        signed: &raw,
        signatures,
    };
    let mut out = serde_json::to_vec_pretty(&env).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Splits an envelope; refuses what is not one.
pub(crate) fn open<'a>(what: &str, bytes: &'a [u8]) -> Result<Envelope<'a>> {
    serde_json::from_slice(bytes).map_err(|e| {
        TrustError::refused(
            rules::FORMAT,
            e.to_string(),
            format!("a {what} as a JSON object with \"signed\" and \"signatures\""),
            format!("The {what} is not well formed."),
        )
    })
}

/// Parses the signed part of an envelope once its signatures have been checked.
pub(crate) fn parse_signed<T: for<'de> Deserialize<'de>>(what: &str, raw: &RawValue) -> Result<T> {
    serde_json::from_str(raw.get()).map_err(|e| {
        TrustError::refused(
            rules::FORMAT,
            e.to_string(),
            format!("a valid {what}"),
            format!("The {what} is signed but its content is not valid."),
        )
    })
}
