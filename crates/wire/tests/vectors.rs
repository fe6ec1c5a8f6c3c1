//! Known vectors: bytes captured from the Zephyr documentation and from the Python `smp`
//! package (the encoder `smpclient` uses), pinned so that our encoder and decoder agree with
//! third-party implementations byte for byte.

use fieldkit_wire::framing::{self, Decoder, Framing};
use fieldkit_wire::smp::{Header, Op, Packet, image, os};
use serde_bytes::ByteBuf;

fn decode_console(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut decoder = Decoder::new(Framing::Console, 4096);
    decoder.push(bytes);
    std::iter::from_fn(|| decoder.next())
        .map(|item| item.expect("vector decodes"))
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn mcumgr_params_read() {
    let wire = b"\x06\x09AAsIAAABAAAABqBzEw==\x0a";
    let packet = Packet::request(Op::Read, os::GROUP, os::PARAMS, 0, &os::Empty {});
    assert_eq!(framing::encode(Framing::Console, &packet.encode()), wire);

    let [bytes] = &decode_console(wire)[..] else {
        panic!("one packet")
    };
    let decoded = Packet::decode(bytes).unwrap();
    assert_eq!(
        decoded.header,
        Header {
            op: Op::Read,
            version: 1,
            flags: 0,
            len: 1,
            group: 0,
            seq: 0,
            id: 6
        }
    );
    assert_eq!(decoded.body, [0xa0]);
    assert_eq!(decoded, packet);
}

/// `smp` 3.x: `bytes(ImageUploadWriteRequest(off=0, data=bytes(range(200)), image=1,
/// len=1000, sha=bytes(range(32)), sequence=7))`, framed by `smp.packet.encode(...,
/// line_length=128)` (124 base64 characters a line, as Zephyr).
#[test]
fn smp_python_upload_first_chunk() {
    let packet = unhex(
        "0a00010900010701a5636c656e1903e8636f666600637368615820000102030405060708090a0b0c0d0e0f
         101112131415161718191a1b1c1d1e1f646461746158c8000102030405060708090a0b0c0d0e0f1011121314
         15161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40
         4142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c
         6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798
         999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4
         c5c6c765696d61676501",
    );
    let lines: [&[u8]; 3] = [
        b"\x06\x09ARMKAAEJAAEHAaVjbGVuGQPoY29mZgBjc2hhWCAAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eH2RkYXRhWMgAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY\n",
        b"\x04\x14GRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9gYWJjZGVmZ2hpamtsbW5vcHFyc3R1\n",
        b"\x04\x14dnd4eXp7fH1+f4CBgoOEhYaHiImKi4yNjo+QkZKTlJWWl5iZmpucnZ6foKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr/AwcLDxMXGx2VpbWFnZQF8BQ==\n",
    ];
    let wire = lines.concat();

    let req = image::UploadReq {
        len: Some(1000),
        off: 0,
        sha: Some(ByteBuf::from((0..32).collect::<Vec<u8>>())),
        data: ByteBuf::from((0..200).collect::<Vec<u8>>()),
        image: Some(1),
        upgrade: None,
    };
    let ours = Packet::request(Op::Write, image::GROUP, image::UPLOAD, 7, &req);
    assert_eq!(ours.encode(), packet);
    assert_eq!(framing::encode(Framing::Console, &packet), wire);

    let [bytes] = &decode_console(&wire)[..] else {
        panic!("one packet")
    };
    assert_eq!(bytes, &packet);
    assert_eq!(
        Packet::decode(bytes)
            .unwrap()
            .body_as::<image::UploadReq>()
            .unwrap(),
        req
    );
}

/// Further request bodies from `smp`: echo, image state write (test).
#[test]
fn smp_python_bodies() {
    let echo = Packet::request(
        Op::Write,
        os::GROUP,
        os::ECHO,
        255,
        &os::EchoReq { d: "hello".into() },
    );
    assert_eq!(echo.encode(), unhex("0a0000090000ff00a161646568656c6c6f"));

    let test = image::StateWriteReq {
        hash: Some(ByteBuf::from(vec![0; 32])),
        confirm: Some(false),
    };
    let state = Packet::request(Op::Write, image::GROUP, image::STATE, 3, &test);
    assert_eq!(
        state.encode(),
        unhex(
            "0a00003100010300a264686173685820000000000000000000000000000000000000000000000000
             000000000000000067636f6e6669726df4"
        )
    );
}

/// The decoding example of `smp.packet.decode`: a frame cut into 15 short lines by a
/// third-party encoder (`line_length` 16), an upload chunk with sequence 154.
#[test]
fn smp_python_short_lines() {
    let lines = [
        "06094148344b41414230414147610a",
        "041441615a6a6247567544574e760a",
        "04145a6d59594b6d4e7a6147464d0a",
        "041464484a3163335167625755670a",
        "0414596e4a765a475268644746590a",
        "04145141414241674d45425159480a",
        "041443416b4b4377774e446738510a",
        "041445524954464255574678675a0a",
        "04144768736348523466494345690a",
        "04144979516c4a69636f4b536f720a",
        "04144c4330754c7a41784d6a4d300a",
        "04144e5459334f446b364f7a77390a",
        "0414506a396c615731685a3255410a",
        "04145a3356775a334a685a4758300a",
        "04147134673d0a",
    ];
    let wire: Vec<u8> = lines.iter().flat_map(|l| unhex(l)).collect();
    let [bytes] = &decode_console(&wire)[..] else {
        panic!("one packet")
    };
    let packet = Packet::decode(bytes).unwrap();
    assert_eq!(
        packet.header,
        Header {
            op: Op::Write,
            version: 1,
            flags: 0,
            len: 116,
            group: 1,
            seq: 154,
            id: 1
        }
    );
    let req: image::UploadReq = packet.body_as().unwrap();
    assert_eq!(req.off, 42);
    assert_eq!(req.len, Some(13));
    assert_eq!(
        req.sha.as_deref().map(|s| &s[..]),
        Some(&b"trust me bro"[..])
    );
    assert_eq!(req.data.as_ref(), (0..64).collect::<Vec<u8>>());
    assert_eq!((req.image, req.upgrade), (Some(0), Some(false)));
}

/// A Zephyr-shaped reply to the params read above, with the reply op and the request's
/// sequence number, round-trips through the typed body.
#[test]
fn params_reply() {
    let request = Packet::request(Op::Read, os::GROUP, os::PARAMS, 0, &os::Empty {});
    let reply = Packet::response(
        &request.header,
        &os::ParamsRsp {
            buf_size: 2475,
            buf_count: 4,
        },
    );
    assert_eq!(reply.header.op, Op::ReadRsp);
    assert_eq!(
        (reply.header.group, reply.header.id, reply.header.seq),
        (0, 6, 0)
    );
    // {"buf_size": 2475, "buf_count": 4}
    assert_eq!(
        reply.body,
        unhex("a2 68 6275665f73697a65 1909ab 69 6275665f636f756e74 04")
    );
    let frame = framing::encode(Framing::Console, &reply.encode());
    let [bytes] = &decode_console(&frame)[..] else {
        panic!("one packet")
    };
    let rsp: os::ParamsRsp = Packet::decode(bytes).unwrap().body_as().unwrap();
    assert_eq!(
        rsp,
        os::ParamsRsp {
            buf_size: 2475,
            buf_count: 4
        }
    );
}

/// Replies as we encode them, pinned; each loads in the Python `smp` package's models
/// (`ImageStatesReadResponse`, `ImageUploadWriteResponse`, `ImageManagementErrorV2`,
/// `MCUMgrParametersReadResponse`, `BootloaderInformationReadResponse`), whose state model
/// forbids unknown fields.
#[test]
fn replies_smp_python_loads() {
    let read = |group, id| Header {
        op: Op::Read,
        version: 1,
        flags: 0,
        len: 0,
        group,
        seq: 5,
        id,
    };
    let upload = Header {
        op: Op::Write,
        ..read(image::GROUP, image::UPLOAD)
    };
    let state = image::StateRsp {
        images: vec![
            image::ImageStateEntry {
                image: Some(0),
                slot: 0,
                version: "1.2.3.4".into(),
                hash: Some(ByteBuf::from(vec![7; 32])),
                bootable: true,
                confirmed: true,
                active: true,
                ..Default::default()
            },
            image::ImageStateEntry {
                image: Some(0),
                slot: 1,
                version: "1.3.0".into(),
                hash: Some(ByteBuf::from(vec![8; 32])),
                bootable: true,
                pending: true,
                ..Default::default()
            },
        ],
        split_status: Some(0),
    };
    let bootloader = os::BootloaderInfoRsp {
        bootloader: Some("MCUboot".into()),
        ..Default::default()
    };
    let cases = [
        (
            Packet::response(&read(image::GROUP, image::STATE), &state),
            "090000ce00010500a266696d6167657382a765696d6167650064736c6f74006776657273696f6e6731
             2e322e332e34646861736858200707070707070707070707070707070707070707070707070707070707
             07070768626f6f7461626c65f569636f6e6669726d6564f566616374697665f5a665696d616765006473
             6c6f74016776657273696f6e65312e332e30646861736858200808080808080808080808080808080808
             08080808080808080808080808080868626f6f7461626c65f56770656e64696e67f56b73706c69745374
             6174757300",
        ),
        (
            Packet::response(
                &upload,
                &image::UploadRsp {
                    off: 100,
                    matched: Some(true),
                },
            ),
            "0b00000e00010501a2636f66661864656d61746368f5",
        ),
        (
            Packet::group_error(&upload, image::GROUP, 3),
            "0b00001100010501a163657272a26567726f75700162726303",
        ),
        (
            Packet::response(
                &read(os::GROUP, os::PARAMS),
                &os::ParamsRsp {
                    buf_size: 2475,
                    buf_count: 4,
                },
            ),
            "0900001800000506a2686275665f73697a651909ab696275665f636f756e7404",
        ),
        (
            Packet::response(&read(os::GROUP, os::BOOTLOADER_INFO), &bootloader),
            "0900001400000508a16a626f6f746c6f61646572674d4355626f6f74",
        ),
    ];
    for (packet, hex) in cases {
        assert_eq!(packet.encode(), unhex(hex), "{:?}", packet.header);
    }
    let back: image::StateRsp = Packet::decode(&unhex(
        "090000ce00010500a266696d6167657382a765696d6167650064736c6f74006776657273696f6e6731
         2e322e332e34646861736858200707070707070707070707070707070707070707070707070707070707
         07070768626f6f7461626c65f569636f6e6669726d6564f566616374697665f5a665696d616765006473
         6c6f74016776657273696f6e65312e332e30646861736858200808080808080808080808080808080808
         08080808080808080808080808080868626f6f7461626c65f56770656e64696e67f56b73706c69745374
         6174757300",
    ))
    .unwrap()
    .body_as()
    .unwrap();
    assert_eq!(back, state);
}
