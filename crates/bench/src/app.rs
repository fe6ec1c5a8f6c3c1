//! The desktop app's figures for `cargo xtask bench`: start to first paint, and idle memory.
//!
//! The release build of `fieldkit-app` runs in a fresh home on the display in `DISPLAY` (Xvfb,
//! started by `cargo xtask bench`, or the desktop's). The web view calls `ui_ready` two animation frames after its first render, and
//! with `FIELDKIT_BENCH_FIRST_PAINT` set the app prints a line then; the time from spawning the
//! process to reading that line is the figure. The first start also makes the DEMO kit; the
//! next starts find it and are ordinary starts. Idle memory is read from /proc after the window
//! has been idle for two seconds: the resident set (RSS) of the app process, and the
//! proportional set (PSS, shared pages divided among their users, so nothing is counted twice)
//! of the app with every process under it (WebKit's web and network processes).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{Rows, sibling};

pub(crate) fn run(rows: &mut Rows) -> anyhow::Result<()> {
    let bin = sibling("fieldkit-app")?;
    let display = std::env::var("DISPLAY")
        .ok()
        .filter(|d| !d.is_empty())
        .context(
            "no DISPLAY: required an X display for the app (`cargo xtask bench app` starts Xvfb)",
        )?;
    let home = std::env::temp_dir().join(format!("fieldkit-bench-app-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);

    let (first, child) = start(&bin, &home, &display)?;
    stop(child);
    let mut warm = Vec::new();
    let mut idle = None;
    for i in 0..5 {
        let (ms, child) = start(&bin, &home, &display)?;
        warm.push(ms);
        if i == 4 {
            std::thread::sleep(Duration::from_secs(2));
            idle = Some(rss_tree(child.id()));
        }
        stop(child);
    }
    let _ = std::fs::remove_dir_all(&home);
    warm.sort_by(f64::total_cmp);
    let (app_kib, all_kib, procs) = idle.expect("measured on the last start");
    rows.push((
        "app: first start to first paint (makes the DEMO kit)".into(),
        format!("{first:.0} ms"),
    ));
    rows.push((
        "app: start to first paint (median of 5)".into(),
        format!(
            "{:.0} ms (min {:.0}, max {:.0})",
            warm[2],
            warm[0],
            warm[warm.len() - 1]
        ),
    ));
    rows.push((
        "app: idle memory, app process (RSS)".into(),
        format!("{:.1} MiB", app_kib as f64 / 1024.0),
    ));
    rows.push((
        format!(
            "app: idle memory, app + {} WebKit processes (PSS)",
            procs - 1
        ),
        format!("{:.1} MiB", all_kib as f64 / 1024.0),
    ));
    Ok(())
}

/// Starts the app and returns the milliseconds until its first paint, and the process.
fn start(bin: &Path, home: &Path, display: &str) -> anyhow::Result<(f64, Child)> {
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .env("FIELDKIT_HOME", home)
        .env("FIELDKIT_BENCH_FIRST_PAINT", "1")
        .env("DISPLAY", display)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let out = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.starts_with("first-paint-ms") {
                let _ = tx.send(Instant::now());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(at) => Ok(((at - t0).as_secs_f64() * 1000.0, child)),
        Err(_) => {
            stop(child);
            bail!("the app did not paint its first screen within 120 s")
        }
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// RSS in KiB of `pid` alone, PSS in KiB of `pid` and all its descendants, and how many
/// processes that is.
fn rss_tree(pid: u32) -> (u64, u64, usize) {
    let mut parents = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = status_field(p, "PPid:") {
                parents.push((p, ppid as u32));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    let rss = status_field(pid, "VmRSS:").unwrap_or(0);
    let pss = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/smaps_rollup"))
            .ok()
            .and_then(|s| field(&s, "Pss:"))
            .unwrap_or(0)
    };
    (rss, tree.iter().map(|&p| pss(p)).sum(), tree.len())
}

fn field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn status_field(pid: u32, name: &str) -> Option<u64> {
    field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        name,
    )
}
