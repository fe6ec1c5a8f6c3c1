//! The fuzz body: arbitrary bytes through every decoder. It must never panic, hang or grow
//! memory beyond the decoders' bounds. The cargo-fuzz target in `fuzz/` and a property test
//! both call it.

use crate::framing::{Decoder, Framing};
use crate::smp::{Packet, image, os, vendor};

/// Largest packet the fuzzed decoders accept; small, so that length errors are reachable.
const MAX_PACKET: usize = 1024;

/// Feeds `data` to both framing decoders (split at a point taken from the data itself), and
/// everything they yield, as well as `data` itself, to [`Packet::decode`] and
/// [`Packet::body_as`] for several body types.
pub fn decode_all(data: &[u8]) {
    let split = data
        .first()
        .map_or(0, |&b| usize::from(b) % (data.len() + 1));
    for framing in [Framing::Console, Framing::Raw] {
        let mut decoder = Decoder::new(framing, MAX_PACKET);
        for part in [&data[..split], &data[split..]] {
            decoder.push(part);
            while let Some(item) = decoder.next() {
                if let Ok(packet) = item {
                    assert!(
                        packet.len() <= MAX_PACKET,
                        "decoder yielded an oversized packet"
                    );
                    decode_packet(&packet);
                }
            }
        }
        let _ = decoder.pending();
        let _ = decoder.finish();
        assert!(!decoder.pending(), "finish left a frame pending");
    }
    decode_packet(data);
}

fn decode_packet(bytes: &[u8]) {
    let Ok(packet) = Packet::decode(bytes) else {
        return;
    };
    assert_eq!(Packet::decode(&packet.encode()).as_ref(), Ok(&packet));
    let _ = packet.body_as::<vendor::Map>();
    let _ = packet.body_as::<os::Empty>();
    let _ = packet.body_as::<os::ParamsRsp>();
    let _ = packet.body_as::<os::BootloaderInfoRsp>();
    let _ = packet.body_as::<image::StateRsp>();
    let _ = packet.body_as::<image::UploadReq>();
    let _ = packet.body_as::<image::UploadRsp>();
    if let Err(e) = packet.body_as::<ciborium::Value>() {
        let _ = e.to_string();
    }
}
