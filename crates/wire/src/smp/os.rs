//! OS management group (0): echo, reset, MCUmgr parameters, OS/application info and
//! bootloader info.

use serde::{Deserialize, Deserializer, Serialize};

/// The OS management group id.
pub const GROUP: u16 = 0;
/// Echo a string back (read or write).
pub const ECHO: u8 = 0;
/// Reset the device (write).
pub const RESET: u8 = 5;
/// MCUmgr buffer parameters (read).
pub const PARAMS: u8 = 6;
/// OS/application info, `uname`-like (read).
pub const INFO: u8 = 7;
/// Bootloader info (read).
pub const BOOTLOADER_INFO: u8 = 8;

/// Echo request: the device replies with `d` as `r`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EchoReq {
    /// The string to echo.
    pub d: String,
}

/// Echo reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EchoRsp {
    /// The echoed string.
    pub r: String,
}

/// Reset request; an empty map unless `force` is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResetReq {
    /// Non-zero to reset even if an application hook would veto it. Zephyr versions differ
    /// in sending this as an integer or a boolean; both are accepted.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "u8_or_bool"
    )]
    pub force: Option<u8>,
}

/// MCUmgr parameters reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ParamsRsp {
    /// Size of one SMP buffer: the largest packet (header and CBOR) the device accepts.
    pub buf_size: u32,
    /// Number of SMP buffers.
    pub buf_count: u32,
}

/// OS/application info request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InfoReq {
    /// Format letters as for `uname` (`s` kernel name, `n` node, `r` release, `v` version,
    /// `b` build date, `m` machine, `p` processor, `i` platform, `o` OS, `a` all); the
    /// device's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// OS/application info reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InfoRsp {
    /// The requested fields, space-separated.
    pub output: String,
}

/// Bootloader info request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BootloaderInfoReq {
    /// A bootloader-specific query (MCUboot knows `mode`); the bootloader's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// Bootloader info reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BootloaderInfoRsp {
    /// The bootloader's name, `MCUboot` for MCUboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootloader: Option<String>,
    /// MCUboot's mode (answer to the `mode` query): -1 unknown, 0 single application,
    /// 1 swap using scratch, 2 overwrite only, 3 swap without scratch, 4 direct XIP without
    /// revert, 5 direct XIP with revert, 6 RAM load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<i32>,
    /// Whether MCUboot refuses downgrades (answer to the `mode` query).
    #[serde(
        default,
        rename = "no-downgrade",
        skip_serializing_if = "Option::is_none"
    )]
    pub no_downgrade: Option<bool>,
}

/// A body without fields; serializes to an empty CBOR map (`a0`) and accepts any map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Empty {}

fn u8_or_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Force {
        Int(u8),
        Bool(bool),
    }
    Ok(Option::<Force>::deserialize(d)?.map(|f| match f {
        Force::Int(n) => n,
        Force::Bool(b) => u8::from(b),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smp::{from_cbor, to_cbor};

    #[test]
    fn encodings() {
        assert_eq!(to_cbor(&Empty {}), [0xa0]);
        assert_eq!(to_cbor(&ResetReq::default()), [0xa0]);
        assert_eq!(to_cbor(&ResetReq { force: Some(1) }), b"\xa1\x65force\x01");
        assert_eq!(
            from_cbor::<ResetReq>(b"\xa1\x65force\xf5").unwrap().force,
            Some(1)
        );
        assert_eq!(
            from_cbor::<ResetReq>(b"\xa1\x65force\x00").unwrap().force,
            Some(0)
        );
        assert_eq!(from_cbor::<ResetReq>(&[0xa0]).unwrap().force, None);
        let info = BootloaderInfoRsp {
            bootloader: None,
            mode: Some(3),
            no_downgrade: Some(false),
        };
        let bytes = to_cbor(&info);
        assert_eq!(bytes, b"\xa2\x64mode\x03\x6cno-downgrade\xf4");
        assert_eq!(from_cbor::<BootloaderInfoRsp>(&bytes).unwrap(), info);
        // Unknown fields are ignored.
        assert_eq!(from_cbor::<Empty>(b"\xa1\x61x\x01").unwrap(), Empty {});
    }
}
