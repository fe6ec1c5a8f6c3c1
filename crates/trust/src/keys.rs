//! ed25519 keys in the PEM forms OpenSSL writes, and key ids.

use std::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, TrustError};
use crate::rules;

/// A key id: hex SHA-256 of the raw 32-byte public key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl KeyId {
    /// The id of `key`.
    pub fn of(key: &VerifyingKey) -> Self {
        KeyId(hex::encode(Sha256::digest(key.as_bytes())))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new signing key from `rng` (the caller passes the OS generator: no hidden randomness).
pub fn generate(rng: &mut impl CryptoRngCore) -> SigningKey {
    SigningKey::generate(rng)
}

/// The PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) of a signing key, as `openssl genpkey
/// -algorithm ed25519` writes it.
pub fn private_key_to_pem(key: &SigningKey) -> String {
    // PKCS#8 v1 (seed only), as OpenSSL writes it: OpenSSL 3 refuses the v2 form with the
    // embedded public key that `SigningKey::to_pkcs8_pem` produces.
    let bytes = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    // Encoding a 32-byte seed as PKCS#8 cannot fail.
    bytes
        .to_pkcs8_pem(Default::default())
        .map(|z| z.to_string())
        .unwrap_or_default()
}

/// The SPKI PEM (`-----BEGIN PUBLIC KEY-----`) of a public key, as `openssl pkey -pubout` writes.
pub fn public_key_to_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(Default::default())
        .unwrap_or_default()
}

fn key_error(found: String, required: &str) -> TrustError {
    TrustError::refused(
        rules::KEY_FORMAT,
        found,
        required.to_owned(),
        "The key file is not an ed25519 key in PEM form.",
    )
}

/// Reads a PKCS#8 PEM ed25519 private key.
pub fn private_key_from_pem(pem: &str) -> Result<SigningKey> {
    SigningKey::from_pkcs8_pem(pem.trim())
        .map_err(|e| key_error(e.to_string(), "an ed25519 PKCS#8 PEM private key"))
}

/// Reads an ed25519 public key from an SPKI PEM, or derives it from a PKCS#8 PEM private key
/// (so a command that needs a public key also takes the private key file).
pub fn public_key_from_pem(pem: &str) -> Result<VerifyingKey> {
    let pem = pem.trim();
    if pem.contains("PRIVATE KEY") {
        return private_key_from_pem(pem).map(|k| k.verifying_key());
    }
    VerifyingKey::from_public_key_pem(pem)
        .map_err(|e| key_error(e.to_string(), "an ed25519 SPKI PEM public key"))
}

/// How a public key appears in signed JSON documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyEntry {
    /// Always `ed25519`.
    pub keytype: String,
    /// Hex of the raw 32-byte public key.
    pub public: String,
}

impl PublicKeyEntry {
    /// The entry for `key`.
    pub fn new(key: &VerifyingKey) -> Self {
        Self {
            keytype: "ed25519".into(),
            public: hex::encode(key.as_bytes()),
        }
    }

    /// The key, if the entry holds a valid ed25519 key.
    pub fn key(&self) -> Result<VerifyingKey> {
        if self.keytype != "ed25519" {
            return Err(TrustError::refused(
                rules::KEY_FORMAT,
                self.keytype.clone(),
                "ed25519",
                "The trust root lists a key of a type fieldkit does not use.",
            ));
        }
        let raw = hex::decode(&self.public)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| key_error(self.public.clone(), "64 hex digits"))?;
        VerifyingKey::from_bytes(&raw)
            .map_err(|e| key_error(e.to_string(), "a valid ed25519 point"))
    }
}
