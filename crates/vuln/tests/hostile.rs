//! Hostile and broken input: every case refused with a clear error, bounded in what it costs.

use std::io::{Cursor, Write};

use fieldkit_vuln::{Limits, VulnError, parse_advisory, read_archive, vex};
use zip::write::SimpleFileOptions;

fn advisory(id: &str) -> String {
    serde_json::json!({
        "id": id,
        "modified": "2026-10-01T00:00:00Z",
        "affected": [{ "package": { "purl": "pkg:generic/acme-medical/acme-infusion-p7-netcore" }, "versions": ["1.4.0"] }]
    })
    .to_string()
}

fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut out);
    for (name, bytes) in members {
        let opts =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        z.start_file(*name, opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
    out.into_inner()
}

/// Reads an archive; returns the ids imported and the errors of single members.
fn read(bytes: Vec<u8>, limits: &Limits) -> Result<(Vec<String>, Vec<String>), VulnError> {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    read_archive("all.zip", Cursor::new(bytes), limits, |r| match r {
        Ok(a) => ok.push(a.id),
        Err(e) => bad.push(e.to_string()),
    })?;
    Ok((ok, bad))
}

#[test]
fn an_ecosystem_archive_imports_member_by_member() {
    let a = advisory("ACME-2026-0001");
    let b = advisory("ACME-2026-0002");
    let bytes = zip_of(&[
        ("ACME-2026-0001.json", a.as_bytes()),
        ("README.txt", b"not an advisory"),
        ("ACME-2026-0003.json", b"{\"id\": \"ACME-2026-0003\""),
        ("ACME-2026-0002.json", b.as_bytes()),
    ]);
    let (ok, bad) = read(bytes, &Limits::default()).unwrap();
    assert_eq!(ok, ["ACME-2026-0001", "ACME-2026-0002"]);
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0].starts_with("all.zip:ACME-2026-0003.json: .: EOF while parsing"),
        "{}",
        bad[0]
    );
}

#[test]
fn broken_archives_are_refused_whole() {
    let good = zip_of(&[("A.json", advisory("A").as_bytes())]);
    for (bytes, want) in [
        (Vec::new(), "all.zip: not a readable zip archive"),
        (
            b"PK\x03\x04 not really".to_vec(),
            "all.zip: not a readable zip archive",
        ),
        (
            good[..good.len() / 2].to_vec(),
            "all.zip: not a readable zip archive",
        ),
    ] {
        let e = read(bytes, &Limits::default()).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e}");
    }
}

#[test]
fn zip_bombs_and_oversize_members_are_bounded() {
    // 4 MiB of spaces deflate to about 4 KiB: a ratio of ~1000.
    let zeros = vec![b' '; 4 << 20];
    let bomb = zip_of(&[("A.json", advisory("A").as_bytes()), ("bomb.json", &zeros)]);
    let e = read(bomb.clone(), &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bomb.json: found 4194304 bytes compressed into"),
        "{e}"
    );
    assert!(
        e.contains("required a compression ratio of at most 200"),
        "{e}"
    );
    // With the ratio allowed, the member is still larger than a document may be.
    let lenient = Limits {
        compression_ratio: u64::MAX,
        document: 1 << 20,
        ..Limits::default()
    };
    let (ok, bad) = read(bomb, &lenient).unwrap();
    assert_eq!(ok, ["A"]);
    assert!(
        bad[0].contains(
            "bomb.json: the member (as declared) is 4194304 bytes, required at most 1048576 bytes"
        ),
        "{bad:?}"
    );
    // Too many members, and too much in total.
    let many = zip_of(&[
        ("A.json", advisory("A").as_bytes()),
        ("B.json", advisory("B").as_bytes()),
    ]);
    let e = read(
        many.clone(),
        &Limits {
            archive_members: 1,
            ..Limits::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("member count (2 members) is 2 bytes, required at most 1"),
        "{e}"
    );
    let e = read(
        many,
        &Limits {
            archive_total: 300,
            ..Limits::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("the archive, decompressed, is"), "{e}");
}

#[test]
fn documents_are_bounded() {
    let limits = Limits {
        document: 1024,
        ..Limits::default()
    };
    let big = format!(
        "{{\"id\":\"X\",\"modified\":\"2026-10-01T00:00:00Z\",\"details\":\"{}\"}}",
        "a".repeat(2000)
    );
    let e = parse_advisory("big.json", big.as_bytes(), &limits)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "big.json: the document is 2057 bytes, required at most 1024 bytes"
    );
    let e = vex::parse("big.json", big.as_bytes(), &limits)
        .unwrap_err()
        .to_string();
    assert!(e.contains("required at most 1024 bytes"), "{e}");
}

#[test]
fn deeply_nested_json_is_an_error_not_a_crash() {
    let depth = 100_000;
    let nested = format!(
        "{{\"id\":\"X\",\"modified\":\"2026-10-01T00:00:00Z\",\"database_specific\":{}{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let e = parse_advisory("deep.json", nested.as_bytes(), &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("recursion limit exceeded"), "{e}");
    let deep_vex = format!(
        "{{\"bomFormat\":{}{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let e = vex::parse("deep.json", deep_vex.as_bytes(), &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("recursion limit exceeded"), "{e}");
}

#[test]
fn truncated_and_trailing_input() {
    let a = advisory("A");
    for cut in [0, 1, a.len() / 2, a.len() - 1] {
        let e = parse_advisory("cut.json", &a.as_bytes()[..cut], &Limits::default()).unwrap_err();
        assert!(matches!(e, VulnError::Malformed { .. }), "{cut}: {e}");
    }
    let e = parse_advisory("two.json", format!("{a}{a}").as_bytes(), &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("trailing characters"), "{e}");
    let e = parse_advisory("bin.json", &[0xff, 0xfe, 0x00], &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("bin.json: .: expected value"), "{e}");
}
