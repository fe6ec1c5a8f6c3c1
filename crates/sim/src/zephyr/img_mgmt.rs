//! Image management group (1), after Zephyr's `grp/img_mgmt/src/img_mgmt.c` (upload, erase),
//! `img_mgmt_state.c` (state read and write) and `zephyr_img_mgmt.c`
//! (`img_mgmt_upload_inspect`), with MCUboot in swap mode below.
//!
//! Upload rules: the first chunk (`off` 0) carries `len` and starts with an MCUboot header; a
//! first chunk with the same `sha` as the upload in progress resumes it; a chunk at another
//! offset than expected is answered with the expected one and dropped; data past `len` is an
//! overrun; the reply is `{"off"}` and, on the last chunk, `"match"` (the image check of
//! `CONFIG_IMG_ENABLE_IMAGE_CHECK`): whether the SHA-256 of what landed equals `sha`. Writes
//! are buffered (`flash_img_buffered_write`), so every chunk is acknowledged whole.

use fieldkit_mcuboot::ImageHeader;
use fieldkit_wire::smp::{MGMT_ERR_EINVAL, MGMT_ERR_ENOTSUP, Op, Packet, image, os};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use super::ZephyrDevice;
use crate::smp::{After, Reply};
use crate::state::{ImageSlots, SlotImage, Swap, short_hash};

// Image group error codes (`img_mgmt_err_code_t`).
const IMG_MGMT_ERR_HASH_NOT_FOUND: i32 = 8;
const IMG_MGMT_ERR_NO_FREE_SLOT: i32 = 9;
const IMG_MGMT_ERR_FLASH_WRITE_FAILED: i32 = 12;
const IMG_MGMT_ERR_INVALID_OFFSET: i32 = 20;
const IMG_MGMT_ERR_INVALID_LENGTH: i32 = 21;
const IMG_MGMT_ERR_INVALID_IMAGE_HEADER: i32 = 22;
const IMG_MGMT_ERR_INVALID_IMAGE_HEADER_MAGIC: i32 = 23;
const IMG_MGMT_ERR_INVALID_HASH: i32 = 24;
const IMG_MGMT_ERR_IMAGE_ALREADY_PENDING: i32 = 28;
const IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE: i32 = 30;
const IMG_MGMT_ERR_INVALID_IMAGE_DATA_OVERRUN: i32 = 31;
const IMG_MGMT_ERR_IMAGE_CONFIRMATION_DENIED: i32 = 32;
const IMG_MGMT_ERR_IMAGE_SETTING_TEST_TO_ACTIVE_DENIED: i32 = 33;

/// An upload in progress (`g_img_mgmt_state`).
#[derive(Debug)]
pub(super) struct Upload {
    image: u32,
    len: usize,
    sha: Vec<u8>,
    data: Vec<u8>,
}

pub(super) fn handle(dev: &mut ZephyrDevice, req: &Packet, reply: &mut Reply) -> Option<Packet> {
    let h = &req.header;
    Some(match (h.id, h.op) {
        (image::STATE, Op::Read) => Packet::response(h, &state(dev)),
        (image::STATE, Op::Write) => state_write(dev, req, reply),
        (image::UPLOAD, Op::Write) => return upload(dev, req, reply),
        (image::ERASE, Op::Write) => erase(dev, req, reply),
        _ => Packet::mgmt_error(h, MGMT_ERR_ENOTSUP),
    })
}

/// The image state as `img_mgmt_state_read` reports it in swap mode: per image, the active
/// slot (confirmed unless a revert is due) and the other slot (pending for a test, pending
/// and permanent, or confirmed when it is the image a revert goes back to). The image number
/// is left out on a single-image device.
pub(super) fn state(dev: &ZephyrDevice) -> image::StateRsp {
    let multi = dev.state.images.len() > 1;
    let mut images = Vec::new();
    for slots in &dev.state.images {
        let number = multi.then_some(slots.image);
        if let Some(p) = &slots.primary {
            let confirmed = slots.swap != Swap::Testing;
            images.push(entry(number, 0, p, false, confirmed, true, false));
        }
        if let Some(s) = &slots.secondary {
            let pending = matches!(slots.swap, Swap::PendingTest | Swap::PendingPermanent);
            let permanent = slots.swap == Swap::PendingPermanent;
            let confirmed = slots.swap == Swap::Testing;
            images.push(entry(number, 1, s, pending, confirmed, false, permanent));
        }
    }
    image::StateRsp {
        images,
        split_status: Some(0),
    }
}

fn entry(
    image: Option<u32>,
    slot: u32,
    s: &SlotImage,
    pending: bool,
    confirmed: bool,
    active: bool,
    permanent: bool,
) -> image::ImageStateEntry {
    image::ImageStateEntry {
        image,
        slot,
        version: s.version.clone(),
        hash: hex::decode(&s.hash).ok().map(ByteBuf::from),
        bootable: true,
        pending,
        confirmed,
        active,
        permanent,
    }
}

/// `img_mgmt_state_write` and `img_mgmt_set_next_boot_slot`.
fn state_write(dev: &mut ZephyrDevice, req: &Packet, reply: &mut Reply) -> Packet {
    let h = &req.header;
    let Ok(w) = req.body_as::<image::StateWriteReq>() else {
        return Packet::mgmt_error(h, MGMT_ERR_EINVAL);
    };
    let confirm = w.confirm.unwrap_or(false);
    let err = |rc| Packet::group_error(h, image::GROUP, rc);
    let target = match w.hash.as_ref().filter(|b| !b.is_empty()) {
        None => {
            if !confirm {
                // A test without a hash is invalid.
                return err(IMG_MGMT_ERR_INVALID_HASH);
            }
            None
        }
        Some(b) if b.len() != 32 => return err(IMG_MGMT_ERR_INVALID_HASH),
        Some(b) => {
            let hash = hex::encode(b.as_slice());
            let found = dev.state.images.iter().find_map(|s| {
                if s.primary.as_ref().is_some_and(|p| p.hash == hash) {
                    Some((s.image, 0))
                } else if s.secondary.as_ref().is_some_and(|p| p.hash == hash) {
                    Some((s.image, 1))
                } else {
                    None
                }
            });
            match found {
                Some(t) => Some(t),
                None => return err(IMG_MGMT_ERR_HASH_NOT_FOUND),
            }
        }
    };
    match (target, confirm) {
        // Confirm the running image(s): no hash (a test without one was refused above), or
        // the hash of a primary.
        (None, _) | (Some((_, 0)), true) => {
            if dev.faults.refuse_confirm {
                // An application hook that vetoes the confirmation.
                reply.events.push("confirm refused (fault)".into());
                return err(IMG_MGMT_ERR_IMAGE_CONFIRMATION_DENIED);
            }
            let counter = &mut dev.state.security_counter;
            for s in &mut dev.state.images {
                if target.is_none_or(|(n, _)| n == s.image) {
                    confirm_primary(s, counter, &mut reply.events);
                }
            }
        }
        (Some((_, 0)), false) => return err(IMG_MGMT_ERR_IMAGE_SETTING_TEST_TO_ACTIVE_DENIED),
        (Some((n, _)), confirm) => {
            let s = dev.state.image_mut(n).expect("found above");
            match s.swap {
                // Asking again for the test already set is a no-op.
                Swap::PendingTest if !confirm => {}
                Swap::PendingTest | Swap::PendingPermanent | Swap::Testing => {
                    return err(IMG_MGMT_ERR_IMAGE_ALREADY_PENDING);
                }
                Swap::None => {
                    s.swap = if confirm {
                        Swap::PendingPermanent
                    } else {
                        Swap::PendingTest
                    };
                    reply.events.push(format!(
                        "image {n}: slot 1 marked {}",
                        if confirm {
                            "pending (permanent)"
                        } else {
                            "for test"
                        }
                    ));
                }
            }
        }
    }
    reply.state_changed = true;
    Packet::response(h, &state(dev))
}

fn confirm_primary(s: &mut ImageSlots, counter: &mut u32, events: &mut Vec<String>) {
    if s.swap == Swap::Testing {
        s.swap = Swap::None;
        events.push(format!("image {}: running image confirmed", s.image));
    }
    s.primary_confirmed = true;
    let sec_cnt = s.primary.as_ref().and_then(|p| {
        fieldkit_mcuboot::Image::parse(&p.bytes)
            .ok()?
            .security_counter()
    });
    if let Some(c) = sec_cnt
        && c > *counter
    {
        *counter = c;
        events.push(format!("security counter raised to {c}"));
    }
}

/// `img_mgmt_erase`: the other slot by default; a slot in use (running, or marked for the next
/// boot) is refused.
fn erase(dev: &mut ZephyrDevice, req: &Packet, reply: &mut Reply) -> Packet {
    let h = &req.header;
    let Ok(r) = req.body_as::<image::EraseReq>() else {
        return Packet::mgmt_error(h, MGMT_ERR_EINVAL);
    };
    // `slot` counts slots across images: 1 is image 0's secondary, 3 image 1's.
    let slot = r.slot.unwrap_or(1);
    let image_no = slot / 2;
    let Some(s) = dev.state.image(image_no) else {
        return Packet::group_error(h, image::GROUP, IMG_MGMT_ERR_INVALID_OFFSET);
    };
    if slot.is_multiple_of(2) || s.swap != Swap::None {
        return Packet::group_error(h, image::GROUP, IMG_MGMT_ERR_NO_FREE_SLOT);
    }
    let slot_size = *dev.profile.device.slot_size.get_ref() as usize;
    dev.state
        .image_mut(image_no)
        .expect("checked above")
        .secondary = None;
    dev.upload = None;
    reply.busy = dev.flash().erase_time(slot_size);
    reply.state_changed = true;
    reply
        .events
        .push(format!("image {image_no}: slot 1 erased"));
    Packet::response(h, &os::Empty {})
}

/// `img_mgmt_upload` with `img_mgmt_upload_inspect`.
fn upload(dev: &mut ZephyrDevice, req: &Packet, reply: &mut Reply) -> Option<Packet> {
    let h = &req.header;
    let Ok(u) = req.body_as::<image::UploadReq>() else {
        return Some(Packet::mgmt_error(h, MGMT_ERR_EINVAL));
    };
    let err = |rc| Some(Packet::group_error(h, image::GROUP, rc));
    let off = u.off as usize;
    if off == 0 {
        let image_no = u.image.unwrap_or(0);
        if u.data.len() < ImageHeader::SIZE {
            return err(IMG_MGMT_ERR_INVALID_IMAGE_HEADER);
        }
        let Some(len) = u.len.map(|l| l as usize) else {
            return err(IMG_MGMT_ERR_INVALID_LENGTH);
        };
        if ImageHeader::parse(&u.data).is_err() {
            return err(IMG_MGMT_ERR_INVALID_IMAGE_HEADER_MAGIC);
        }
        let sha = u.sha.map(ByteBuf::into_vec).unwrap_or_default();
        if sha.len() > 32 {
            return err(IMG_MGMT_ERR_INVALID_HASH);
        }
        // The same image again: resume where the upload in progress stands.
        if let Some(up) = &dev.upload
            && !sha.is_empty()
            && up.sha == sha
        {
            reply.events.push(format!(
                "image {}: upload resumed at {}",
                up.image,
                up.data.len()
            ));
            return Some(Packet::response(h, &upload_rsp(up.data.len(), None)));
        }
        let Some(slots) = dev.state.image(image_no) else {
            return err(IMG_MGMT_ERR_NO_FREE_SLOT);
        };
        if slots.swap != Swap::None {
            return err(IMG_MGMT_ERR_NO_FREE_SLOT);
        }
        if len > *dev.profile.device.slot_size.get_ref() as usize {
            return err(IMG_MGMT_ERR_INVALID_IMAGE_TOO_LARGE);
        }
        // The slot already holds exactly this image: nothing to send.
        if sha.len() == 32
            && let Some(held) = &slots.secondary
            && held.bytes.len() == len
            && Sha256::digest(&held.bytes).as_slice() == sha.as_slice()
        {
            dev.upload = None;
            reply
                .events
                .push(format!("image {image_no}: slot 1 already holds this image"));
            return Some(Packet::response(h, &upload_rsp(len, Some(true))));
        }
        reply.busy += dev.flash().erase_time(len);
        dev.state
            .image_mut(image_no)
            .expect("checked above")
            .secondary = None;
        reply.state_changed = true;
        dev.upload = Some(Upload {
            image: image_no,
            len,
            sha,
            data: Vec::with_capacity(len),
        });
        reply
            .events
            .push(format!("image {image_no}: upload started, {len} bytes"));
    }
    let flash = dev.flash();
    let Some(up) = &mut dev.upload else {
        // No upload in progress (e.g. after a reboot): the expected offset is 0.
        return Some(Packet::response(h, &upload_rsp(0, None)));
    };
    if off != up.data.len() {
        return Some(Packet::response(h, &upload_rsp(up.data.len(), None)));
    }
    if off + u.data.len() > up.len {
        dev.upload = None;
        return err(IMG_MGMT_ERR_INVALID_IMAGE_DATA_OVERRUN);
    }
    let image_no = up.image;
    let end = (off + u.data.len()) as u64;
    let hits =
        |at: Option<u64>| at.is_some_and(|at| off as u64 <= at && at < end.max(off as u64 + 1));
    if hits(dev.faults.reboot_at) {
        dev.faults.reboot_at = None;
        reply.after = After::CrashReboot;
        reply.events.push(format!(
            "image {image_no}: device rebooted at offset {off} (fault)"
        ));
        return None;
    }
    if hits(dev.faults.flash_fail_at) {
        reply.events.push(format!(
            "image {image_no}: flash write failed at offset {off} (fault)"
        ));
        // Zephyr cannot recover from a failed write: the upload starts over.
        dev.upload = None;
        return err(IMG_MGMT_ERR_FLASH_WRITE_FAILED);
    }
    up.data.extend_from_slice(&u.data);
    reply.busy += flash.write_time(u.data.len());
    let next = up.data.len();
    if next < up.len {
        return Some(Packet::response(h, &upload_rsp(next, None)));
    }
    let up = dev.upload.take().expect("present");
    let matched = up.sha.len() == 32 && Sha256::digest(&up.data).as_slice() == up.sha.as_slice();
    match SlotImage::from_bytes(up.data) {
        Ok(slot) => {
            reply.events.push(format!(
                "image {image_no}: upload complete, version {} hash {}",
                slot.version,
                short_hash(&slot.hash)
            ));
            dev.state
                .image_mut(image_no)
                .expect("checked above")
                .secondary = Some(slot);
        }
        Err(e) => reply.events.push(format!(
            "image {image_no}: uploaded image is not valid: {e}"
        )),
    }
    reply.state_changed = true;
    Some(Packet::response(h, &upload_rsp(next, Some(matched))))
}

fn upload_rsp(off: usize, matched: Option<bool>) -> image::UploadRsp {
    image::UploadRsp {
        off: off as u32,
        matched,
    }
}
