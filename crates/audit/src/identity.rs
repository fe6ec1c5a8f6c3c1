//! Signing identities: the laptop's own key, and any other party that signs notes (the hub).
//!
//! A key is an Ed25519 key kept as PKCS#8 PEM, so `openssl pkey -in laptop.pem -pubout` works on
//! it. The key is generated on first use and written with a hard link from a temporary file, so
//! two processes starting at once agree on one key and a crash never leaves half a key behind.
//! The note key name of an identity is `<prefix>/<first 16 hex digits of the key id>`, where the
//! key id is the hex SHA-256 of the raw public key (DESIGN.md §5): the name says whose log it is
//! and is stable for the life of the key.

use std::fs;
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
    /// The key file is open to other users, or is not key-sized.
    #[error(transparent)]
    KeyFile(#[from] fieldkit_private::KeyFileError),
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

    /// Loads the key at `path`, or generates one there (`0600`, in a `0700` directory) if the
    /// file does not exist. A key file others can read is refused, as ssh refuses one.
    pub fn load_or_generate(path: &Path, prefix: &str) -> Result<Self, IdentityError> {
        match fieldkit_private::read_private_key(path) {
            Ok(pem) => return Self::from_pem(path, &pem, prefix),
            Err(fieldkit_private::KeyFileError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
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
            fieldkit_private::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        write_private(&tmp, pem.as_bytes())?;
        // A hard link fails if the target exists: whoever links first wins, the other reads it.
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(Self::from_key(prefix, key)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let pem = fieldkit_private::read_private_key(path)?;
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

    /// Parses a PKCS#8 PEM private key (`path` is only used in error messages). Whitespace
    /// around the PEM block (a blank line a shell or editor added) is ignored.
    pub fn from_pem(path: &Path, pem: &str, prefix: &str) -> Result<Self, IdentityError> {
        let key =
            SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| IdentityError::BadPrivateKey {
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

/// Parses an SPKI PEM Ed25519 public key (as written by `openssl pkey -pubout`). Whitespace
/// around the PEM block is ignored: `fieldkit --json audit id | jq -r .public_key` ends in two
/// newlines, and a key pasted from an email or a terminal may carry spaces or CRLF.
pub fn parse_public_key_pem(pem: &str) -> Result<VerifyingKey, IdentityError> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| IdentityError::BadPublicKey {
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
    // Only the owner may read a private key.
    fieldkit_private::write(path, bytes).map_err(|e| io(path, e))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_keys_tolerate_whitespace_around_them() {
        let id = Identity::generate(LAPTOP_PREFIX);
        let public = id.public_key_pem();
        let private = id.private_key_pem();
        let variants = |pem: &str| {
            vec![
                pem.to_owned(),
                format!("{pem}\n"),
                format!("\n\n{pem}\n\n"),
                format!("  {}  ", pem.trim()),
                format!("\t{pem}\r\n"),
                pem.replace('\n', "\r\n"),
            ]
        };
        for text in variants(&public) {
            let key = parse_public_key_pem(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(key, id.public_key(), "{text:?}");
        }
        for text in variants(&private) {
            let got = Identity::from_pem(Path::new("k.pem"), &text, LAPTOP_PREFIX)
                .unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(got.public_key(), id.public_key(), "{text:?}");
        }
        for bad in [
            "",
            "\n",
            &public[..public.len() / 2],
            &public.replace("PUBLIC KEY", "PRIVATE KEY"),
            &format!("{public}{public}"),
        ] {
            assert!(parse_public_key_pem(bad).is_err(), "{bad:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_key_others_can_read_is_refused_and_a_new_one_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/laptop.pem");
        let made = Identity::laptop(&path).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("keys")), 0o700);
        assert_eq!(Identity::laptop(&path).unwrap().name(), made.name());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Identity::laptop(&path).unwrap_err().to_string();
        assert!(err.contains("mode 0644"), "{err}");
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
    }
}
