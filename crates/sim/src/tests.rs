//! The simulated device's MCUboot behaviour, driven packet by packet.

use fieldkit_mcuboot::{Dependency, ImageVersion, SignOptions};
use fieldkit_profile::ProfileSet;
use fieldkit_wire::smp::{Op, Packet, SmpError, image, os};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::fault::{Fault, Faults};
use crate::smp::After;
use crate::state::DeviceState;
use crate::zephyr::ZephyrDevice as SmpDevice;

fn pump(faults: &[Fault]) -> SmpDevice {
    let profile = ProfileSet::builtin()
        .get("acme-infusion-p7")
        .unwrap()
        .clone();
    let state = DeviceState::factory(&profile);
    SmpDevice::new(profile, state, Faults::new(faults))
}

fn call<Req: Serialize, Rsp: DeserializeOwned>(
    dev: &mut SmpDevice,
    op: Op,
    group: u16,
    id: u8,
    body: &Req,
) -> (Result<Rsp, SmpError>, After) {
    let reply = dev.handle(&Packet::request(op, group, id, 0, body));
    let after = reply.after;
    match reply.packet {
        Some(p) => (p.body_as(), after),
        None => (Err(SmpError::Cbor("no reply".into())), after),
    }
}

fn image_bytes(version: &str, deps: Vec<Dependency>) -> Vec<u8> {
    let mut opts = SignOptions::new(version.parse::<ImageVersion>().unwrap());
    opts.dependencies = deps;
    fieldkit_mcuboot::sign(&[0x5a; 5000], &opts).unwrap()
}

/// Uploads `bytes` to image `n` in 1 KiB chunks; returns the last reply.
fn upload(dev: &mut SmpDevice, n: u32, bytes: &[u8]) -> image::UploadRsp {
    let sha = Sha256::digest(bytes).to_vec();
    let mut off = 0;
    loop {
        let end = (off + 1024).min(bytes.len());
        let req = image::UploadReq {
            image: Some(n),
            len: (off == 0).then_some(bytes.len() as u32),
            off: off as u32,
            sha: (off == 0).then(|| ByteBuf::from(sha.clone())),
            data: ByteBuf::from(bytes[off..end].to_vec()),
            upgrade: None,
        };
        let (rsp, _) =
            call::<_, image::UploadRsp>(dev, Op::Write, image::GROUP, image::UPLOAD, &req);
        let rsp = rsp.unwrap();
        if rsp.off as usize >= bytes.len() {
            return rsp;
        }
        off = rsp.off as usize;
    }
}

/// The image state, one line per slot: `image/slot version flags`.
fn state(dev: &mut SmpDevice) -> Vec<String> {
    let (rsp, _) =
        call::<_, image::StateRsp>(dev, Op::Read, image::GROUP, image::STATE, &os::Empty {});
    rsp.unwrap()
        .images
        .iter()
        .map(|e| {
            let mut flags = String::new();
            for (on, c) in [
                (e.active, 'A'),
                (e.confirmed, 'C'),
                (e.pending, 'P'),
                (e.permanent, 'M'),
            ] {
                if on {
                    flags.push(c);
                }
            }
            format!("{}/{} {} {flags}", e.image_number(), e.slot, e.version)
        })
        .collect()
}

fn mark(
    dev: &mut SmpDevice,
    hash: Option<Vec<u8>>,
    confirm: bool,
) -> Result<image::StateRsp, SmpError> {
    let req = image::StateWriteReq {
        hash: hash.map(ByteBuf::from),
        confirm: Some(confirm),
    };
    call(dev, Op::Write, image::GROUP, image::STATE, &req).0
}

fn hash_of(bytes: &[u8]) -> Vec<u8> {
    fieldkit_mcuboot::Image::parse(bytes)
        .unwrap()
        .hash_tlv()
        .unwrap()
        .to_vec()
}

#[test]
fn test_boot_confirm() {
    let mut dev = pump(&[]);
    let img = image_bytes("2.4.0", vec![]);
    let last = upload(&mut dev, 0, &img);
    assert_eq!(last.matched, Some(true));
    assert_eq!(
        state(&mut dev),
        ["0/0 2.3.1 AC", "0/1 2.4.0 ", "1/0 1.4.0 AC"]
    );
    mark(&mut dev, Some(hash_of(&img)), false).unwrap();
    assert_eq!(
        state(&mut dev),
        ["0/0 2.3.1 AC", "0/1 2.4.0 P", "1/0 1.4.0 AC"]
    );
    dev.reboot();
    assert_eq!(
        state(&mut dev),
        ["0/0 2.4.0 A", "0/1 2.3.1 C", "1/0 1.4.0 AC"]
    );
    mark(&mut dev, None, true).unwrap();
    assert_eq!(
        state(&mut dev),
        ["0/0 2.4.0 AC", "0/1 2.3.1 ", "1/0 1.4.0 AC"]
    );
    dev.reboot();
    assert_eq!(
        state(&mut dev),
        ["0/0 2.4.0 AC", "0/1 2.3.1 ", "1/0 1.4.0 AC"]
    );
}

#[test]
fn an_unconfirmed_test_reverts_on_the_next_boot() {
    let mut dev = pump(&[]);
    let img = image_bytes("2.4.0", vec![]);
    upload(&mut dev, 0, &img);
    mark(&mut dev, Some(hash_of(&img)), false).unwrap();
    dev.reboot();
    dev.reboot();
    assert_eq!(
        state(&mut dev),
        ["0/0 2.3.1 AC", "0/1 2.4.0 ", "1/0 1.4.0 AC"]
    );
}

#[test]
fn refused_confirm_reverts() {
    let mut dev = pump(&[Fault::RefuseConfirm]);
    let img = image_bytes("2.4.0", vec![]);
    upload(&mut dev, 0, &img);
    mark(&mut dev, Some(hash_of(&img)), false).unwrap();
    dev.reboot();
    let err = mark(&mut dev, None, true).unwrap_err();
    assert!(
        matches!(
            err,
            SmpError::Device {
                group: 1,
                rc: 32,
                version: 2
            }
        ),
        "{err}"
    );
    dev.reboot();
    assert_eq!(state(&mut dev)[0], "0/0 2.3.1 AC");
}

#[test]
fn an_unmet_dependency_keeps_the_old_image() {
    let mut dev = pump(&[]);
    let needs_net_15 = vec![Dependency {
        image: 1,
        min_version: "1.5.0".parse().unwrap(),
    }];
    let app = image_bytes("2.5.0", needs_net_15);
    upload(&mut dev, 0, &app);
    mark(&mut dev, Some(hash_of(&app)), false).unwrap();
    dev.reboot();
    assert_eq!(state(&mut dev)[0], "0/0 2.3.1 AC");

    // With the network core updated in the same boot, the dependency is met.
    mark(&mut dev, Some(hash_of(&app)), false).unwrap();
    let net = image_bytes("1.5.0", vec![]);
    upload(&mut dev, 1, &net);
    mark(&mut dev, Some(hash_of(&net)), false).unwrap();
    dev.reboot();
    assert_eq!(
        state(&mut dev),
        ["0/0 2.5.0 A", "0/1 2.3.1 C", "1/0 1.5.0 A", "1/1 1.4.0 C"]
    );
}

#[test]
fn uploads_resume_and_resync() {
    let mut dev = pump(&[]);
    let img = image_bytes("2.4.0", vec![]);
    let sha = Sha256::digest(&img).to_vec();
    let first = |dev: &mut SmpDevice| {
        let req = image::UploadReq {
            image: Some(0),
            len: Some(img.len() as u32),
            off: 0,
            sha: Some(ByteBuf::from(sha.clone())),
            data: ByteBuf::from(img[..1000].to_vec()),
            upgrade: None,
        };
        call::<_, image::UploadRsp>(dev, Op::Write, image::GROUP, image::UPLOAD, &req)
            .0
            .unwrap()
            .off
    };
    assert_eq!(first(&mut dev), 1000);
    // A chunk at the wrong offset is answered with the expected one.
    let wrong = image::UploadReq {
        off: 3000,
        data: ByteBuf::from(vec![0; 10]),
        ..Default::default()
    };
    let (rsp, _) =
        call::<_, image::UploadRsp>(&mut dev, Op::Write, image::GROUP, image::UPLOAD, &wrong);
    assert_eq!(rsp.unwrap().off, 1000);
    // The same first chunk with the same sha resumes instead of restarting.
    assert_eq!(first(&mut dev), 1000);
}

#[test]
fn bad_uploads_are_refused() {
    let mut dev = pump(&[]);
    let cases: [(image::UploadReq, i32); 3] = [
        (
            image::UploadReq {
                len: Some(100),
                data: ByteBuf::from(vec![0; 100]),
                ..Default::default()
            },
            23,
        ),
        (
            image::UploadReq {
                len: None,
                data: ByteBuf::from(vec![0; 100]),
                ..Default::default()
            },
            21,
        ),
        (
            image::UploadReq {
                len: Some(1 << 30),
                data: ByteBuf::from(image_bytes("1.0.0", vec![])),
                ..Default::default()
            },
            30,
        ),
    ];
    for (req, rc) in cases {
        let (rsp, _) =
            call::<_, image::UploadRsp>(&mut dev, Op::Write, image::GROUP, image::UPLOAD, &req);
        match rsp {
            Err(SmpError::Device { rc: got, .. }) => assert_eq!(got, rc),
            other => panic!("expected rc {rc}, got {other:?}"),
        }
    }
}

#[test]
fn flash_failure_and_reboot_faults() {
    let img = image_bytes("2.4.0", vec![]);
    let mut dev = pump(&[Fault::FlashFailAt(2048)]);
    let req = |off: usize, data: &[u8]| image::UploadReq {
        image: Some(0),
        len: (off == 0).then_some(img.len() as u32),
        off: off as u32,
        data: ByteBuf::from(data.to_vec()),
        ..Default::default()
    };
    let (r, _) = call::<_, image::UploadRsp>(
        &mut dev,
        Op::Write,
        image::GROUP,
        image::UPLOAD,
        &req(0, &img[..2048]),
    );
    assert_eq!(r.unwrap().off, 2048);
    let (r, _) = call::<_, image::UploadRsp>(
        &mut dev,
        Op::Write,
        image::GROUP,
        image::UPLOAD,
        &req(2048, &img[2048..3072]),
    );
    assert!(matches!(r, Err(SmpError::Device { rc: 12, .. })), "{r:?}");

    let mut dev = pump(&[Fault::RebootAt(1500)]);
    call::<_, image::UploadRsp>(
        &mut dev,
        Op::Write,
        image::GROUP,
        image::UPLOAD,
        &req(0, &img[..1024]),
    )
    .0
    .unwrap();
    let (r, after) = call::<_, image::UploadRsp>(
        &mut dev,
        Op::Write,
        image::GROUP,
        image::UPLOAD,
        &req(1024, &img[1024..2048]),
    );
    assert!(r.is_err());
    assert_eq!(after, After::CrashReboot);
}

#[test]
fn identity_and_os_groups_answer() {
    let mut dev = pump(&[
        "battery=12".parse().unwrap(),
        "therapy-running".parse().unwrap(),
    ]);
    let (map, _) =
        call::<_, fieldkit_wire::smp::vendor::Map>(&mut dev, Op::Read, 64, 0, &os::Empty {});
    let map = map.unwrap();
    assert_eq!(
        fieldkit_wire::smp::vendor::field_string(&map, "sn").as_deref(),
        Some("P7-004217")
    );
    assert_eq!(fieldkit_wire::smp::vendor::field_i64(&map, "bat"), Some(12));
    assert_eq!(
        fieldkit_wire::smp::vendor::field_bool(&map, "infusing"),
        Some(true)
    );
    let (params, _) =
        call::<_, os::ParamsRsp>(&mut dev, Op::Read, os::GROUP, os::PARAMS, &os::Empty {});
    assert_eq!(
        params.unwrap(),
        os::ParamsRsp {
            buf_size: 2048,
            buf_count: 4
        }
    );
    let (unknown, _) = call::<_, os::Empty>(&mut dev, Op::Read, 9, 0, &os::Empty {});
    assert!(matches!(unknown, Err(SmpError::Device { rc: 8, .. })));
}

#[test]
fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pump.json");
    let mut dev = pump(&[]);
    let img = image_bytes("2.4.0", vec![]);
    upload(&mut dev, 0, &img);
    mark(&mut dev, Some(hash_of(&img)), false).unwrap();
    dev.state.save(&path).unwrap();
    let loaded = DeviceState::load(&path).unwrap();
    assert_eq!(loaded, dev.state);
    std::fs::write(&path, b"{ not json").unwrap();
    let err = DeviceState::load(&path).unwrap_err().to_string();
    assert!(err.contains("is not valid"), "{err}");
}

/// The body of the reply to a raw request, as CBOR diagnostic-ish JSON, for shape checks.
fn reply_body(dev: &mut SmpDevice, version: u8, op: Op, group: u16, id: u8, body: &[u8]) -> String {
    let mut req = Packet::request(op, group, id, 0, &os::Empty {});
    req.header.version = version;
    req.body = body.to_vec();
    let reply = dev.handle(&Packet::decode(&req.encode()).unwrap());
    let p = reply.packet.expect("a reply");
    assert_eq!(
        p.header.version, version,
        "the reply keeps the request's version"
    );
    let v: ciborium::Value = ciborium::from_reader(p.body.as_slice()).unwrap();
    format!("{v:?}")
}

#[test]
fn errors_are_shaped_as_zephyr_shapes_them() {
    let mut dev = pump(&[]);
    // A command the device lacks, or a read of a write-only command: `{"rc": 8}` whatever the
    // request's version (smp.c, smp_build_err_rsp).
    for version in [0, 1] {
        let unknown = reply_body(&mut dev, version, Op::Read, 9, 0, &[0xa0]);
        assert_eq!(unknown, r#"Map([(Text("rc"), Integer(Integer(8)))])"#);
        let reset_read = reply_body(&mut dev, version, Op::Read, os::GROUP, os::RESET, &[0xa0]);
        assert_eq!(reset_read, unknown);
        let vendor_other = reply_body(&mut dev, version, Op::Read, 64, 7, &[0xa0]);
        assert_eq!(vendor_other, unknown);
    }
    // A body that is not a map of the command's fields: `{"rc": 3}`.
    let bad = reply_body(
        &mut dev,
        1,
        Op::Write,
        os::GROUP,
        os::ECHO,
        &[0xa1, 0x61, b'd', 0x01],
    );
    assert_eq!(bad, r#"Map([(Text("rc"), Integer(Integer(3)))])"#);
    // A group error: the err map to v2, the translated MGMT_ERR code to v1.
    let no_hash = [
        0xa2, 0x67, b'c', b'o', b'n', b'f', b'i', b'r', b'm', 0xf4, 0x64, b'h', b'a', b's', b'h',
        0x58, 0x20,
    ];
    let mut body = no_hash.to_vec();
    body.extend([0x11; 32]);
    let v2 = reply_body(&mut dev, 1, Op::Write, image::GROUP, image::STATE, &body);
    assert_eq!(
        v2,
        r#"Map([(Text("err"), Map([(Text("group"), Integer(Integer(1))), (Text("rc"), Integer(Integer(8)))]))])"#
    );
    let v1 = reply_body(&mut dev, 0, Op::Write, image::GROUP, image::STATE, &body);
    assert_eq!(v1, r#"Map([(Text("rc"), Integer(Integer(1)))])"#);
    // A request newer than SMP v2.
    let v3 = reply_body(&mut dev, 2, Op::Read, os::GROUP, os::ECHO, &[0xa0]);
    assert_eq!(v3, r#"Map([(Text("rc"), Integer(Integer(13)))])"#);
}

#[test]
fn a_single_image_device_leaves_the_image_number_out() {
    let profile = ProfileSet::builtin()
        .get("vitalis-monitor-m3")
        .unwrap()
        .clone();
    let state = DeviceState::factory(&profile);
    let mut dev = SmpDevice::new(profile, state, Faults::new(&[]));
    let body = reply_body(&mut dev, 1, Op::Read, image::GROUP, image::STATE, &[0xa0]);
    assert!(!body.contains("\"image\""), "{body}");
    assert!(body.contains("splitStatus"), "{body}");
    let mut pump = pump(&[]);
    let body = reply_body(&mut pump, 1, Op::Read, image::GROUP, image::STATE, &[0xa0]);
    assert!(body.contains(r#"Text("image")"#), "{body}");
}

fn monitor_in_recovery() -> crate::smp::Server {
    let set = ProfileSet::builtin();
    let profile = set.get("vitalis-monitor-m3-recovery").unwrap().clone();
    let app = set.get("vitalis-monitor-m3").unwrap().clone();
    let state = DeviceState::factory(&profile);
    crate::smp::Server::Recovery {
        bootloader: crate::boot_serial::BootSerial::new(profile, state, Faults::new(&[])),
        application: Some(Box::new(app)),
    }
}

fn ask<Req: Serialize>(
    dev: &mut crate::smp::Server,
    op: Op,
    group: u16,
    id: u8,
    body: &Req,
) -> String {
    let reply = dev.handle(&Packet::request(op, group, id, 0, body));
    let p = reply.packet.expect("a reply");
    let v: ciborium::Value = ciborium::from_reader(p.body.as_slice()).unwrap();
    format!("{v:?}")
}

fn chunk(off: usize, len: Option<usize>, data: &[u8]) -> image::UploadReq {
    image::UploadReq {
        len: len.map(|l| l as u32),
        off: off as u32,
        data: ByteBuf::from(data.to_vec()),
        // MCUboot ignores the hash and the upgrade flag.
        sha: Some(ByteBuf::from(vec![0xee; 32])),
        upgrade: Some(true),
        ..Default::default()
    }
}

#[test]
fn serial_recovery_answers_only_what_boot_serial_has() {
    let mut dev = monitor_in_recovery();
    let rc8 = r#"Map([(Text("rc"), Integer(Integer(8)))])"#;
    for (group, id, op) in [
        (os::GROUP, os::INFO, Op::Read),
        (os::GROUP, os::BOOTLOADER_INFO, Op::Read),
        (64, 0, Op::Read),
        (image::GROUP, image::ERASE, Op::Write),
        (image::GROUP, 6, Op::Read),
    ] {
        assert_eq!(
            ask(&mut dev, op, group, id, &os::Empty {}),
            rc8,
            "{group}/{id}"
        );
    }
    assert_eq!(
        ask(
            &mut dev,
            Op::Write,
            os::GROUP,
            os::ECHO,
            &os::EchoReq { d: "hi".into() }
        ),
        r#"Map([(Text("r"), Text("hi"))])"#
    );
    assert_eq!(
        ask(&mut dev, Op::Read, os::GROUP, os::PARAMS, &os::Empty {}),
        r#"Map([(Text("buf_size"), Integer(Integer(1024))), (Text("buf_count"), Integer(Integer(1)))])"#
    );
    // The list: slot 0 only (slot 1 is empty), no image number, no splitStatus.
    let list = ask(
        &mut dev,
        Op::Read,
        image::GROUP,
        image::STATE,
        &os::Empty {},
    );
    assert!(
        list.starts_with(
            r#"Map([(Text("images"), Array([Map([(Text("slot"), Integer(Integer(0)))"#
        ),
        "{list}"
    );
    assert!(
        !list.contains("splitStatus") && !list.contains(r#"Text("image")"#),
        "{list}"
    );
    assert!(list.contains(r#"Text("active"), Bool(true)"#), "{list}");
}

#[test]
fn serial_recovery_uploads_in_place_in_alignment_units() {
    let mut dev = monitor_in_recovery();
    let img = image_bytes("4.1.0", vec![]);
    let off = |s: &str| -> usize {
        let needle = r#"Text("off"), Integer(Integer("#;
        let at = s.find(needle).expect(s) + needle.len();
        s[at..].split(')').next().unwrap().parse().unwrap()
    };
    // No len on the first chunk, or more than the slot holds: rc 3.
    let rc3 = r#"Map([(Text("rc"), Integer(Integer(3)))])"#;
    assert_eq!(
        ask(
            &mut dev,
            Op::Write,
            image::GROUP,
            image::UPLOAD,
            &chunk(0, None, &img[..64])
        ),
        rc3
    );
    assert_eq!(
        ask(
            &mut dev,
            Op::Write,
            image::GROUP,
            image::UPLOAD,
            &chunk(0, Some(1 << 24), &img[..64])
        ),
        rc3
    );
    assert!(
        dev.state().images[0].primary.is_some(),
        "nothing erased yet"
    );

    // The first chunk erases slot 0; 989 bytes advance the offset by 988.
    let first = ask(
        &mut dev,
        Op::Write,
        image::GROUP,
        image::UPLOAD,
        &chunk(0, Some(img.len()), &img[..989]),
    );
    assert!(
        first.starts_with(r#"Map([(Text("rc"), Integer(Integer(0))), (Text("off")"#),
        "{first}"
    );
    assert_eq!(off(&first), 988);
    assert!(
        dev.state().images[0].primary.is_none(),
        "the running image is gone"
    );
    // A chunk at another offset is answered with the expected one.
    assert_eq!(
        off(&ask(
            &mut dev,
            Op::Write,
            image::GROUP,
            image::UPLOAD,
            &chunk(2000, None, &img[2000..2100])
        )),
        988
    );
    // Past len: rc 3.
    assert_eq!(
        ask(
            &mut dev,
            Op::Write,
            image::GROUP,
            image::UPLOAD,
            &chunk(988, None, &vec![0; img.len()])
        ),
        rc3
    );
    // Offset 0 again starts over.
    let again = ask(
        &mut dev,
        Op::Write,
        image::GROUP,
        image::UPLOAD,
        &chunk(0, Some(img.len()), &img[..512]),
    );
    assert_eq!(off(&again), 512);
    let mut at = 512;
    let mut last = String::new();
    while at < img.len() {
        let end = (at + 333).min(img.len());
        last = ask(
            &mut dev,
            Op::Write,
            image::GROUP,
            image::UPLOAD,
            &chunk(at, None, &img[at..end]),
        );
        let next = off(&last);
        assert!(next == img.len() || next % 4 == 0, "whole units: {next}");
        at = next;
    }
    assert!(!last.contains("match"), "MCUboot never sends match: {last}");
    let slot0 = dev.state().images[0].primary.clone().unwrap();
    assert_eq!(slot0.bytes, img);
    assert_eq!(slot0.version, "4.1.0");
}

#[test]
fn serial_recovery_state_writes_mark_the_secondary_pending() {
    let mut dev = monitor_in_recovery();
    let state = |h: Option<Vec<u8>>, confirm| image::StateWriteReq {
        hash: h.map(ByteBuf::from),
        confirm: Some(confirm),
    };
    assert_eq!(
        ask(
            &mut dev,
            Op::Write,
            image::GROUP,
            image::STATE,
            &state(Some(vec![1; 31]), false)
        ),
        r#"Map([(Text("rc"), Integer(Integer(3)))])"#
    );
    assert_eq!(
        ask(
            &mut dev,
            Op::Write,
            image::GROUP,
            image::STATE,
            &state(Some(vec![1; 32]), false)
        ),
        r#"Map([(Text("rc"), Integer(Integer(5)))])"#
    );
    let hash = hex::decode(&dev.state().images[0].primary.as_ref().unwrap().hash).unwrap();
    ask(
        &mut dev,
        Op::Write,
        image::GROUP,
        image::STATE,
        &state(Some(hash), true),
    );
    assert_eq!(
        dev.state().images[0].swap,
        crate::state::Swap::PendingPermanent
    );
}

#[test]
fn a_reset_boots_the_application_only_from_a_valid_slot_0() {
    let faults = Faults::new(&[]);
    // A valid image in slot 0: the application starts, with its own commands.
    let mut dev = monitor_in_recovery();
    ask(
        &mut dev,
        Op::Write,
        os::GROUP,
        os::RESET,
        &os::ResetReq::default(),
    );
    dev.reboot(&faults);
    assert!(matches!(dev, crate::smp::Server::Application(_)));
    let info = ask(
        &mut dev,
        Op::Read,
        os::GROUP,
        os::INFO,
        &os::InfoReq {
            format: Some("s".into()),
        },
    );
    assert!(info.contains("Zephyr"), "{info}");

    // An interrupted upload leaves slot 0 erased: the device stays in serial recovery.
    let mut dev = monitor_in_recovery();
    let img = image_bytes("4.1.0", vec![]);
    ask(
        &mut dev,
        Op::Write,
        image::GROUP,
        image::UPLOAD,
        &chunk(0, Some(img.len()), &img[..512]),
    );
    dev.reboot(&faults);
    assert!(matches!(dev, crate::smp::Server::Recovery { .. }));
    // The upload's progress is forgotten: the next chunk is told to start from 0.
    let rsp = ask(
        &mut dev,
        Op::Write,
        image::GROUP,
        image::UPLOAD,
        &chunk(512, None, &img[512..1024]),
    );
    assert!(
        rsp.ends_with(r#"(Text("off"), Integer(Integer(0)))])"#),
        "{rsp}"
    );
}
