//! Sans-IO codecs for MCUmgr SMP (Simple Management Protocol) over a serial line.
//!
//! A Zephyr/MCUboot device speaks SMP: an 8-byte big-endian header followed by a CBOR body.
//! Over a UART the packets travel in one of two framings, and this crate splits the job in
//! the same two layers:
//!
//! - [`framing`] turns packet bytes into line bytes and back. *Console* framing (the classic
//!   one, shared with the device's shell and logs) wraps `len + packet + CRC-16/XMODEM` in
//!   base64 lines that start with `06 09` or `04 14` and end with `0a`; *raw* framing sends the
//!   packets back to back, delimited by the header's length field. The [`framing::Decoder`] is
//!   a pull-style reassembler: push whatever bytes arrived, then pull complete packets or typed
//!   errors until it has nothing more. It skips log text between frames, keeps its memory
//!   bounded by the largest packet it was told to accept, and recovers at the next frame after
//!   any damage.
//! - [`smp`] is the packet layer: [`smp::Header`], [`smp::Packet`] and the serde types of the
//!   bodies of the OS and image groups, plus a generic map for vendor groups. Device errors in
//!   both SMP v1 (`{"rc"}`) and v2 (`{"err": {"group", "rc"}}`) form come back as
//!   [`smp::SmpError::Device`], whose message spells the return code out in words.
//!
//! The legacy "line" family has its own two modules: [`line`] splits reply lines and matches
//! them against a profile's patterns, and [`ymodem`] is a YMODEM-1K/XMODEM-1K sender and
//! receiver, both state machines that the client and the simulator drive.
//!
//! Nothing here reads a clock or touches a port: callers own the IO loop, the timeouts and the
//! retries. That is what lets the codecs be tested against vectors captured from Zephyr and
//! from the Python `smp` package, property-tested on arbitrary packets split at arbitrary
//! points, and fuzzed ([`fuzz::decode_all`] is the body of the cargo-fuzz target).

pub mod framing;
pub mod fuzz;
pub mod line;
pub mod smp;
pub mod ymodem;
