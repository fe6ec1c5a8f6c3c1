//! Test helper for crash-consistency tests: appends to an audit log until killed.
//!
//! `fieldkit-audit-torture DB KEY append` appends intent/outcome pairs forever and prints
//! `acked SEQ LEAFHEX` after each append has returned (so the line proves the entry was durable).
//! `fieldkit-audit-torture DB KEY intent` writes one `update_started` and exits without an
//! outcome, as a crashed update would. The tests kill it with SIGKILL at arbitrary points.

use std::io::Write;
use std::path::Path;

use fieldkit_audit::record::{StepVerdict, examples};
use fieldkit_audit::{AuditLog, Identity, NewEntry};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: fieldkit-audit-torture DB KEY append|intent");
        std::process::exit(2);
    }
    let identity = Identity::laptop(Path::new(&args[2])).unwrap_or_else(|e| fail(&e));
    let log = AuditLog::open(Path::new(&args[1]), identity).unwrap_or_else(|e| fail(&e));
    let device = || examples::device("SN-1", "pump", &[("app", "1.2.3")]);
    let package = format!("p@1.2.3-{}", "x".repeat(512));
    let intent = || NewEntry {
        technician: "torture".into(),
        site: "lab".into(),
        event: examples::intent(device(), &package),
    };
    let mut out = std::io::stdout().lock();
    match args[3].as_str() {
        "intent" => {
            let e = log.append(intent()).unwrap_or_else(|e| fail(&e));
            let _ = writeln!(out, "intent {}", e.seq);
        }
        "append" => loop {
            let started = log.append(intent()).unwrap_or_else(|e| fail(&e));
            ack(&mut out, &log, started.seq);
            let done = log
                .append(NewEntry {
                    technician: "torture".into(),
                    site: "lab".into(),
                    event: examples::outcome(started.seq, device(), &package, StepVerdict::Applied),
                })
                .unwrap_or_else(|e| fail(&e));
            ack(&mut out, &log, done.seq);
        },
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}

fn ack(out: &mut impl Write, log: &AuditLog, seq: u64) {
    let leaf = log.records(seq..=seq).unwrap_or_else(|e| fail(&e))[0].leaf;
    // A broken pipe means the test stopped reading; it is about to kill us anyway.
    let _ = writeln!(out, "acked {seq} {}", hex::encode(leaf)).and_then(|()| out.flush());
}

fn fail(e: &dyn std::fmt::Display) -> ! {
    eprintln!("fieldkit-audit-torture: {e}");
    std::process::exit(1);
}
