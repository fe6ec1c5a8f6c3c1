//! `fieldkit update`: check, confirm, apply, with progress, cancellable before confirmation.
//!
//! The check binds to the last passing `fieldkit check` of the device (a package file that
//! changed since is refused); what happened is decided in `core` and only printed here.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use fieldkit_core::Home;
use fieldkit_core::apply::{Cancel, Progress, Stage};
use fieldkit_core::outcome::UpdateResult;
use fieldkit_core::session::{Visit, check_for_update, update};
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
struct CliProgress<'a> {
    out: &'a Output,
    json: bool,
    bar: Option<ProgressBar>,
    component: String,
}

impl CliProgress<'_> {
    fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

impl Progress for CliProgress<'_> {
    fn stage(&mut self, stage: Stage, message: &str) {
        if self.json {
            self.out.line(
                &json!({ "event": "stage", "stage": stage, "message": message, "cancel_safe": stage.cancel_safe() }),
                "",
            );
            return;
        }
        if stage != Stage::Uploading {
            self.finish_bar();
        }
        // Progress is output, on stdout: stderr carries only the one-line reason of a failure.
        let message = fieldkit_inert::terminal(message).into_owned();
        match &self.bar {
            Some(bar) => bar.set_message(message),
            None => self.out.line(&(), &format!("  {message}")),
        }
    }

    fn bytes(&mut self, component: &str, done: u64, total: u64) {
        if self.json {
            self.out.line(
                &json!({ "event": "progress", "component": component, "done": done, "total": total }),
                "",
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
            bar.set_prefix(fieldkit_inert::terminal(component).into_owned());
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
    let checked = runtime.block_on(check_for_update(visit, &req, chrono::Utc::now()))?;
    out.line(
        &json!({ "event": "plan", "plan": checked.plan, "identity": checked.identity }),
        render(&checked).trim_end(),
    );
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
        out,
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
    let result = result?;
    out.line(
        &json!({ "event": "result", "result": result }),
        &describe(&result),
    );
    if result.completed {
        Ok(())
    } else {
        bail!("{}", result.summary)
    }
}

/// The result as core decided it, for people.
fn describe(r: &UpdateResult) -> String {
    let mut s = String::from("Result\n");
    for step in &r.steps {
        s += &format!("  {}: {}\n", step.package, step.description);
    }
    s += &format!("  {}", r.summary);
    s
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
