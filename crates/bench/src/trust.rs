//! Package verification: throughput against `openssl dgst -sha256` on the same payload bytes,
//! and peak memory of the verifying process for two package sizes.
//!
//! Everything runs as the release binary a technician would run, through the CLI: `demo init`
//! for keys and a trust root, `image sign` and `package build` for the packages, then
//! `package verify` timed against `openssl dgst -sha256` of the payload member, alternately,
//! best of several runs each, with the files in the page cache. Peak memory is the child's
//! maximum resident set size from `/usr/bin/time -f %M`; a streaming verifier's peak does not
//! grow with the package.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{Rows, fieldkit_bin};

const MIB: u64 = 1 << 20;
/// The throughput payload, as the issue asks: 256 MiB.
const BIG: u64 = 256 * MIB;
/// The smaller package for the memory comparison.
const SMALL: u64 = 64 * MIB;
/// Timed runs of each command; the best one counts (least disturbed by the machine).
const RUNS: usize = 5;

pub(crate) fn run(rows: &mut Rows) -> anyhow::Result<()> {
    let bin = fieldkit_bin()?;
    let dir = std::env::temp_dir().join(format!("fieldkit-bench-trust-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = measure(&bin, &dir, rows);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(bin: &Path, dir: &Path, rows: &mut Rows) -> anyhow::Result<()> {
    let home = dir.join("home");
    let fk = |args: &[&str]| -> anyhow::Result<()> {
        let out = Command::new(bin)
            .arg("--home")
            .arg(&home)
            .args(args)
            .stdout(Stdio::null())
            .output()
            .context("run fieldkit")?;
        if !out.status.success() {
            bail!(
                "fieldkit {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    fk(&["demo", "init"])?;
    let key = home.join("keys/demo-release.key.pem");

    let small = package(&fk, dir, &key, SMALL, "9.0.0")?;
    let big = package(&fk, dir, &key, BIG, "9.1.0")?;

    // Throughput: the same payload bytes, verified as a package and hashed by OpenSSL.
    let verify = || {
        time(
            Command::new(bin)
                .arg("--home")
                .arg(&home)
                .args(["package", "verify"])
                .arg(&big.package),
        )
    };
    let openssl = || {
        time(
            Command::new("openssl")
                .args(["dgst", "-sha256"])
                .arg(&big.payload),
        )
    };
    // Warm the page cache and check both succeed.
    verify()?;
    openssl()?;
    let (mut best_verify, mut best_openssl) = (Duration::MAX, Duration::MAX);
    for _ in 0..RUNS {
        best_openssl = best_openssl.min(openssl()?);
        best_verify = best_verify.min(verify()?);
    }
    let mbs = |d: Duration| big.payload_len as f64 / d.as_secs_f64() / 1e6;
    rows.push((
        "package verify, 256 MiB payload (MB/s of payload)".into(),
        format!("{:.0}", mbs(best_verify)),
    ));
    rows.push((
        "openssl dgst -sha256, same payload (MB/s)".into(),
        format!("{:.0}", mbs(best_openssl)),
    ));
    rows.push((
        "  verify as a fraction of openssl (target >= 0.9)".into(),
        format!(
            "{:.2}",
            best_openssl.as_secs_f64() / best_verify.as_secs_f64()
        ),
    ));

    // OpenSSL's in-memory SHA-256 speed (SHA-NI where the CPU has it): the ceiling both of the
    // figures above approach, since reading a file costs something too.
    if let Some(ceiling) = openssl_speed() {
        rows.push((
            "  openssl speed sha256 in memory, 64 KiB blocks (MB/s)".into(),
            format!("{ceiling:.0}"),
        ));
    }

    // Peak memory of the verifying process, for both sizes, and of a command that reads only
    // the trust root, for reference.
    if !Path::new("/usr/bin/time").exists() {
        rows.push((
            "package verify, peak memory".into(),
            "not measured: /usr/bin/time is missing (Debian package `time`)".into(),
        ));
        return Ok(());
    }
    let peak = |args: &[&str]| -> anyhow::Result<f64> {
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .arg(bin)
            .arg("--home")
            .arg(&home)
            .args(args)
            .stdout(Stdio::null())
            .output()
            .context("run /usr/bin/time")?;
        if !out.status.success() {
            bail!(
                "fieldkit {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stderr);
        let kib: f64 = text
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("/usr/bin/time printed {text:?}, required a number"))?;
        Ok(kib / 1024.0)
    };
    let p = |f: &Path| f.to_str().unwrap_or_default().to_owned();
    let small_peak = peak(&["package", "verify", &p(&small.package)])?;
    let big_peak = peak(&["package", "verify", &p(&big.package)])?;
    let baseline = peak(&["trust", "show"])?;
    rows.push((
        "package verify, peak RSS, 64 MiB package (MiB)".into(),
        format!("{small_peak:.1}"),
    ));
    rows.push((
        "package verify, peak RSS, 256 MiB package (MiB)".into(),
        format!("{big_peak:.1}"),
    ));
    rows.push((
        "  fieldkit trust show, peak RSS for reference (MiB)".into(),
        format!("{baseline:.1}"),
    ));
    Ok(())
}

/// A package on disk and its payload member's file.
struct Built {
    package: PathBuf,
    payload: PathBuf,
    payload_len: u64,
}

/// Builds a package around a signed MCUboot image of `size` bytes of firmware.
fn package(
    fk: &dyn Fn(&[&str]) -> anyhow::Result<()>,
    dir: &Path,
    key: &Path,
    size: u64,
    version: &str,
) -> anyhow::Result<Built> {
    let src = dir.join(format!("src-{version}"));
    std::fs::create_dir_all(&src)?;
    let raw = src.join("firmware.raw");
    write_firmware(&raw, size)?;
    let image = src.join("app.bin");
    let s = |p: &Path| p.to_str().unwrap_or_default().to_owned();
    fk(&[
        "image",
        "sign",
        "--key",
        &s(key),
        "--version",
        version,
        &s(&raw),
        &s(&image),
    ])?;
    std::fs::remove_file(&raw)?;
    let manifest = serde_json::json!({
        "format": 1,
        "product": "acme-infusion-p7",
        "version": version,
        "release_date": "2025-01-01",
        "class": "feature",
        "security_counter": 1,
        "expires": "2099-01-01T00:00:00Z",
        "payloads": [{
            "component": "app", "image": 0, "version": version,
            "format": "mcuboot", "file": "app.bin"
        }]
    });
    std::fs::write(src.join("manifest.json"), manifest.to_string())?;
    let sbom = serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
        "components": [{
            "type": "firmware", "name": "bench-app", "version": version,
            "purl": format!("pkg:generic/fieldkit/bench-app@{version}")
        }]
    });
    std::fs::write(src.join("sbom.cdx.json"), sbom.to_string())?;
    let package = dir.join(format!("bench-{version}.fkpkg"));
    fk(&[
        "package",
        "build",
        "--manifest",
        &s(&src.join("manifest.json")),
        "--key",
        &s(key),
        "--out",
        &s(&package),
    ])?;
    Ok(Built {
        package,
        payload_len: std::fs::metadata(&image)?.len(),
        payload: image,
    })
}

/// `size` bytes of incompressible filler (xorshift), written in 1 MiB blocks.
fn write_firmware(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(MIB) as usize;
        w.write_all(&block[..n])?;
        left -= n as u64;
    }
    w.flush()?;
    Ok(())
}

/// `openssl speed -evp sha256` on 64 KiB blocks, in MB/s; `None` if it cannot be read.
fn openssl_speed() -> Option<f64> {
    let out = Command::new("openssl")
        .args([
            "speed", "-seconds", "1", "-bytes", "65536", "-evp", "sha256",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    // The last line is `sha256  1712569.11k`: thousands of bytes per second.
    let text = String::from_utf8_lossy(&out.stdout);
    let k: f64 = text
        .lines()
        .last()?
        .split_whitespace()
        .last()?
        .strip_suffix('k')?
        .parse()
        .ok()?;
    Some(k / 1000.0)
}

/// Wall time of a command from start to exit; fails if it fails.
fn time(cmd: &mut Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("run {cmd:?}"))?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(elapsed)
}
