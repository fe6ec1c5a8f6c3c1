//! Making an image the way `imgtool sign --pad-header` does, byte for byte.

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use crate::error::ImageError;
use crate::image::{Dependency, ImageHeader, flags, key_hash, tlv};
use crate::version::ImageVersion;

/// What to put in an image besides its payload.
#[derive(Debug, Clone)]
pub struct SignOptions<'k> {
    /// The version written to the header.
    pub version: ImageVersion,
    /// Bytes reserved for the header before the payload (imgtool's `--header-size`; Zephyr
    /// uses 0x200). The gap after the 32-byte header is filled with `0xff`, as
    /// `--pad-header` does.
    pub header_size: u16,
    /// Load address; a non-zero value also sets the `RAM_LOAD` flag, as imgtool does.
    pub load_addr: u32,
    /// SEC_CNT TLV value (protected).
    pub security_counter: Option<u32>,
    /// DEPENDENCY TLVs (protected), in order.
    pub dependencies: Vec<Dependency>,
    /// Signing key; `None` makes an image with the SHA256 TLV only.
    pub key: Option<&'k SigningKey>,
}

impl SignOptions<'_> {
    /// Options for `version` with imgtool's Zephyr defaults: 0x200-byte header, load address
    /// 0, no security counter, no dependencies, unsigned.
    pub fn new(version: ImageVersion) -> Self {
        SignOptions {
            version,
            header_size: 0x200,
            load_addr: 0,
            security_counter: None,
            dependencies: Vec::new(),
            key: None,
        }
    }
}

fn push_tlv(area: &mut Vec<u8>, kind: u16, value: &[u8]) {
    area.extend_from_slice(&kind.to_le_bytes());
    // Callers only pass values of at most 91 bytes (dependency, counter, hash, signature).
    area.extend_from_slice(&(value.len() as u16).to_le_bytes());
    area.extend_from_slice(value);
}

fn finish_area(magic: u16, entries: Vec<u8>) -> Result<Vec<u8>, ImageError> {
    let total = entries.len() + 4;
    let total16 = u16::try_from(total).map_err(|_| ImageError::TooLarge {
        what: "TLV area",
        found: total as u64,
        required: u64::from(u16::MAX),
    })?;
    let mut area = Vec::with_capacity(total);
    area.extend_from_slice(&magic.to_le_bytes());
    area.extend_from_slice(&total16.to_le_bytes());
    area.extend(entries);
    Ok(area)
}

/// Makes a complete image of `payload`: header, payload, protected TLVs (SEC_CNT, then
/// DEPENDENCY in order) and unprotected TLVs (SHA256, then KEYHASH and ED25519 when a key is
/// given). The layout matches `imgtool sign --pad-header`, so `imgtool verify` accepts it and,
/// ed25519 being deterministic, the bytes equal imgtool's for the same inputs.
///
/// Fails only when a size does not fit its header field: a header smaller than 32 bytes, a
/// payload over 4 GiB, or more dependencies than the 64 KiB protected area holds.
pub fn sign(payload: &[u8], opts: &SignOptions<'_>) -> Result<Vec<u8>, ImageError> {
    if usize::from(opts.header_size) < ImageHeader::SIZE {
        return Err(ImageError::HeaderTooSmall {
            found: opts.header_size,
            required: ImageHeader::SIZE as u16,
        });
    }
    let img_size = u32::try_from(payload.len()).map_err(|_| ImageError::TooLarge {
        what: "payload",
        found: payload.len() as u64,
        required: u64::from(u32::MAX),
    })?;

    let mut prot = Vec::new();
    if let Some(counter) = opts.security_counter {
        push_tlv(&mut prot, tlv::SEC_CNT, &counter.to_le_bytes());
    }
    for dep in &opts.dependencies {
        push_tlv(&mut prot, tlv::DEPENDENCY, &dep.to_bytes());
    }
    let prot = if prot.is_empty() {
        Vec::new()
    } else {
        finish_area(tlv::PROT_INFO_MAGIC, prot)?
    };

    let header = ImageHeader {
        load_addr: opts.load_addr,
        hdr_size: opts.header_size,
        // finish_area has checked the area fits in a u16.
        protect_tlv_size: prot.len() as u16,
        img_size,
        flags: if opts.load_addr != 0 {
            flags::RAM_LOAD
        } else {
            0
        },
        version: opts.version,
    };

    let mut out = Vec::with_capacity(usize::from(opts.header_size) + payload.len() + 256);
    out.extend_from_slice(&header.to_bytes());
    out.resize(usize::from(opts.header_size), 0xff);
    out.extend_from_slice(payload);
    out.extend_from_slice(&prot);

    let digest: [u8; 32] = Sha256::digest(&out).into();
    let mut unprot = Vec::new();
    push_tlv(&mut unprot, tlv::SHA256, &digest);
    if let Some(key) = opts.key {
        push_tlv(&mut unprot, tlv::KEYHASH, &key_hash(&key.verifying_key()));
        push_tlv(&mut unprot, tlv::ED25519, &key.sign(&digest).to_bytes());
    }
    out.extend(finish_area(tlv::INFO_MAGIC, unprot)?);
    Ok(out)
}
