//! The device side of MCUmgr SMP: the OS, image and vendor groups as a Zephyr device with
//! MCUboot answers them. Sans-IO: a request packet in, a reply and the time the work took out.

use std::time::Duration;

use ciborium::Value;
use fieldkit_mcuboot::ImageHeader;
use fieldkit_profile::Profile;
use fieldkit_wire::smp::{Header, Op, Packet, image, os, vendor};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::fault::Faults;
use crate::state::{DeviceState, ImageSlots, SlotImage, Swap, short_hash};

// MCUmgr return codes used here (generic table; image group v2 codes where Zephyr has them).
const RC_EINVAL: i32 = 3;
const RC_ENOENT: i32 = 5;
const RC_EBADSTATE: i32 = 6;
const RC_ENOTSUP: i32 = 8;
const IMG_ERR_FLASH_WRITE_FAILED: i32 = 12;
const IMG_ERR_INVALID_LENGTH: i32 = 21;
const IMG_ERR_BAD_MAGIC: i32 = 23;

/// What the device does after handling a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Carry on.
    Nothing,
    /// Reboot once the reply has gone out (OS reset).
    Reboot,
    /// Reboot now, without replying (power glitch mid-upload).
    CrashReboot,
}

/// The result of one request.
#[derive(Debug)]
pub struct Reply {
    /// The reply packet, if any.
    pub packet: Option<Packet>,
    /// Time the device spent on it (flash erase and write).
    pub busy: Duration,
    /// What happens next.
    pub after: After,
    /// Lines for the simulator's own log, and for tests waiting on events.
    pub events: Vec<String>,
    /// Whether persistent state changed and must be saved.
    pub state_changed: bool,
}

/// An upload in progress: kept in RAM, like Zephyr's img_mgmt, so a reboot forgets it.
#[derive(Debug)]
struct Upload {
    image: u32,
    len: usize,
    sha: Option<Vec<u8>>,
    data: Vec<u8>,
}

/// A simulated SMP device.
#[derive(Debug)]
pub struct SmpDevice {
    /// Persistent state.
    pub state: DeviceState,
    profile: Profile,
    faults: Faults,
    upload: Option<Upload>,
}

impl SmpDevice {
    /// A device of `profile` with `state`.
    pub fn new(profile: Profile, state: DeviceState, faults: Faults) -> SmpDevice {
        SmpDevice {
            state,
            profile,
            faults,
            upload: None,
        }
    }

    /// The largest packet the device accepts.
    pub fn buf_size(&self) -> usize {
        self.profile.simulator.buf_size as usize
    }

    /// Forgets RAM state, as a reboot does; the bootloader then runs.
    pub fn reboot(&mut self) -> Vec<String> {
        self.upload = None;
        self.state.boot()
    }

    /// Handles one request.
    pub fn handle(&mut self, req: &Packet) -> Reply {
        let h = &req.header;
        let mut reply = Reply {
            packet: None,
            busy: Duration::ZERO,
            after: After::Nothing,
            events: Vec::new(),
            state_changed: false,
        };
        if h.op.is_response() {
            return reply;
        }
        let packet = match (h.group, h.id, h.op) {
            (os::GROUP, os::ECHO, _) => match req.body_as::<os::EchoReq>() {
                Ok(r) => Packet::response(h, &os::EchoRsp { r: r.d }),
                Err(_) => Packet::error_response(h, RC_EINVAL),
            },
            (os::GROUP, os::RESET, Op::Write) => {
                reply.after = After::Reboot;
                reply.events.push("reset requested".into());
                Packet::response(h, &os::Empty {})
            }
            (os::GROUP, os::PARAMS, Op::Read) => Packet::response(
                h,
                &os::ParamsRsp {
                    buf_size: self.profile.simulator.buf_size,
                    buf_count: self.profile.simulator.buf_count,
                },
            ),
            (os::GROUP, os::INFO, Op::Read) => {
                let format = req.body_as::<os::InfoReq>().ok().and_then(|r| r.format);
                Packet::response(
                    h,
                    &os::InfoRsp {
                        output: self.os_info(format.as_deref()),
                    },
                )
            }
            (os::GROUP, os::BOOTLOADER_INFO, Op::Read) => {
                let query = req
                    .body_as::<os::BootloaderInfoReq>()
                    .ok()
                    .and_then(|r| r.query);
                match query.as_deref() {
                    None => Packet::response(
                        h,
                        &os::BootloaderInfoRsp {
                            bootloader: Some(self.state.bootloader.clone()),
                            ..Default::default()
                        },
                    ),
                    // MCUboot mode 3 is "swap using move", the mode this simulator models.
                    Some("mode") => Packet::response(
                        h,
                        &os::BootloaderInfoRsp {
                            mode: Some(3),
                            no_downgrade: Some(false),
                            ..Default::default()
                        },
                    ),
                    Some(_) => Packet::error_response(h, RC_ENOTSUP),
                }
            }
            (image::GROUP, image::STATE, Op::Read) => Packet::response(h, &self.image_state()),
            (image::GROUP, image::STATE, Op::Write) => self.state_write(req, &mut reply),
            (image::GROUP, image::UPLOAD, Op::Write) => match self.upload(req, &mut reply) {
                Some(p) => p,
                None => return reply,
            },
            (image::GROUP, image::ERASE, Op::Write) => self.erase(req, &mut reply),
            (g, id, Op::Read) if self.is_identity(g, id) => {
                Packet::response(h, &self.identity_map())
            }
            _ => Packet::error_response(h, RC_ENOTSUP),
        };
        reply.packet = Some(packet);
        reply
    }

    fn os_info(&self, format: Option<&str>) -> String {
        let full = format!(
            "Zephyr {} 3.7.0 {} {} arm Zephyr",
            self.state.serial, self.state.model, "cortex-m33"
        );
        match format {
            Some("s") | None => "Zephyr".into(),
            Some("n") => self.state.serial.clone(),
            Some("v") => "3.7.0".into(),
            Some("a") => full,
            Some(other) => format!("Zephyr ({other})"),
        }
    }

    fn is_identity(&self, group: u16, id: u8) -> bool {
        self.profile
            .smp
            .as_ref()
            .is_some_and(|s| *s.identity.group.get_ref() == group && s.identity.command == id)
    }

    fn identity_map(&self) -> vendor::Map {
        let mut map = vendor::Map::new();
        let Some(smp) = &self.profile.smp else {
            return map;
        };
        let s = &self.state;
        let battery = self.faults.battery.unwrap_or(s.battery_percent);
        let therapy = self.faults.therapy_running || s.therapy_running;
        for (field, key) in &smp.identity.fields {
            let value = match field.as_str() {
                "model" => Value::from(s.model.clone()),
                "serial" => Value::from(s.serial.clone()),
                "hardware_revision" => Value::from(s.hardware_revision.clone()),
                "bootloader_version" => Value::from(s.bootloader_version.clone()),
                "battery_percent" => Value::from(battery),
                "therapy_running" => Value::from(therapy),
                "security_counter" => Value::from(s.security_counter),
                _ => continue,
            };
            map.insert(key.get_ref().clone(), value);
        }
        map
    }

    /// The image state as Zephyr's img_mgmt reports it in swap mode: slot 0 runs; during a
    /// test the old image in slot 1 is the confirmed one the bootloader would revert to.
    pub fn image_state(&self) -> image::StateRsp {
        let mut images = Vec::new();
        for slots in &self.state.images {
            if let Some(p) = &slots.primary {
                images.push(entry(
                    slots.image,
                    0,
                    p,
                    false,
                    slots.primary_confirmed,
                    true,
                    false,
                ));
            }
            if let Some(s) = &slots.secondary {
                let pending = matches!(slots.swap, Swap::PendingTest | Swap::PendingPermanent);
                let permanent = slots.swap == Swap::PendingPermanent;
                let confirmed = slots.swap == Swap::Testing;
                images.push(entry(
                    slots.image,
                    1,
                    s,
                    pending,
                    confirmed,
                    false,
                    permanent,
                ));
            }
        }
        image::StateRsp {
            images,
            split_status: Some(0),
        }
    }

    fn state_write(&mut self, req: &Packet, reply: &mut Reply) -> Packet {
        let h = &req.header;
        let Ok(w) = req.body_as::<image::StateWriteReq>() else {
            return Packet::error_response(h, RC_EINVAL);
        };
        let confirm = w.confirm.unwrap_or(false);
        let hash = w.hash.as_ref().map(|b| hex::encode(b.as_slice()));
        let target = hash.as_deref().and_then(|hash| {
            self.state.images.iter().find_map(|s| {
                if s.primary.as_ref().is_some_and(|p| p.hash == hash) {
                    Some((s.image, 0))
                } else if s.secondary.as_ref().is_some_and(|p| p.hash == hash) {
                    Some((s.image, 1))
                } else {
                    None
                }
            })
        });
        match (target, confirm) {
            // Confirm the running image(s): no hash, or the hash of a primary.
            (None, true) if hash.is_none() => {
                if self.faults.refuse_confirm {
                    reply.events.push("confirm refused (fault)".into());
                    return Packet::error_response(h, RC_EBADSTATE);
                }
                let counter = &mut self.state.security_counter;
                for s in &mut self.state.images {
                    confirm_primary(s, counter, &mut reply.events);
                }
            }
            (Some((n, 0)), true) => {
                if self.faults.refuse_confirm {
                    reply.events.push("confirm refused (fault)".into());
                    return Packet::error_response(h, RC_EBADSTATE);
                }
                let counter = &mut self.state.security_counter;
                let s = self
                    .state
                    .images
                    .iter_mut()
                    .find(|i| i.image == n)
                    .expect("found above");
                confirm_primary(s, counter, &mut reply.events);
            }
            (Some((_, 0)), false) => {} // testing the running image is a no-op, as in Zephyr
            (Some((n, _)), confirm) => {
                let s = self.state.image_mut(n).expect("found above");
                if s.swap == Swap::Testing {
                    // Zephyr refuses to mark a new test while the running image is unconfirmed.
                    return Packet::error_response(h, RC_EBADSTATE);
                }
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
            (None, _) => return Packet::error_response(h, RC_ENOENT),
        }
        reply.state_changed = true;
        Packet::response(h, &self.image_state())
    }

    fn erase(&mut self, req: &Packet, reply: &mut Reply) -> Packet {
        let h = &req.header;
        let slot = req
            .body_as::<image::EraseReq>()
            .ok()
            .and_then(|r| r.slot)
            .unwrap_or(1);
        // `slot` counts slots across images: 1 is image 0's secondary, 3 image 1's.
        let image = slot / 2;
        let Some(s) = self.state.image_mut(image) else {
            return Packet::error_response(h, RC_ENOENT);
        };
        if slot.is_multiple_of(2)
            || matches!(
                s.swap,
                Swap::PendingTest | Swap::PendingPermanent | Swap::Testing
            )
        {
            return Packet::error_response(h, RC_EBADSTATE);
        }
        s.secondary = None;
        self.upload = None;
        reply.busy = self.erase_time(self.profile.simulator.slot_size as usize);
        reply.state_changed = true;
        reply.events.push(format!("image {image}: slot 1 erased"));
        Packet::response(h, &os::Empty {})
    }

    fn erase_time(&self, len: usize) -> Duration {
        let sectors = len.div_ceil(4096) as u64;
        Duration::from_micros(sectors * u64::from(self.profile.simulator.erase_us_per_sector))
    }

    fn write_time(&self, len: usize) -> Duration {
        let rate = u64::from(self.profile.simulator.write_kib_per_s.max(1)) * 1024;
        Duration::from_micros(len as u64 * 1_000_000 / rate)
    }

    /// Image upload, with Zephyr img_mgmt's rules: the first chunk carries `len` (and may
    /// carry `sha`) and must start with an MCUboot header; a repeated first chunk with the
    /// same `sha` resumes; an unexpected `off` is answered with the expected one; the last
    /// chunk's reply says whether the whole image matches `sha`.
    fn upload(&mut self, req: &Packet, reply: &mut Reply) -> Option<Packet> {
        let h = &req.header;
        let Ok(u) = req.body_as::<image::UploadReq>() else {
            return Some(Packet::error_response(h, RC_EINVAL));
        };
        let image_no = u.image.unwrap_or(0);
        if self.state.image(image_no).is_none() {
            return Some(Packet::error_response(h, RC_ENOENT));
        }
        let off = u.off as usize;
        if off == 0 {
            let Some(len) = u.len.map(|l| l as usize) else {
                return Some(Packet::error_response(h, IMG_ERR_INVALID_LENGTH));
            };
            if let (Some(up), Some(sha)) = (&self.upload, &u.sha)
                && up.image == image_no
                && up.len == len
                && up.sha.as_deref() == Some(sha.as_slice())
            {
                reply.events.push(format!(
                    "image {image_no}: upload resumed at {}",
                    up.data.len()
                ));
                return Some(Packet::response(h, &upload_rsp(up.data.len(), None)));
            }
            if len > self.profile.simulator.slot_size as usize || len < ImageHeader::SIZE {
                return Some(Packet::error_response(h, IMG_ERR_INVALID_LENGTH));
            }
            if ImageHeader::parse(&u.data).is_err() {
                return Some(Packet::error_response(h, IMG_ERR_BAD_MAGIC));
            }
            let slots = self.state.image(image_no).expect("checked above");
            if matches!(
                slots.swap,
                Swap::PendingTest | Swap::PendingPermanent | Swap::Testing
            ) {
                return Some(Packet::error_response(h, RC_EBADSTATE));
            }
            reply.busy += self.erase_time(len);
            self.state
                .image_mut(image_no)
                .expect("checked above")
                .secondary = None;
            reply.state_changed = true;
            self.upload = Some(Upload {
                image: image_no,
                len,
                sha: u.sha.map(ByteBuf::into_vec),
                data: Vec::with_capacity(len),
            });
            reply
                .events
                .push(format!("image {image_no}: upload started, {len} bytes"));
        }
        let Some(up) = &mut self.upload else {
            // No upload in progress (e.g. after a reboot): Zephyr answers with the offset it
            // expects, 0, so the client starts over.
            return Some(Packet::response(h, &upload_rsp(0, None)));
        };
        if up.image != image_no || off != up.data.len() {
            return Some(Packet::response(h, &upload_rsp(up.data.len(), None)));
        }
        if off + u.data.len() > up.len {
            return Some(Packet::error_response(h, IMG_ERR_INVALID_LENGTH));
        }
        let end = (off + u.data.len()) as u64;
        if let Some(at) = self.faults.reboot_at
            && off as u64 <= at
            && at < end.max(off as u64 + 1)
        {
            self.faults.reboot_at = None;
            reply.after = After::CrashReboot;
            reply.events.push(format!(
                "image {image_no}: device rebooted at offset {off} (fault)"
            ));
            return None;
        }
        if let Some(at) = self.faults.flash_fail_at
            && off as u64 <= at
            && at < end.max(off as u64 + 1)
        {
            reply.events.push(format!(
                "image {image_no}: flash write failed at offset {off} (fault)"
            ));
            return Some(Packet::error_response(h, IMG_ERR_FLASH_WRITE_FAILED));
        }
        up.data.extend_from_slice(&u.data);
        let next = up.data.len();
        reply.busy += self.write_time(u.data.len());
        let total = self.upload.as_ref().map_or(0, |up| up.len);
        if next < total {
            return Some(Packet::response(h, &upload_rsp(next, None)));
        }
        let up = self.upload.take().expect("present");
        let matched = up
            .sha
            .as_ref()
            .map(|sha| Sha256::digest(&up.data).as_slice() == sha.as_slice());
        match SlotImage::from_bytes(up.data) {
            Ok(slot) => {
                reply.events.push(format!(
                    "image {image_no}: upload complete, version {} hash {}",
                    slot.version,
                    short_hash(&slot.hash)
                ));
                self.state
                    .image_mut(image_no)
                    .expect("checked above")
                    .secondary = Some(slot);
            }
            Err(e) => reply.events.push(format!(
                "image {image_no}: uploaded image is not valid: {e}"
            )),
        }
        reply.state_changed = true;
        Some(Packet::response(h, &upload_rsp(next, matched)))
    }
}

fn upload_rsp(off: usize, matched: Option<bool>) -> image::UploadRsp {
    image::UploadRsp {
        off: off as u32,
        matched,
    }
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

fn entry(
    image: u32,
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

/// The reply header for a request, for faults that tamper with it.
pub(crate) fn with_seq(mut p: Packet, seq: u8) -> Packet {
    p.header = Header { seq, ..p.header };
    p
}
