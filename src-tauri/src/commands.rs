//! The commands the web view may call (each allowed by `capabilities/default.json`).
//!
//! Every command is a few lines around a `core` call. Work that touches files, the audit
//! database or a device runs on a blocking worker thread ([`work`]), the same way the CLI runs
//! it, so the window never freezes; device sessions take [`AppState::device`] so there is one
//! conversation with a device at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use fieldkit_audit::{Entry, Outcome};
use fieldkit_core::Typed;
use fieldkit_core::apply::Cancel;
use fieldkit_core::outcome::UpdateResult;
use fieldkit_core::session::{self, CheckRequest, Checked, Settings, Visit};
use fieldkit_core::trust_store::{self, TrustMaterial};
use fieldkit_link::PortInfo;
use fieldkit_profile::{FieldSource, Identity, Profile};
use fieldkit_trust::{Decision, Finding, SbomComponent};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime};

use crate::error::AppError;
use crate::progress::{ChannelProgress, ProgressEvent};
use crate::state::{AppState, Connected, LastCheck, lock, usb_stick};

/// Runs `f` with the state on a blocking worker thread.
async fn work<R: Runtime, T: Send + 'static>(
    app: &AppHandle<R>,
    f: impl FnOnce(&AppState) -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    let app = app.clone();
    tauri::async_runtime::spawn_blocking(move || f(&app.state::<AppState>()))
        .await
        .map_err(|e| {
            AppError::new(
                "internal",
                format!("the operation stopped unexpectedly: {e}"),
            )
        })?
}

/// Runs a `core` session future to completion on this (worker) thread.
fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, AppError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::new("internal", format!("cannot start a session: {e}")))?;
    Ok(rt.block_on(f))
}

fn profile_of<'a>(
    profiles: &'a fieldkit_profile::ProfileSet,
    id: &str,
) -> Result<&'a Profile, AppError> {
    profiles.get(id).ok_or_else(|| {
        AppError::new(
            "unknown_profile",
            format!(
                "unknown device profile {id:?}: required one of {}",
                profiles.ids().join(", ")
            ),
        )
    })
}

/// What the app is running on.
#[derive(Debug, Serialize)]
pub(crate) struct AppInfo {
    version: &'static str,
    home: PathBuf,
    demo: bool,
    usb_stick: Option<PathBuf>,
    /// No trust root is installed, imported or pinned into the build, and this is not the
    /// DEMO: the first-start screen asks for the manufacturer's root or the choice of the DEMO.
    needs_trust_root: bool,
}

fn app_info_of(state: &AppState) -> AppInfo {
    let home = state.home();
    let stick = usb_stick(&home);
    AppInfo {
        version: env!("CARGO_PKG_VERSION"),
        home: home.root().to_owned(),
        demo: state.demo(),
        usb_stick: (state.demo() && stick.is_dir()).then_some(stick),
        needs_trust_root: state.needs_trust_root(),
    }
}

#[tauri::command]
pub(crate) fn app_info(state: tauri::State<'_, AppState>) -> AppInfo {
    app_info_of(&state)
}

/// First start: installs the manufacturer's first trust root from the file the technician
/// named (`fieldkit trust import FILE`), only where none is trusted yet.
#[tauri::command]
pub(crate) async fn import_trust_root<R: Runtime>(
    app: AppHandle<R>,
    path: PathBuf,
) -> Result<AppInfo, AppError> {
    work(&app, move |s| {
        if s.demo() {
            return Err(AppError::new(
                "demo",
                "this is the DEMO, which trusts only its own demo root; required the app started without --demo to install your manufacturer's trust root",
            ));
        }
        trust_store::import_root(&s.home(), &path)?;
        Ok(app_info_of(s))
    })
    .await
}

/// First start: the technician chose to try fieldkit with simulated devices. The app moves to
/// the DEMO's own home (made on first use), never the installation's.
#[tauri::command]
pub(crate) async fn start_demo<R: Runtime>(app: AppHandle<R>) -> Result<AppInfo, AppError> {
    work(&app, |s| {
        s.switch_to_demo()?;
        Ok(app_info_of(s))
    })
    .await
}

/// The web view calls this once its first screen is painted: `FIELDKIT_BENCH_FIRST_PAINT`
/// makes the app print the time since it started, for `cargo xtask bench`.
#[tauri::command]
pub(crate) fn ui_ready(state: tauri::State<'_, AppState>) {
    if std::env::var_os("FIELDKIT_BENCH_FIRST_PAINT").is_some() {
        println!("first-paint-ms {}", state.started.elapsed().as_millis());
    }
}

/// A simulated device the app can start.
#[derive(Debug, Serialize)]
pub(crate) struct SimulatorView {
    profile: String,
    vendor: String,
    model: String,
    kind: String,
    family: fieldkit_profile::Family,
    serial: String,
    running: bool,
    port: Option<PathBuf>,
}

/// An identity field the technician may have to type, because the device cannot report it.
#[derive(Debug, Serialize)]
pub(crate) struct FieldPrompt {
    name: String,
    label: String,
    /// `text`, `integer` or `boolean`.
    kind: &'static str,
    /// Typed always (`from = "typed"`), or only when the device does not report it.
    always: bool,
}

/// Ports and simulated devices.
#[derive(Debug, Serialize)]
pub(crate) struct Devices {
    ports: Vec<PortInfo>,
    ports_error: Option<String>,
    simulators: Vec<SimulatorView>,
    /// For each profile, the fields the technician may have to type.
    typed_fields: BTreeMap<String, Vec<FieldPrompt>>,
}

/// The fields of `profile` the technician may type.
fn prompts(profile: &fieldkit_profile::Profile) -> Vec<FieldPrompt> {
    profile
        .identity
        .iter()
        .filter(|(_, f)| *f.from.get_ref() == FieldSource::Typed || f.or_typed)
        .map(|(name, f)| FieldPrompt {
            name: name.clone(),
            label: f.label_or(name).to_owned(),
            kind: f.kind.get_ref().name(),
            always: *f.from.get_ref() == FieldSource::Typed,
        })
        .collect()
}

#[tauri::command]
pub(crate) async fn list_devices<R: Runtime>(app: AppHandle<R>) -> Result<Devices, AppError> {
    work(&app, |s| {
        let profiles = s.home().profiles()?;
        let (ports, ports_error) = match fieldkit_link::discover(&profiles) {
            Ok(p) => (p, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let sims = lock(&s.sims);
        let simulators = profiles
            .iter()
            .map(|p| SimulatorView {
                profile: p.id().to_owned(),
                vendor: p.vendor.clone(),
                model: p.model.clone(),
                kind: p.kind.clone(),
                family: p.family(),
                serial: crate::sims::Simulators::serial_of(p),
                running: sims.port(p.id()).is_some(),
                port: sims.port(p.id()).map(Path::to_owned),
            })
            .collect();
        let typed_fields = profiles
            .iter()
            .map(|p| (p.id().to_owned(), prompts(p)))
            .filter(|(_, f)| !f.is_empty())
            .collect();
        Ok(Devices {
            ports,
            ports_error,
            simulators,
            typed_fields,
        })
    })
    .await
}

#[tauri::command]
pub(crate) async fn start_simulator<R: Runtime>(
    app: AppHandle<R>,
    profile: String,
) -> Result<PathBuf, AppError> {
    work(&app, move |s| {
        let profiles = s.home().profiles()?;
        let p = profile_of(&profiles, &profile)?;
        // A device in its bootloader boots its application on reset.
        let application = p
            .device
            .application
            .as_ref()
            .and_then(|a| profiles.get(a.get_ref()))
            .cloned();
        let dir = s.sim_dir();
        lock(&s.sims).start(p, application, &dir)
    })
    .await
}

#[tauri::command]
pub(crate) async fn stop_simulator<R: Runtime>(
    app: AppHandle<R>,
    profile: String,
) -> Result<(), AppError> {
    work(&app, move |s| {
        let mut sims = lock(&s.sims);
        if let Some(port) = sims.port(&profile).map(Path::to_owned) {
            let mut connected = lock(&s.connected);
            if connected.as_ref().is_some_and(|c| c.port == port) {
                *connected = None;
            }
        }
        sims.stop(&profile);
        Ok(())
    })
    .await
}

/// A component as the profile describes it.
#[derive(Debug, Serialize)]
pub(crate) struct ComponentView {
    name: String,
    image: u32,
    description: String,
    updatable: bool,
}

/// The SBOM of a component's running firmware, from the imported package that carries it.
#[derive(Debug, Serialize)]
pub(crate) struct RunningSbom {
    component: String,
    version: String,
    package: String,
    spec_version: String,
    components: Vec<SbomComponent>,
}

/// The connected device.
#[derive(Debug, Serialize)]
pub(crate) struct DeviceView {
    port: PathBuf,
    simulated: bool,
    identity: Identity,
    vendor: String,
    model: String,
    kind: String,
    family: fieldkit_profile::Family,
    components: Vec<ComponentView>,
    sboms: Vec<RunningSbom>,
}

fn device_view(s: &AppState, c: &Connected) -> Result<DeviceView, AppError> {
    let profiles = s.home().profiles()?;
    let profile = profile_of(&profiles, &c.identity.profile)?;
    Ok(DeviceView {
        port: c.port.clone(),
        simulated: c.simulated,
        identity: c.identity.clone(),
        vendor: profile.vendor.clone(),
        model: profile.model.clone(),
        kind: profile.kind.clone(),
        family: profile.family(),
        components: profile
            .components
            .iter()
            .map(|comp| ComponentView {
                name: comp.name.get_ref().clone(),
                image: *comp.image.get_ref(),
                description: comp.description.clone(),
                updatable: comp.updatable,
            })
            .collect(),
        sboms: running_sboms(s, &c.identity, profile),
    })
}

/// The SBOMs of what the device runs: each from the verified, imported package whose payload
/// is the running version of that component. None when no such package was imported.
fn running_sboms(s: &AppState, identity: &Identity, profile: &Profile) -> Vec<RunningSbom> {
    let Ok(audit) = s.audit() else {
        return Vec::new();
    };
    let Ok(material) = TrustMaterial::load(&s.home(), &audit) else {
        return Vec::new();
    };
    let Ok(now) = material.now(Utc::now()) else {
        return Vec::new();
    };
    let (running, _) = fieldkit_plan::installed(identity, profile);
    let mut out = Vec::new();
    for path in &material.packages {
        let Ok(vp) = material.verify_package_file(path, now) else {
            continue;
        };
        if vp.manifest.product != identity.profile {
            continue;
        }
        for p in &vp.manifest.payloads {
            if running.get(&p.component) == Some(&p.version)
                && !out.iter().any(|o: &RunningSbom| o.component == p.component)
            {
                out.push(RunningSbom {
                    component: p.component.clone(),
                    version: p.version.to_string(),
                    package: vp.manifest.id(),
                    spec_version: vp.sbom.spec_version.clone(),
                    components: vp.sbom.components.clone(),
                });
            }
        }
    }
    out
}

#[tauri::command]
pub(crate) async fn identify<R: Runtime>(
    app: AppHandle<R>,
    port: PathBuf,
    profile: Option<String>,
    typed: Option<Typed>,
) -> Result<DeviceView, AppError> {
    work(&app, move |s| {
        let _device = lock(&s.device);
        let audit = s.audit()?;
        let visit = Visit {
            home: &s.home(),
            audit: &audit,
        };
        let simulated = lock(&s.sims).profile_of(&port).is_some();
        let typed = typed.unwrap_or_default();
        let identity = block_on(session::identify_and_record(
            visit,
            &port,
            profile.as_deref(),
            &typed,
        ))??;
        let connected = Connected {
            port,
            identity,
            simulated,
            typed,
        };
        *lock(&s.connected) = Some(connected.clone());
        *lock(&s.last_check) = None;
        device_view(s, &connected)
    })
    .await
}

/// The connected device as last read (no new conversation with it), with the SBOMs of the
/// packages imported since.
#[tauri::command]
pub(crate) async fn connected_device<R: Runtime>(
    app: AppHandle<R>,
) -> Result<Option<DeviceView>, AppError> {
    work(&app, |s| {
        let connected = lock(&s.connected).clone();
        connected.map(|c| device_view(s, &c)).transpose()
    })
    .await
}

/// One package in the home, verified, with what it means for the connected device.
#[derive(Debug, Serialize)]
pub(crate) struct PackageView {
    file: PathBuf,
    ok: bool,
    id: Option<String>,
    product: Option<String>,
    version: Option<String>,
    class: Option<fieldkit_trust::ReleaseClass>,
    release_date: Option<String>,
    payloads: Vec<(String, String)>,
    /// The rules that were checked when it verified, or the one it failed.
    findings: Vec<Finding>,
    /// For the connected device: whether the package is for it at all.
    for_device: Option<bool>,
    /// For the connected device: the entitlement rules.
    entitlement: Option<Decision>,
}

/// The packages, and the device they were judged for.
#[derive(Debug, Serialize)]
pub(crate) struct Packages {
    device: Option<String>,
    packages: Vec<PackageView>,
}

fn package_view(
    material: &TrustMaterial,
    path: &Path,
    now: chrono::DateTime<Utc>,
    product: Option<&str>,
    entitlement: &mut dyn FnMut(&fieldkit_trust::VerifiedPackage) -> Option<Decision>,
) -> PackageView {
    match material.verify_package_file(path, now) {
        Ok(vp) => {
            let m = &vp.manifest;
            let for_device = product.map(|p| p == m.product);
            // The planner's entitlement rules for the connected device and this visit.
            let entitlement = product
                .filter(|p| *p == m.product)
                .and_then(|_| entitlement(&vp));
            PackageView {
                file: path.to_owned(),
                ok: true,
                id: Some(m.id()),
                product: Some(m.product.clone()),
                version: Some(m.version.to_string()),
                class: Some(m.class),
                release_date: Some(m.release_date.to_string()),
                payloads: m
                    .payloads
                    .iter()
                    .map(|p| (p.component.clone(), p.version.to_string()))
                    .collect(),
                findings: vp.findings.clone(),
                for_device,
                entitlement,
            }
        }
        Err(e) => PackageView {
            file: path.to_owned(),
            ok: false,
            id: None,
            product: None,
            version: None,
            class: None,
            release_date: None,
            payloads: Vec::new(),
            findings: vec![e.finding().unwrap_or_else(|| {
                Finding::fail(
                    fieldkit_trust::rules::IO,
                    e.to_string(),
                    "a readable package",
                    "The package file could not be read.",
                )
            })],
            for_device: None,
            entitlement: None,
        },
    }
}

#[tauri::command]
pub(crate) async fn list_packages<R: Runtime>(app: AppHandle<R>) -> Result<Packages, AppError> {
    work(&app, |s| {
        let audit = s.audit()?;
        let material = TrustMaterial::load(&s.home(), &audit)?;
        let now = material
            .now(Utc::now())
            .map_err(|e| AppError::new("clock", e.to_string()))?;
        let connected = lock(&s.connected).clone();
        let device = connected.as_ref().map(|c| &c.identity);
        let visit = Visit {
            home: &s.home(),
            audit: &audit,
        };
        let mut entitlement = |vp: &fieldkit_trust::VerifiedPackage| {
            let d = device?;
            let findings =
                session::entitlement_findings(visit, d, std::slice::from_ref(vp), Utc::now())
                    .ok()?
                    .pop()?;
            Some(Decision { findings })
        };
        // The product the device's packages are made for: a device in serial recovery is the
        // product its application profile names, as the planner reads it.
        let profiles = s.home().profiles()?;
        let product = device.map(|d| {
            profiles
                .get(&d.profile)
                .map_or(d.profile.as_str(), |p| p.product())
        });
        let packages = material
            .packages
            .iter()
            .map(|p| package_view(&material, p, now, product, &mut entitlement))
            .collect();
        Ok(Packages {
            device: device.map(|d| format!("{} {}", d.model, d.serial)),
            packages,
        })
    })
    .await
}

/// A folder worth offering for import.
#[derive(Debug, Serialize)]
pub(crate) struct Folder {
    path: PathBuf,
    label: String,
}

#[tauri::command]
pub(crate) fn suggest_import_folders(state: tauri::State<'_, AppState>) -> Vec<Folder> {
    let mut out = Vec::new();
    let stick = usb_stick(&state.home());
    if stick.is_dir() {
        out.push(Folder {
            path: stick,
            label: "DEMO USB stick (demo packages)".into(),
        });
    }
    let user = std::env::var("USER").unwrap_or_default();
    for base in [
        PathBuf::from("/media").join(&user),
        PathBuf::from("/run/media").join(&user),
        PathBuf::from("/media"),
        PathBuf::from("/mnt"),
    ] {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != user.as_str()))
            .collect();
        dirs.sort();
        for path in dirs {
            if !out.iter().any(|f: &Folder| f.path == path) {
                out.push(Folder {
                    label: format!("the drive mounted at {}", path.display()),
                    path,
                });
            }
        }
    }
    out
}

/// What importing one file did.
#[derive(Debug, Serialize)]
pub(crate) struct ImportResult {
    file: PathBuf,
    ok: bool,
    already_present: bool,
    id: Option<String>,
    finding: Option<Finding>,
    message: Option<String>,
}

#[tauri::command]
pub(crate) async fn import_packages<R: Runtime>(
    app: AppHandle<R>,
    path: PathBuf,
) -> Result<Vec<ImportResult>, AppError> {
    work(&app, move |s| {
        let files = package_files(&path)?;
        let audit = s.audit()?;
        let settings = Settings::load(&s.home())?;
        let recorder = trust_store::Recorder {
            audit: &audit,
            technician: &settings.technician,
            site: &settings.site,
        };
        let mut material = TrustMaterial::load(&s.home(), &audit)?;
        let mut out = Vec::new();
        for file in files {
            out.push(
                match trust_store::import_package(
                    &s.home(),
                    &recorder,
                    &mut material,
                    &file,
                    Utc::now(),
                ) {
                    Ok(i) => ImportResult {
                        file,
                        ok: true,
                        already_present: i.already_present,
                        id: Some(i.package.manifest.id()),
                        finding: None,
                        message: None,
                    },
                    Err(e) => ImportResult {
                        file,
                        ok: false,
                        already_present: false,
                        id: None,
                        finding: e.finding(),
                        message: Some(e.to_string()),
                    },
                },
            );
        }
        Ok(out)
    })
    .await
}

/// The package files at `path`: the file itself, or the `.fkpkg` files in the folder.
fn package_files(path: &Path) -> Result<Vec<PathBuf>, AppError> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| {
        AppError::new(
            "not_found",
            format!(
                "cannot open {}: {e}; required a folder or a .fkpkg file",
                path.display()
            ),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "fkpkg"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(AppError::new(
            "no_packages",
            format!("{} holds no .fkpkg package files", path.display()),
        ));
    }
    Ok(files)
}

/// A check as the UI shows it.
#[derive(Debug, Serialize)]
pub(crate) struct CheckView {
    id: u64,
    checked: Checked,
}

fn connected(s: &AppState) -> Result<Connected, AppError> {
    lock(&s.connected).clone().ok_or_else(|| {
        AppError::new(
            "no_device",
            "no device is connected: required a device read on the Connect screen",
        )
    })
}

#[tauri::command]
pub(crate) async fn check<R: Runtime>(
    app: AppHandle<R>,
    package: Option<PathBuf>,
) -> Result<CheckView, AppError> {
    work(&app, move |s| {
        let _device = lock(&s.device);
        let c = connected(s)?;
        let audit = s.audit()?;
        let request = CheckRequest {
            port: c.port.clone(),
            profile: Some(c.identity.profile.clone()),
            packages: package.into_iter().collect(),
            entitlements: Vec::new(),
            customer: None,
            site: None,
            typed: c.typed.clone(),
        };
        let visit = Visit {
            home: &s.home(),
            audit: &audit,
        };
        let checked = block_on(session::check(visit, &request, Utc::now()))??;
        let id = lock(&s.last_check).as_ref().map_or(1, |l| l.id + 1);
        *lock(&s.connected) = Some(Connected {
            identity: checked.identity.clone(),
            ..c
        });
        *lock(&s.last_check) = Some(Arc::new(LastCheck {
            id,
            request,
            checked: checked.clone(),
        }));
        Ok(CheckView { id, checked })
    })
    .await
}

#[tauri::command]
pub(crate) async fn update<R: Runtime>(
    app: AppHandle<R>,
    check_id: u64,
    accept_risks: bool,
    on_progress: Channel<ProgressEvent>,
) -> Result<UpdateResult, AppError> {
    work(&app, move |s| {
        let _device = lock(&s.device);
        let last = lock(&s.last_check)
            .clone()
            .filter(|l| l.id == check_id)
            .ok_or_else(|| {
                AppError::new(
                    "stale_check",
                    format!("check {check_id} is no longer the latest: required a fresh check of the connected device"),
                )
            })?;
        let audit = s.audit()?;
        let cancel = Cancel::new();
        *lock(&s.cancel) = Some(cancel.clone());
        let mut progress = ChannelProgress::new(on_progress);
        let visit = Visit {
            home: &s.home(),
            audit: &audit,
        };
        let result = block_on(session::update(
            visit,
            &last.request,
            &last.checked,
            accept_risks,
            &mut progress,
            &cancel,
            Utc::now(),
        ));
        *lock(&s.cancel) = None;
        // Whatever happened, the plan that was checked no longer describes the device.
        *lock(&s.last_check) = None;
        let updated = result??;
        if let Some(c) = lock(&s.connected).as_mut() {
            c.identity = updated.identity.clone();
        }
        Ok(updated)
    })
    .await
}

#[tauri::command]
pub(crate) fn cancel_update(state: tauri::State<'_, AppState>) -> bool {
    match lock(&state.cancel).as_ref() {
        Some(c) => {
            c.cancel();
            true
        }
        None => false,
    }
}

/// An audit entry with what the one reader of the audit record makes of it: its outcome
/// class, the device serial and a one-line summary.
#[derive(Debug, Serialize)]
pub(crate) struct EntryView {
    #[serde(flatten)]
    entry: Entry,
    outcome: Outcome,
    serial: Option<String>,
    summary: String,
}

#[tauri::command]
pub(crate) async fn audit_entries<R: Runtime>(
    app: AppHandle<R>,
    limit: Option<u64>,
) -> Result<Vec<EntryView>, AppError> {
    work(&app, move |s| {
        let log = s.audit()?;
        let size = log.size()?;
        let limit = limit.unwrap_or(200);
        let mut entries: Vec<EntryView> = log
            .entries(size.saturating_sub(limit)..size)?
            .into_iter()
            .map(|entry| EntryView {
                outcome: entry.outcome(),
                serial: entry.device_serial(),
                summary: fieldkit_audit::export::summary(&entry),
                entry,
            })
            .collect();
        entries.reverse();
        Ok(entries)
    })
    .await
}

#[tauri::command]
pub(crate) async fn audit_verify<R: Runtime>(
    app: AppHandle<R>,
) -> Result<fieldkit_audit::VerifyReport, AppError> {
    work(&app, |s| Ok(s.audit()?.verify()?)).await
}

/// How much of the log a hub holds.
#[derive(Debug, Serialize)]
pub(crate) struct AuditStatus {
    size: u64,
    acked: u64,
    unsynced: u64,
    hub: Option<String>,
    origin: String,
}

fn audit_status_of(s: &AppState) -> Result<AuditStatus, AppError> {
    let log = s.audit()?;
    let size = log.size()?;
    let acked = log.acked_size()?;
    Ok(AuditStatus {
        size,
        acked,
        unsynced: size.saturating_sub(acked),
        hub: Settings::load(&s.home())?.hub,
        origin: log.origin().to_owned(),
    })
}

#[tauri::command]
pub(crate) async fn audit_status<R: Runtime>(app: AppHandle<R>) -> Result<AuditStatus, AppError> {
    work(&app, audit_status_of).await
}

#[tauri::command]
pub(crate) async fn sync_now<R: Runtime>(
    app: AppHandle<R>,
) -> Result<fieldkit_sync::SyncReport, AppError> {
    work(&app, |s| {
        let hub = Settings::load(&s.home())?
            .hub
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| {
                AppError::new(
                    "no_hub",
                    "no hub address is set: required the hub's URL in Settings",
                )
            })?;
        let log = s.audit()?;
        let pinned = match fieldkit_sync::pin::load_pin(s.home().root())? {
            Some(key) => key,
            None => {
                // The technician confirms the key first (confirm_hub_key); nothing is sent
                // to a hub whose key this laptop has not pinned.
                let config = fieldkit_sync::SyncConfig::default();
                let info = block_on(fieldkit_sync::fetch_hub_info(&hub, &config))??;
                return Err(AppError::new(
                    "hub_key_unconfirmed",
                    format!(
                        "this laptop has not pinned a hub key yet: the hub at {hub} presents key {} (key id {}); confirm it with the hub's operator before the first sync",
                        info.name, info.key_id
                    ),
                ));
            }
        };
        let client = fieldkit_sync::SyncClient::new(&hub, pinned)?;
        Ok(block_on(client.sync(&log))??)
    })
    .await
}

/// Pins the key the hub presents, once the technician has confirmed it (its name
/// `fieldkit-hub/…` or its key id, as the hub's operator reads it from `fieldkit-hub key`).
#[tauri::command]
pub(crate) async fn confirm_hub_key<R: Runtime>(
    app: AppHandle<R>,
    key: String,
) -> Result<String, AppError> {
    work(&app, move |s| {
        let hub = Settings::load(&s.home())?
            .hub
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| {
                AppError::new(
                    "no_hub",
                    "no hub address is set: required the hub's URL in Settings",
                )
            })?;
        let config = fieldkit_sync::SyncConfig::default();
        let info = block_on(fieldkit_sync::fetch_hub_info(&hub, &config))??;
        Ok(fieldkit_sync::pin::pin_confirmed(
            s.home().root(),
            &info,
            &key,
        )?)
    })
    .await
}

#[tauri::command]
pub(crate) async fn get_settings<R: Runtime>(app: AppHandle<R>) -> Result<Settings, AppError> {
    work(&app, |s| Ok(Settings::load(&s.home())?)).await
}

#[tauri::command]
pub(crate) async fn set_settings<R: Runtime>(
    app: AppHandle<R>,
    settings: Settings,
) -> Result<Settings, AppError> {
    work(&app, move |s| {
        let mut settings = settings;
        settings.hub = settings.hub.map(|h| h.trim().to_owned()).filter(|h| !h.is_empty());
        if let Some(hub) = &settings.hub {
            fieldkit_sync::check_hub_url(hub)?;
        }
        if settings.technician.trim().is_empty() || settings.site.trim().is_empty() {
            return Err(AppError::new(
                "invalid_settings",
                "technician and site are empty: required both, they are written into every audit entry",
            ));
        }
        settings.save(&s.home())?;
        Ok(settings)
    })
    .await
}

/// A trust root role.
#[derive(Debug, Serialize)]
pub(crate) struct RoleView {
    name: String,
    threshold: u32,
    keys: Vec<String>,
}

/// What this laptop trusts, and who it is.
#[derive(Debug, Serialize)]
pub(crate) struct TrustDetails {
    demo: bool,
    home: PathBuf,
    root_version: Option<u64>,
    root_expires: Option<String>,
    roles: Vec<RoleView>,
    security_updates_without_entitlement: Option<bool>,
    recall_version: Option<u64>,
    time_mark: Option<String>,
    entitlements: Vec<EntitlementView>,
    problems: Vec<trust_store::Problem>,
    root_error: Option<AppError>,
    laptop_origin: Option<String>,
    laptop_key_id: Option<String>,
    laptop_public_key: Option<String>,
}

/// An entitlement carried in the home.
#[derive(Debug, Serialize)]
pub(crate) struct EntitlementView {
    id: String,
    customer: String,
    features: Vec<String>,
    valid_from: String,
    valid_until: String,
    devices: Vec<String>,
}

#[tauri::command]
pub(crate) async fn trust_details<R: Runtime>(app: AppHandle<R>) -> Result<TrustDetails, AppError> {
    work(&app, |s| {
        let mut d = TrustDetails {
            demo: s.demo(),
            home: s.home().root().to_owned(),
            root_version: None,
            root_expires: None,
            roles: Vec::new(),
            security_updates_without_entitlement: None,
            recall_version: None,
            time_mark: None,
            entitlements: Vec::new(),
            problems: Vec::new(),
            root_error: None,
            laptop_origin: None,
            laptop_key_id: None,
            laptop_public_key: None,
        };
        let loaded = s
            .audit()
            .and_then(|audit| Ok(TrustMaterial::load(&s.home(), &audit)?));
        match loaded {
            Ok(m) => {
                let meta = m.root.metadata();
                d.root_version = Some(m.root.version());
                d.root_expires = Some(meta.expires.to_rfc3339());
                d.roles = meta
                    .roles
                    .iter()
                    .map(|(name, r)| RoleView {
                        name: name.clone(),
                        threshold: r.threshold,
                        keys: r.keyids.iter().map(|k| k.to_string()).collect(),
                    })
                    .collect();
                d.security_updates_without_entitlement =
                    Some(m.root.policy().security_updates_without_entitlement);
                d.recall_version = m.recall.as_ref().map(|r| r.version);
                d.time_mark = m.state.time_mark.map(|t| t.to_rfc3339());
                d.entitlements = m
                    .entitlements
                    .iter()
                    .map(|e| {
                        let e = &e.entitlement;
                        EntitlementView {
                            id: e.id.clone(),
                            customer: e.customer.clone(),
                            features: e.features.clone(),
                            valid_from: e.valid_from.to_string(),
                            valid_until: e.valid_until.to_string(),
                            devices: e
                                .devices
                                .iter()
                                .map(|g| format!("{}: {}", g.model, g.serials.join(", ")))
                                .collect(),
                        }
                    })
                    .collect();
                d.problems = m.problems;
            }
            Err(e) => d.root_error = Some(e),
        }
        if let Ok(log) = s.audit() {
            let me = log.identity();
            d.laptop_origin = Some(me.name().to_owned());
            d.laptop_key_id = Some(me.key_id());
            d.laptop_public_key = Some(me.public_key_pem());
        }
        Ok(d)
    })
    .await
}
