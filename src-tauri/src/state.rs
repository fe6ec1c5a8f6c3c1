//! The app's managed state: one [`AppState`], reached from commands as `State<'_, AppState>`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use fieldkit_audit::AuditLog;
use fieldkit_core::Home;
use fieldkit_core::apply::Cancel;
use fieldkit_core::session::{CheckRequest, Checked};
use fieldkit_profile::Identity;

use crate::error::AppError;
use crate::sims::Simulators;

/// The device the technician is connected to.
#[derive(Debug, Clone)]
pub(crate) struct Connected {
    pub(crate) port: PathBuf,
    pub(crate) identity: Identity,
    pub(crate) simulated: bool,
    /// The fields the technician typed, used again for every re-read of the device.
    pub(crate) typed: fieldkit_core::Typed,
}

/// The last check, kept so that an update applies exactly what was checked and shown.
pub(crate) struct LastCheck {
    pub(crate) id: u64,
    pub(crate) request: CheckRequest,
    pub(crate) checked: Checked,
}

/// Everything the commands share.
pub struct AppState {
    pub(crate) home: Home,
    pub(crate) demo: bool,
    audit: Mutex<Option<Arc<AuditLog>>>,
    pub(crate) sims: Mutex<Simulators>,
    pub(crate) connected: Mutex<Option<Connected>>,
    pub(crate) last_check: Mutex<Option<Arc<LastCheck>>>,
    pub(crate) cancel: Mutex<Option<Cancel>>,
    /// Serialises device sessions: one conversation with a device at a time.
    pub(crate) device: Arc<Mutex<()>>,
    pub(crate) started: std::time::Instant,
}

/// Locks, recovering from a poisoned lock (a panicked command must not lock the app for good).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AppState {
    /// The state for `home`. When the home has no trust root yet, it is filled with the DEMO
    /// kit (`fieldkit demo init`), and the kit's packages are moved to a DEMO USB stick folder,
    /// `demo/usb-stick/`, for the technician to import on the Packages screen.
    pub fn new(home: Home) -> Result<AppState, AppError> {
        let demo = prepare_demo(&home)?;
        Ok(AppState {
            home,
            demo,
            audit: Mutex::new(None),
            sims: Mutex::new(Simulators::default()),
            connected: Mutex::new(None),
            last_check: Mutex::new(None),
            cancel: Mutex::new(None),
            device: Arc::new(Mutex::new(())),
            started: std::time::Instant::now(),
        })
    }

    /// The state for `FIELDKIT_HOME`, or the platform's data directory (the CLI's default).
    pub fn from_env() -> Result<AppState, AppError> {
        let home = match std::env::var_os("FIELDKIT_HOME") {
            Some(dir) if !dir.is_empty() => Home::at(PathBuf::from(dir)),
            _ => Home::platform_default()?,
        };
        AppState::new(home)
    }

    /// The audit log, opened on first use.
    pub(crate) fn audit(&self) -> Result<Arc<AuditLog>, AppError> {
        let mut slot = lock(&self.audit);
        if let Some(log) = slot.as_ref() {
            return Ok(log.clone());
        }
        let log = Arc::new(AuditLog::open_in_home(self.home.root())?);
        *slot = Some(log.clone());
        Ok(log)
    }

    /// Where the simulated devices keep their ports and state.
    pub(crate) fn sim_dir(&self) -> PathBuf {
        self.home.join("simulators")
    }

    /// Stops every simulated device (at exit).
    pub fn stop_simulators(&self) {
        lock(&self.sims).stop_all();
    }
}

/// The DEMO USB stick folder of a demo home.
pub(crate) fn usb_stick(home: &Home) -> PathBuf {
    home.demo_dir().join("usb-stick")
}

fn prepare_demo(home: &Home) -> Result<bool, AppError> {
    if fieldkit_demo::read_kit(home)?.is_some() {
        return Ok(true);
    }
    if home.trust_root().exists() {
        return Ok(false);
    }
    home.ensure()?;
    let profiles = home.profiles()?;
    fieldkit_demo::init(
        home,
        &profiles,
        chrono::Utc::now(),
        false,
        &mut rand::rngs::OsRng,
    )
    .map_err(|e| AppError::new("demo", e.to_string()))?;
    move_packages(&home.packages_dir(), &usb_stick(home))?;
    Ok(true)
}

fn move_packages(from: &Path, to: &Path) -> Result<(), AppError> {
    let io =
        |e: std::io::Error| AppError::new("demo", format!("preparing the DEMO USB stick: {e}"));
    fieldkit_private::create_dir_all(to).map_err(io)?;
    for entry in std::fs::read_dir(from).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|x| x == "fkpkg") {
            let name = path.file_name().expect("a file in a directory");
            std::fs::rename(&path, to.join(name)).map_err(io)?;
        }
    }
    Ok(())
}
