//! The app's managed state: one [`AppState`], reached from commands as `State<'_, AppState>`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

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

/// Which home the app works in, and whether it is the DEMO's.
#[derive(Debug, Clone)]
struct Mode {
    home: Home,
    demo: bool,
}

/// Everything the commands share.
pub struct AppState {
    /// Switched once, from an installation without a trust root to the DEMO, when the
    /// technician chooses it on the first screen.
    mode: RwLock<Mode>,
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
    /// The state for `home`, or with `demo` for its DEMO home (`<home>-demo`, filled with the
    /// DEMO kit on first use, the kit's packages on a DEMO USB stick folder,
    /// `demo/usb-stick/`, for the technician to import on the Packages screen). Nothing is
    /// made in `home` itself: without a trust root (installed, imported or pinned into the
    /// build) the app asks for one, or for the choice of the DEMO.
    pub fn new(home: Home, demo: bool) -> Result<AppState, AppError> {
        let mode = if demo {
            let home = home.demo_home();
            prepare_demo(&home)?;
            Mode { home, demo: true }
        } else {
            // A home the DEMO kit was made in by hand (`fieldkit --home DIR demo init`) is a
            // DEMO home too, and labelled as one.
            let demo = fieldkit_demo::read_kit(&home)?.is_some();
            Mode { home, demo }
        };
        Ok(AppState {
            mode: RwLock::new(mode),
            audit: Mutex::new(None),
            sims: Mutex::new(Simulators::default()),
            connected: Mutex::new(None),
            last_check: Mutex::new(None),
            cancel: Mutex::new(None),
            device: Arc::new(Mutex::new(())),
            started: std::time::Instant::now(),
        })
    }

    /// The state for `FIELDKIT_HOME`, or the platform's data directory (the CLI's default);
    /// with `demo`, for its DEMO home.
    pub fn from_env(demo: bool) -> Result<AppState, AppError> {
        let home = match std::env::var_os("FIELDKIT_HOME") {
            Some(dir) if !dir.is_empty() => Home::at(PathBuf::from(dir)),
            _ => Home::platform_default()?,
        };
        AppState::new(home, demo)
    }

    /// The home the app works in.
    pub(crate) fn home(&self) -> Home {
        self.mode
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .home
            .clone()
    }

    /// Whether that home is the DEMO's (everything shown is then labelled DEMO).
    pub(crate) fn demo(&self) -> bool {
        self.mode.read().unwrap_or_else(|p| p.into_inner()).demo
    }

    /// An installation that trusts no root yet (none installed, imported or pinned into the
    /// build) and is not the DEMO: it checks nothing until the technician installs the
    /// manufacturer's root or chooses the DEMO.
    pub(crate) fn needs_trust_root(&self) -> bool {
        !self.demo()
            && matches!(
                fieldkit_core::trust_store::load_root(&self.home()),
                Err(fieldkit_core::StoreError::NoRoot { .. })
            )
    }

    /// The technician chose the DEMO: from now on the app works in the DEMO's own home,
    /// filled with the kit on first use. What belonged to the other home (its audit log, the
    /// connected device, the last check, simulated devices) is let go.
    pub(crate) fn switch_to_demo(&self) -> Result<(), AppError> {
        let home = self.home().demo_home();
        prepare_demo(&home)?;
        self.stop_simulators();
        *lock(&self.audit) = None;
        *lock(&self.connected) = None;
        *lock(&self.last_check) = None;
        *lock(&self.cancel) = None;
        *self.mode.write().unwrap_or_else(|p| p.into_inner()) = Mode { home, demo: true };
        Ok(())
    }

    /// The audit log, opened on first use.
    pub(crate) fn audit(&self) -> Result<Arc<AuditLog>, AppError> {
        let mut slot = lock(&self.audit);
        if let Some(log) = slot.as_ref() {
            return Ok(log.clone());
        }
        let log = Arc::new(AuditLog::open_in_home(self.home().root())?);
        *slot = Some(log.clone());
        Ok(log)
    }

    /// Where the simulated devices keep their ports and state.
    pub(crate) fn sim_dir(&self) -> PathBuf {
        self.home().join("simulators")
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

/// Fills a DEMO home with the kit, once.
fn prepare_demo(home: &Home) -> Result<(), AppError> {
    if fieldkit_demo::read_kit(home)?.is_some() {
        return Ok(());
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
    Ok(())
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
