//! A visit to a device, as the CLI and the app run it: identify, check, update, each written
//! to the audit log. One implementation, so a technician sees the same decision in either
//! window, and the log records the same facts.
//!
//! The order of writes is the safety argument of DESIGN.md §7: an intent (`update_started`)
//! is durable before the first byte reaches the device; an outcome is durable before it is
//! shown. A crash between them leaves an intent without an outcome, which the next start of
//! the audit log marks `update_interrupted`.
//!
//! **What is checked is what is applied.** A check reads every package file once into the
//! content-addressed store ([`crate::package_store`]) and plans from those bytes; the plan
//! names each step's package by its digests. Before each step's first byte the update reads
//! the package back from the store and the planner's rule compares the digests; then it reads
//! the device again and runs the planner's rules again on the device as it is and the trust
//! material as loaded now ([`fieldkit_plan::recheck`]). Across processes (`fieldkit check`,
//! then `fieldkit update`), an update binds to the last passing check of the device: a
//! package file that holds other bytes than it held then is refused by the same rule, naming
//! both digests. How each step ended is decided here ([`crate::outcome`]) and only rendered
//! by the CLI, the app and the audit entry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use fieldkit_audit::record::{
    self as rec, CheckRecord, Event, Identified, UpdateIntent, UpdateOutcome,
};
use fieldkit_audit::{AuditLog, NewEntry, Reading};
use fieldkit_plan::{Inputs, Plan, Remembered, Step, Verdict};
use fieldkit_profile::{Identity, Profile, ProfileSet};
use fieldkit_trust::{Entitlement, Finding, Limits, VerifiedPackage, verify_package_signed};
use serde::{Deserialize, Serialize};

use crate::apply::{
    ApplyError, Cancel, ImageToInstall, PortConnector, Progress, Stage, StepOutcome,
};
use crate::driver::{Driver, for_profile};
use crate::home::Home;
use crate::identify::{IdentifyError, Typed, probe};
use crate::outcome::{StepResult, StepVerdict, UpdateResult};
use crate::package_store;
use crate::record;
use crate::trust_store::{StoreError, TrustMaterial, read_small};

/// Who is visiting and where: written into every audit entry. Kept in `settings.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The technician's name.
    pub technician: String,
    /// The site of the visit; empty until the technician says (entitlements that name sites
    /// are then refused, with the rule that says so).
    pub site: String,
    /// The customer of the visit, for entitlement checks; unset, entitlement-dependent
    /// releases are refused with the rule that says so.
    pub customer: Option<String>,
    /// The hub to sync the audit log to.
    pub hub: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            technician: std::env::var("USER").unwrap_or_else(|_| "technician".into()),
            site: String::new(),
            customer: None,
            hub: None,
        }
    }
}

impl Settings {
    /// Reads `settings.json` from the home (defaults when absent).
    pub fn load(home: &Home) -> Result<Settings, StoreError> {
        let path = home.join("settings.json");
        if !path.exists() {
            return Ok(Settings::default());
        }
        let bytes = read_small(&path, 64 * 1024)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Io {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }

    /// Writes `settings.json`.
    pub fn save(&self, home: &Home) -> Result<(), StoreError> {
        home.ensure().map_err(|e| StoreError::Io {
            path: home.root().into(),
            source: std::io::Error::other(e),
        })?;
        crate::trust_store::write_atomic(
            &home.join("settings.json"),
            &serde_json::to_vec_pretty(self).expect("serializes"),
        )
    }
}

/// Why a visit step failed before reaching a decision.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VisitError {
    /// The device could not be read.
    #[error(transparent)]
    Identify(#[from] IdentifyError),
    /// The port could not be opened.
    #[error(transparent)]
    Link(#[from] fieldkit_link::LinkError),
    /// Trust material could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The home's extra device profiles could not be read.
    #[error(transparent)]
    Home(#[from] crate::home::HomeError),
    /// The audit log refused to record: nothing is done without a record.
    #[error("the audit log cannot record this: {0}")]
    Audit(String),
    /// A profile was asked for that does not exist.
    #[error("unknown profile {found:?}: required one of {known}")]
    UnknownProfile {
        /// The id given.
        found: String,
        /// Known ids.
        known: String,
    },
    /// The update was asked for, but the check refused it.
    #[error("{0}")]
    Refused(String),
    /// The plan carries risks the technician has not accepted.
    #[error("this update needs the technician to accept a risk first: {0}")]
    RiskNotAccepted(String),
    /// A step failed on the device.
    #[error("{0}")]
    Apply(#[from] ApplyError),
}

impl VisitError {
    /// A short machine-readable kind, for `{kind, message}`.
    pub fn kind(&self) -> &'static str {
        match self {
            VisitError::Identify(e) => e.kind(),
            VisitError::Link(_) => "link",
            VisitError::Store(StoreError::NoRoot { .. }) => "no_trust_root",
            VisitError::Store(_) => "trust_store",
            VisitError::Home(_) => "home",
            VisitError::Audit(_) => "audit",
            VisitError::UnknownProfile { .. } => "unknown_profile",
            VisitError::Refused(_) => "refused",
            VisitError::RiskNotAccepted(_) => "risk_not_accepted",
            VisitError::Apply(e) => e.kind(),
        }
    }
}

fn audit_err(e: impl std::fmt::Display) -> VisitError {
    VisitError::Audit(e.to_string())
}

/// A technician's visit: the home (trust material, settings) and the audit log every step is
/// written to.
#[derive(Clone, Copy)]
pub struct Visit<'a> {
    /// The technician's data directory.
    pub home: &'a Home,
    /// The audit log.
    pub audit: &'a AuditLog,
}

/// Opens `port` and reads the device, with `profile` or the one the device turns out to be;
/// `typed` holds the fields the technician typed.
pub async fn read_device<'p>(
    port: &Path,
    profiles: &'p ProfileSet,
    profile: Option<&str>,
    typed: &Typed,
) -> Result<(Identity, &'p Profile), VisitError> {
    // A port that is not there at all is a mistyped name, not a device restarting: say so now.
    if !port.exists() {
        return Err(fieldkit_link::LinkError::NotFound {
            path: port.to_owned(),
        }
        .into());
    }
    let by_usb = fieldkit_link::discover(profiles).ok().and_then(|ports| {
        let wanted = std::fs::canonicalize(port).ok();
        ports
            .into_iter()
            .find(|p| Some(PathBuf::from(&p.path)) == wanted)
            .and_then(|p| p.profile)
    });
    let chosen = match profile.map(str::to_owned).or(by_usb) {
        Some(id) => Some(
            profiles
                .get(&id)
                .ok_or_else(|| VisitError::UnknownProfile {
                    found: id.clone(),
                    known: profiles.ids().join(", "),
                })?,
        ),
        None => None,
    };
    let profile = match chosen {
        Some(p) => p,
        None => {
            let first = profiles.iter().next().expect("shipped profiles exist");
            let mut connector = PortConnector {
                path: port.to_owned(),
                line: first.line.clone(),
            };
            probe(&mut connector, profiles).await?
        }
    };
    let identity = for_profile(profile, connector_for(port, profile), typed.clone())
        .identify()
        .await?;
    Ok((identity, profile))
}

/// The port `port` opened with `profile`'s line settings.
fn connector_for(port: &Path, profile: &Profile) -> PortConnector {
    PortConnector {
        path: port.to_owned(),
        line: profile.line.clone(),
    }
}

/// Identifies a device and records it.
pub async fn identify_and_record(
    visit: Visit<'_>,
    port: &Path,
    profile: Option<&str>,
    typed: &Typed,
) -> Result<Identity, VisitError> {
    let Visit { home, audit } = visit;
    let profiles = home.profiles()?;
    let settings = Settings::load(home)?;
    let (identity, _) = read_device(port, &profiles, profile, typed).await?;
    audit
        .append(NewEntry {
            technician: settings.technician,
            site: settings.site,
            event: Event::DeviceIdentified(Identified {
                device: record::device_record(&identity),
                port: port.display().to_string(),
            }),
        })
        .map_err(audit_err)?;
    Ok(identity)
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct CheckRequest {
    /// The device's port.
    pub port: PathBuf,
    /// Its profile, when known.
    pub profile: Option<String>,
    /// Package files named by the technician (besides those imported into the home).
    pub packages: Vec<PathBuf>,
    /// Entitlement files named by the technician (besides those in the home).
    pub entitlements: Vec<PathBuf>,
    /// The customer of this visit, when given here rather than in the settings.
    pub customer: Option<String>,
    /// The site of this visit, when given here rather than in the settings.
    pub site: Option<String>,
    /// Identity fields the technician typed (those the device cannot report), recorded as
    /// typed.
    pub typed: Typed,
}

/// A file that was set aside, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SetAside {
    /// The file.
    pub path: PathBuf,
    /// The rule it failed.
    pub finding: Finding,
}

/// A package file a check considered, bound to the bytes it held.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedFile {
    /// The file (canonical path).
    pub path: PathBuf,
    /// SHA-256 of the bytes read (and kept in the store), when it could be read.
    pub sha256: Option<String>,
    /// Whether the technician named it (rather than it being imported in the home).
    pub named: bool,
}

/// A check's result: the device as read, and the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// The device.
    pub identity: Identity,
    /// The plan, with every rule evaluated; each step names its package by its digests.
    pub plan: Plan,
    /// The package files considered.
    pub files: Vec<CheckedFile>,
    /// The verified packages, in the order the plan's step indexes refer to.
    #[serde(skip)]
    pub packages: Vec<VerifiedPackage>,
    /// Package and entitlement files that were set aside.
    pub set_aside: Vec<SetAside>,
    /// The audit entry that recorded the check.
    pub audit_seq: u64,
}

/// Whether a check stands alone or is the one an update is about to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A technician's check: it binds later updates to the bytes it read.
    Review,
    /// The check an update makes: package files must hold the bytes the last passing check
    /// of the device read from them.
    Update,
}

/// Reads the device, evaluates every rule, records the decision.
pub async fn check(
    visit: Visit<'_>,
    req: &CheckRequest,
    system_now: DateTime<Utc>,
) -> Result<Checked, VisitError> {
    check_for(visit, req, system_now, Purpose::Review).await
}

/// The check an update applies: as [`check`], and every package file must still hold the
/// bytes the last passing check of this device read from it (rule
/// `package.changed_since_check`).
pub async fn check_for_update(
    visit: Visit<'_>,
    req: &CheckRequest,
    system_now: DateTime<Utc>,
) -> Result<Checked, VisitError> {
    check_for(visit, req, system_now, Purpose::Update).await
}

fn set_aside_finding(e: &StoreError, rule: &str, required: &str) -> Finding {
    e.finding().unwrap_or_else(|| {
        Finding::fail(rule, e.to_string(), required, "The file could not be read.")
    })
}

/// The visit's customer and site: the request's, else the settings'.
fn visit_of<'a>(req: &'a CheckRequest, settings: &'a Settings) -> fieldkit_plan::Visit<'a> {
    let said = |s: Option<&'a str>| s.map(str::trim).filter(|s| !s.is_empty());
    fieldkit_plan::Visit {
        customer: said(req.customer.as_deref()).or(said(settings.customer.as_deref())),
        site: said(req.site.as_deref()).or(said(Some(settings.site.as_str()))),
    }
}

/// Reads a package file once into the store and verifies it from there (signatures and
/// digests; the planner decides the rest).
fn take_in_and_verify(
    home: &Home,
    root: &fieldkit_trust::TrustRoot,
    path: &Path,
) -> (Option<String>, Result<VerifiedPackage, StoreError>) {
    let stored = match package_store::take_in(home, path) {
        Ok(s) => s,
        Err(e) => return (None, Err(e)),
    };
    let verified = std::fs::File::open(&stored.path)
        .map_err(|source| StoreError::Io {
            path: stored.path.clone(),
            source,
        })
        .and_then(|file| {
            verify_package_signed(
                std::io::BufReader::new(file),
                root,
                &Limits::default(),
                &mut |_, _| Ok(()),
            )
            .map_err(|source| StoreError::Refused {
                path: path.to_owned(),
                source,
            })
        });
    (Some(stored.sha256), verified)
}

async fn check_for(
    visit: Visit<'_>,
    req: &CheckRequest,
    system_now: DateTime<Utc>,
    purpose: Purpose,
) -> Result<Checked, VisitError> {
    let Visit { home, audit } = visit;
    let profiles = home.profiles()?;
    let settings = Settings::load(home)?;
    let material = TrustMaterial::load(home, audit)?;

    // Read every package file once into the store and verify it from there, before touching
    // the device: a refused package never reaches it, and the bytes planned are those kept.
    let mut set_aside: Vec<SetAside> = material
        .problems
        .iter()
        .map(|p| SetAside {
            path: p.path.clone(),
            finding: p.finding.clone(),
        })
        .collect();
    let mut files = Vec::new();
    let mut packages: Vec<VerifiedPackage> = Vec::new();
    let mut named = Vec::new();
    let mut named_refusals = Vec::new();
    let home_files = material.packages.iter().map(|p| (p.clone(), false));
    let extra = req.packages.iter().map(|p| (p.clone(), true));
    for (given, is_named) in home_files.chain(extra) {
        let path = std::fs::canonicalize(&given).unwrap_or(given);
        let (sha256, result) = take_in_and_verify(home, &material.root, &path);
        files.push(CheckedFile {
            path: path.clone(),
            sha256,
            named: is_named,
        });
        match result {
            Ok(vp) => {
                if let Some(i) = packages.iter().position(|q| q.manifest == vp.manifest) {
                    if is_named {
                        named.push(i);
                    }
                    continue;
                }
                if is_named {
                    named.push(packages.len());
                }
                packages.push(vp);
            }
            Err(e) => {
                let finding =
                    set_aside_finding(&e, fieldkit_trust::rules::IO, "a readable package");
                if is_named {
                    named_refusals.push(finding.clone());
                }
                set_aside.push(SetAside { path, finding });
            }
        }
    }
    let entitlements = entitlements_of(&material, &req.entitlements, &mut set_aside);

    let (identity, profile) =
        read_device(&req.port, &profiles, req.profile.as_deref(), &req.typed).await?;
    if purpose == Purpose::Update {
        // A file that changed since it was checked is the answer, before whatever else is
        // wrong with its new bytes.
        let changed = changed_since_last_check(audit, &identity, &files)?;
        named_refusals.splice(0..0, changed);
    }
    let security_counter = material.security_counter(audit, &identity.serial)?;
    let plan = fieldkit_plan::plan(&Inputs {
        identity: &identity,
        profile,
        packages: &packages,
        entitlements: &entitlements,
        recall: material.recall.as_ref(),
        root: &material.root,
        system_now,
        remembered: Remembered {
            time_mark: material.state.time_mark,
            security_counter,
            generations: &material.state.entitlement_generations,
        },
        visit: visit_of(req, &settings),
        named: &named,
        named_refusals: &named_refusals,
    });
    // Remembered from now on: what the device reports, or what the plan inferred from the
    // image it runs, never below what was remembered.
    let seen_counter = Some(plan.security_counter).max(security_counter);
    let entry = audit
        .append(NewEntry {
            technician: settings.technician,
            site: settings.site,
            event: Event::Check(CheckRecord {
                device: record::device_record(&identity),
                verdict: record::check_verdict(&plan),
                summary: plan.summary.clone(),
                target: plan.target.clone(),
                basis: plan.basis.clone(),
                steps: plan.steps.iter().map(record::step_record).collect(),
                rules: record::rule_groups(&plan),
                risks: plan.risks.clone(),
                files: files
                    .iter()
                    .map(|f| rec::CheckedFile {
                        path: f.path.display().to_string(),
                        sha256: f.sha256.clone(),
                    })
                    .collect(),
                set_aside: set_aside
                    .iter()
                    .map(|a| rec::SetAsideRecord {
                        path: a.path.display().to_string(),
                        rule: record::rule(&a.finding),
                    })
                    .collect(),
                trust: material.snapshot(seen_counter),
            }),
        })
        .map_err(audit_err)?;
    Ok(Checked {
        identity,
        plan,
        files,
        packages,
        set_aside,
        audit_seq: entry.seq,
    })
}

/// The entitlements in the home and those named, each opened against the trust root; those
/// that do not open are set aside with their rule.
fn entitlements_of(
    material: &TrustMaterial,
    named: &[PathBuf],
    set_aside: &mut Vec<SetAside>,
) -> Vec<Entitlement> {
    let mut out: Vec<Entitlement> = material
        .entitlements
        .iter()
        .map(|e| e.entitlement.clone())
        .collect();
    for path in named {
        let opened = read_small(path, crate::trust_store::MAX_DOCUMENT).and_then(|bytes| {
            Entitlement::open(&bytes, &material.root).map_err(|source| StoreError::Refused {
                path: path.clone(),
                source,
            })
        });
        match opened {
            Ok(e) => out.push(e),
            Err(e) => set_aside.push(SetAside {
                path: path.clone(),
                finding: set_aside_finding(
                    &e,
                    fieldkit_trust::rules::ENTITLEMENT,
                    "a valid entitlement",
                ),
            }),
        }
    }
    out
}

/// The package files whose bytes differ from those the last passing check of this device
/// read from the same path: one refusal each, naming both digests.
fn changed_since_last_check(
    audit: &AuditLog,
    identity: &Identity,
    files: &[CheckedFile],
) -> Result<Vec<Finding>, VisitError> {
    let Some(entry) = audit
        .latest(&[rec::events::CHECK_PASSED], Some(&identity.serial))
        .map_err(audit_err)?
    else {
        return Ok(Vec::new());
    };
    let Ok(Reading::Typed(Event::Check(last))) = entry.read() else {
        return Ok(Vec::new());
    };
    Ok(files
        .iter()
        .filter_map(|f| {
            let path = f.path.display().to_string();
            let then = last.files.iter().find(|c| c.path == path)?;
            let required = then.sha256.as_deref()?;
            (f.sha256.as_deref() != Some(required)).then(|| {
                fieldkit_plan::file_changed_since_check(
                    &path,
                    f.sha256.as_deref(),
                    required,
                    entry.seq,
                )
            })
        })
        .collect())
}

/// Applies a checked plan, step by step: an intent before each step touches the device, the
/// bytes and every rule checked again right before its first byte, and its outcome after.
/// Stops at the first step that does not leave its images installed. Device failures are
/// step verdicts in the result, not errors: an error means nothing was attempted or the log
/// could not record.
pub async fn update(
    visit: Visit<'_>,
    req: &CheckRequest,
    checked: &Checked,
    accept_risks: bool,
    progress: &mut dyn Progress,
    cancel: &Cancel,
    system_now: DateTime<Utc>,
) -> Result<UpdateResult, VisitError> {
    let Visit { home, audit } = visit;
    if checked.plan.verdict != Verdict::Go {
        return Err(VisitError::Refused(checked.plan.summary.clone()));
    }
    if !checked.plan.risks.is_empty() && !accept_risks {
        return Err(VisitError::RiskNotAccepted(checked.plan.risks.join(" ")));
    }
    let profiles = home.profiles()?;
    let settings = Settings::load(home)?;
    let profile =
        profiles
            .get(&checked.identity.profile)
            .ok_or_else(|| VisitError::UnknownProfile {
                found: checked.identity.profile.clone(),
                known: profiles.ids().join(", "),
            })?;
    let mut results = Vec::new();
    let mut identity = checked.identity.clone();
    let total = checked.plan.steps.len();
    let mut stopped = false;
    let mut continue_as = None;
    for (n, step) in checked.plan.steps.iter().enumerate() {
        if stopped {
            results.push(StepResult {
                package: step.package.clone(),
                description: StepVerdict::NotAttempted.describe(),
                verdict: StepVerdict::NotAttempted,
                before: BTreeMap::new(),
                after: BTreeMap::new(),
                audit_seq: None,
            });
            continue;
        }
        progress.stage(
            Stage::Preparing,
            &format!(
                "step {} of {total}: {} ({})",
                n + 1,
                step.package,
                step.reason
            ),
        );
        let before = record::versions(&identity);
        let intent = audit
            .append(NewEntry {
                technician: settings.technician.clone(),
                site: settings.site.clone(),
                event: Event::UpdateStarted(UpdateIntent {
                    device: record::device_record(&identity),
                    check_seq: checked.audit_seq,
                    step: u32::try_from(n + 1).unwrap_or(u32::MAX),
                    steps: u32::try_from(total).unwrap_or(u32::MAX),
                    plan_step: record::step_record(step),
                    risks_accepted: checked.plan.risks.clone(),
                }),
            })
            .map_err(audit_err)?;
        // One driver, one link, for the whole step: it reads the device right before the
        // first byte (the rules are checked again on that reading), applies, and reads back.
        let mut driver = for_profile(
            profile,
            connector_for(&req.port, profile),
            req.typed.clone(),
        );
        let prepared = prepare_step(
            visit,
            req,
            checked,
            step,
            profile,
            &settings,
            system_now,
            &mut driver,
            progress,
        )
        .await;
        let verdict = match prepared {
            Ok(Prepared::Refused(rules)) => StepVerdict::Refused { rules },
            Ok(Prepared::Go(images)) => step_verdict(
                driver
                    .apply(&images, progress, cancel)
                    .await
                    .map_err(VisitError::from),
            ),
            Err(e) => failed(Stage::Preparing, &e),
        };
        // Read back what the device runs now for the record (best effort: it may be gone, or
        // have restarted into a program with another identity).
        let read_back = match driver.identify().await {
            Ok(now_identity) => {
                identity = now_identity;
                true
            }
            Err(_) => false,
        };
        let after = if read_back {
            record::versions(&identity)
        } else {
            BTreeMap::new()
        };
        let recorded = record::step_verdict(&verdict);
        let outcome = match recorded {
            Some(result) => Some(
                audit
                    .append(NewEntry {
                        technician: intent.technician.clone(),
                        site: intent.site.clone(),
                        event: Event::Update(UpdateOutcome {
                            device: record::device_record(&identity),
                            intent_seq: intent.seq,
                            package: record::digests(step),
                            result,
                            before: before.clone(),
                            after: after.clone(),
                            read_back,
                        }),
                    })
                    .map_err(audit_err)?
                    .seq,
            ),
            None => None,
        };
        stopped = !verdict.succeeded();
        // From a bootloader mode, the reset after an in-place step boots the application,
        // which is another profile (and often another USB device): the rest of the plan is for
        // a new check with that profile, where its steps get a test boot.
        if verdict == StepVerdict::AppliedInPlace
            && n + 1 < total
            && let Some(app) = &profile.device.application
        {
            continue_as = Some(app.get_ref().clone());
            stopped = true;
        }
        results.push(StepResult {
            package: step.package.clone(),
            description: verdict.describe(),
            verdict,
            before,
            after,
            audit_seq: outcome,
        });
    }
    let mut result = UpdateResult::new(results, identity);
    if let Some(app) = continue_as {
        let done = result
            .steps
            .iter()
            .filter(|s| s.verdict.succeeded())
            .count();
        let left = result.steps.len() - done;
        result.summary = format!(
            "{done} step{} applied in place; the device restarted into its application: check it again with profile {app} to apply the remaining {left} step{}",
            if done == 1 { "" } else { "s" },
            if left == 1 { "" } else { "s" },
        );
        result.continue_as = Some(app);
    }
    Ok(result)
}

enum Prepared {
    /// Every rule holds now: these images, exactly as checked, may be sent.
    Go(Vec<ImageToInstall>),
    /// Rules whose verdict changed since the check.
    Refused(Vec<Finding>),
}

/// Right before a step's first byte: the bytes from the store against the plan's digests,
/// then the device re-read and every rule of the step evaluated again.
#[allow(clippy::too_many_arguments)]
async fn prepare_step(
    visit: Visit<'_>,
    req: &CheckRequest,
    checked: &Checked,
    step: &Step,
    profile: &Profile,
    settings: &Settings,
    system_now: DateTime<Utc>,
    driver: &mut impl Driver,
    progress: &mut dyn Progress,
) -> Result<Prepared, VisitError> {
    let Visit { home, audit } = visit;
    progress.stage(
        Stage::Preparing,
        "reading the package back and comparing it with the plan",
    );
    let material = TrustMaterial::load(home, audit)?;
    let loaded = package_store::load(
        home,
        &step.file_sha256,
        &material.root,
        // No payload is larger than the package file that carries it; the device's own slot
        // size bounds what it accepts, and the driver learns it from the device.
        package_store::MAX_PACKAGE,
    );
    let loaded = match loaded {
        Ok(l) => l,
        Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Prepared::Refused(vec![fieldkit_plan::changed_since_check(
                step,
                "(the stored copy is gone)",
                None,
            )]));
        }
        Err(e) => return Err(e.into()),
    };
    let bytes =
        fieldkit_plan::changed_since_check(step, &loaded.file_sha256, loaded.package.as_ref().ok());
    let (package, mut payloads) = match (bytes.passed, loaded.package) {
        (true, Ok(p)) => (p, loaded.payloads),
        _ => return Ok(Prepared::Refused(vec![bytes])),
    };

    progress.stage(Stage::Preparing, "re-reading the device before touching it");
    let now = driver.identify().await?;
    let mut packages = checked.packages.clone();
    packages[step.index] = package;
    let mut ignored = Vec::new();
    let entitlements = entitlements_of(&material, &req.entitlements, &mut ignored);
    let security_counter = material.security_counter(audit, &now.serial)?;
    let recheck = fieldkit_plan::recheck(
        &Inputs {
            identity: &now,
            profile,
            packages: &packages,
            entitlements: &entitlements,
            recall: material.recall.as_ref(),
            root: &material.root,
            system_now,
            remembered: Remembered {
                time_mark: material.state.time_mark,
                security_counter,
                generations: &material.state.entitlement_generations,
            },
            visit: visit_of(req, settings),
            named: &[],
            named_refusals: &[],
        },
        step,
        &checked.identity,
    );
    let changed = recheck.changed();
    if !changed.is_empty() {
        return Ok(Prepared::Refused(changed));
    }
    let manifest = &packages[step.index].manifest;
    let images = step
        .payloads
        .iter()
        .filter_map(|sp| {
            let i = manifest
                .payloads
                .iter()
                .position(|p| p.component == sp.component)?;
            Some(ImageToInstall {
                component: sp.component.clone(),
                image: sp.image,
                bytes: Arc::new(std::mem::take(&mut payloads[i])),
                sha256: sp.sha256.clone(),
                image_hash: sp.image_hash.clone().unwrap_or_default(),
                version: sp.to.clone(),
            })
        })
        .collect();
    Ok(Prepared::Go(images))
}

/// The verdict of a step the driver ran.
fn step_verdict(result: Result<StepOutcome, VisitError>) -> StepVerdict {
    match result {
        Ok(StepOutcome::Applied) => StepVerdict::Applied,
        Ok(StepOutcome::AppliedInPlace) => StepVerdict::AppliedInPlace,
        Ok(StepOutcome::AlreadyInstalled) => StepVerdict::AlreadyInstalled,
        Ok(StepOutcome::Reverted { stage, reason }) => StepVerdict::Reverted { stage, reason },
        Ok(StepOutcome::Cancelled { stage }) => StepVerdict::Cancelled { stage },
        Ok(StepOutcome::WrongImage {
            component,
            found,
            required,
        }) => StepVerdict::WrongImage {
            component,
            found,
            required,
        },
        Err(e) => {
            let stage = match &e {
                VisitError::Apply(a) => a.stage(),
                _ => Stage::Uploading,
            };
            failed(stage, &e)
        }
    }
}

fn failed(stage: Stage, e: &VisitError) -> StepVerdict {
    StepVerdict::Failed {
        stage,
        kind: e.kind().to_owned(),
        message: e.to_string(),
    }
}

/// The entitlement rules of each of `packages` for the device `identity` and this visit, as
/// the planner decides them (for showing, next to each package, what entitles it).
pub fn entitlement_findings(
    visit: Visit<'_>,
    identity: &Identity,
    packages: &[VerifiedPackage],
    system_now: DateTime<Utc>,
) -> Result<Vec<Vec<Finding>>, VisitError> {
    let Visit { home, audit } = visit;
    let profiles = home.profiles()?;
    let profile = profiles
        .get(&identity.profile)
        .ok_or_else(|| VisitError::UnknownProfile {
            found: identity.profile.clone(),
            known: profiles.ids().join(", "),
        })?;
    let settings = Settings::load(home)?;
    let material = TrustMaterial::load(home, audit)?;
    let mut ignored = Vec::new();
    let entitlements = entitlements_of(&material, &[], &mut ignored);
    let security_counter = material.security_counter(audit, &identity.serial)?;
    let req = CheckRequest::default();
    let inputs = Inputs {
        identity,
        profile,
        packages,
        entitlements: &entitlements,
        recall: material.recall.as_ref(),
        root: &material.root,
        system_now,
        remembered: Remembered {
            time_mark: material.state.time_mark,
            security_counter,
            generations: &material.state.entitlement_generations,
        },
        visit: visit_of(&req, &settings),
        named: &[],
        named_refusals: &[],
    };
    Ok(packages
        .iter()
        .map(|p| fieldkit_plan::entitlement_rules(&inputs, p))
        .collect())
}
