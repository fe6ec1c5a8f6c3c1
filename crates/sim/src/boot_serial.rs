//! MCUboot's serial recovery: the bootloader mode many devices are serviced in. Sans-IO, like
//! the application device; every rule here follows MCUboot's
//! `boot/boot_serial/src/boot_serial.c`, built with echo, MCUmgr parameters, image hash and
//! image state support (`MCUBOOT_BOOT_MGMT_ECHO`, `..._MCUMGR_PARAMS`,
//! `MCUBOOT_SERIAL_IMG_GRP_HASH`, `..._IMAGE_STATE`) and erasing the slot at the first chunk
//! (no `MCUBOOT_ERASE_PROGRESSIVELY`).
//!
//! - `boot_serial_input`: requests other than read and write are ignored. The OS group
//!   answers echo, "console echo control" (`{"rc": 0}`), reset and MCUmgr parameters
//!   (`buf_count` always 1); the image group answers state read and write and upload.
//!   Anything else, in any group, is `{"rc": 8}`: there is no OS info, no bootloader info, no
//!   vendor group, no erase, no slot info on a single-image device. Errors are always the v1
//!   form `{"rc": N}`, whatever the request's version.
//! - `bs_list`: only slots whose image validates are listed; `image` only on a multi-image
//!   device, no `splitStatus`, false flags left out.
//! - `bs_set`: a hash of another length than 32 is rc 3, an unknown hash rc 5; otherwise the
//!   image's secondary slot is marked pending (`boot_set_pending_multi`: for a test, or
//!   permanent with `confirm`); it never confirms. The reply is the new list.
//! - `bs_upload`: the target is slot 0 of the image, written in place. A chunk at `off` 0
//!   starts over: it needs `len` (rc 3 without it, or if larger than the slot), and erases the
//!   whole slot, so the running image is gone from the first chunk. `sha` and `upgrade` are
//!   ignored and no `match` is ever sent. A chunk at another offset than expected is answered
//!   `{"rc": 0, "off": expected}`; data past `len` is rc 3. Only whole units of the flash
//!   write alignment are written and acknowledged, except the last chunk, whose remainder is
//!   padded: a 989-byte chunk with alignment 4 advances `off` by 988. Every reply carries
//!   `rc`: `{"rc": 0, "off": N}`.
//! - `bs_reset`: `{"rc": 0}`, then a restart; MCUboot then boots the application if slot 0
//!   holds a valid image, or stays in serial recovery if it does not.

use fieldkit_profile::Profile;
use fieldkit_wire::smp::{
    MGMT_ERR_EINVAL, MGMT_ERR_ENOENT, MGMT_ERR_ENOTSUP, Op, Packet, image, os,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::fault::Faults;
use crate::smp::{After, Flash, Reply};
use crate::state::{DeviceState, SlotImage, Swap, short_hash};

/// `NMGR_ID_CONS_ECHO_CTRL`, which MCUboot acknowledges and ignores.
const CONSOLE_ECHO_CONTROL: u8 = 1;

/// MCUboot's serial recovery on a simulated device.
#[derive(Debug)]
pub struct BootSerial {
    /// Persistent state: slot 0 of each image is what this mode writes.
    pub state: DeviceState,
    profile: Profile,
    faults: Faults,
    /// `bs_upload`'s static variables, which a restart clears.
    upload: Upload,
}

/// The upload state `bs_upload` keeps between chunks (`img_num`, `img_size`, `curr_off`),
/// with the bytes written to slot 0 so far.
#[derive(Debug, Default)]
struct Upload {
    image: u32,
    size: usize,
    written: Vec<u8>,
}

/// An upload chunk as `bs_upload` decodes it: `sha` and `upgrade` are not among its keys.
#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    image: Option<u32>,
    data: ByteBuf,
    #[serde(default)]
    len: Option<u64>,
    off: u64,
}

/// Every reply of `bs_upload`.
#[derive(Debug, Serialize)]
struct UploadRsp {
    rc: i32,
    off: u32,
}

/// `bs_rc_rsp`: a reply that is only a return code.
#[derive(Debug, Serialize)]
struct Rc {
    rc: i32,
}

impl BootSerial {
    /// A device of `profile` in serial recovery, with `state`.
    pub fn new(profile: Profile, state: DeviceState, faults: Faults) -> BootSerial {
        BootSerial {
            state,
            profile,
            faults,
            upload: Upload::default(),
        }
    }

    /// The size of the receive buffer (`MCUBOOT_SERIAL_MAX_RECEIVE_SIZE`): the largest decoded
    /// frame.
    pub fn buf_size(&self) -> usize {
        self.profile.simulator.buf_size as usize
    }

    /// The bootloader reassembles one request at a time.
    pub fn buf_count(&self) -> usize {
        1
    }

    /// Forgets the upload, as a restart clears `bs_upload`'s statics, and runs the boot.
    pub fn reboot(&mut self) -> Vec<String> {
        self.upload = Upload::default();
        self.state.boot()
    }

    /// Whether the application would start: slot 0 of every image holds a valid image.
    pub fn application_valid(&self) -> bool {
        self.state.images.iter().all(|i| {
            i.primary
                .as_ref()
                .is_some_and(|p| SlotImage::from_bytes(p.bytes.clone()).is_ok())
        })
    }

    fn flash(&self) -> Flash {
        Flash {
            erase_us_per_sector: self.profile.simulator.erase_us_per_sector,
            write_kib_per_s: self.profile.simulator.write_kib_per_s,
        }
    }

    /// Handles one request (`boot_serial_input`).
    pub fn handle(&mut self, req: &Packet) -> Reply {
        let mut reply = Reply::new();
        let h = &req.header;
        if !matches!(h.op, Op::Read | Op::Write) {
            return reply;
        }
        let not_supported = || {
            Packet::response(
                h,
                &Rc {
                    rc: MGMT_ERR_ENOTSUP,
                },
            )
        };
        reply.packet = Some(match (h.group, h.id) {
            (image::GROUP, image::STATE) if h.op == Op::Read => Packet::response(h, &self.list()),
            (image::GROUP, image::STATE) => self.set(req, &mut reply),
            (image::GROUP, image::UPLOAD) => match self.upload(req, &mut reply) {
                Some(p) => p,
                None => return reply,
            },
            (os::GROUP, os::ECHO) => match req.body_as::<os::EchoReq>() {
                Ok(r) => Packet::response(h, &os::EchoRsp { r: r.d }),
                Err(_) => Packet::response(
                    h,
                    &Rc {
                        rc: MGMT_ERR_EINVAL,
                    },
                ),
            },
            (os::GROUP, CONSOLE_ECHO_CONTROL) => Packet::response(h, &Rc { rc: 0 }),
            (os::GROUP, os::RESET) => {
                reply.after = After::Reboot;
                reply.events.push("reset requested".into());
                Packet::response(h, &Rc { rc: 0 })
            }
            (os::GROUP, os::PARAMS) => Packet::response(
                h,
                &os::ParamsRsp {
                    buf_size: self.buf_size() as u32,
                    buf_count: 1,
                },
            ),
            _ => not_supported(),
        });
        reply
    }

    /// `bs_list`: every slot whose image validates.
    pub fn list(&self) -> image::StateRsp {
        let multi = self.state.images.len() > 1;
        let slots = *self.profile.device.slots.get_ref();
        let mut images = Vec::new();
        for i in &self.state.images {
            let number = multi.then_some(i.image);
            for (slot, held) in [(0, &i.primary), (1, &i.secondary)] {
                if slot >= slots {
                    continue;
                }
                let Some(held) = held else { continue };
                let Ok(valid) = SlotImage::from_bytes(held.bytes.clone()) else {
                    continue;
                };
                // The flags of `boot_swap_type_multi` for each slot.
                let (confirmed, active, pending, permanent) = match (i.swap, slot) {
                    (Swap::None, 0) => (true, true, false, false),
                    (Swap::PendingTest, 0) | (Swap::PendingPermanent, 0) => {
                        (true, false, false, false)
                    }
                    (Swap::PendingTest, _) => (false, false, true, false),
                    (Swap::PendingPermanent, _) => (false, false, true, true),
                    (Swap::Testing, 0) => (false, true, false, false),
                    (Swap::Testing, _) => (true, false, false, false),
                    (Swap::None, _) => (false, false, false, false),
                };
                images.push(image::ImageStateEntry {
                    image: number,
                    slot,
                    version: valid.version.clone(),
                    hash: hex::decode(&valid.hash).ok().map(ByteBuf::from),
                    bootable: true,
                    pending,
                    confirmed,
                    active,
                    permanent,
                });
            }
        }
        image::StateRsp {
            images,
            split_status: None,
        }
    }

    /// `bs_set`.
    fn set(&mut self, req: &Packet, reply: &mut Reply) -> Packet {
        let h = &req.header;
        let rc = |rc| Packet::response(h, &Rc { rc });
        let Ok(w) = req.body_as::<image::StateWriteReq>() else {
            return rc(MGMT_ERR_EINVAL);
        };
        let confirm = w.confirm.unwrap_or(false);
        let hash = w.hash.map(ByteBuf::into_vec).unwrap_or_default();
        let multi = self.state.images.len() > 1;
        if (!hash.is_empty() && hash.len() != 32) || (hash.is_empty() && multi) {
            return rc(MGMT_ERR_EINVAL);
        }
        let image_no = if hash.is_empty() {
            0
        } else {
            let wanted = hex::encode(&hash);
            let listed = self.list();
            match listed.images.iter().find(|e| {
                e.hash
                    .as_ref()
                    .is_some_and(|h| hex::encode(h.as_slice()) == wanted)
            }) {
                Some(e) => e.image_number(),
                None => return rc(MGMT_ERR_ENOENT),
            }
        };
        let Some(slots) = self.state.image_mut(image_no) else {
            return rc(MGMT_ERR_ENOENT);
        };
        // `boot_set_pending_multi` marks the secondary slot, whichever slot the hash named.
        slots.swap = if confirm {
            Swap::PendingPermanent
        } else {
            Swap::PendingTest
        };
        reply.state_changed = true;
        reply.events.push(format!(
            "image {image_no}: slot 1 marked pending{}",
            if confirm { " (permanent)" } else { "" }
        ));
        Packet::response(h, &self.list())
    }

    /// `bs_upload`.
    fn upload(&mut self, req: &Packet, reply: &mut Reply) -> Option<Packet> {
        let h = &req.header;
        let rc = |rc| Some(Packet::response(h, &Rc { rc }));
        let Ok(chunk) = req.body_as::<Chunk>() else {
            return rc(MGMT_ERR_EINVAL);
        };
        let off = usize::try_from(chunk.off).unwrap_or(usize::MAX);
        if off == 0 {
            // The image number is taken from the chunk at offset 0 only.
            self.upload.image = chunk.image.unwrap_or(0);
        }
        if self.state.image(self.upload.image).is_none() {
            // `flash_area_open` of an image that does not exist.
            return rc(MGMT_ERR_EINVAL);
        }
        let slot_size = *self.profile.device.slot_size.get_ref() as usize;
        let image_no = self.upload.image;
        if off == 0 {
            // Offset 0 starts the upload over, whatever came before.
            let Some(len) = chunk.len.and_then(|l| usize::try_from(l).ok()) else {
                return rc(MGMT_ERR_EINVAL);
            };
            if len > slot_size {
                return rc(MGMT_ERR_EINVAL);
            }
            // The whole slot is erased at the first chunk: the running image is gone.
            reply.busy += self.flash().erase_time(slot_size);
            let slots = self.state.image_mut(image_no).expect("checked above");
            let erased = slots.primary.take();
            reply.state_changed = true;
            reply.events.push(format!(
                "image {image_no}: slot 0 erased{}, upload of {len} bytes started",
                erased.map_or(String::new(), |e| format!(" (was {})", e.version))
            ));
            self.upload.size = len;
            self.upload.written.clear();
        } else if off != self.upload.written.len() {
            return Some(self.upload_rsp(h));
        } else if off + chunk.data.len() > self.upload.size {
            return rc(MGMT_ERR_EINVAL);
        }
        let curr = self.upload.written.len();
        let total = self.upload.size;
        if off + chunk.data.len() > total {
            return rc(MGMT_ERR_EINVAL);
        }
        // Only whole units of the write alignment are written, but the last chunk's remainder
        // is padded and written too.
        let align = (*self.profile.device.write_alignment.get_ref() as usize).max(1);
        let mut take = chunk.data.len() - chunk.data.len() % align;
        if curr + chunk.data.len() >= total {
            take = chunk.data.len();
        }
        let end = (curr + take) as u64;
        let hits = |at: Option<u64>| {
            at.is_some_and(|at| curr as u64 <= at && at < end.max(curr as u64 + 1))
        };
        if hits(self.faults.reboot_at) {
            self.faults.reboot_at = None;
            reply.after = After::CrashReboot;
            reply.events.push(format!(
                "image {image_no}: device rebooted at offset {curr} (fault)"
            ));
            return None;
        }
        if hits(self.faults.flash_fail_at) {
            reply.events.push(format!(
                "image {image_no}: flash write failed at offset {curr} (fault)"
            ));
            return rc(MGMT_ERR_EINVAL);
        }
        self.upload.written.extend_from_slice(&chunk.data[..take]);
        reply.busy += self.flash().write_time(take);
        if self.upload.written.len() == total {
            let bytes = std::mem::take(&mut self.upload.written);
            // Slot 0 holds what was written; whether it is an image shows when it is listed
            // or booted.
            let slot = SlotImage::from_bytes(bytes.clone());
            let event = match &slot {
                Ok(s) => format!(
                    "image {image_no}: slot 0 written, version {} hash {}",
                    s.version,
                    short_hash(&s.hash)
                ),
                Err(e) => format!("image {image_no}: slot 0 written, not a valid image: {e}"),
            };
            reply.events.push(event);
            let slots = self.state.image_mut(image_no).expect("checked above");
            slots.primary = slot.ok();
            slots.primary_confirmed = true;
            reply.state_changed = true;
            // `curr_off` stays at the end: a repeated last chunk is answered with it.
            self.upload.written = bytes;
        }
        Some(self.upload_rsp(h))
    }

    fn upload_rsp(&self, h: &fieldkit_wire::smp::Header) -> Packet {
        Packet::response(
            h,
            &UploadRsp {
                rc: 0,
                off: self.upload.written.len() as u32,
            },
        )
    }
}
