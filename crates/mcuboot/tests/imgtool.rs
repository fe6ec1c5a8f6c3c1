//! Interop with MCUboot's own `imgtool`, in both directions.
//!
//! These tests run the real `imgtool` (pip package `imgtool`). When it is missing they fail
//! with a message saying so: a skipped interop test would prove nothing.

use std::path::Path;
use std::process::Command;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use fieldkit_mcuboot::{Dependency, Image, ImageVersion, SignOptions, sign};

fn imgtool(args: &[&str]) -> String {
    let out = Command::new("imgtool")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run imgtool ({e}); install it with `pip install imgtool`")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "imgtool {args:?} failed: {text}");
    text
}

fn keygen(dir: &Path) -> (String, SigningKey) {
    let path = dir.join("key.pem");
    let p = path.to_str().unwrap().to_owned();
    imgtool(&["keygen", "-k", &p, "-t", "ed25519"]);
    let pem = std::fs::read_to_string(&path).unwrap();
    (p, SigningKey::from_pkcs8_pem(&pem).unwrap())
}

#[test]
fn imgtool_images_parse_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, key) = keygen(dir.path());
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let input = dir.path().join("app.bin");
    std::fs::write(&input, &payload).unwrap();
    let output = dir.path().join("app.signed.bin");
    imgtool(&[
        "sign",
        "--key",
        &key_path,
        "--version",
        "1.2.3+4",
        "--header-size",
        "0x200",
        "--pad-header",
        "--slot-size",
        "0x10000",
        "--align",
        "4",
        "--pad",
        "--security-counter",
        "42",
        "--dependencies",
        "(1, 1.0.0+0), (2, 3.4.5+6)",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&output).unwrap();
    // --pad fills the slot: the image proper is followed by erased flash and a trailer.
    assert_eq!(bytes.len(), 0x10000);
    let img = Image::parse(&bytes).unwrap();
    assert!(!img.trailing().is_empty());
    assert_eq!(img.version(), ImageVersion::new(1, 2, 3, 4));
    assert_eq!(img.payload(), &payload[..]);
    assert_eq!(img.security_counter(), Some(42));
    assert_eq!(
        img.dependencies(),
        vec![
            Dependency {
                image: 1,
                min_version: ImageVersion::new(1, 0, 0, 0)
            },
            Dependency {
                image: 2,
                min_version: ImageVersion::new(3, 4, 5, 6)
            },
        ]
    );
    img.check_protected().unwrap();
    img.verify_hash().unwrap();
    img.verify_ed25519(&key.verifying_key()).unwrap();

    // Same inputs through our signer: ed25519 is deterministic, so the bytes must be equal.
    let ours = sign(
        &payload,
        &SignOptions {
            version: "1.2.3+4".parse().unwrap(),
            header_size: 0x200,
            load_addr: 0,
            security_counter: Some(42),
            dependencies: img.dependencies(),
            key: Some(&key),
        },
    )
    .unwrap();
    assert_eq!(ours, img.as_bytes(), "our image differs from imgtool's");
}

#[test]
fn imgtool_unsigned_and_pure_images() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, key) = keygen(dir.path());
    let input = dir.path().join("app.bin");
    std::fs::write(&input, b"tiny").unwrap();

    let unsigned = dir.path().join("unsigned.bin");
    imgtool(&[
        "sign",
        "--version",
        "0.1.0",
        "--header-size",
        "0x20",
        "--slot-size",
        "0x1000",
        "--pad-header",
        input.to_str().unwrap(),
        unsigned.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&unsigned).unwrap();
    let img = Image::parse(&bytes).unwrap();
    img.verify_hash().unwrap();
    assert!(img.verify_ed25519(&key.verifying_key()).is_err());

    let pure = dir.path().join("pure.bin");
    imgtool(&[
        "sign",
        "--key",
        &key_path,
        "--pure",
        "--version",
        "0.1.0",
        "--header-size",
        "0x200",
        "--slot-size",
        "0x1000",
        "--pad-header",
        input.to_str().unwrap(),
        pure.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&pure).unwrap();
    Image::parse(&bytes)
        .unwrap()
        .verify_ed25519(&key.verifying_key())
        .unwrap();
}

#[test]
fn our_images_pass_imgtool_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, key) = keygen(dir.path());
    let pub_path = dir.path().join("pub.pem");
    imgtool(&[
        "getpub",
        "-k",
        &key_path,
        "--encoding",
        "pem",
        "-o",
        pub_path.to_str().unwrap(),
    ]);
    let cases: Vec<SignOptions<'_>> = vec![
        SignOptions {
            key: Some(&key),
            ..SignOptions::new("1.2.3+4".parse().unwrap())
        },
        SignOptions {
            key: Some(&key),
            security_counter: Some(9),
            dependencies: vec![Dependency {
                image: 1,
                min_version: "2.0.0".parse().unwrap(),
            }],
            header_size: 0x20,
            ..SignOptions::new("255.255.65535+4294967295".parse().unwrap())
        },
    ];
    for (i, opts) in cases.iter().enumerate() {
        let bytes = sign(&vec![0xa5; 3000 + i], opts).unwrap();
        let path = dir.path().join(format!("ours{i}.bin"));
        std::fs::write(&path, &bytes).unwrap();
        for key_arg in [&key_path, &pub_path.to_str().unwrap().to_owned()] {
            let text = imgtool(&["verify", "-k", key_arg, path.to_str().unwrap()]);
            assert!(text.contains("Image was correctly validated"), "{text}");
            assert!(
                text.contains(&format!(
                    "Image version: {}",
                    opts.version.to_imgtool_string()
                )),
                "{text}"
            );
        }
    }
    // An unsigned image verifies with no key (hash only).
    let bytes = sign(b"x", &SignOptions::new(ImageVersion::new(1, 0, 0, 0))).unwrap();
    let path = dir.path().join("unsigned.bin");
    std::fs::write(&path, &bytes).unwrap();
    let text = imgtool(&["verify", path.to_str().unwrap()]);
    assert!(text.contains("Image was correctly validated"), "{text}");
}
