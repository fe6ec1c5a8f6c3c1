//! `fieldkit update`: check, confirm, apply, with progress, cancellable before confirmation.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use fieldkit_core::Home;
use fieldkit_core::apply::{Cancel, Progress, Stage, StepOutcome};
use fieldkit_core::session::{Visit, check, update};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::cmd::check::{render, verdict};
use crate::cmd::identify::open_audit;
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    check: crate::cmd::check::Args,
    /// Apply without asking for confirmation.
    #[arg(long)]
    yes: bool,
    /// Accept the risks the plan lists (e.g. a device without a test slot) without asking.
    #[arg(long)]
    accept_risk: bool,
}

/// Progress as a bar for people, or JSON lines for scripts.
struct CliProgress {
    json: bool,
    bar: Option<ProgressBar>,
    component: String,
}

impl CliProgress {
    fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

impl Progress for CliProgress {
    fn stage(&mut self, stage: Stage, message: &str) {
        if self.json {
            println!(
                "{}",
                json!({ "event": "stage", "stage": stage, "message": message })
            );
            return;
        }
        if stage != Stage::Uploading {
            self.finish_bar();
        }
        // Progress is output, on stdout: stderr carries only the one-line reason of a failure.
        match &self.bar {
            Some(bar) => bar.set_message(message.to_owned()),
            None => println!("  {message}"),
        }
    }

    fn bytes(&mut self, component: &str, done: u64, total: u64) {
        if self.json {
            println!(
                "{}",
                json!({ "event": "progress", "component": component, "done": done, "total": total })
            );
            return;
        }
        if self.component != component {
            self.finish_bar();
            self.component = component.to_owned();
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template(
                    "  {prefix:<8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(component.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        bar.set_length(total);
        bar.set_position(done);
    }
}

pub(crate) fn run(home: &Home, out: &Output, args: Args) -> anyhow::Result<()> {
    let audit = open_audit(home)?;
    let visit = Visit {
        home,
        audit: &audit,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let req = args.check.request();
    let checked = runtime.block_on(check(visit, &req, chrono::Utc::now()))?;
    if out.json() {
        println!(
            "{}",
            json!({ "event": "plan", "plan": checked.plan, "identity": checked.identity })
        );
    } else {
        print!("{}", render(&checked));
    }
    verdict(&checked)?;
    let accept_risk = confirm(&args, &checked)?;

    let cancel = Cancel::new();
    let c = cancel.clone();
    ctrlc::set_handler(move || {
        println!("\n  cancelling at the next safe point (the old firmware stays in charge)...");
        c.cancel();
    })
    .context("install the Ctrl-C handler")?;
    let mut progress = CliProgress {
        json: out.json(),
        bar: None,
        component: String::new(),
    };
    let result = runtime.block_on(update(
        visit,
        &req,
        &checked,
        accept_risk,
        &mut progress,
        &cancel,
        chrono::Utc::now(),
    ));
    progress.finish_bar();
    let updated = result?;
    out.line(
        &json!({ "event": "result", "steps": updated.steps, "identity": updated.identity }),
        &{
            let mut s = String::from("Result\n");
            for (package, outcome) in &updated.steps {
                let text = match outcome {
                    StepOutcome::Applied => "applied; the new firmware runs".to_owned(),
                    StepOutcome::AlreadyInstalled => "already installed".to_owned(),
                    StepOutcome::Reverted { reason } => format!("REVERTED: {reason}"),
                    StepOutcome::Cancelled { stage } => {
                        format!(
                            "CANCELLED while {}; the previous firmware runs",
                            stage.label()
                        )
                    }
                };
                s += &format!("  {package}: {text}\n");
            }
            s.trim_end().to_owned()
        },
    );
    match updated
        .steps
        .iter()
        .find(|(_, o)| !matches!(o, StepOutcome::Applied | StepOutcome::AlreadyInstalled))
    {
        None if updated.steps.len() == checked.plan.steps.len() => Ok(()),
        Some((package, StepOutcome::Reverted { reason })) => {
            bail!("{package} was reverted: {reason}")
        }
        Some((package, StepOutcome::Cancelled { .. })) => {
            bail!("{package}: cancelled by the technician")
        }
        _ => bail!("the update stopped before all steps were applied"),
    }
}

/// Asks the technician to confirm the plan (and accept its risks) unless `--yes` was given.
fn confirm(args: &Args, checked: &fieldkit_core::session::Checked) -> anyhow::Result<bool> {
    let risks = !checked.plan.risks.is_empty();
    if args.yes {
        if risks && !args.accept_risk {
            bail!(
                "this update carries a risk that must be accepted explicitly: {} Pass --accept-risk with --yes, or run without --yes to be asked",
                checked.plan.risks.join(" ")
            );
        }
        return Ok(args.accept_risk);
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to update without confirmation: pass --yes (stdin is not a terminal)");
    }
    let question = if risks {
        "Type 'yes' to apply these steps and accept the risk above: "
    } else {
        "Type 'yes' to apply these steps: "
    };
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        bail!("not applied: the technician did not confirm");
    }
    Ok(risks)
}
