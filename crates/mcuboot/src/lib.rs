//! The MCUboot image format, read and written without IO.
//!
//! An MCUboot image is a 32-byte little-endian header (magic `0x96f3b83d`, sizes, flags,
//! version), padding up to `hdr_size`, the payload, an optional *protected* TLV area (magic
//! `0x6908`) and an *unprotected* TLV area (magic `0x6907`). The SHA256 TLV covers everything
//! before the unprotected area; the ED25519 TLV signs that digest. Anything a device must trust
//! (security counter, dependencies) lives in the protected area, so this crate reads those
//! only from there.
//!
//! Design choices:
//! - **Bytes in, values out.** [`Image::parse`] borrows a slice and checks structure only:
//!   every offset is computed in `u64` and compared against the slice before it is used, so
//!   hostile sizes (a 4 GiB `img_size`, a TLV length past the end) are typed errors, never
//!   panics. Verification ([`Image::verify_hash`], [`Image::verify_ed25519`]) is separate,
//!   so an inspector can show a broken image and say what is broken.
//! - **Trailing bytes are tolerated**: a slot read back from flash ends in `0xff` padding and a
//!   trailer. [`Image::len`] says where the image proper ends, [`Image::trailing`] what follows.
//! - **imgtool is the reference.** [`sign`] lays out an image exactly as
//!   `imgtool sign --pad-header` does (0xff header padding, SEC_CNT before DEPENDENCY, then
//!   SHA256, KEYHASH, ED25519), so our images pass `imgtool verify` and are byte-identical to
//!   imgtool's for the same key. KEYHASH is the SHA-256 of the key's SubjectPublicKeyInfo DER,
//!   as imgtool computes it, not of the raw 32-byte key.
//! - **Streaming**: [`ImageStream`] verifies an image fed in chunks while holding only its
//!   header and TLV areas, and yields the MCUboot hash and the whole file's SHA-256 from one
//!   pass.
//! - **Versions** have three spellings (imgtool `1.2.3+4`, SMP `1.2.3.4`, semver); see
//!   [`ImageVersion`].
//!
//! Architecture invariant: this crate opens no file, runs no process and knows nothing of
//! packages, trust roots or devices; `fieldkit-trust` builds policy on top of it.

mod error;
mod image;
mod sign;
mod stream;
mod version;

pub use error::{ImageError, TlvArea};
pub use image::{Dependency, Image, ImageHeader, Tlv, flags, key_hash, tlv};
pub use sign::{SignOptions, sign};
pub use stream::{ImageStream, StreamedImage};
pub use version::{ImageVersion, VersionError};

#[cfg(test)]
mod tests;
