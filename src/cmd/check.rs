//! `fieldkit check`: may this device be updated, and why or why not.

use std::path::PathBuf;

use anyhow::bail;
use fieldkit_core::Home;
use fieldkit_core::session::{CheckRequest, Checked, Visit, check};
use fieldkit_plan::Verdict;

use crate::cmd::identify::open_audit;
use crate::output::Output;

#[derive(Debug, clap::Args)]
#[group(skip)]
pub(crate) struct Args {
    /// Serial port of the device, or a simulator's port path.
    #[arg(long, value_name = "PATH")]
    pub(crate) port: PathBuf,
    /// Device profile (default: from the port's USB identity, else what the device reports).
    #[arg(long, value_name = "ID")]
    pub(crate) profile: Option<String>,
    /// A package to consider besides those imported into the home; the newest named one is
    /// the target.
    #[arg(long = "package", value_name = "FILE")]
    pub(crate) packages: Vec<PathBuf>,
    /// An entitlement file to use besides those in the home.
    #[arg(long = "entitlement", value_name = "FILE")]
    pub(crate) entitlements: Vec<PathBuf>,
    /// The customer this visit is for (default: the settings'); entitlements are scoped to it.
    #[arg(long, value_name = "NAME")]
    pub(crate) customer: Option<String>,
    /// The site of this visit (default: the settings'); entitlements may name sites.
    #[arg(long, value_name = "NAME")]
    pub(crate) site: Option<String>,
    /// An identity field the device cannot report, as read off its rating plate
    /// (`serial=VM3-1180-2291`); recorded as typed. The profile says which fields may be typed.
    #[arg(long = "typed", value_name = "FIELD=VALUE", value_parser = crate::cmd::identify::typed_value)]
    pub(crate) typed: Vec<(String, String)>,
}

impl Args {
    pub(crate) fn request(&self) -> CheckRequest {
        CheckRequest {
            port: self.port.clone(),
            profile: self.profile.clone(),
            packages: self.packages.clone(),
            entitlements: self.entitlements.clone(),
            customer: self.customer.clone(),
            site: self.site.clone(),
            typed: self.typed.iter().cloned().collect(),
        }
    }
}

pub(crate) fn run(home: &Home, out: &Output, args: Args) -> anyhow::Result<()> {
    let audit = open_audit(home)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let checked = runtime.block_on(check(
        Visit {
            home,
            audit: &audit,
        },
        &args.request(),
        chrono::Utc::now(),
    ))?;
    out.print(&checked, || render(&checked));
    verdict(&checked)
}

/// Exit status of a check: success only when the update can go ahead.
pub(crate) fn verdict(checked: &Checked) -> anyhow::Result<()> {
    match checked.plan.verdict {
        Verdict::Go => Ok(()),
        Verdict::UpToDate => bail!("nothing to do: {}", checked.plan.summary),
        Verdict::Refused => match checked.plan.first_failure() {
            Some(f) => bail!(
                "update refused by rule {}: found {}, required {}",
                f.rule,
                f.found,
                f.required
            ),
            None => bail!("update refused: {}", checked.plan.summary),
        },
    }
}

/// The check as a technician reads it: the device, the verdict, the steps, every rule.
pub(crate) fn render(c: &Checked) -> String {
    let id = &c.identity;
    let firmware: Vec<String> = id
        .slots
        .iter()
        .filter(|s| s.active)
        .map(|s| format!("{} {}", s.component.as_deref().unwrap_or("?"), s.version))
        .collect();
    let mut s = format!(
        "Device   {} {} (hardware {}; {})\n",
        id.model,
        id.serial,
        id.hardware_revision,
        firmware.join(", ")
    );
    let verdict = match c.plan.verdict {
        Verdict::Go => "READY",
        Verdict::Refused => "REFUSED",
        Verdict::UpToDate => "UP TO DATE",
    };
    s += &format!("Verdict  {verdict}: {}\n", c.plan.summary);
    for b in &c.plan.basis {
        s += &format!("Basis    {b}\n");
    }
    if !c.plan.steps.is_empty() {
        s += "Steps\n";
        for (i, step) in c.plan.steps.iter().enumerate() {
            let changes: Vec<String> = step
                .payloads
                .iter()
                .map(|p| format!("{} {} -> {}", p.component, p.from, p.to))
                .collect();
            s += &format!(
                "  {}. {:<28} {}  ({})\n",
                i + 1,
                step.package,
                changes.join(", "),
                step.reason
            );
        }
    }
    for r in &c.plan.risks {
        s += &format!("Risk     {r}\n");
    }
    for group in &c.plan.rules {
        let title = if group.scope == "device" {
            "the device and this visit"
        } else {
            group.scope.as_str()
        };
        s += &format!("Rules for {title}\n");
        for f in &group.findings {
            let mark = if f.passed { "ok  " } else { "FAIL" };
            s += &format!(
                "  {mark} {:<26} found {}; required {}\n",
                f.rule, f.found, f.required
            );
            if !f.passed {
                s += &format!("       {}\n", f.explanation);
            }
        }
    }
    if !c.set_aside.is_empty() {
        s += "Set aside\n";
        for a in &c.set_aside {
            s += &format!(
                "  {}: {} (found {}; required {})\n",
                a.path.display(),
                a.finding.explanation,
                a.finding.found,
                a.finding.required
            );
        }
    }
    s
}
