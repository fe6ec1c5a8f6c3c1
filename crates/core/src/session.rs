//! A visit to a device, as the CLI and the app run it: identify, check, update, each written
//! to the audit log. One implementation, so a technician sees the same decision in either
//! window, and the log records the same facts.
//!
//! The order of writes is the safety argument of DESIGN.md §7: an intent (`update_started`)
//! is durable before the first byte reaches the device; an outcome is durable before it is
//! shown. A crash between them leaves an intent without an outcome, which the next start of
//! the audit log marks `update_interrupted`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fieldkit_audit::{AuditLog, NewEntry, events};
use fieldkit_plan::{Inputs, Plan, Step, Verdict};
use fieldkit_profile::{Family, Identity, Profile, ProfileSet};
use fieldkit_trust::{Entitlement, Finding, Limits, VerifiedPackage, verify_package_with};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::apply::{
    ApplyError, Cancel, Device, ImageToInstall, PortConnector, Progress, Stage, StepOutcome,
};
use crate::home::Home;
use crate::identify::{IdentifyError, identify_device, probe};
use crate::trust_store::{StoreError, TrustMaterial, read_small};

/// Who is visiting and where: written into every audit entry. Kept in `settings.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The technician's name.
    pub technician: String,
    /// The customer site.
    pub site: String,
    /// The customer, for entitlement checks.
    pub customer: Option<String>,
    /// The hub to sync the audit log to.
    pub hub: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            technician: std::env::var("USER").unwrap_or_else(|_| "technician".into()),
            site: "unspecified site".into(),
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

/// The device fields the audit log and the hub index.
pub fn device_record(identity: &Identity) -> Value {
    let firmware: serde_json::Map<String, Value> = identity
        .slots
        .iter()
        .filter(|s| s.active)
        .map(|s| {
            (
                s.component
                    .clone()
                    .unwrap_or_else(|| format!("image{}", s.image)),
                Value::from(s.version.clone()),
            )
        })
        .collect();
    json!({
        "serial": identity.serial,
        "model": identity.model,
        "profile": identity.profile,
        "hardware_revision": identity.hardware_revision,
        "bootloader_version": identity.bootloader_version,
        "firmware": firmware,
        "battery_percent": identity.battery_percent,
        "therapy_running": identity.therapy_running,
    })
}

/// Opens `port` and reads the device, with `profile` or the one the device turns out to be.
pub async fn read_device<'p>(
    port: &Path,
    profiles: &'p ProfileSet,
    profile: Option<&str>,
) -> Result<(Identity, &'p Profile), VisitError> {
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
            let mut link = fieldkit_link::open(port, &first.line)?;
            probe(&mut link, profiles).await?
        }
    };
    let link = fieldkit_link::open(port, &profile.line)?;
    let identity = identify_device(link, profile).await?;
    Ok((identity, profile))
}

/// Identifies a device and records it.
pub async fn identify_and_record(
    visit: Visit<'_>,
    port: &Path,
    profile: Option<&str>,
) -> Result<Identity, VisitError> {
    let Visit { home, audit } = visit;
    let profiles = home.profiles()?;
    let settings = Settings::load(home)?;
    let (identity, _) = read_device(port, &profiles, profile).await?;
    audit
        .append(NewEntry {
            technician: settings.technician,
            site: settings.site,
            device: device_record(&identity),
            event: events::DEVICE_IDENTIFIED.into(),
            details: json!({ "port": port.display().to_string(), "identity": identity }),
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
}

/// A package file that was set aside, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SetAside {
    /// The file.
    pub path: PathBuf,
    /// The rule it failed.
    pub finding: Finding,
}

/// A check's result: the device as read, and the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// The device.
    pub identity: Identity,
    /// The plan, with every rule evaluated.
    pub plan: Plan,
    /// Package files that verified, in the order the plan's step indexes refer to.
    pub package_files: Vec<PathBuf>,
    /// The verified packages, same order.
    #[serde(skip)]
    pub packages: Vec<VerifiedPackage>,
    /// Package and entitlement files that were set aside.
    pub set_aside: Vec<SetAside>,
    /// The audit entry that recorded the check.
    pub audit_seq: u64,
}

/// Reads the device, evaluates every rule, records the decision.
pub async fn check(
    visit: Visit<'_>,
    req: &CheckRequest,
    system_now: DateTime<Utc>,
) -> Result<Checked, VisitError> {
    let Visit { home, audit } = visit;
    let profiles = home.profiles()?;
    let settings = Settings::load(home)?;
    let material = TrustMaterial::load(home)?;
    let clock = material.trusted_time().check(system_now);
    let now = material
        .trusted_time()
        .mark()
        .map_or(system_now, |m| m.max(system_now));

    // Verify before touching the device: a refused package never reaches it.
    let mut set_aside: Vec<SetAside> = material
        .problems
        .iter()
        .map(|p| SetAside {
            path: p.path.clone(),
            finding: p.finding.clone(),
        })
        .collect();
    let mut package_files = Vec::new();
    let mut packages = Vec::new();
    let mut named = Vec::new();
    let mut named_refusals = Vec::new();
    let home_files = material.packages.iter().map(|p| (p.clone(), false));
    let extra = req.packages.iter().map(|p| (p.clone(), true));
    for (path, is_named) in home_files.chain(extra) {
        match material.verify_package_file(&path, now) {
            Ok(vp) => {
                if let Some(i) = packages
                    .iter()
                    .position(|q: &VerifiedPackage| q.manifest == vp.manifest)
                {
                    if is_named {
                        named.push(i);
                    }
                    continue;
                }
                if is_named {
                    named.push(packages.len());
                }
                package_files.push(path);
                packages.push(vp);
            }
            Err(e) => {
                let finding = e.finding().unwrap_or_else(|| {
                    Finding::fail(
                        fieldkit_trust::rules::IO,
                        e.to_string(),
                        "a readable package",
                        "The package file could not be read.",
                    )
                });
                if is_named {
                    named_refusals.push(finding.clone());
                }
                set_aside.push(SetAside { path, finding });
            }
        }
    }
    let mut entitlements: Vec<Entitlement> = material
        .entitlements
        .iter()
        .map(|e| e.entitlement.clone())
        .collect();
    for path in &req.entitlements {
        let opened = read_small(path, crate::trust_store::MAX_DOCUMENT).and_then(|bytes| {
            Entitlement::open(&bytes, &material.root).map_err(|source| StoreError::Refused {
                path: path.clone(),
                source,
            })
        });
        match opened {
            Ok(e) => entitlements.push(e),
            Err(e) => set_aside.push(SetAside {
                path: path.clone(),
                finding: e.finding().unwrap_or_else(|| {
                    Finding::fail(
                        fieldkit_trust::rules::ENTITLEMENT,
                        e.to_string(),
                        "a valid entitlement",
                        "The entitlement file could not be used.",
                    )
                }),
            }),
        }
    }

    let (identity, profile) = read_device(&req.port, &profiles, req.profile.as_deref()).await?;
    let mut plan = fieldkit_plan::plan(&Inputs {
        identity: &identity,
        profile,
        packages: &packages,
        entitlements: &entitlements,
        recall: material.recall.as_ref(),
        root: &material.root,
        clock: &clock,
        now,
        customer: settings.customer.as_deref(),
        named: &named,
    });
    if !named_refusals.is_empty() {
        // A package the technician named did not verify: that is the answer.
        let first = named_refusals[0].explanation.clone();
        plan.rules.push(fieldkit_plan::RuleGroup {
            scope: "named package".into(),
            findings: named_refusals,
        });
        plan.verdict = Verdict::Refused;
        plan.steps.clear();
        plan.summary = format!("The package you named cannot be used: {first}");
    }
    let event = if plan.verdict == Verdict::Go {
        events::CHECK_PASSED
    } else {
        events::CHECK_REFUSED
    };
    let entry = audit
        .append(NewEntry {
            technician: settings.technician,
            site: settings.site,
            device: device_record(&identity),
            event: event.into(),
            details: json!({ "plan": plan, "set_aside": set_aside }),
        })
        .map_err(audit_err)?;
    Ok(Checked {
        identity,
        plan,
        package_files,
        packages,
        set_aside,
        audit_seq: entry.seq,
    })
}

/// How an update went.
#[derive(Debug, Clone, Serialize)]
pub struct Updated {
    /// The outcome of each step applied, in order.
    pub steps: Vec<(String, StepOutcome)>,
    /// The device as read after the last step.
    pub identity: Identity,
}

/// Reads the payloads of a package for applying, verifying it again in the same pass: the
/// bytes sent are exactly the bytes verified, whatever happened to the file since the check.
fn read_payloads(
    material: &TrustMaterial,
    path: &Path,
    now: DateTime<Utc>,
    slot_size: u64,
) -> Result<(VerifiedPackage, Vec<Vec<u8>>), VisitError> {
    let file = std::fs::File::open(path).map_err(|source| StoreError::Io {
        path: path.into(),
        source,
    })?;
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let limits = Limits {
        payload: slot_size.max(1),
        ..Limits::default()
    };
    let vp = verify_package_with(file, &material.root, now, &limits, &mut |i, chunk| {
        if payloads.len() <= i {
            payloads.resize(i + 1, Vec::new());
        }
        payloads[i].extend_from_slice(chunk);
        Ok(())
    })
    .map_err(|source| StoreError::Refused {
        path: path.into(),
        source,
    })?;
    Ok((vp, payloads))
}

/// Applies a checked plan, step by step, writing an intent before each step touches the device
/// and its outcome after. Stops at the first step that does not end `Applied`.
pub async fn update(
    visit: Visit<'_>,
    req: &CheckRequest,
    checked: &Checked,
    accept_risks: bool,
    progress: &mut dyn Progress,
    cancel: &Cancel,
    system_now: DateTime<Utc>,
) -> Result<Updated, VisitError> {
    let Visit { home, audit } = visit;
    if checked.plan.verdict != Verdict::Go {
        return Err(VisitError::Refused(checked.plan.summary.clone()));
    }
    if !checked.plan.risks.is_empty() && !accept_risks {
        return Err(VisitError::RiskNotAccepted(checked.plan.risks.join(" ")));
    }
    let profiles = home.profiles()?;
    let settings = Settings::load(home)?;
    let material = TrustMaterial::load(home)?;
    let now = material
        .now(system_now)
        .map_err(|e| VisitError::Refused(e.to_string()))?;
    let profile = profiles
        .get(&checked.identity.profile)
        .expect("the check read the device with this profile");
    let mut outcomes = Vec::new();
    let mut identity = checked.identity.clone();
    let total = checked.plan.steps.len();
    for (n, step) in checked.plan.steps.iter().enumerate() {
        progress.stage(
            Stage::Preparing,
            &format!(
                "step {} of {total}: {} ({})",
                n + 1,
                step.package,
                step.reason
            ),
        );
        let path = &checked.package_files[step.index];
        let (vp, payloads) = read_payloads(
            &material,
            path,
            now,
            u64::from(profile.simulator.slot_size).max(64 << 20),
        )?;
        let intent = audit
            .append(NewEntry {
                technician: settings.technician.clone(),
                site: settings.site.clone(),
                device: device_record(&identity),
                event: events::UPDATE_STARTED.into(),
                details: json!({ "package": step.package, "step": step, "check_seq": checked.audit_seq, "risks_accepted": checked.plan.risks }),
            })
            .map_err(audit_err)?;
        // Re-read the device: it must be the same one, still safe to update.
        let result = apply_step(
            &req.port, profile, &identity, step, &vp, payloads, progress, cancel,
        )
        .await;
        let (event, details, stop) = match &result {
            Ok(StepOutcome::Applied) | Ok(StepOutcome::AlreadyInstalled) => (
                events::UPDATE_SUCCEEDED,
                json!({ "outcome": result.as_ref().ok() }),
                false,
            ),
            Ok(StepOutcome::Reverted { reason }) => {
                (events::UPDATE_REVERTED, json!({ "reason": reason }), true)
            }
            Ok(StepOutcome::Cancelled { stage }) => {
                (events::UPDATE_CANCELLED, json!({ "stage": stage }), true)
            }
            Err(e) => (
                events::UPDATE_FAILED,
                json!({ "stage": stage_of(e), "kind": e.kind(), "error": e.to_string() }),
                true,
            ),
        };
        // Read back what the device runs now for the record (best effort: it may be gone).
        if let Ok((now_identity, _)) = read_device(&req.port, &profiles, Some(profile.id())).await {
            identity = now_identity;
        }
        // The outcome records the device as it is now, so the hub's inventory follows it.
        audit
            .append(NewEntry {
                technician: intent.technician.clone(),
                site: intent.site.clone(),
                device: device_record(&identity),
                event: event.into(),
                details: merge(
                    details,
                    json!({ fieldkit_audit::entry::INTENT_SEQ_KEY: intent.seq, "package": step.package, "device_before": intent.device }),
                ),
            })
            .map_err(audit_err)?;
        match result {
            Ok(outcome) => {
                outcomes.push((step.package.clone(), outcome));
                if stop {
                    break;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Updated {
        steps: outcomes,
        identity,
    })
}

fn stage_of(e: &VisitError) -> Option<Stage> {
    match e {
        VisitError::Apply(a) => Some(a.stage()),
        _ => None,
    }
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

#[allow(clippy::too_many_arguments)]
async fn apply_step(
    port: &Path,
    profile: &Profile,
    before: &Identity,
    step: &Step,
    vp: &VerifiedPackage,
    mut payloads: Vec<Vec<u8>>,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<StepOutcome, VisitError> {
    progress.stage(Stage::Preparing, "re-reading the device before touching it");
    let link = fieldkit_link::open(port, &profile.line)?;
    let identity = identify_device(link, profile).await?;
    if identity.serial != before.serial {
        return Err(VisitError::Refused(format!(
            "a different device is connected now (serial {}, checked {}): check it again",
            identity.serial, before.serial
        )));
    }
    let unsafe_now = fieldkit_plan::preconditions(&identity, profile)
        .into_iter()
        .find(|f| !f.passed);
    if let Some(f) = unsafe_now {
        return Err(VisitError::Refused(format!(
            "the device is no longer safe to update ({}, required {}): {}",
            f.found, f.required, f.explanation
        )));
    }
    let images: Vec<ImageToInstall> = step
        .payloads
        .iter()
        .map(|sp| {
            let i = vp
                .manifest
                .payloads
                .iter()
                .position(|p| p.component == sp.component)
                .expect("the plan names this package's payloads");
            ImageToInstall {
                component: sp.component.clone(),
                image: sp.image,
                bytes: Arc::new(std::mem::take(&mut payloads[i])),
                image_hash: sp.image_hash.clone().unwrap_or_default(),
                version: sp.to.clone(),
            }
        })
        .collect();
    match profile.family() {
        Family::Smp => {
            let connector = PortConnector {
                path: port.to_owned(),
                line: profile.line.clone(),
            };
            let mut device = Device::new(connector, profile);
            Ok(device.apply(&images, progress, cancel).await?)
        }
        Family::Line => apply_line(port, profile, &images, progress, cancel).await,
    }
}

async fn apply_line(
    port: &Path,
    profile: &Profile,
    images: &[ImageToInstall],
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<StepOutcome, VisitError> {
    let stop = Arc::new(AtomicBool::new(false));
    for img in images {
        progress.stage(
            Stage::Uploading,
            &format!("sending {} {} by YMODEM", img.component, img.version),
        );
        let link = fieldkit_link::open(port, &profile.line)?;
        let mut client =
            crate::line::LineClient::new(link, profile).map_err(IdentifyError::from)?;
        let watcher = {
            let cancel = cancel.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !cancel.is_cancelled() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            })
        };
        let name = format!("{}-{}.bin", img.component, img.version);
        let total = img.bytes.len() as u64;
        let result = crate::line::ymodem_upload(
            &mut client,
            &name,
            img.bytes.to_vec(),
            |done, _| progress.bytes(&img.component, done, total),
            &stop,
        )
        .await;
        watcher.abort();
        if cancel.is_cancelled() {
            return Ok(StepOutcome::Cancelled {
                stage: Stage::Uploading,
            });
        }
        result.map_err(IdentifyError::from)?;
    }
    progress.stage(Stage::WaitingForDevice, "waiting for the device to restart");
    let deadline = tokio::time::Instant::now() + Duration::from_millis(profile.timeouts.reset_ms);
    loop {
        let attempt = async {
            let link = fieldkit_link::open(port, &profile.line)?;
            Ok::<_, VisitError>(identify_device(link, profile).await?)
        };
        match attempt.await {
            Ok(identity) => {
                progress.stage(Stage::ReadingBack, "checking the new firmware's version");
                for img in images {
                    let runs = identity
                        .slots
                        .iter()
                        .find(|s| s.component.as_deref() == Some(img.component.as_str()))
                        .map(|s| s.version.clone());
                    if runs.as_deref() != Some(img.version.as_str()) {
                        return Ok(StepOutcome::Reverted {
                            reason: format!(
                                "the device runs {} {} after the transfer, not {}",
                                img.component,
                                runs.unwrap_or_default(),
                                img.version
                            ),
                        });
                    }
                }
                progress.stage(Stage::Done, "the new firmware runs");
                return Ok(StepOutcome::Applied);
            }
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
