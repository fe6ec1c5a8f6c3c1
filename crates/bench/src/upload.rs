//! Upload throughput over the simulated line: fieldkit's pipelined upload against the
//! line-rate ceiling of console framing, and against `smpclient` uploading the same image to
//! the same simulator in the same run.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use fieldkit_core::SmpDriver;
use fieldkit_core::apply::{Cancel, ImageToInstall, NoProgress, PortConnector};
use fieldkit_mcuboot::{Image, ImageVersion, SignOptions};
use fieldkit_profile::ProfileSet;
use fieldkit_wire::framing::{self, Framing};
use fieldkit_wire::smp::{Op, Packet, image};

use crate::smp::start_sim;
use crate::{Rows, fieldkit_bin, root};

/// Data bytes per byte on the wire for full-size upload chunks: the framing's best case.
fn framing_efficiency(buf_size: usize) -> f64 {
    let n = image::max_upload_data(buf_size, Some(0), None, 65_536, None);
    let req = image::UploadReq {
        image: Some(0),
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

pub(crate) fn run(rows: &mut Rows) -> anyhow::Result<()> {
    let bin = fieldkit_bin()?;
    let profile = ProfileSet::builtin()
        .get("acme-infusion-p7")
        .context("pump profile")?
        .clone();
    let buf_size = profile.simulator.buf_size as usize;
    let efficiency = framing_efficiency(buf_size);
    let dir = std::env::temp_dir().join(format!("fieldkit-bench-upload-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let script = root().join("crates/bench/smpclient_upload.py");
    for (baud, size) in [(115_200u32, 48 << 10), (921_600, 256 << 10)] {
        let bytes = image_of(size)?;
        let path = dir.join(format!("image-{baud}.bin"));
        std::fs::write(&path, &bytes)?;
        let hash = hex::encode(Image::parse(&bytes)?.hash_tlv().context("hash TLV")?);
        let ceiling = f64::from(baud) / f64::from(profile.line.bits_per_char()) * efficiency;
        for latency in [0u32, 1, 16] {
            let ours = {
                let (_sim, port) = start_sim(&bin, &dir, baud, latency)?;
                let img = ImageToInstall {
                    component: "app".into(),
                    image: 0,
                    bytes: Arc::new(bytes.clone()),
                    // A bench image is sent as built, with no plan to name it.
                    sha256: String::new(),
                    image_hash: hash.clone(),
                    version: "9.9.9".into(),
                };
                rt.block_on(async {
                    let connector = PortConnector {
                        path: port.clone().into(),
                        line: profile.line.clone(),
                    };
                    let mut device = SmpDriver::new(connector, &profile, Default::default());
                    device.read_buffers().await?;
                    let start = Instant::now();
                    device.upload(&img, &mut NoProgress, &Cancel::new()).await?;
                    Ok::<_, anyhow::Error>(start.elapsed())
                })?
            };
            let theirs = {
                let (_sim, port) = start_sim(&bin, &dir, baud, latency)?;
                let out = Command::new("python3")
                    .arg(&script)
                    .arg(&port)
                    .arg(&path)
                    .output()
                    .context("run smpclient")?;
                if !out.status.success() {
                    bail!("smpclient failed: {}", String::from_utf8_lossy(&out.stderr));
                }
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<f64>()
                    .context("smpclient's time")?
            };
            let rate = bytes.len() as f64 / ours.as_secs_f64();
            let their_rate = bytes.len() as f64 / theirs;
            rows.push((
                format!(
                    "upload {} KiB at {baud} baud, {latency} ms latency (B/s)",
                    bytes.len() >> 10
                ),
                format!("{rate:.0}"),
            ));
            rows.push((
                format!("  fraction of the console-framing ceiling ({ceiling:.0} B/s)"),
                format!("{:.2}", rate / ceiling),
            ));
            rows.push((
                format!("  ratio to smpclient ({their_rate:.0} B/s)"),
                format!("{:.2}x", rate / their_rate),
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
