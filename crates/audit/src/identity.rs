//! Signing identities: the laptop's own key, and any other party that signs notes (the hub).
//!
//! A key is an Ed25519 key kept as PKCS#8 PEM, so `openssl pkey -in laptop.pem -pubout` works on
//! it. The key is generated on first use and written with a hard link from a temporary file, so
//! two processes starting at once agree on one key and a crash never leaves half a key behind.
//! The note key name of an identity is `<prefix>/<first 16 hex digits of the key id>`, where the
//! key id is the hex SHA-256 of the raw public key (DESIGN.md §5): the name says whose log it is
//! and is stable for the life of the key.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// The note key name prefix of a laptop's log.
pub const LAPTOP_PREFIX: &str = "fieldkit-laptop";
/// The note key name prefix of a hub's cosignatures.
pub const HUB_PREFIX: &str = "fieldkit-hub";

/// The signed-note signature type byte of Ed25519 keys (C2SP signed-note).
const ALG_ED25519: u8 = 0x01;

/// Why a key could not be loaded, generated or parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a PKCS#8 PEM Ed25519 private key.
    #[error(
        "key file {path} is not an Ed25519 private key in PKCS#8 PEM (\"-----BEGIN PRIVATE KEY-----\"): {reason}"
    )]
    BadPrivateKey {
        /// The key file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The text is not an SPKI PEM Ed25519 public key.
    #[error("not an Ed25519 public key in SPKI PEM (\"-----BEGIN PUBLIC KEY-----\"): {reason}")]
    BadPublicKey {
        /// What the decoder said.
        reason: String,
    },
}

/// An Ed25519 key with the note key name it signs under.
#[derive(Clone)]
pub struct Identity {
    name: String,
    key: SigningKey,
}

/// The laptop's identity: the key that signs its audit log's checkpoints.
pub type LaptopIdentity = Identity;

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("Identity")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Loads the laptop key at `path`, generating and saving a new one if the file is absent.
    pub fn laptop(path: &Path) -> Result<Self, IdentityError> {
        Self::load_or_generate(path, LAPTOP_PREFIX)
    }

    /// Loads the key at `path`, or generates one there if the file does not exist.
    pub fn load_or_generate(path: &Path, prefix: &str) -> Result<Self, IdentityError> {
        match fs::read_to_string(path) {
            Ok(pem) => return Self::from_pem(path, &pem, prefix),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(io(path, source)),
        }
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        // PKCS#8 v1 (no embedded public key): the form `openssl genpkey -algorithm ed25519`
        // writes and the only one OpenSSL 3 reads back.
        let v1 = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: key.to_bytes(),
            public_key: None,
        };
        let pem = v1
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| IdentityError::BadPrivateKey {
                path: path.into(),
                reason: e.to_string(),
            })?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        write_private(&tmp, pem.as_bytes())?;
        // A hard link fails if the target exists: whoever links first wins, the other reads it.
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(Self::from_key(prefix, key)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let pem = fs::read_to_string(path).map_err(|e| io(path, e))?;
                Self::from_pem(path, &pem, prefix)
            }
            Err(e) => Err(io(path, e)),
        }
    }

    /// Generates a new key.
    pub fn generate(prefix: &str) -> Self {
        Self::from_key(prefix, SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// The private key as PKCS#8 PEM (v1, as `openssl genpkey -algorithm ed25519` writes it).
    pub fn private_key_pem(&self) -> String {
        private_key_pem(&self.key)
    }

    /// Parses a PKCS#8 PEM private key (`path` is only used in error messages).
    pub fn from_pem(path: &Path, pem: &str, prefix: &str) -> Result<Self, IdentityError> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| IdentityError::BadPrivateKey {
            path: path.into(),
            reason: e.to_string(),
        })?;
        Ok(Self::from_key(prefix, key))
    }

    /// Wraps a key, naming it `<prefix>/<key id prefix>`.
    pub fn from_key(prefix: &str, key: SigningKey) -> Self {
        Self {
            name: key_name(prefix, &key.verifying_key()),
            key,
        }
    }

    /// The note key name, which is also the origin line of this laptop's checkpoints.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The key id: hex SHA-256 of the raw public key.
    pub fn key_id(&self) -> String {
        key_id(&self.public_key())
    }

    /// The public key as SPKI PEM, the form `fieldkit-hub enroll-laptop --key` takes.
    pub fn public_key_pem(&self) -> String {
        public_key_pem(&self.public_key())
    }

    /// The C2SP signed-note verifier key (`name+keyhash+base64(0x01||key)`).
    pub fn verifier_key(&self) -> String {
        signed_note::new_ed25519_verifier_key(&self.name, &self.public_key())
    }

    /// Signs raw bytes (used for request signatures, not notes).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    pub(crate) fn note_signer(&self) -> NoteSigner<'_> {
        NoteSigner {
            name: &self.name,
            key: &self.key,
        }
    }
}

/// The note key name of a public key: `<prefix>/<first 16 hex digits of its key id>`.
pub fn key_name(prefix: &str, key: &VerifyingKey) -> String {
    format!("{prefix}/{}", &key_id(key)[..16])
}

/// The key id of DESIGN.md §5: hex SHA-256 of the raw public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Encodes a public key as SPKI PEM.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    // Encoding 32 known-good bytes as SPKI cannot fail.
    key.to_public_key_pem(LineEnding::LF).unwrap_or_default()
}

/// Parses an SPKI PEM Ed25519 public key (as written by `openssl pkey -pubout`).
pub fn parse_public_key_pem(pem: &str) -> Result<VerifyingKey, IdentityError> {
    VerifyingKey::from_public_key_pem(pem).map_err(|e| IdentityError::BadPublicKey {
        reason: e.to_string(),
    })
}

fn private_key_pem(key: &SigningKey) -> String {
    // PKCS#8 v1 (no embedded public key): the form `openssl genpkey -algorithm ed25519` writes
    // and the only one OpenSSL 3 reads back. Encoding 32 known-good bytes cannot fail.
    let v1 = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    v1.to_pkcs8_pem(LineEnding::LF)
        .map(|p| p.to_string())
        .unwrap_or_default()
}

fn io(path: &Path, source: std::io::Error) -> IdentityError {
    IdentityError::Io {
        path: path.into(),
        source,
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Only the owner may read the laptop's private key.
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| io(path, e))?;
    f.write_all(bytes).map_err(|e| io(path, e))?;
    f.sync_all().map_err(|e| io(path, e))
}

/// Signs notes as `name` with an Ed25519 key.
pub(crate) struct NoteSigner<'a> {
    name: &'a str,
    key: &'a SigningKey,
}

impl signed_note::Signer for NoteSigner<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        note_key_hash(self.name, &self.key.verifying_key())
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// Verifies note signatures made by `name` with one Ed25519 key.
pub(crate) struct NoteVerifier {
    name: String,
    key: VerifyingKey,
}

impl NoteVerifier {
    pub(crate) fn new(name: &str, key: VerifyingKey) -> Self {
        Self {
            name: name.to_owned(),
            key,
        }
    }
}

impl signed_note::Verifier for NoteVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        note_key_hash(&self.name, &self.key)
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
            return false;
        };
        self.key.verify(msg, &sig).is_ok()
    }
}

/// The 4-byte key hash of C2SP signed-note: SHA-256(name || 0x0A || 0x01 || key)[:4].
pub(crate) fn note_key_hash(name: &str, key: &VerifyingKey) -> u32 {
    let mut encoded = Vec::with_capacity(33);
    encoded.push(ALG_ED25519);
    encoded.extend_from_slice(key.as_bytes());
    signed_note::key_id(name, &encoded)
}
