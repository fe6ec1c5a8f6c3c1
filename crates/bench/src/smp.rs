//! The SMP figures: console framing codec throughput (group `codec`), and echo round trips
//! over the simulated line against its line-rate ceiling (group `smp`). Also the simulator
//! process the upload group shares.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use fieldkit_core::SmpClient;
use fieldkit_profile::ProfileSet;
use fieldkit_wire::framing::{self, Decoder, Framing};
use fieldkit_wire::smp::{Op, Packet, image, os};

use crate::{Rows, fieldkit_bin};

/// Encode and decode throughput of console framing, on 2 KiB upload-sized packets.
pub(crate) fn codec(rows: &mut Rows) {
    let body: Vec<u8> = (0..2040u32).map(|i| (i * 31 % 256) as u8).collect();
    let upload = image::UploadReq {
        off: 4096,
        data: body.into(),
        ..Default::default()
    };
    let packet = Packet::request(Op::Write, image::GROUP, image::UPLOAD, 0, &upload).encode();
    let total = 64 << 20;
    let n = total / packet.len();
    let start = Instant::now();
    let mut wire = Vec::with_capacity(n * packet.len() * 3 / 2);
    for _ in 0..n {
        wire.extend(framing::encode(Framing::Console, &packet));
    }
    let enc = start.elapsed();
    let start = Instant::now();
    let mut decoder = Decoder::new(Framing::Console, 4096);
    let mut got = 0;
    for chunk in wire.chunks(4096) {
        decoder.push(chunk);
        while let Some(p) = decoder.next() {
            got += p.expect("clean stream").len();
        }
    }
    let dec = start.elapsed();
    assert_eq!(got, n * packet.len());
    let mbs = |d: Duration| (n * packet.len()) as f64 / d.as_secs_f64() / 1e6;
    rows.push((
        "SMP console framing: encode (MB/s of packets)".into(),
        format!("{:.0}", mbs(enc)),
    ));
    rows.push((
        "SMP console framing: decode (MB/s of packets)".into(),
        format!("{:.0}", mbs(dec)),
    ));
}

/// A simulator process, killed when dropped.
pub(crate) struct SimProcess(Child);

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a simulator of `profile` at `baud` with `latency_ms` of turnaround; returns its
/// port.
pub(crate) fn start_sim(
    bin: &Path,
    dir: &Path,
    profile: &str,
    baud: u32,
    latency_ms: u32,
) -> anyhow::Result<(SimProcess, String)> {
    let mut child = Command::new(bin)
        .args([
            "sim",
            "--strict",
            "--profile",
            profile,
            "--baud",
            &baud.to_string(),
            "--latency-ms",
            &latency_ms.to_string(),
            "--port-link",
        ])
        .arg(dir.join(format!("bench-{profile}-{baud}-{latency_ms}.tty")))
        .stdout(Stdio::piped())
        .spawn()
        .context("start the simulator")?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let port = lines.next().context("simulator printed nothing")??;
    std::thread::spawn(move || for _ in lines {});
    Ok((SimProcess(child), port))
}

/// SMP echo round trips per second over the simulated line, against the line-rate ceiling
/// for the same bytes.
pub(crate) fn round_trips(rows: &mut Rows) -> anyhow::Result<()> {
    let bin = fieldkit_bin()?;
    let profile = ProfileSet::builtin()
        .get("acme-infusion-p7")
        .context("pump profile")?
        .clone();
    let dir = std::env::temp_dir().join(format!("fieldkit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for baud in [115_200u32, 921_600] {
        let (_sim, port) = start_sim(&bin, &dir, "acme-infusion-p7", baud, 0)?;
        let req = os::EchoReq {
            d: "fieldkit".into(),
        };
        let n = 200;
        let elapsed = rt.block_on(async {
            // A pseudo-terminal ignores the rate it is opened with; the simulator paces at `baud`.
            let link = fieldkit_link::open(Path::new(&port), &profile.line)?;
            let mut client = SmpClient::new(link, Framing::Console);
            let start = Instant::now();
            for _ in 0..n {
                let _: os::EchoRsp = client
                    .request(
                        "echo",
                        Op::Write,
                        os::GROUP,
                        os::ECHO,
                        &req,
                        Duration::from_secs(2),
                    )
                    .await?;
            }
            Ok::<_, anyhow::Error>(start.elapsed())
        })?;
        let per_s = f64::from(n) / elapsed.as_secs_f64();
        let req_bytes = framing::encode(
            Framing::Console,
            &Packet::request(Op::Write, 0, 0, 0, &req).encode(),
        )
        .len();
        let rsp_bytes = framing::encode(
            Framing::Console,
            &Packet::request(Op::WriteRsp, 0, 0, 0, &os::EchoRsp { r: req.d.clone() }).encode(),
        )
        .len();
        let ceiling = f64::from(baud) / 10.0 / (req_bytes + rsp_bytes) as f64;
        rows.push((
            format!("SMP echo round trips/s at {baud} baud"),
            format!("{per_s:.1}"),
        ));
        rows.push((
            format!("  as a fraction of the line-rate ceiling ({ceiling:.1}/s)"),
            format!("{:.2}", per_s / ceiling),
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
