//! OS management group (0), after Zephyr's `grp/os_mgmt/src/os_mgmt.c`: echo (read and
//! write), reset (write only), MCUmgr parameters (read), OS/application info (read) and
//! bootloader info (read).

use fieldkit_wire::smp::{MGMT_ERR_EINVAL, MGMT_ERR_ENOTSUP, Op, Packet, os};

use super::ZephyrDevice;
use crate::smp::{After, Reply};

/// `OS_MGMT_ERR_INVALID_FORMAT`: an OS info format letter the device does not know.
const OS_MGMT_ERR_INVALID_FORMAT: i32 = 2;
/// `OS_MGMT_ERR_QUERY_YIELDS_NO_ANSWER`: a bootloader info query the bootloader does not know.
const OS_MGMT_ERR_QUERY_YIELDS_NO_ANSWER: i32 = 3;

/// The Zephyr version the simulated firmware reports.
const KERNEL_RELEASE: &str = "3.7.0";

pub(super) fn handle(dev: &mut ZephyrDevice, req: &Packet, reply: &mut Reply) -> Option<Packet> {
    let h = &req.header;
    Some(match (h.id, h.op) {
        (os::ECHO, _) => match req.body_as::<os::EchoReq>() {
            Ok(r) => Packet::response(h, &os::EchoRsp { r: r.d }),
            Err(_) => Packet::mgmt_error(h, MGMT_ERR_EINVAL),
        },
        (os::RESET, Op::Write) => match req.body_as::<os::ResetReq>() {
            Ok(_) => {
                reply.after = After::Reboot;
                reply.events.push("reset requested".into());
                Packet::response(h, &os::Empty {})
            }
            Err(_) => Packet::mgmt_error(h, MGMT_ERR_EINVAL),
        },
        (os::PARAMS, Op::Read) => Packet::response(
            h,
            &os::ParamsRsp {
                buf_size: dev.buf_size() as u32,
                buf_count: dev.buf_count() as u32,
            },
        ),
        (os::INFO, Op::Read) => match req.body_as::<os::InfoReq>() {
            Ok(r) => match info(dev, r.format.as_deref().unwrap_or("s")) {
                Some(output) => Packet::response(h, &os::InfoRsp { output }),
                None => Packet::group_error(h, os::GROUP, OS_MGMT_ERR_INVALID_FORMAT),
            },
            Err(_) => Packet::mgmt_error(h, MGMT_ERR_EINVAL),
        },
        (os::BOOTLOADER_INFO, Op::Read) => match req.body_as::<os::BootloaderInfoReq>() {
            Ok(r) => match r.query.as_deref() {
                None => Packet::response(
                    h,
                    &os::BootloaderInfoRsp {
                        bootloader: Some(dev.state.bootloader.clone()),
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
                Some(_) => Packet::group_error(h, os::GROUP, OS_MGMT_ERR_QUERY_YIELDS_NO_ANSWER),
            },
            Err(_) => Packet::mgmt_error(h, MGMT_ERR_EINVAL),
        },
        _ => Packet::mgmt_error(h, MGMT_ERR_ENOTSUP),
    })
}

/// `uname`-like output for the format letters, in Zephyr's order; `None` for a letter Zephyr
/// does not know.
fn info(dev: &ZephyrDevice, format: &str) -> Option<String> {
    let s = &dev.state;
    let field = |c: char| -> Option<String> {
        Some(match c {
            's' => "Zephyr".into(),
            'n' => s.text("serial"),
            'r' => KERNEL_RELEASE.into(),
            'v' => s
                .images
                .first()
                .and_then(|i| i.primary.as_ref())
                .map_or_else(|| "unknown".into(), |p| p.version.clone()),
            'b' => "2026-01-01T00:00:00".into(),
            'm' => "arm".into(),
            'p' => "cortex-m33".into(),
            'i' => s.model.clone(),
            'o' => "Zephyr".into(),
            _ => return None,
        })
    };
    let letters: Vec<char> = if format.contains('a') {
        "snrvbmpio".chars().collect()
    } else {
        format.chars().collect()
    };
    let parts: Option<Vec<String>> = letters.into_iter().map(field).collect();
    Some(parts?.join(" "))
}
