//! The one error type of this crate: every way an image can be malformed or fail to verify.

use std::fmt;

/// Which of the two TLV areas a TLV error concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlvArea {
    /// The protected area (magic 0x6908), covered by the hash and signature.
    Protected,
    /// The unprotected area (magic 0x6907): hash, key hash, signatures.
    Unprotected,
}

impl fmt::Display for TlvArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlvArea::Protected => "protected",
            TlvArea::Unprotected => "unprotected",
        })
    }
}

/// Why an image could not be read, verified or made.
///
/// Every variant names the value found and the value required, so the message alone tells a
/// release engineer what is wrong with the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The bytes end before a part the header or a TLV promises.
    #[error("image truncated: {what} needs {required} bytes, found {found}")]
    Truncated {
        /// The part that does not fit.
        what: &'static str,
        /// Bytes available.
        found: u64,
        /// Bytes required.
        required: u64,
    },
    /// The first four bytes are not MCUboot's image magic.
    #[error("not an MCUboot image: magic is {found:#010x}, required {required:#010x}")]
    BadMagic {
        /// The magic found.
        found: u32,
        /// `ImageHeader::MAGIC`.
        required: u32,
    },
    /// `hdr_size` is smaller than the header itself.
    #[error("image header size {found} is smaller than the {required}-byte header")]
    HeaderTooSmall {
        /// The `hdr_size` field.
        found: u16,
        /// `ImageHeader::SIZE`.
        required: u16,
    },
    /// A TLV area does not start with its magic.
    #[error("{area} TLV area has magic {found:#06x}, required {required:#06x}")]
    BadTlvMagic {
        /// Which area.
        area: TlvArea,
        /// The magic found.
        found: u16,
        /// The magic required.
        required: u16,
    },
    /// The protected TLV area's own length disagrees with the header's `protect_tlv_size`.
    #[error("protected TLV area is {found} bytes long but the header declares {required}")]
    ProtectedSizeMismatch {
        /// Length in the area's info header (or 0 when the header declares none but one is there).
        found: u16,
        /// The header's `protect_tlv_size`.
        required: u16,
    },
    /// A TLV entry runs past the end of its area.
    #[error(
        "{area} TLV {kind:#04x} at offset {offset} needs {required} bytes but its area ends after {found}"
    )]
    TlvOverrun {
        /// Which area.
        area: TlvArea,
        /// The entry's type (0 if even its 4-byte header does not fit).
        kind: u16,
        /// Offset of the entry in the image.
        offset: u64,
        /// Bytes left in the area from the entry on.
        found: u64,
        /// Bytes the entry needs.
        required: u64,
    },
    /// A TLV whose value has a fixed length has another.
    #[error("{name} TLV ({kind:#04x}) is {found} bytes long, required {required}")]
    BadTlvLength {
        /// The TLV's name.
        name: &'static str,
        /// The TLV type.
        kind: u16,
        /// Its length.
        found: usize,
        /// The length required.
        required: usize,
    },
    /// A TLV needed for verification is absent.
    #[error("image has no {name} TLV ({kind:#04x}) in its {area} area")]
    MissingTlv {
        /// The TLV's name.
        name: &'static str,
        /// The TLV type.
        kind: u16,
        /// Where it was looked for.
        area: TlvArea,
    },
    /// The SHA256 TLV does not match the image.
    #[error("image hash mismatch: the SHA256 TLV says {found}, the image hashes to {required}")]
    HashMismatch {
        /// Hex of the hash in the TLV.
        found: String,
        /// Hex of the computed hash.
        required: String,
    },
    /// The image names (by KEYHASH or PUBKEY) another key than the one given.
    #[error("image was signed by the key with hash {found}, required the key with hash {required}")]
    KeyMismatch {
        /// Hex SHA-256 of the SubjectPublicKeyInfo the image names.
        found: String,
        /// Hex SHA-256 of the SubjectPublicKeyInfo of the key given.
        required: String,
    },
    /// No ED25519 TLV verifies under the key given.
    #[error("ED25519 signature does not verify with the key with hash {key}")]
    BadSignature {
        /// Hex SHA-256 of the key's SubjectPublicKeyInfo.
        key: String,
    },
    /// `sign`: a size does not fit its header field.
    #[error("cannot make image: {what} is {found} bytes, at most {required} allowed")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        found: u64,
        /// The limit.
        required: u64,
    },
    /// A feature of the format this crate does not handle in this mode.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What is not supported.
        what: &'static str,
    },
}
