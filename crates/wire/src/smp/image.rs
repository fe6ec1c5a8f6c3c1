//! Image management group (1): slot state read and write, upload, erase.
//!
//! Field order in the request types follows CBOR canonical key order (shorter keys first),
//! the order the Python `smp` package writes, so our requests are byte-identical to its.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::{Header, to_cbor};

/// The image management group id.
pub const GROUP: u16 = 1;
/// Image state: read lists the slots, write marks an image for test or confirms it.
pub const STATE: u8 = 0;
/// Upload a chunk of an image into the secondary slot (write).
pub const UPLOAD: u8 = 1;
/// Erase a slot (write).
pub const ERASE: u8 = 5;

/// One image slot as reported by a state read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageStateEntry {
    /// Image number; Zephyr and MCUboot leave it out on single-image devices (image 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<u32>,
    /// Slot within the image: 0 primary (running), 1 secondary.
    pub slot: u32,
    /// Version as `major.minor.revision.build`.
    pub version: String,
    /// SHA-256 from the image's TLVs, the key for state writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<ByteBuf>,
    /// The image may be booted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub bootable: bool,
    /// The image will be swapped in at the next reset.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pending: bool,
    /// The image is confirmed (will not be reverted).
    #[serde(default, skip_serializing_if = "is_false")]
    pub confirmed: bool,
    /// The image is running.
    #[serde(default, skip_serializing_if = "is_false")]
    pub active: bool,
    /// The pending swap is permanent (confirmed in advance), not a test.
    #[serde(default, skip_serializing_if = "is_false")]
    pub permanent: bool,
}

impl ImageStateEntry {
    /// The image number, 0 when the device left it out.
    pub fn image_number(&self) -> u32 {
        self.image.unwrap_or(0)
    }
}

/// Image state reply (read, or the answer to a state write).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StateRsp {
    /// Every slot that holds an image.
    #[serde(default)]
    pub images: Vec<ImageStateEntry>,
    /// Legacy split-image status; Zephyr sends 0.
    #[serde(
        default,
        rename = "splitStatus",
        skip_serializing_if = "Option::is_none"
    )]
    pub split_status: Option<i32>,
}

/// Image state write: with `confirm` false, test the image with `hash` at the next reset;
/// with `confirm` true, make it (or the running image, without `hash`) permanent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StateWriteReq {
    /// The image to act on; the running image when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<ByteBuf>,
    /// Confirm (true) or test (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<bool>,
}

/// One upload chunk. The first chunk (`off` 0) carries `len` and usually `sha`, and
/// `image` when not image 0.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UploadReq {
    /// Total image length in bytes (first chunk only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u32>,
    /// Offset of `data` within the image.
    pub off: u32,
    /// SHA-256 of the whole image (first chunk only); the same `sha` resumes an upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<ByteBuf>,
    /// The chunk's bytes.
    pub data: ByteBuf,
    /// Target image number (first chunk only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<u32>,
    /// Refuse images not newer than the running one (first chunk only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<bool>,
}

/// Upload reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UploadRsp {
    /// The offset the device expects next (after a wrong `off`, the one it wants).
    pub off: u32,
    /// On the last chunk: whether the uploaded image's SHA-256 matches `sha`.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matched: Option<bool>,
}

/// Erase request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EraseReq {
    /// The slot to erase; the secondary slot when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
}

/// Largest `data` length such that the encoded [`UploadReq`] packet (8-byte header + CBOR)
/// fits in `max_packet` bytes, given the other fields of this chunk (`upgrade` absent).
/// Zero when not even an empty chunk fits; never more than a 16-bit body length allows.
///
/// `max_packet` is what the device accepts, not its `buf_size`: see
/// [`crate::framing::Framing::max_packet`].
pub fn max_upload_data(
    max_packet: usize,
    image: Option<u32>,
    len: Option<u32>,
    off: u32,
    sha: Option<&[u8]>,
) -> usize {
    let empty = UploadReq {
        len,
        off,
        sha: sha.map(ByteBuf::from),
        data: ByteBuf::new(),
        image,
        upgrade: None,
    };
    // The empty chunk spends one byte on the byte-string head of `data`; a chunk of `n`
    // bytes spends `head(n) + n` instead.
    let fixed = Header::SIZE + to_cbor(&empty).len() - 1;
    // The header's 16-bit length caps the body whatever the buffer.
    let max_packet = max_packet.min(Header::SIZE + usize::from(u16::MAX));
    let Some(room) = max_packet.checked_sub(fixed) else {
        return 0;
    };
    // Try the largest head first: the answer is the biggest `n` whose own head fits.
    [
        (9, u64::MAX),
        (5, u64::from(u32::MAX)),
        (3, 0xffff),
        (2, 0xff),
        (1, 23),
    ]
    .into_iter()
    .filter_map(|(head, max_n)| {
        let n = room.checked_sub(head)? as u64;
        Some(n.min(max_n) as usize)
    })
    .max()
    .unwrap_or(0)
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smp::{Op, Packet, from_cbor};

    #[test]
    fn max_upload_data_is_tight() {
        let sha = [0x5a; 32];
        let firsts = [
            (Some(1), Some(100_000), 0, Some(&sha[..])),
            (None, None, 4096, None),
        ];
        for buf_size in (20..600).chain([1024, 2048, 2475, 4096, 65_535]) {
            for &(image, len, off, sha) in &firsts {
                let n = max_upload_data(buf_size, image, len, off, sha);
                let packet = |n: usize| {
                    let req = UploadReq {
                        len,
                        off,
                        sha: sha.map(ByteBuf::from),
                        data: ByteBuf::from(vec![0; n]),
                        image,
                        upgrade: None,
                    };
                    Packet::request(Op::Write, GROUP, UPLOAD, 0, &req)
                        .encode()
                        .len()
                };
                if n > 0 {
                    assert!(packet(n) <= buf_size, "{buf_size}: {n} does not fit");
                }
                assert!(
                    packet(n + 1) > buf_size,
                    "{buf_size}: {} would fit too",
                    n + 1
                );
            }
        }
        assert_eq!(max_upload_data(5, None, None, 0, None), 0);
    }

    #[test]
    fn state_entry_as_zephyr_sends_it() {
        // Zephyr omits false flags and, on single-image devices, the image number.
        let bytes = to_cbor(&crate::smp::vendor::Map::from([
            ("slot".to_string(), ciborium::Value::from(1)),
            ("version".to_string(), ciborium::Value::from("1.2.3.4")),
            ("pending".to_string(), ciborium::Value::from(true)),
        ]));
        let entry: ImageStateEntry = from_cbor(&bytes).unwrap();
        assert_eq!(
            entry,
            ImageStateEntry {
                slot: 1,
                version: "1.2.3.4".into(),
                pending: true,
                ..Default::default()
            }
        );
        let again: ImageStateEntry = from_cbor(&to_cbor(&entry)).unwrap();
        assert_eq!(again, entry);
    }
}
