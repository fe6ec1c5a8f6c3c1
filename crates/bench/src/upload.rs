//! Upload throughput over the simulated line, side by side in one run: fieldkit's pipelined
//! upload, `smpclient` (PyPI) and `mcumgrctl` (crate `mcumgr-toolkit`) sending the same image
//! to the same simulator at the same `buf_size` (each reads it from the device's MCUmgr
//! parameters), in both of the simulator's modes: the pump's Zephyr application (4 buffers of
//! 2048 bytes) and the monitor in MCUboot's serial recovery (1 buffer of 1024 bytes), at 115200
//! and 921600 baud, with 0 and 16 ms of turnaround latency.
//!
//! Each figure is reported with what it is measured against: the line-rate ceiling of console
//! framing for full chunks (the data bytes a line can carry per second when every byte on the
//! wire is a full upload frame) and the other clients' rates. Targets (issue 11): at least 0.9
//! of the ceiling with two or more buffers; at least 1.5x smpclient and 1.2x mcumgrctl at
//! 921600 baud and 16 ms.
//!
//! `mcumgrctl` prints no timing: its upload is timed as the whole command, less the time the
//! same command takes to connect and read the MCUmgr parameters alone on the same simulator.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fieldkit_core::SmpDriver;
use fieldkit_core::apply::{Cancel, ImageToInstall, NoProgress, PortConnector};
use fieldkit_mcuboot::{Image, ImageVersion, SignOptions};
use fieldkit_profile::{Profile, ProfileSet};
use fieldkit_wire::framing::{self, Framing};
use fieldkit_wire::smp::{Op, Packet, image};

use crate::smp::start_sim;
use crate::{Rows, fieldkit_bin, root};

/// Data bytes per byte on the wire for full-size upload chunks at `buf_size`: the framing's
/// best case, as the device counts the frame (length, packet and CRC within `buf_size`).
fn framing_efficiency(buf_size: usize, alignment: usize) -> f64 {
    let max_packet = Framing::Console.max_packet(buf_size);
    let room = image::max_upload_data(max_packet, None, None, 65_536, None);
    let n = room - room % alignment.max(1);
    let req = image::UploadReq {
        off: 65_536,
        data: vec![0x5a; n].into(),
        ..Default::default()
    };
    let wire = framing::encode(
        Framing::Console,
        &Packet::request(Op::Write, image::GROUP, image::UPLOAD, 0, &req).encode(),
    );
    n as f64 / wire.len() as f64
}

fn image_of(size: usize) -> anyhow::Result<Vec<u8>> {
    let payload: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    Ok(fieldkit_mcuboot::sign(
        &payload,
        &SignOptions::new("9.9.9".parse::<ImageVersion>()?),
    )?)
}

/// Seconds fieldkit takes to upload `bytes` (the buffers read first, as an update does).
fn fieldkit_upload(
    rt: &tokio::runtime::Runtime,
    profile: &Profile,
    port: &str,
    bytes: &[u8],
) -> anyhow::Result<f64> {
    let hash = hex::encode(Image::parse(bytes)?.hash_tlv().context("hash TLV")?);
    let img = ImageToInstall {
        component: "app".into(),
        image: 0,
        bytes: Arc::new(bytes.to_vec()),
        sha256: String::new(),
        image_hash: hash,
        version: "9.9.9".into(),
    };
    rt.block_on(async {
        let connector = PortConnector {
            path: port.into(),
            line: profile.line.clone(),
        };
        let mut device = SmpDriver::new(connector, profile, Default::default());
        device.read_buffers().await?;
        let start = Instant::now();
        if !device.upload(&img, &mut NoProgress, &Cancel::new()).await? {
            bail!("the upload was cancelled");
        }
        Ok(start.elapsed().as_secs_f64())
    })
}

/// Seconds smpclient takes to upload the image at `path` (connecting excluded).
fn smpclient_upload(port: &str, path: &Path) -> anyhow::Result<f64> {
    let script = root().join("crates/bench/smpclient_upload.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(port)
        .arg(path)
        .output()
        .context("run smpclient (cargo xtask setup installs it)")?;
    if !out.status.success() {
        bail!("smpclient failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<f64>()
        .context("smpclient's time")
}

/// Runs `mcumgrctl` with `args` on `port`; returns its wall time.
fn mcumgrctl(port: &str, args: &[&str]) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out = Command::new("mcumgrctl")
        .args(["--serial", port, "--quiet"])
        .args(args)
        .output()
        .context("run mcumgrctl (cargo xtask setup installs it)")?;
    if !out.status.success() {
        bail!(
            "mcumgrctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(start.elapsed())
}

/// Seconds mcumgrctl takes to upload the image at `path`, less its start-up (connecting and
/// reading the MCUmgr parameters, timed alone on the same simulator).
fn mcumgrctl_upload(port: &str, path: &Path) -> anyhow::Result<f64> {
    let startup = mcumgrctl(port, &["os", "mcumgr-parameters"])?;
    let whole = mcumgrctl(port, &["image", "upload", &path.display().to_string()])?;
    Ok(whole.saturating_sub(startup).as_secs_f64())
}

pub(crate) fn run(rows: &mut Rows) -> anyhow::Result<()> {
    let bin = fieldkit_bin()?;
    let profiles = ProfileSet::builtin();
    let dir = std::env::temp_dir().join(format!("fieldkit-bench-upload-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let modes = [
        ("application mode", "acme-infusion-p7"),
        ("serial recovery", "vitalis-monitor-m3-recovery"),
    ];
    for (mode, id) in modes {
        let profile = profiles.get(id).context("a shipped profile")?.clone();
        let buf_size = profile.simulator.buf_size as usize;
        let buf_count = profile.simulator.buf_count;
        let alignment = *profile.device.write_alignment.get_ref() as usize;
        let efficiency = framing_efficiency(buf_size, alignment);
        for (baud, size) in [(115_200u32, 48 << 10), (921_600, 256 << 10)] {
            let bytes = image_of(size)?;
            let path = dir.join(format!("image-{id}-{baud}.bin"));
            std::fs::write(&path, &bytes)?;
            let ceiling = f64::from(baud) / f64::from(profile.line.bits_per_char()) * efficiency;
            for latency in [0u32, 16] {
                let time = |client: &dyn Fn(&str) -> anyhow::Result<f64>| {
                    let (_sim, port) = start_sim(&bin, &dir, id, baud, latency)?;
                    client(&port)
                };
                let ours = time(&|port| fieldkit_upload(&rt, &profile, port, &bytes))?;
                let smpclient = time(&|port| smpclient_upload(port, &path))?;
                let mcumgr = time(&|port| mcumgrctl_upload(port, &path))?;
                let rate = bytes.len() as f64 / ours;
                let smpclient_rate = bytes.len() as f64 / smpclient;
                let mcumgr_rate = bytes.len() as f64 / mcumgr;
                rows.push((
                    format!(
                        "upload {mode}, {} x {buf_size} B buffers, {} KiB at {baud} baud, {latency} ms (B/s)",
                        buf_count,
                        bytes.len() >> 10
                    ),
                    format!("{rate:.0}"),
                ));
                rows.push((
                    format!("  fraction of the console-framing ceiling ({ceiling:.0} B/s)"),
                    format!("{:.2}", rate / ceiling),
                ));
                rows.push((
                    format!("  ratio to smpclient ({smpclient_rate:.0} B/s)"),
                    format!("{:.2}x", rate / smpclient_rate),
                ));
                rows.push((
                    format!("  ratio to mcumgrctl ({mcumgr_rate:.0} B/s)"),
                    format!("{:.2}x", rate / mcumgr_rate),
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
