//! Unit tests: round trips through `sign` and `parse`, and hostile inputs as tables of edits.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use sha2::Digest;

use crate::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A small signed image with a security counter and one dependency.
fn sample(k: &SigningKey) -> Vec<u8> {
    let mut opts = SignOptions::new("1.2.3+4".parse().unwrap());
    opts.security_counter = Some(7);
    opts.dependencies = vec![Dependency {
        image: 1,
        min_version: "1.0.0".parse().unwrap(),
    }];
    opts.key = Some(k);
    sign(b"hello firmware", &opts).unwrap()
}

#[test]
fn sign_then_parse_and_verify() {
    let k = key(1);
    let bytes = sample(&k);
    let img = Image::parse(&bytes).unwrap();
    assert_eq!(img.version(), ImageVersion::new(1, 2, 3, 4));
    assert_eq!(img.header().hdr_size, 0x200);
    assert_eq!(img.payload(), b"hello firmware");
    assert_eq!(img.security_counter(), Some(7));
    assert_eq!(
        img.dependencies(),
        vec![Dependency {
            image: 1,
            min_version: ImageVersion::new(1, 0, 0, 0)
        }]
    );
    assert_eq!(img.len(), bytes.len());
    assert!(img.trailing().is_empty());
    assert_eq!(img.verify_hash().unwrap(), img.compute_hash());
    assert_eq!(img.hash_tlv(), Some(img.compute_hash()));
    img.verify_ed25519(&k.verifying_key()).unwrap();
    img.check_protected().unwrap();
}

#[test]
fn header_round_trip_and_hint() {
    let bytes = sample(&key(1));
    let h = ImageHeader::parse(&bytes[..32]).unwrap();
    assert_eq!(h.to_bytes(), bytes[..32]);
    assert!(h.total_len_hint() <= bytes.len() as u64);
    assert_eq!(
        h.unprotected_tlv_offset() as usize,
        bytes.len() - (4 + 36 + 36 + 68)
    );
}

#[test]
fn unsigned_image_has_hash_only() {
    let bytes = sign(b"x", &SignOptions::new(ImageVersion::new(0, 1, 0, 0))).unwrap();
    let img = Image::parse(&bytes).unwrap();
    assert_eq!(img.header().protect_tlv_size, 0);
    assert!(img.protected_tlvs().is_empty());
    assert_eq!(img.tlvs().len(), 1);
    img.verify_hash().unwrap();
    let err = img.verify_ed25519(&key(1).verifying_key()).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::MissingTlv {
                kind: tlv::ED25519,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn trailing_flash_padding_is_tolerated() {
    let mut bytes = sample(&key(1));
    let len = bytes.len();
    bytes.extend([0xff; 100]);
    let img = Image::parse(&bytes).unwrap();
    assert_eq!(img.len(), len);
    assert_eq!(img.trailing(), &[0xff; 100][..]);
    img.verify_ed25519(&key(1).verifying_key()).unwrap();
}

#[test]
fn load_addr_sets_ram_load() {
    let mut opts = SignOptions::new(ImageVersion::default());
    opts.load_addr = 0x2000_0000;
    let bytes = sign(b"ram", &opts).unwrap();
    let h = ImageHeader::parse(&bytes).unwrap();
    assert_eq!(h.flags, flags::RAM_LOAD);
    assert_eq!(h.load_addr, 0x2000_0000);
}

#[test]
fn sign_refuses_impossible_sizes() {
    let mut opts = SignOptions::new(ImageVersion::default());
    opts.header_size = 16;
    let err = sign(b"", &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        "image header size 16 is smaller than the 32-byte header"
    );
    let mut opts = SignOptions::new(ImageVersion::default());
    opts.dependencies = vec![
        Dependency {
            image: 0,
            min_version: ImageVersion::default()
        };
        5000
    ];
    let err = sign(b"", &opts).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::TooLarge {
                what: "TLV area",
                ..
            }
        ),
        "{err}"
    );
}

/// Applies `edit` to the sample image and checks parsing or verification fails with a message
/// containing `expect`.
fn check(name: &str, edit: impl FnOnce(&mut Vec<u8>), expect: &str) {
    let k = key(1);
    let mut bytes = sample(&k);
    edit(&mut bytes);
    let outcome = Image::parse(&bytes).and_then(|img| img.verify_ed25519(&k.verifying_key()));
    match outcome {
        Ok(()) => panic!("{name}: accepted"),
        Err(e) => assert!(e.to_string().contains(expect), "{name}: {e}"),
    }
    // The streaming reader must refuse the same image with the same message.
    match streamed(&bytes, 7).and_then(|img| img.verify_ed25519(&k.verifying_key())) {
        Ok(()) => panic!("{name}: accepted when streamed"),
        Err(e) => assert!(e.to_string().contains(expect), "{name} (streamed): {e}"),
    }
}

fn streamed(bytes: &[u8], chunk: usize) -> Result<StreamedImage, ImageError> {
    let mut s = ImageStream::new();
    for c in bytes.chunks(chunk.max(1)) {
        s.update(c)?;
    }
    s.finish()
}

fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// Offset of the protected area in the sample image.
const PROT: usize = 0x200 + 14;

#[test]
fn hostile_images() {
    check(
        "empty",
        |b| b.clear(),
        "image header needs 32 bytes, found 0",
    );
    check(
        "short header",
        |b| b.truncate(31),
        "needs 32 bytes, found 31",
    );
    check(
        "bad magic",
        |b| b[0] ^= 1,
        "magic is 0x96f3b83c, required 0x96f3b83d",
    );
    check(
        "tiny hdr_size",
        |b| set_u16(b, 8, 8),
        "header size 8 is smaller",
    );
    check(
        "huge img_size",
        |b| set_u32(b, 12, u32::MAX),
        "header and payload needs 4294967807 bytes, found 698",
    );
    check(
        "payload cut",
        |b| b.truncate(0x200 + 3),
        "header and payload needs",
    );
    check(
        "protected info cut",
        |b| b.truncate(PROT + 2),
        "protected TLV info needs",
    );
    check(
        "unprotected info cut",
        |b| b.truncate(PROT + 28 + 2),
        "unprotected TLV info needs",
    );
    check(
        "unprotected area cut",
        |b| b.truncate(b.len() - 1),
        "unprotected TLV area needs",
    );
    check(
        "protected magic",
        |b| set_u16(b, PROT, 0x1234),
        "protected TLV area has magic 0x1234, required 0x6908",
    );
    check(
        "unprotected magic",
        |b| set_u16(b, PROT + 28, 0x6906),
        "unprotected TLV area has magic 0x6906, required 0x6907",
    );
    check(
        "undeclared protected area",
        |b| set_u16(b, 10, 0),
        "protected TLV area is 28 bytes long but the header declares 0",
    );
    check(
        "protected size disagrees",
        |b| set_u16(b, 10, 40),
        "protected TLV area is 28 bytes long but the header declares 40",
    );
    check(
        "protected area length below its info header",
        |b| set_u16(b, PROT + 2, 2),
        "needs 4 bytes but its area ends after 2",
    );
    check(
        "TLV length past its area",
        |b| set_u16(b, PROT + 4 + 2, 0xffff),
        "TLV 0x50 at offset 530 needs 65539 bytes but its area ends after 24",
    );
    check(
        "unprotected TLV length past the end",
        |b| set_u16(b, PROT + 28 + 4 + 2, 200),
        "needs 204 bytes but its area ends after 140",
    );
    check("payload byte", |b| b[0x200] ^= 1, "image hash mismatch");
    check(
        "header padding byte",
        |b| b[100] ^= 1,
        "image hash mismatch",
    );
    check("version byte", |b| b[20] ^= 1, "image hash mismatch");
    check(
        "security counter",
        |b| b[PROT + 8] ^= 1,
        "image hash mismatch",
    );
    check("hash TLV", |b| b[PROT + 28 + 8] ^= 1, "image hash mismatch");
    check(
        "key hash",
        |b| b[PROT + 28 + 44] ^= 1,
        "image was signed by the key with hash",
    );
    check(
        "signature",
        |b| *b.last_mut().unwrap() ^= 1,
        "signature does not verify",
    );
    check(
        "hash TLV length",
        |b| {
            // Turn the SHA256 TLV into an unknown TLV so only the hash is missing.
            set_u16(b, PROT + 28 + 4, 0x00a0);
        },
        "no SHA256 TLV",
    );
}

#[test]
fn wrong_key_is_refused() {
    let bytes = sample(&key(1));
    let img = Image::parse(&bytes).unwrap();
    let err = img.verify_ed25519(&key(2).verifying_key()).unwrap_err();
    assert!(matches!(err, ImageError::KeyMismatch { .. }), "{err}");
}

#[test]
fn malformed_protected_values_are_reported() {
    // A SEC_CNT of 3 bytes: structure is fine, the value is not.
    let mut bytes = sign(b"p", &SignOptions::new(ImageVersion::default())).unwrap();
    let unprot = bytes.split_off(0x200 + 1);
    let hdr_prot = [0x08, 0x69, 11, 0, 0x50, 0, 3, 0, 1, 2, 3];
    bytes.extend(hdr_prot);
    bytes.extend(unprot);
    set_u16(&mut bytes, 10, 11);
    let img = Image::parse(&bytes).unwrap();
    assert_eq!(img.security_counter(), None);
    let err = img.check_protected().unwrap_err();
    assert_eq!(
        err.to_string(),
        "SEC_CNT TLV (0x50) is 3 bytes long, required 4"
    );
}

proptest! {
    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(img) = Image::parse(&bytes) {
            let _ = img.verify_ed25519(&key(1).verifying_key());
            let _ = img.dependencies();
        }
    }

    #[test]
    fn headers_with_valid_magic_never_panic(
        rest in proptest::collection::vec(any::<u8>(), 28..300),
    ) {
        let mut bytes = ImageHeader::MAGIC.to_le_bytes().to_vec();
        bytes.extend(rest);
        if let Ok(img) = Image::parse(&bytes) {
            let _ = img.verify_hash();
            prop_assert!(img.len() <= bytes.len());
        }
    }

    #[test]
    fn sign_parse_round_trip(
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        major in any::<u8>(), build in any::<u32>(),
        counter in proptest::option::of(any::<u32>()),
        deps in proptest::collection::vec((any::<u8>(), any::<u16>()), 0..4),
        header_size in 32u16..0x300,
        signed in any::<bool>(),
    ) {
        let k = key(9);
        let opts = SignOptions {
            version: ImageVersion::new(major, 0, 1, build),
            header_size,
            load_addr: 0,
            security_counter: counter,
            dependencies: deps.iter().map(|&(image, rev)| Dependency {
                image,
                min_version: ImageVersion::new(1, 0, rev, 0),
            }).collect(),
            key: signed.then_some(&k),
        };
        let bytes = sign(&payload, &opts).unwrap();
        let img = Image::parse(&bytes).unwrap();
        prop_assert_eq!(img.payload(), &payload[..]);
        prop_assert_eq!(img.version(), opts.version);
        prop_assert_eq!(img.security_counter(), counter);
        prop_assert_eq!(img.dependencies(), opts.dependencies.clone());
        prop_assert_eq!(img.len(), bytes.len());
        img.verify_hash().unwrap();
        prop_assert_eq!(img.verify_ed25519(&k.verifying_key()).is_ok(), signed);
    }

    #[test]
    fn stream_agrees_with_parse(
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        counter in proptest::option::of(any::<u32>()),
        header_size in 32u16..100,
        trailing in 0usize..40,
        chunk in 1usize..80,
    ) {
        let k = key(3);
        let opts = SignOptions {
            header_size,
            security_counter: counter,
            key: Some(&k),
            ..SignOptions::new(ImageVersion::new(1, 2, 3, 4))
        };
        let mut bytes = sign(&payload, &opts).unwrap();
        bytes.extend(std::iter::repeat_n(0xff, trailing));
        let img = Image::parse(&bytes).unwrap();
        let s = streamed(&bytes, chunk).unwrap();
        prop_assert_eq!(s.compute_hash(), img.compute_hash());
        let whole: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        prop_assert_eq!(s.file_sha256(), whole);
        prop_assert_eq!(s.len(), img.len() as u64);
        prop_assert_eq!(s.trailing_len(), trailing as u64);
        prop_assert_eq!(s.security_counter(), counter);
        prop_assert_eq!(s.protected_tlvs(), img.protected_tlvs());
        prop_assert_eq!(s.tlvs(), img.tlvs());
        s.verify_ed25519(&k.verifying_key()).unwrap();
    }

    #[test]
    fn stream_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), chunk in 1usize..50) {
        let mut b = ImageHeader::MAGIC.to_le_bytes().to_vec();
        b.extend(bytes);
        let _ = streamed(&b, chunk).map(|s| s.verify_ed25519(&key(1).verifying_key()));
    }
}
