//! Reading an image: the 32-byte header, the two TLV areas, and the checks MCUboot makes.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{ImageError, TlvArea};
use crate::version::ImageVersion;

/// TLV type numbers (`IMAGE_TLV_*` in MCUboot's `image.h`).
pub mod tlv {
    /// SHA-256 of the public key's SubjectPublicKeyInfo that signed the image.
    pub const KEYHASH: u16 = 0x01;
    /// The public key itself (SubjectPublicKeyInfo DER), imgtool's `--public-key-format full`.
    pub const PUBKEY: u16 = 0x02;
    /// SHA-256 over header, payload and protected TLV area.
    pub const SHA256: u16 = 0x10;
    /// Ed25519 signature over the SHA-256 digest.
    pub const ED25519: u16 = 0x24;
    /// Marks a "pure" signature over the hashed region itself rather than its digest.
    pub const SIG_PURE: u16 = 0x25;
    /// Dependency on another image's minimum version.
    pub const DEPENDENCY: u16 = 0x40;
    /// Security counter (anti-rollback).
    pub const SEC_CNT: u16 = 0x50;
    /// Magic of the unprotected TLV area.
    pub const INFO_MAGIC: u16 = 0x6907;
    /// Magic of the protected TLV area.
    pub const PROT_INFO_MAGIC: u16 = 0x6908;
}

/// Image header flags (`IMAGE_F_*`).
pub mod flags {
    /// Position-independent code.
    pub const PIC: u32 = 0x01;
    /// Payload encrypted with AES-128.
    pub const ENCRYPTED_AES128: u32 = 0x04;
    /// Payload encrypted with AES-256.
    pub const ENCRYPTED_AES256: u32 = 0x08;
    /// Not bootable (e.g. a data image).
    pub const NON_BOOTABLE: u32 = 0x10;
    /// Loaded into RAM at `load_addr`; imgtool sets it whenever `load_addr` is not zero.
    pub const RAM_LOAD: u32 = 0x20;
    /// Fixed ROM address.
    pub const ROM_FIXED: u32 = 0x100;
}

/// The 32-byte MCUboot image header (`struct image_header`), little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// Load address (only meaningful with `RAM_LOAD` or `ROM_FIXED`).
    pub load_addr: u32,
    /// Bytes from the start of the image to the payload (header plus padding), at least 32.
    pub hdr_size: u16,
    /// Bytes of the protected TLV area including its 4-byte info header; 0 when absent.
    pub protect_tlv_size: u16,
    /// Bytes of payload after the header.
    pub img_size: u32,
    /// `IMAGE_F_*` flags, see [`flags`].
    pub flags: u32,
    /// The image version.
    pub version: ImageVersion,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl ImageHeader {
    /// Size of the header structure.
    pub const SIZE: usize = 32;
    /// `IMAGE_MAGIC`.
    pub const MAGIC: u32 = 0x96f3_b83d;

    /// Reads the header from the first 32 bytes; more bytes are ignored.
    pub fn parse(bytes: &[u8]) -> Result<ImageHeader, ImageError> {
        if bytes.len() < Self::SIZE {
            return Err(ImageError::Truncated {
                what: "image header",
                found: bytes.len() as u64,
                required: Self::SIZE as u64,
            });
        }
        let magic = u32_at(bytes, 0);
        if magic != Self::MAGIC {
            return Err(ImageError::BadMagic {
                found: magic,
                required: Self::MAGIC,
            });
        }
        let hdr_size = u16_at(bytes, 8);
        if usize::from(hdr_size) < Self::SIZE {
            return Err(ImageError::HeaderTooSmall {
                found: hdr_size,
                required: Self::SIZE as u16,
            });
        }
        let mut v = [0u8; 8];
        v.copy_from_slice(&bytes[20..28]);
        Ok(ImageHeader {
            load_addr: u32_at(bytes, 4),
            hdr_size,
            protect_tlv_size: u16_at(bytes, 10),
            img_size: u32_at(bytes, 12),
            flags: u32_at(bytes, 16),
            version: ImageVersion::from_bytes(v),
        })
    }

    /// The 32 header bytes (the trailing `_pad1` word is zero).
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&Self::MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&self.load_addr.to_le_bytes());
        b[8..10].copy_from_slice(&self.hdr_size.to_le_bytes());
        b[10..12].copy_from_slice(&self.protect_tlv_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.img_size.to_le_bytes());
        b[16..20].copy_from_slice(&self.flags.to_le_bytes());
        b[20..28].copy_from_slice(&self.version.to_bytes());
        b
    }

    /// Offset of the protected TLV area (or of the unprotected one when there is none):
    /// `hdr_size + img_size`. This is also the length of the payload plus header.
    pub fn tlv_offset(&self) -> u64 {
        u64::from(self.hdr_size) + u64::from(self.img_size)
    }

    /// Offset of the unprotected TLV area, where the hashed region ends.
    pub fn unprotected_tlv_offset(&self) -> u64 {
        self.tlv_offset() + u64::from(self.protect_tlv_size)
    }

    /// The fewest bytes a complete image with this header can have: everything up to and
    /// including the unprotected TLV area's 4-byte info header. The header alone cannot say
    /// more, because the unprotected area's length is in that info header.
    pub fn total_len_hint(&self) -> u64 {
        self.unprotected_tlv_offset() + 4
    }
}

/// One TLV entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// The type (see [`tlv`]); standard types are one byte followed by a zero byte, which
    /// reads the same as this little-endian `u16`.
    pub kind: u16,
    /// The value.
    pub value: Vec<u8>,
}

/// A DEPENDENCY TLV: this image needs image `image` at `min_version` or later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dependency {
    /// The image number depended upon (0 = application, 1 = e.g. network core).
    pub image: u8,
    /// The lowest acceptable version of that image.
    pub min_version: ImageVersion,
}

impl Dependency {
    /// Length of the TLV value: image id, three padding bytes, version.
    pub const LEN: usize = 12;

    /// The 12-byte TLV value.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = self.image;
        b[4..].copy_from_slice(&self.min_version.to_bytes());
        b
    }
}

/// A parsed image borrowing the bytes it was read from.
///
/// Parsing checks structure only (header, bounds, TLV framing); [`Image::verify_hash`] and
/// [`Image::verify_ed25519`] check content.
#[derive(Debug, Clone)]
pub struct Image<'a> {
    bytes: &'a [u8],
    header: ImageHeader,
    protected: Vec<Tlv>,
    unprotected: Vec<Tlv>,
    end: usize,
}

/// Reads one TLV area at `off`; returns its entries and its end offset.
pub(crate) fn parse_area(
    bytes: &[u8],
    off: usize,
    area: TlvArea,
) -> Result<(Vec<Tlv>, usize), ImageError> {
    let (required_magic, what) = match area {
        TlvArea::Protected => (tlv::PROT_INFO_MAGIC, "protected TLV info"),
        TlvArea::Unprotected => (tlv::INFO_MAGIC, "unprotected TLV info"),
    };
    if bytes.len() < off + 4 {
        return Err(ImageError::Truncated {
            what,
            found: bytes.len() as u64,
            required: off as u64 + 4,
        });
    }
    let magic = u16_at(bytes, off);
    if magic != required_magic {
        return Err(ImageError::BadTlvMagic {
            area,
            found: magic,
            required: required_magic,
        });
    }
    let total = usize::from(u16_at(bytes, off + 2));
    if total < 4 {
        return Err(ImageError::TlvOverrun {
            area,
            kind: 0,
            offset: off as u64,
            found: total as u64,
            required: 4,
        });
    }
    let end = off + total;
    if bytes.len() < end {
        return Err(ImageError::Truncated {
            what: match area {
                TlvArea::Protected => "protected TLV area",
                TlvArea::Unprotected => "unprotected TLV area",
            },
            found: bytes.len() as u64,
            required: end as u64,
        });
    }
    let mut entries = Vec::new();
    let mut pos = off + 4;
    while pos < end {
        let left = (end - pos) as u64;
        if left < 4 {
            return Err(ImageError::TlvOverrun {
                area,
                kind: 0,
                offset: pos as u64,
                found: left,
                required: 4,
            });
        }
        let kind = u16_at(bytes, pos);
        let len = usize::from(u16_at(bytes, pos + 2));
        if left < 4 + len as u64 {
            return Err(ImageError::TlvOverrun {
                area,
                kind,
                offset: pos as u64,
                found: left,
                required: 4 + len as u64,
            });
        }
        entries.push(Tlv {
            kind,
            value: bytes[pos + 4..pos + 4 + len].to_vec(),
        });
        pos += 4 + len;
    }
    Ok((entries, end))
}

/// Checks KEYHASH/PUBKEY against `key`, then looks for an ED25519 TLV that verifies over
/// `message` (the digest, or the hashed region for pure signatures).
pub(crate) fn verify_signature(
    unprotected: &[Tlv],
    key: &VerifyingKey,
    message: &[u8],
) -> Result<(), ImageError> {
    let value = |kind| {
        unprotected
            .iter()
            .find(|t| t.kind == kind)
            .map(|t| t.value.as_slice())
    };
    let required_hash = key_hash(key);
    if let Some(found) = value(tlv::KEYHASH) {
        // imgtool hashes the key with the image's hash algorithm: SHA-512 for pure
        // ed25519 images, SHA-256 otherwise. The TLV's length says which.
        let required: Vec<u8> = if found.len() == 64 {
            sha2::Sha512::digest(spki_der(key)).to_vec()
        } else {
            required_hash.to_vec()
        };
        if found != required {
            return Err(ImageError::KeyMismatch {
                found: hex::encode(found),
                required: hex::encode(required),
            });
        }
    }
    if let Some(found) = value(tlv::PUBKEY)
        && found != spki_der(key)
    {
        return Err(ImageError::KeyMismatch {
            found: hex::encode(sha256(found)),
            required: hex::encode(required_hash),
        });
    }
    let mut any = false;
    for t in unprotected.iter().filter(|t| t.kind == tlv::ED25519) {
        any = true;
        let sig =
            <[u8; 64]>::try_from(t.value.as_slice()).map_err(|_| ImageError::BadTlvLength {
                name: "ED25519",
                kind: tlv::ED25519,
                found: t.value.len(),
                required: 64,
            })?;
        if key
            .verify_strict(message, &Signature::from_bytes(&sig))
            .is_ok()
        {
            return Ok(());
        }
    }
    if !any {
        return Err(ImageError::MissingTlv {
            name: "ED25519",
            kind: tlv::ED25519,
            area: TlvArea::Unprotected,
        });
    }
    Err(ImageError::BadSignature {
        key: hex::encode(required_hash),
    })
}

/// The DEPENDENCY TLVs among `protected` that are well formed.
pub(crate) fn dependencies_of(protected: &[Tlv]) -> Vec<Dependency> {
    protected
        .iter()
        .filter(|t| t.kind == tlv::DEPENDENCY && t.value.len() == Dependency::LEN)
        .map(|t| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&t.value[4..12]);
            Dependency {
                image: t.value[0],
                min_version: ImageVersion::from_bytes(v),
            }
        })
        .collect()
}

/// The SEC_CNT value among `protected`, if well formed.
pub(crate) fn security_counter_of(protected: &[Tlv]) -> Option<u32> {
    protected
        .iter()
        .find(|t| t.kind == tlv::SEC_CNT)
        .and_then(|t| <[u8; 4]>::try_from(t.value.as_slice()).ok())
        .map(u32::from_le_bytes)
}

/// Checks the lengths of the protected TLVs this crate interprets.
pub(crate) fn check_protected_of(protected: &[Tlv]) -> Result<(), ImageError> {
    for t in protected {
        let (name, required) = match t.kind {
            tlv::DEPENDENCY => ("DEPENDENCY", Dependency::LEN),
            tlv::SEC_CNT => ("SEC_CNT", 4),
            _ => continue,
        };
        if t.value.len() != required {
            return Err(ImageError::BadTlvLength {
                name,
                kind: t.kind,
                found: t.value.len(),
                required,
            });
        }
    }
    Ok(())
}

/// Compares the SHA256 TLV among `unprotected` with `computed`.
pub(crate) fn check_hash_tlv(
    unprotected: &[Tlv],
    computed: [u8; 32],
) -> Result<[u8; 32], ImageError> {
    let value = unprotected
        .iter()
        .find(|t| t.kind == tlv::SHA256)
        .map(|t| t.value.as_slice())
        .ok_or(ImageError::MissingTlv {
            name: "SHA256",
            kind: tlv::SHA256,
            area: TlvArea::Unprotected,
        })?;
    let found = <[u8; 32]>::try_from(value).map_err(|_| ImageError::BadTlvLength {
        name: "SHA256",
        kind: tlv::SHA256,
        found: value.len(),
        required: 32,
    })?;
    if found != computed {
        return Err(ImageError::HashMismatch {
            found: hex::encode(found),
            required: hex::encode(computed),
        });
    }
    Ok(computed)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 of a key's SubjectPublicKeyInfo DER: what imgtool puts in the KEYHASH TLV.
pub fn key_hash(key: &VerifyingKey) -> [u8; 32] {
    sha256(&spki_der(key))
}

pub(crate) fn spki_der(key: &VerifyingKey) -> Vec<u8> {
    use ed25519_dalek::pkcs8::EncodePublicKey;
    // Encoding a valid ed25519 key as SPKI cannot fail: it is fixed-size DER.
    key.to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .unwrap_or_default()
}

impl<'a> Image<'a> {
    /// Parses an image: header, payload bounds, the protected TLV area when the header
    /// declares one, and the unprotected TLV area. Bytes after the unprotected area (flash
    /// padding, a slot trailer) are allowed and available from [`Image::trailing`].
    pub fn parse(bytes: &'a [u8]) -> Result<Image<'a>, ImageError> {
        let header = ImageHeader::parse(bytes)?;
        let tlv_off = header.tlv_offset();
        if (bytes.len() as u64) < tlv_off {
            return Err(ImageError::Truncated {
                what: "image header and payload",
                found: bytes.len() as u64,
                required: tlv_off,
            });
        }
        // Fits in usize now: it is no larger than the slice.
        let tlv_off = tlv_off as usize;
        let mut protected = Vec::new();
        let mut unprot_off = tlv_off;
        if header.protect_tlv_size > 0 {
            let (entries, end) = parse_area(bytes, tlv_off, TlvArea::Protected)?;
            let found = (end - tlv_off) as u16;
            if found != header.protect_tlv_size {
                return Err(ImageError::ProtectedSizeMismatch {
                    found,
                    required: header.protect_tlv_size,
                });
            }
            protected = entries;
            unprot_off = end;
        } else if bytes.len() >= tlv_off + 2 && u16_at(bytes, tlv_off) == tlv::PROT_INFO_MAGIC {
            // A protected area the header does not declare is outside the hash: MCUboot
            // would refuse the image, and so do we rather than read unhashed metadata.
            return Err(ImageError::ProtectedSizeMismatch {
                found: if bytes.len() >= tlv_off + 4 {
                    u16_at(bytes, tlv_off + 2)
                } else {
                    0
                },
                required: 0,
            });
        }
        let (unprotected, end) = parse_area(bytes, unprot_off, TlvArea::Unprotected)?;
        Ok(Image {
            bytes,
            header,
            protected,
            unprotected,
            end,
        })
    }

    /// The header.
    pub fn header(&self) -> &ImageHeader {
        &self.header
    }

    /// The image version from the header.
    pub fn version(&self) -> ImageVersion {
        self.header.version
    }

    /// The TLVs of the protected area, in file order.
    pub fn protected_tlvs(&self) -> &[Tlv] {
        &self.protected
    }

    /// The TLVs of the unprotected area, in file order.
    pub fn tlvs(&self) -> &[Tlv] {
        &self.unprotected
    }

    /// The payload (the firmware proper, after the header padding).
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[usize::from(self.header.hdr_size)..self.header.tlv_offset() as usize]
    }

    /// The bytes the SHA256 TLV covers: header, padding, payload, protected TLV area.
    pub fn hashed_region(&self) -> &'a [u8] {
        &self.bytes[..self.header.unprotected_tlv_offset() as usize]
    }

    /// The image proper: header, payload and both TLV areas.
    pub fn as_bytes(&self) -> &'a [u8] {
        &self.bytes[..self.end]
    }

    /// Bytes of the image proper (header + payload + TLVs).
    pub fn len(&self) -> usize {
        self.end
    }

    /// Always false: an image has at least a header. Present because `len` is.
    pub fn is_empty(&self) -> bool {
        self.end == 0
    }

    /// Bytes after the unprotected TLV area (e.g. erased flash `0xff`, a slot trailer).
    pub fn trailing(&self) -> &'a [u8] {
        &self.bytes[self.end..]
    }

    fn unprotected_value(&self, kind: u16) -> Option<&[u8]> {
        self.unprotected
            .iter()
            .find(|t| t.kind == kind)
            .map(|t| t.value.as_slice())
    }

    /// The SHA256 TLV's value, if present and 32 bytes long.
    pub fn hash_tlv(&self) -> Option<[u8; 32]> {
        self.unprotected_value(tlv::SHA256)
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
    }

    /// SHA-256 over header, payload and protected TLV area, as MCUboot computes it.
    pub fn compute_hash(&self) -> [u8; 32] {
        sha256(self.hashed_region())
    }

    /// Checks the SHA256 TLV against the image and returns the hash.
    pub fn verify_hash(&self) -> Result<[u8; 32], ImageError> {
        check_hash_tlv(&self.unprotected, self.compute_hash())
    }

    /// Verifies the image as MCUboot would with `key` as its only key: the SHA256 TLV must
    /// match (images hashed with `--sha 512` are not supported and report a missing SHA256
    /// TLV), a KEYHASH or PUBKEY TLV (if present) must name `key`, and an ED25519 TLV must
    /// hold a signature by `key` over the SHA-256 digest (or, when a SIG_PURE TLV is present,
    /// over the hashed region itself).
    pub fn verify_ed25519(&self, key: &VerifyingKey) -> Result<(), ImageError> {
        let pure = self.unprotected_value(tlv::SIG_PURE).is_some();
        if pure {
            verify_signature(&self.unprotected, key, self.hashed_region())
        } else {
            let digest = self.verify_hash()?;
            verify_signature(&self.unprotected, key, &digest)
        }
    }

    /// The DEPENDENCY TLVs of the protected area. Malformed entries (not 12 bytes) are
    /// skipped here; [`Image::check_protected`] reports them.
    ///
    /// Only the protected area is read: a dependency outside the hash could be forged.
    pub fn dependencies(&self) -> Vec<Dependency> {
        dependencies_of(&self.protected)
    }

    /// The SEC_CNT TLV of the protected area, if present and 4 bytes long.
    pub fn security_counter(&self) -> Option<u32> {
        security_counter_of(&self.protected)
    }

    /// Checks the lengths of the protected TLVs this crate interprets (DEPENDENCY 12 bytes,
    /// SEC_CNT 4 bytes), so a caller relying on [`Image::dependencies`] or
    /// [`Image::security_counter`] can refuse an image whose entries were skipped.
    pub fn check_protected(&self) -> Result<(), ImageError> {
        check_protected_of(&self.protected)
    }
}
