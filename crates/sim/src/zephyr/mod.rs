//! A Zephyr application with MCUmgr on its service UART and MCUboot below it: the device side
//! of SMP in application mode. Sans-IO: a request in; a reply, the flash time it cost and
//! whether the device restarts, out.
//!
//! The dispatch follows Zephyr's `subsys/mgmt/mcumgr/smp/src/smp.c`: only read and write
//! requests are answered; a request newer than SMP v2 gets `{"rc": 13}`; a command the device
//! lacks, or a read of a write-only command, gets `{"rc": 8}` (the generic `MGMT_ERR` form,
//! to v1 and v2 requests alike); a body that does not decode gets `{"rc": 3}`. Errors a
//! group's handler reports are group errors ([`Packet::group_error`]): `{"err": {"group",
//! "rc"}}` to a v2 request, the translated `MGMT_ERR` code to a v1 request. One module per
//! group, as Zephyr has them: [`os_mgmt`], [`img_mgmt`], and [`vendor`] for the model's own
//! identity group.

mod img_mgmt;
mod os_mgmt;
mod vendor;

use fieldkit_profile::Profile;
use fieldkit_wire::smp::{MGMT_ERR_ENOTSUP, Packet, image, os};

use crate::fault::Faults;
use crate::smp::{Flash, Reply};
use crate::state::DeviceState;

/// `MGMT_ERR_UNSUPPORTED_TOO_NEW`: a request of a newer SMP version than v2.
const MGMT_ERR_UNSUPPORTED_TOO_NEW: i32 = 13;

/// A simulated Zephyr device in application mode.
#[derive(Debug)]
pub struct ZephyrDevice {
    /// Persistent state.
    pub state: DeviceState,
    profile: Profile,
    faults: Faults,
    /// The upload in progress, kept in RAM like Zephyr's `g_img_mgmt_state`: a reboot
    /// forgets it.
    upload: Option<img_mgmt::Upload>,
    /// Identity reads answered so far (for [`crate::fault::Fault::BatteryDrain`]).
    identity_reads: u64,
}

impl ZephyrDevice {
    /// A device of `profile` with `state`.
    pub fn new(profile: Profile, state: DeviceState, faults: Faults) -> ZephyrDevice {
        ZephyrDevice {
            state,
            profile,
            faults,
            upload: None,
            identity_reads: 0,
        }
    }

    /// The size of one SMP buffer (MCUmgr params `buf_size`): the largest decoded frame.
    pub fn buf_size(&self) -> usize {
        self.profile.simulator.buf_size as usize
    }

    /// The number of SMP buffers (MCUmgr params `buf_count`).
    pub fn buf_count(&self) -> usize {
        self.profile.simulator.buf_count.max(1) as usize
    }

    /// Forgets RAM state, as a reboot does; the bootloader then runs.
    pub fn reboot(&mut self) -> Vec<String> {
        self.upload = None;
        self.state.boot()
    }

    /// The image state as img_mgmt reports it.
    pub fn image_state(&self) -> image::StateRsp {
        img_mgmt::state(self)
    }

    fn flash(&self) -> Flash {
        Flash {
            erase_us_per_sector: self.profile.simulator.erase_us_per_sector,
            write_kib_per_s: self.profile.simulator.write_kib_per_s,
        }
    }

    /// Handles one request.
    pub fn handle(&mut self, req: &Packet) -> Reply {
        let mut reply = Reply::new();
        let h = &req.header;
        if h.op.is_response() {
            return reply;
        }
        if h.version > 1 {
            reply.packet = Some(Packet::mgmt_error(h, MGMT_ERR_UNSUPPORTED_TOO_NEW));
            return reply;
        }
        let packet = match h.group {
            os::GROUP => os_mgmt::handle(self, req, &mut reply),
            image::GROUP => img_mgmt::handle(self, req, &mut reply),
            g if vendor::is_identity_group(self, g) => Some(vendor::handle(self, req)),
            _ => Some(Packet::mgmt_error(h, MGMT_ERR_ENOTSUP)),
        };
        reply.packet = packet;
        reply
    }
}
