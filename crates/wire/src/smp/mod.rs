//! SMP packets: the 8-byte header, CBOR bodies, and device errors.
//!
//! The header is `res:3 | ver:2 | op:3`, flags, `len` u16, `group` u16, `seq` u8 and `id` u8,
//! all big-endian; `len` counts the CBOR body that follows. Bodies are CBOR maps; the message
//! types of each group live in [`os`], [`image`] and [`vendor`]. A reply may instead carry an
//! error: SMP v1 puts a non-zero `rc` (a generic `MGMT_ERR` code) at the top level, SMP v2 a
//! group-specific `{"err": {"group", "rc"}}`. [`Packet::body_as`] checks for both before
//! decoding the expected type, so callers never mistake an error reply for an empty success.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod image;
pub mod os;
mod rc;
pub mod vendor;

pub use rc::{MGMT_ERR_EINVAL, MGMT_ERR_ENOENT, MGMT_ERR_ENOTSUP, describe_rc};

/// SMP op codes (the low three bits of the header's first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    /// A read request.
    Read = 0,
    /// The reply to a read request.
    ReadRsp = 1,
    /// A write request.
    Write = 2,
    /// The reply to a write request.
    WriteRsp = 3,
}

impl Op {
    /// The op of the reply to a request with this op (replies map to themselves).
    pub fn response(self) -> Op {
        match self {
            Op::Read | Op::ReadRsp => Op::ReadRsp,
            Op::Write | Op::WriteRsp => Op::WriteRsp,
        }
    }

    /// Whether this op is a reply.
    pub fn is_response(self) -> bool {
        matches!(self, Op::ReadRsp | Op::WriteRsp)
    }
}

impl TryFrom<u8> for Op {
    type Error = PacketError;

    fn try_from(op: u8) -> Result<Op, PacketError> {
        match op {
            0 => Ok(Op::Read),
            1 => Ok(Op::ReadRsp),
            2 => Ok(Op::Write),
            3 => Ok(Op::WriteRsp),
            op => Err(PacketError::UnknownOp { op }),
        }
    }
}

/// The 8-byte SMP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// What the packet asks or answers.
    pub op: Op,
    /// Protocol version: 0 = SMP v1, 1 = SMP v2 (two bits on the wire).
    pub version: u8,
    /// Flags; no flag is defined yet, devices send 0.
    pub flags: u8,
    /// Length of the CBOR body in bytes.
    pub len: u16,
    /// Management group (0 = OS, 1 = image, 64 and above = vendor).
    pub group: u16,
    /// Sequence number; a reply echoes the request's.
    pub seq: u8,
    /// Command id within the group.
    pub id: u8,
}

impl Header {
    /// Size of an encoded header in bytes.
    pub const SIZE: usize = 8;

    /// Encodes the header. Only the low two bits of `version` fit on the wire.
    pub fn encode(&self) -> [u8; 8] {
        let [len_hi, len_lo] = self.len.to_be_bytes();
        let [group_hi, group_lo] = self.group.to_be_bytes();
        [
            ((self.version & 0b11) << 3) | self.op as u8,
            self.flags,
            len_hi,
            len_lo,
            group_hi,
            group_lo,
            self.seq,
            self.id,
        ]
    }

    /// Decodes a header from the first eight bytes of `bytes` (the rest is ignored).
    pub fn decode(bytes: &[u8]) -> Result<Header, PacketError> {
        let Some(b) = bytes.first_chunk::<8>() else {
            return Err(PacketError::TooShort {
                found: bytes.len(),
                required: Header::SIZE,
            });
        };
        Ok(Header {
            op: Op::try_from(b[0] & 0b111)?,
            version: (b[0] >> 3) & 0b11,
            flags: b[1],
            len: u16::from_be_bytes([b[2], b[3]]),
            group: u16::from_be_bytes([b[4], b[5]]),
            seq: b[6],
            id: b[7],
        })
    }
}

/// An SMP packet: header and CBOR body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The header; [`Packet::encode`] writes `len` from the body, not from here.
    pub header: Header,
    /// The CBOR body.
    pub body: Vec<u8>,
}

impl Packet {
    /// Decodes a whole packet; the header's `len` must equal the body's length exactly.
    pub fn decode(bytes: &[u8]) -> Result<Packet, PacketError> {
        let header = Header::decode(bytes)?;
        let body = &bytes[Header::SIZE..];
        if body.len() != usize::from(header.len) {
            return Err(PacketError::LengthMismatch {
                found: body.len(),
                required: usize::from(header.len),
            });
        }
        Ok(Packet {
            header,
            body: body.to_vec(),
        })
    }

    /// Encodes header then body, with the header's `len` taken from the body.
    ///
    /// # Panics
    ///
    /// If the body is longer than 65535 bytes, which the 16-bit length cannot express.
    pub fn encode(&self) -> Vec<u8> {
        let len = u16::try_from(self.body.len()).expect("SMP body longer than 65535 bytes");
        let header = Header { len, ..self.header };
        let mut out = Vec::with_capacity(Header::SIZE + self.body.len());
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&self.body);
        out
    }

    /// Builds an SMP v2 request with `body` encoded as CBOR.
    pub fn request<T: Serialize>(op: Op, group: u16, id: u8, seq: u8, body: &T) -> Packet {
        Packet::with_body(
            Header {
                op,
                version: 1,
                flags: 0,
                len: 0,
                group,
                seq,
                id,
            },
            to_cbor(body),
        )
    }

    /// Builds the reply to `request` with `body` encoded as CBOR: the op becomes the reply op;
    /// group, id, sequence number and version are the request's.
    pub fn response<T: Serialize>(request: &Header, body: &T) -> Packet {
        Packet::with_body(
            Header {
                op: request.op.response(),
                ..*request
            },
            to_cbor(body),
        )
    }

    /// Builds a generic error reply to `request`, as Zephyr's `smp_build_err_rsp` and MCUboot's
    /// `bs_rc_rsp` do: `{"rc": rc}` with an `MGMT_ERR` code, whatever the request's SMP version.
    /// This is the shape of "no such command" (rc 8) and of a body that does not decode (rc 3).
    pub fn mgmt_error(request: &Header, rc: i32) -> Packet {
        #[derive(Serialize)]
        struct V1 {
            rc: i32,
        }
        Packet::response(request, &V1 { rc })
    }

    /// Builds a group error reply to `request`, as Zephyr's `smp_add_cmd_err` does: to an SMP
    /// v2 request `{"err": {"group", "rc"}}` with the group's own code; to an SMP v1 request the
    /// code translated to its `MGMT_ERR` equivalent (`smp_translate_error_code`) as `{"rc"}`.
    pub fn group_error(request: &Header, group: u16, rc: i32) -> Packet {
        #[derive(Serialize)]
        struct Err {
            group: u16,
            rc: i32,
        }
        #[derive(Serialize)]
        struct V2 {
            err: Err,
        }
        if request.version >= 1 {
            Packet::response(
                request,
                &V2 {
                    err: Err { group, rc },
                },
            )
        } else {
            Packet::mgmt_error(request, rc::translate(group, rc))
        }
    }

    /// Decodes the body as `T`, after checking it is not a device error in either SMP v1 form
    /// (a non-zero top-level `rc`) or v2 form (`{"err": {"group", "rc"}}` with a non-zero
    /// `rc`); those come back as [`SmpError::Device`].
    pub fn body_as<T: DeserializeOwned>(&self) -> Result<T, SmpError> {
        let value = from_cbor_value(&self.body)?;
        if let Some(err) = device_error(&value, self.header.group)? {
            return Err(err);
        }
        value
            .deserialized()
            .map_err(|e| SmpError::Cbor(e.to_string()))
    }

    fn with_body(header: Header, body: Vec<u8>) -> Packet {
        let len = u16::try_from(body.len()).expect("SMP body longer than 65535 bytes");
        Packet {
            header: Header { len, ..header },
            body,
        }
    }
}

/// Encodes `value` as CBOR.
///
/// # Panics
///
/// Only if `value`'s `Serialize` implementation itself fails; writing to memory cannot.
pub fn to_cbor<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("CBOR encoding into memory failed");
    out
}

/// Decodes a CBOR body as `T`; the body must be exactly one CBOR item.
///
/// Unlike [`Packet::body_as`] this does not look for device errors.
pub fn from_cbor<T: DeserializeOwned>(body: &[u8]) -> Result<T, SmpError> {
    from_cbor_value(body)?
        .deserialized()
        .map_err(|e| SmpError::Cbor(e.to_string()))
}

fn from_cbor_value(body: &[u8]) -> Result<ciborium::Value, SmpError> {
    let mut rest = body;
    let value: ciborium::Value =
        ciborium::from_reader(&mut rest).map_err(|e| SmpError::Cbor(e.to_string()))?;
    if !rest.is_empty() {
        return Err(SmpError::Cbor(format!(
            "{} trailing bytes after the CBOR body (found {} bytes, item ends at {})",
            rest.len(),
            body.len(),
            body.len() - rest.len()
        )));
    }
    Ok(value)
}

/// Finds an SMP v2 `err` map or an SMP v1 non-zero `rc` in a reply body.
fn device_error(value: &ciborium::Value, group: u16) -> Result<Option<SmpError>, SmpError> {
    use ciborium::Value;
    let Value::Map(entries) = value else {
        return Ok(None);
    };
    let field = |entries: &[(Value, Value)], key: &str| {
        entries
            .iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v.clone())
    };
    let int = |v: Value, what: &str| -> Result<i128, SmpError> {
        v.as_integer()
            .map(i128::from)
            .ok_or_else(|| SmpError::Cbor(format!("`{what}` is not an integer (found {v:?})")))
    };
    let rc = |v: Value, what: &str| {
        let n = int(v, what)?;
        i32::try_from(n).map_err(|_| SmpError::Cbor(format!("`{what}` {n} out of range")))
    };
    if let Some(err) = field(entries, "err") {
        let Value::Map(err) = err else {
            return Err(SmpError::Cbor(format!(
                "`err` is not a map (found {err:?})"
            )));
        };
        let code = rc(
            field(&err, "rc").unwrap_or(Value::Integer(0.into())),
            "err.rc",
        )?;
        if code != 0 {
            let group = match field(&err, "group") {
                Some(g) => {
                    let g = int(g, "err.group")?;
                    u16::try_from(g)
                        .map_err(|_| SmpError::Cbor(format!("`err.group` {g} out of range")))?
                }
                None => group,
            };
            return Ok(Some(SmpError::Device {
                group,
                rc: code,
                version: 2,
            }));
        }
    }
    if let Some(v) = field(entries, "rc") {
        let code = rc(v, "rc")?;
        if code != 0 {
            return Ok(Some(SmpError::Device {
                group,
                rc: code,
                version: 1,
            }));
        }
    }
    Ok(None)
}

/// A reply that is a device error, or a body that is not the expected CBOR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmpError {
    /// The device answered with an error code.
    #[error("{}", DeviceErrorDisplay { group: *group, rc: *rc, version: *version })]
    Device {
        /// The group the code belongs to.
        group: u16,
        /// The return code.
        rc: i32,
        /// 1 for the SMP v1 form `{"rc"}` (a generic MGMT_ERR code), 2 for the SMP v2 form
        /// `{"err": {"group", "rc"}}` (a group-specific code).
        version: u8,
    },
    /// The body is not valid CBOR or not the expected shape.
    #[error("malformed SMP body: {0}")]
    Cbor(String),
    /// The packet itself is malformed.
    #[error(transparent)]
    Packet(#[from] PacketError),
}

impl SmpError {
    /// Whether the device said it does not have this command: the generic `MGMT_ERR_ENOTSUP`
    /// (rc 8 in the `{"rc"}` form, which Zephyr and MCUboot send for a command they lack, to
    /// SMP v1 and v2 requests alike). A v2 group error with rc 8 is something else (in the
    /// image group: "no hash TLV"), so it is not this.
    pub fn is_not_supported(&self) -> bool {
        matches!(
            self,
            SmpError::Device {
                rc: MGMT_ERR_ENOTSUP,
                version: 1,
                ..
            }
        )
    }
}

struct DeviceErrorDisplay {
    group: u16,
    rc: i32,
    version: u8,
}

impl fmt::Display for DeviceErrorDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let DeviceErrorDisplay { group, rc, version } = *self;
        let form = if version >= 2 {
            "SMP v2 group error"
        } else {
            "SMP v1 error"
        };
        match describe_rc(group, rc, version) {
            Some(text) => write!(f, "device error in group {group}: rc {rc}, {text} ({form})"),
            None => write!(
                f,
                "device error in group {group}: rc {rc}, undocumented code ({form})"
            ),
        }
    }
}

/// A packet that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// Fewer bytes than the structure needs.
    #[error("SMP packet too short: found {found} bytes, required at least {required}")]
    TooShort {
        /// Bytes present.
        found: usize,
        /// Bytes needed.
        required: usize,
    },
    /// The header's length field disagrees with the body's length.
    #[error("SMP body length mismatch: found {found} bytes, header says {required}")]
    LengthMismatch {
        /// Body bytes present.
        found: usize,
        /// Body bytes the header declares.
        required: usize,
    },
    /// The op code is not one of read, read reply, write, write reply.
    #[error("unknown SMP op {op} (required 0 to 3)")]
    UnknownOp {
        /// The op bits found.
        op: u8,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_bits() {
        let h = Header {
            op: Op::WriteRsp,
            version: 1,
            flags: 0,
            len: 0x1234,
            group: 0x40,
            seq: 9,
            id: 7,
        };
        let bytes = h.encode();
        assert_eq!(bytes, [0x0b, 0, 0x12, 0x34, 0, 0x40, 9, 7]);
        assert_eq!(Header::decode(&bytes), Ok(h));
        // Reserved bits are ignored on input.
        assert_eq!(
            Header::decode(&[0xe8, 0, 0, 0, 0, 0, 0, 0]).unwrap().op,
            Op::Read
        );
    }

    #[test]
    fn packet_errors() {
        let cases: &[(&[u8], PacketError)] = &[
            (
                &[0, 0, 0],
                PacketError::TooShort {
                    found: 3,
                    required: 8,
                },
            ),
            (&[4, 0, 0, 0, 0, 0, 0, 0], PacketError::UnknownOp { op: 4 }),
            (
                &[0, 0, 0, 2, 0, 0, 0, 0, 0xa0],
                PacketError::LengthMismatch {
                    found: 1,
                    required: 2,
                },
            ),
            (
                &[0, 0, 0, 0, 0, 0, 0, 0, 0xa0],
                PacketError::LengthMismatch {
                    found: 1,
                    required: 0,
                },
            ),
        ];
        for (bytes, err) in cases {
            assert_eq!(Packet::decode(bytes).as_ref(), Err(err), "{bytes:02x?}");
        }
    }

    #[test]
    fn device_errors() {
        let req = Packet::request(Op::Write, image::GROUP, image::UPLOAD, 3, &os::Empty {}).header;
        let v2 = Packet::group_error(&req, image::GROUP, 22);
        assert_eq!(v2.header.op, Op::WriteRsp);
        let err = v2.body_as::<image::UploadRsp>().unwrap_err();
        assert_eq!(
            err,
            SmpError::Device {
                group: 1,
                rc: 22,
                version: 2
            }
        );
        assert!(err.to_string().contains("image header"), "{err}");
        assert!(!err.is_not_supported());

        // The image group's rc 8 under v2 is "no hash TLV", not "not supported".
        let no_hash = Packet::group_error(&req, image::GROUP, 8)
            .body_as::<os::Empty>()
            .unwrap_err();
        assert!(!no_hash.is_not_supported(), "{no_hash}");
        assert!(no_hash.to_string().contains("no hash TLV"), "{no_hash}");

        // A command the device lacks: `{"rc": 8}` to a v2 request, as Zephyr and MCUboot send it.
        let missing = Packet::mgmt_error(&req, MGMT_ERR_ENOTSUP);
        assert_eq!(missing.body, [0xa1, 0x62, b'r', b'c', 0x08]);
        let err = missing.body_as::<os::Empty>().unwrap_err();
        assert!(err.is_not_supported(), "{err}");
        assert!(err.to_string().contains("not supported"), "{err}");

        // To a v1 request, a group code is translated to its MGMT_ERR equivalent.
        let v1_req = Header { version: 0, ..req };
        let v1 = Packet::group_error(&v1_req, image::GROUP, 22);
        let err = v1.body_as::<os::Empty>().unwrap_err();
        assert_eq!(
            err,
            SmpError::Device {
                group: 1,
                rc: MGMT_ERR_EINVAL,
                version: 1
            }
        );

        // rc 0 is success in either form.
        let ok = Packet::response(
            &v1_req,
            &image::UploadRsp {
                off: 5,
                matched: None,
            },
        );
        assert_eq!(ok.body_as::<image::UploadRsp>().unwrap().off, 5);
        let mut with_rc0 = ok.clone();
        with_rc0.body = to_cbor(&vendor::Map::from([
            ("rc".to_string(), ciborium::Value::from(0)),
            ("off".to_string(), ciborium::Value::from(7)),
        ]));
        assert_eq!(with_rc0.body_as::<image::UploadRsp>().unwrap().off, 7);
    }

    #[test]
    fn body_errors() {
        let mut p = Packet::request(Op::Read, 0, os::PARAMS, 0, &os::Empty {});
        assert!(matches!(
            p.body_as::<os::ParamsRsp>(),
            Err(SmpError::Cbor(_))
        ));
        p.body = vec![0xa0, 0xa0];
        assert!(
            matches!(p.body_as::<os::Empty>(), Err(SmpError::Cbor(m)) if m.contains("trailing"))
        );
        p.body = vec![];
        assert!(matches!(p.body_as::<os::Empty>(), Err(SmpError::Cbor(_))));
    }
}
