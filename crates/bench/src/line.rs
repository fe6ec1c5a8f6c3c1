//! YMODEM upload throughput to the simulated line-family device (LabCore L2), at 115200 baud
//! with 0 and 16 ms turnaround latency, as a fraction of the line-rate ceiling of YMODEM-1K.
//!
//! The ceiling is the line's character rate times the share of each block that is data
//! (1024 of 1029 bytes): what a sender would reach if ACKs cost nothing. The measured rate is
//! taken over the data blocks only, from the ACK of block 1 to the ACK of the last one, so the
//! device's erase before block 0 does not hide the per-block cost; the whole upload's rate,
//! erase included, is reported beside it. The file is not a firmware image (xtask builds
//! none): the device receives it in full, then refuses to boot it, which does not change the
//! transfer.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::Context;
use fieldkit_core::apply::{Cancel, Progress, Stage};
use fieldkit_core::{LineClient, ymodem_upload};

/// When the first block and the last were acknowledged.
struct Times {
    first: Option<(Instant, u64)>,
    last: Instant,
}

impl Progress for Times {
    fn stage(&mut self, _: Stage, _: &str) {}
    fn bytes(&mut self, _: &str, acked: u64, _: u64) {
        if acked > 0 && self.first.is_none() {
            self.first = Some((Instant::now(), acked));
        }
        self.last = Instant::now();
    }
}
use fieldkit_profile::ProfileSet;

use crate::Rows;

const PROFILE: &str = "labcore-analyzer-l2";
const BAUD: u32 = 115_200;
/// Large enough that the erase before block 0 is a small share of the whole.
const FILE_LEN: usize = 96 * 1024;

struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sim(bin: &Path, dir: &Path, latency_ms: u64) -> anyhow::Result<(Sim, PathBuf)> {
    let mut child = Command::new(bin)
        .args(["sim", "--profile", PROFILE, "--baud", &BAUD.to_string()])
        .args(["--latency-ms", &latency_ms.to_string(), "--port-link"])
        .arg(dir.join(format!("bench-line-{latency_ms}.tty")))
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("start the simulator {}", bin.display()))?;
    let mut lines = BufReader::new(child.stdout.take().context("piped")?).lines();
    let port = lines.next().context("the simulator printed nothing")??;
    std::thread::spawn(move || for _ in lines {});
    Ok((Sim(child), PathBuf::from(port)))
}

/// One upload: (data-phase bytes per second, whole-upload bytes per second).
fn measure(bin: &Path, dir: &Path, latency_ms: u64) -> anyhow::Result<(f64, f64)> {
    let (_sim, port) = start_sim(bin, dir, latency_ms)?;
    let profile = ProfileSet::builtin()
        .get(PROFILE)
        .context("the built-in profiles lack the line device")?
        .clone();
    let data: Vec<u8> = (0..FILE_LEN).map(|i| (i * 131 % 251) as u8).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let link = fieldkit_link::open(&port, &profile.line)?;
        let mut client = LineClient::new(link, &profile)?;
        let mut times = Times {
            first: None,
            last: Instant::now(),
        };
        let start = Instant::now();
        ymodem_upload(
            &mut client,
            "bench.bin",
            data,
            "firmware",
            &mut times,
            &Cancel::new(),
        )
        .await?;
        let Times { first, last } = times;
        let whole = FILE_LEN as f64 / last.duration_since(start).as_secs_f64();
        let (t1, acked1) = first.context("no block was acknowledged")?;
        let data_phase = (FILE_LEN as u64 - acked1) as f64 / last.duration_since(t1).as_secs_f64();
        Ok((data_phase, whole))
    })
}

/// Measures the figures into `rows`.
pub(crate) fn run(rows: &mut Rows) -> anyhow::Result<()> {
    let bin = crate::fieldkit_bin()?;
    let dir = tempfile_dir()?;
    let bits = ProfileSet::builtin()
        .get(PROFILE)
        .context("the built-in profiles lack the line device")?
        .line
        .bits_per_char();
    let ceiling = f64::from(BAUD) / f64::from(bits) * 1024.0 / 1029.0;
    for latency_ms in [0, 16] {
        let (data_phase, whole) = measure(&bin, &dir, latency_ms)?;
        rows.push((
            format!(
                "YMODEM-1K at {BAUD} baud, {latency_ms} ms latency: fraction of line-rate ceiling"
            ),
            format!("{:.3}", data_phase / ceiling),
        ));
        rows.push((
            format!("YMODEM-1K at {BAUD} baud, {latency_ms} ms latency: whole upload (B/s, ceiling {ceiling:.0})"),
            format!("{whole:.0}"),
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A scratch directory for the simulator's port links (xtask has no tempfile dependency).
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("fieldkit-bench-line-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}
