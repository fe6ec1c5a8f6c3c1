//! Return codes in words: the generic `MGMT_ERR` table (SMP v1 `rc`, also used by SMP v2
//! servers for errors outside any group) and the group tables of SMP v2 `err.rc`, and the
//! translation a Zephyr server applies to a group code when the request was SMP v1
//! (`img_mgmt_translate_error_code`, `os_mgmt_translate_error_code`).

/// `MGMT_ERR_EINVAL`: a request that does not decode, or a bad value.
pub const MGMT_ERR_EINVAL: i32 = 3;
/// `MGMT_ERR_ENOENT`: nothing found (MCUboot: no image with that hash).
pub const MGMT_ERR_ENOENT: i32 = 5;
/// `MGMT_ERR_ENOTSUP`: the device has no such command.
pub const MGMT_ERR_ENOTSUP: i32 = 8;
const MGMT_ERR_EUNKNOWN: i32 = 1;
const MGMT_ERR_ENOMEM: i32 = 2;
const MGMT_ERR_EBADSTATE: i32 = 6;

/// The `MGMT_ERR` code a Zephyr server answers an SMP v1 request with, for a group code it
/// would send an SMP v2 request (Zephyr `img_mgmt.c` and `os_mgmt.c`, `*_translate_error_code`).
pub(super) fn translate(group: u16, rc: i32) -> i32 {
    match (group, rc) {
        (super::image::GROUP, 3 | 4) => MGMT_ERR_ENOENT,
        (super::image::GROUP, 9 | 27 | 28) => MGMT_ERR_EBADSTATE,
        (super::image::GROUP, 15) => MGMT_ERR_ENOMEM,
        (super::image::GROUP, 14 | 19 | 20 | 21 | 22 | 24 | 25) => MGMT_ERR_EINVAL,
        (super::os::GROUP, 2) => MGMT_ERR_EINVAL,
        (super::os::GROUP, 3 | 4) => MGMT_ERR_ENOENT,
        _ => MGMT_ERR_EUNKNOWN,
    }
}

/// The meaning of a device return code, if it is documented.
///
/// `version` is the error form as in [`super::SmpError::Device`]: 1 for a top-level `rc`
/// (generic `MGMT_ERR` codes), 2 for an `err` map (codes of `group`: OS 0, image 1).
pub fn describe_rc(group: u16, rc: i32, version: u8) -> Option<&'static str> {
    match (version >= 2, group) {
        (false, _) => generic(rc),
        (true, super::os::GROUP) => os(rc),
        (true, super::image::GROUP) => image(rc),
        (true, _) => None,
    }
}

fn generic(rc: i32) -> Option<&'static str> {
    Some(match rc {
        0 => "ok",
        1 => "unknown error",
        2 => "no memory",
        3 => "invalid value",
        4 => "timeout",
        5 => "not found",
        6 => "bad state: the current state disallows the command",
        7 => "message too large",
        8 => "not supported",
        9 => "corrupt",
        10 => "busy: blocked by another command",
        11 => "access denied",
        12 => "SMP protocol version too old",
        13 => "SMP protocol version too new",
        256.. => "user-defined error",
        _ => return None,
    })
}

fn os(rc: i32) -> Option<&'static str> {
    Some(match rc {
        0 => "ok",
        1 => "unknown OS error",
        2 => "invalid format",
        3 => "query yields no answer",
        4 => "RTC not set",
        5 => "RTC command failed",
        6 => "query response value not valid",
        _ => return None,
    })
}

fn image(rc: i32) -> Option<&'static str> {
    Some(match rc {
        0 => "ok",
        1 => "unknown image error",
        2 => "failed to query the flash area configuration",
        3 => "no image in the slot",
        4 => "the image in the slot has no TLVs",
        5 => "the image in the slot has an invalid TLV type or length",
        6 => "the image in the slot has multiple hash TLVs",
        7 => "the image in the slot has an invalid TLV size",
        8 => "the image in the slot has no hash TLV",
        9 => "no free slot for the image",
        10 => "opening the flash area failed",
        11 => "reading the flash area failed",
        12 => "writing the flash area failed",
        13 => "erasing the flash area failed",
        14 => "invalid slot",
        15 => "out of heap memory",
        16 => "flash context already set",
        17 => "flash context not set",
        18 => "flash area device is NULL",
        19 => "invalid page offset",
        20 => "missing offset",
        21 => "missing length",
        22 => "image smaller than an image header",
        23 => "bad image header magic",
        24 => "invalid hash",
        25 => "image load address does not match the flash area",
        26 => "failed to read the running application's version",
        27 => "the running application is newer than the uploaded image",
        28 => "an image operation is already pending",
        29 => "invalid image vector table",
        30 => "image too large for the slot",
        31 => "more data sent than the declared image size",
        32 => "image confirmation denied",
        33 => "setting the active slot to test is not allowed",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::describe_rc;

    #[test]
    fn tables() {
        let cases = [
            (0, 5, 1, Some("not found")),
            (1, 5, 1, Some("not found")),
            (1, 3, 2, Some("no image in the slot")),
            (0, 3, 2, Some("query yields no answer")),
            (64, 3, 2, None),
            (0, 300, 1, Some("user-defined error")),
            (0, -1, 1, None),
        ];
        for (group, rc, version, want) in cases {
            assert_eq!(
                describe_rc(group, rc, version),
                want,
                "{group} {rc} {version}"
            );
        }
    }
}
