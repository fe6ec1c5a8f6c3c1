//! Verifying an image as it streams past, in bounded memory.
//!
//! A package verifier reads payloads of hundreds of MiB from a tar stream and must not hold
//! them. [`ImageStream`] keeps only the 32-byte header and the TLV areas (at most 128 KiB), and
//! runs a single SHA-256 over the bytes: when the stream crosses the end of the hashed region
//! it finalises a clone of the hasher for the MCUboot hash and keeps going for the hash of the
//! whole file. One pass, two digests, so verification runs at the speed of one SHA-256.

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

use crate::error::{ImageError, TlvArea};
use crate::image::{
    Dependency, ImageHeader, Tlv, check_hash_tlv, check_protected_of, dependencies_of, parse_area,
    security_counter_of, tlv, verify_signature,
};
use crate::version::ImageVersion;

/// The TLV areas can hold at most this many bytes together (two `u16` lengths).
const MAX_TAIL: u64 = 2 * u16::MAX as u64;

/// An image being read chunk by chunk. Feed it with [`ImageStream::update`], then call
/// [`ImageStream::finish`].
#[derive(Debug, Clone, Default)]
pub struct ImageStream {
    hasher: Sha256,
    seen: u64,
    head: Vec<u8>,
    header: Option<ImageHeader>,
    image_hash: Option<[u8; 32]>,
    tail: Vec<u8>,
}

impl ImageStream {
    /// A stream at offset 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The header, once 32 bytes have been fed.
    pub fn header(&self) -> Option<&ImageHeader> {
        self.header.as_ref()
    }

    /// Feeds the next bytes. Fails as soon as the header is readable and malformed, so a
    /// caller can stop reading a bad payload early.
    pub fn update(&mut self, mut data: &[u8]) -> Result<(), ImageError> {
        if self.header.is_none() {
            let n = data.len().min(ImageHeader::SIZE - self.head.len());
            self.head.extend_from_slice(&data[..n]);
            self.hash(&data[..n]);
            data = &data[n..];
            if self.head.len() < ImageHeader::SIZE {
                return Ok(());
            }
            self.header = Some(ImageHeader::parse(&self.head)?);
            self.capture_image_hash();
        }
        if data.is_empty() {
            return Ok(());
        }
        let Some(header) = self.header else {
            return Ok(());
        };
        // Keep the bytes that fall in [tlv_offset, tlv_offset + MAX_TAIL).
        let tail_start = header.tlv_offset();
        let tail_end = tail_start + MAX_TAIL;
        let (pos, end) = (self.seen, self.seen + data.len() as u64);
        let (from, to) = (pos.max(tail_start), end.min(tail_end));
        if from < to {
            self.tail
                .extend_from_slice(&data[(from - pos) as usize..(to - pos) as usize]);
        }
        if self.image_hash.is_none() {
            let region_end = header.unprotected_tlv_offset();
            let n = (region_end - self.seen).min(data.len() as u64) as usize;
            self.hash(&data[..n]);
            self.capture_image_hash();
            data = &data[n..];
        }
        self.hash(data);
        Ok(())
    }

    fn hash(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.seen += data.len() as u64;
    }

    fn capture_image_hash(&mut self) {
        if let Some(h) = self.header
            && self.image_hash.is_none()
            && self.seen == h.unprotected_tlv_offset()
        {
            self.image_hash = Some(self.hasher.clone().finalize().into());
        }
    }

    /// Ends the stream: checks the TLV areas as [`crate::Image::parse`] does.
    pub fn finish(self) -> Result<StreamedImage, ImageError> {
        let Some(header) = self.header else {
            return Err(ImageError::Truncated {
                what: "image header",
                found: self.seen,
                required: ImageHeader::SIZE as u64,
            });
        };
        let tlv_off = header.tlv_offset();
        if self.seen < tlv_off {
            return Err(ImageError::Truncated {
                what: "image header and payload",
                found: self.seen,
                required: tlv_off,
            });
        }
        // Offsets inside `tail` are relative to tlv_off; errors report absolute ones.
        let absolute = |e: ImageError| match e {
            ImageError::Truncated {
                what,
                found,
                required,
            } => ImageError::Truncated {
                what,
                found: self.seen.min(found + tlv_off),
                required: required + tlv_off,
            },
            ImageError::TlvOverrun {
                area,
                kind,
                offset,
                found,
                required,
            } => ImageError::TlvOverrun {
                area,
                kind,
                offset: offset + tlv_off,
                found,
                required,
            },
            other => other,
        };
        let tail = &self.tail;
        let mut protected = Vec::new();
        let mut unprot_off = 0;
        if header.protect_tlv_size > 0 {
            let (entries, end) = parse_area(tail, 0, TlvArea::Protected).map_err(absolute)?;
            let found = end as u16;
            if found != header.protect_tlv_size {
                return Err(ImageError::ProtectedSizeMismatch {
                    found,
                    required: header.protect_tlv_size,
                });
            }
            protected = entries;
            unprot_off = end;
        } else if tail.len() >= 4 && u16::from_le_bytes([tail[0], tail[1]]) == tlv::PROT_INFO_MAGIC
        {
            return Err(ImageError::ProtectedSizeMismatch {
                found: u16::from_le_bytes([tail[2], tail[3]]),
                required: 0,
            });
        }
        let (unprotected, end) =
            parse_area(tail, unprot_off, TlvArea::Unprotected).map_err(absolute)?;
        Ok(StreamedImage {
            header,
            protected,
            unprotected,
            // Present: the stream reached the unprotected area, which starts where the hashed
            // region ends.
            image_hash: self.image_hash.unwrap_or_default(),
            file_sha256: self.hasher.finalize().into(),
            len: tlv_off + end as u64,
            total: self.seen,
        })
    }
}

/// What [`ImageStream::finish`] learnt about an image: everything but the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedImage {
    header: ImageHeader,
    protected: Vec<Tlv>,
    unprotected: Vec<Tlv>,
    image_hash: [u8; 32],
    file_sha256: [u8; 32],
    len: u64,
    total: u64,
}

impl StreamedImage {
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

    /// SHA-256 over header, payload and protected TLVs (what the SHA256 TLV should hold and
    /// what a device reports as the image hash).
    pub fn compute_hash(&self) -> [u8; 32] {
        self.image_hash
    }

    /// SHA-256 of every byte streamed, trailing bytes included: the file's hash.
    pub fn file_sha256(&self) -> [u8; 32] {
        self.file_sha256
    }

    /// Bytes of the image proper (header + payload + TLVs).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: an image has at least a header.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes streamed after the image proper.
    pub fn trailing_len(&self) -> u64 {
        self.total - self.len
    }

    /// Checks the SHA256 TLV; see [`crate::Image::verify_hash`].
    pub fn verify_hash(&self) -> Result<[u8; 32], ImageError> {
        check_hash_tlv(&self.unprotected, self.image_hash)
    }

    /// Checks hash, key and signature; see [`crate::Image::verify_ed25519`]. Pure signatures
    /// sign the whole hashed region, which a stream no longer has: they are refused.
    pub fn verify_ed25519(&self, key: &VerifyingKey) -> Result<(), ImageError> {
        if self.unprotected.iter().any(|t| t.kind == tlv::SIG_PURE) {
            return Err(ImageError::Unsupported {
                what: "pure ed25519 signature in a streamed image",
            });
        }
        let digest = self.verify_hash()?;
        verify_signature(&self.unprotected, key, &digest)
    }

    /// The DEPENDENCY TLVs of the protected area; see [`crate::Image::dependencies`].
    pub fn dependencies(&self) -> Vec<Dependency> {
        dependencies_of(&self.protected)
    }

    /// The SEC_CNT TLV of the protected area.
    pub fn security_counter(&self) -> Option<u32> {
        security_counter_of(&self.protected)
    }

    /// Checks the lengths of DEPENDENCY and SEC_CNT TLVs.
    pub fn check_protected(&self) -> Result<(), ImageError> {
        check_protected_of(&self.protected)
    }
}
