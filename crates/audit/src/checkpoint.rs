//! Checkpoints: C2SP `tlog-checkpoint` bodies in C2SP `signed-note` envelopes.
//!
//! ```text
//! fieldkit-laptop/3f2a9c0d11e4b7a2        <- origin: the laptop's note key name
//! 42                                      <- tree size (number of entries)
//! 3fU8…=                                  <- base64 RFC 6962 root hash
//!
//! — fieldkit-laptop/3f2a9c0d11e4b7a2 AbCd…  <- base64(key hash[4] || Ed25519 signature[64])
//! — fieldkit-hub/0be1c5d2a6f4e893 XyZw…     <- the hub's cosignature: the receipt
//! ```
//!
//! The laptop signs its own checkpoint; the hub adds a second signature line over the same text
//! once it has committed the entries, and the doubly signed note is the receipt. Formatting and
//! parsing are delegated to the `tlog_tiles` and `signed_note` crates (ports of Go's
//! `sumdb/tlog` and `sumdb/note`), so the bytes are those every transparency-log tool expects.

use ed25519_dalek::VerifyingKey;
use signed_note::{Note, NoteError, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

use crate::identity::{Identity, NoteVerifier};

/// The largest checkpoint note accepted: a checkpoint is three short lines and a few
/// signatures, so anything near this is hostile.
pub const MAX_CHECKPOINT_BYTES: usize = 8 * 1024;

/// Why a checkpoint could not be parsed or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The note is larger than any checkpoint can be.
    #[error("checkpoint is {found} bytes; at most {max} are accepted")]
    TooLarge {
        /// Its length.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// The text is not a signed note with a checkpoint body.
    #[error("malformed checkpoint: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The note carries no signature by the required key.
    #[error("checkpoint has no signature by {name}")]
    MissingSignature {
        /// The key name whose signature is required.
        name: String,
    },
    /// A signature line names the key but does not verify.
    #[error("checkpoint signature by {name} is invalid")]
    BadSignature {
        /// The key name.
        name: String,
    },
}

/// A checkpoint note: origin, tree size and root, with its signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    note: String,
    origin: String,
    size: u64,
    root: [u8; 32],
}

impl SignedCheckpoint {
    /// Signs a checkpoint for a tree of `size` entries with root `root`, as `identity`.
    pub fn sign(identity: &Identity, size: u64, root: [u8; 32]) -> Result<Self, CheckpointError> {
        let body = Checkpoint::new(identity.name(), size, Hash(root), "")
            .map_err(|e| malformed(e.to_string()))?;
        let mut note = Note::new(&body.to_bytes(), &[]).map_err(note_error)?;
        note.add_sigs(&[&identity.note_signer()])
            .map_err(note_error)?;
        Self::parse(&String::from_utf8_lossy(&note.to_bytes()))
    }

    /// Parses a signed checkpoint note; signatures are not verified here.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        if text.len() > MAX_CHECKPOINT_BYTES {
            return Err(CheckpointError::TooLarge {
                found: text.len(),
                max: MAX_CHECKPOINT_BYTES,
            });
        }
        let note = Note::from_bytes(text.as_bytes()).map_err(note_error)?;
        let body = Checkpoint::from_bytes(note.text()).map_err(|e| malformed(e.to_string()))?;
        if !body.extension().is_empty() {
            return Err(malformed("extension lines are not used by fieldkit".into()));
        }
        Ok(Self {
            note: text.to_owned(),
            origin: body.origin().to_owned(),
            size: body.size(),
            root: body.hash().0,
        })
    }

    /// The full note text, signatures included.
    pub fn as_str(&self) -> &str {
        &self.note
    }

    /// The origin line: the note key name of the log's owner.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The RFC 6962 root hash.
    pub fn root(&self) -> [u8; 32] {
        self.root
    }

    /// The root hash in hex.
    pub fn root_hex(&self) -> String {
        hex::encode(self.root)
    }

    /// The key names of all signature lines (verified or not).
    pub fn signer_names(&self) -> Vec<String> {
        Note::from_bytes(self.note.as_bytes())
            .map(|n| {
                // `Note` keeps its signatures private; re-read them from the text.
                let text_len = n.text().len();
                self.note[text_len + 1..]
                    .lines()
                    .filter_map(|l| l.strip_prefix("— ")?.split(' ').next().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Requires a valid signature by `name` with `key`.
    pub fn verify_signer(&self, name: &str, key: &VerifyingKey) -> Result<(), CheckpointError> {
        let note = Note::from_bytes(self.note.as_bytes()).map_err(note_error)?;
        let known = VerifierList::new(vec![Box::new(NoteVerifier::new(name, *key))]);
        match note.verify(&known) {
            Ok(_) => Ok(()),
            Err(NoteError::UnverifiedNote) => Err(CheckpointError::MissingSignature {
                name: name.to_owned(),
            }),
            Err(NoteError::InvalidSignature { .. }) | Err(NoteError::MismatchedVerifier) => {
                Err(CheckpointError::BadSignature {
                    name: name.to_owned(),
                })
            }
            Err(e) => Err(malformed(e.to_string())),
        }
    }

    /// Adds `identity`'s signature line (the hub's cosignature that makes this a receipt).
    pub fn cosign(&self, identity: &Identity) -> Result<Self, CheckpointError> {
        let mut note = Note::from_bytes(self.note.as_bytes()).map_err(note_error)?;
        note.add_sigs(&[&identity.note_signer()])
            .map_err(note_error)?;
        Self::parse(&String::from_utf8_lossy(&note.to_bytes()))
    }

    /// Whether two checkpoints commit to the same tree (same origin, size and root), whoever
    /// signed them.
    pub fn same_tree(&self, other: &Self) -> bool {
        self.origin == other.origin && self.size == other.size && self.root == other.root
    }
}

impl std::fmt::Display for SignedCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.note)
    }
}

fn malformed(reason: String) -> CheckpointError {
    CheckpointError::Malformed { reason }
}

fn note_error(e: NoteError) -> CheckpointError {
    malformed(e.to_string())
}
