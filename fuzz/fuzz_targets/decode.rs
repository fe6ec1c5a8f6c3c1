//! Arbitrary bytes through both framing decoders, `Packet::decode` and `Packet::body_as`.
//! Run with `cargo +nightly fuzz run decode` from the repository root.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fieldkit_wire::fuzz::decode_all(data);
});
