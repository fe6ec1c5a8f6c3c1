//! The trust material kept in the home, and the file IO around `fieldkit-trust`.
//!
//! `fieldkit-trust` decides and does no IO. This module reads what it decides on from the home
//! (the installed trust root, imported packages, entitlements, recall lists) and writes what
//! must be remembered between runs ([`TrustState`]: the trusted-time high-water mark and the
//! highest recall list version seen). The CLI, the app and the planner all load trust material
//! through [`TrustMaterial::load`], so they see the same things and refuse the same things.
//!
//! Layout (see [`Home`]): `trust/root.json`, `trust/history/root.N.json`, `trust/state.json`,
//! `packages/*.fkpkg`, `entitlements/*.json`, `recalls/*.json`.
//!
//! Files that are taken in (packages, recall lists) are copied into the home first and
//! verified from the copy, then renamed into place: what was verified is exactly what is kept.
//!
//! **State that cannot be rolled back.** The state file is a cache of what the tamper-evident
//! audit log already says: every check records the trust state it decided with, and every
//! raise of the state (an imported recall list or package) is recorded as `trust_updated`.
//! [`TrustMaterial::load`] restores the recall-list version, the time mark and the device's
//! security counter from the log whenever the file is missing or behind it, so deleting
//! `trust/state.json` (and the recall lists) does not let a recalled release pass: the check
//! then fails closed, naming the recall list version it needs.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;

use fieldkit_audit::record::{Event, TrustSnapshot, TrustUpdate, events};
use fieldkit_audit::{AuditLog, NewEntry, Reading};
use fieldkit_trust::{
    Entitlement, Finding, Limits, Manifest, RecallList, TrustError, TrustRoot, TrustedTime,
    VerifiedPackage, verify_package_with,
};
use serde::{Deserialize, Serialize};

use crate::home::Home;

/// Recall lists and entitlements larger than this are refused before they are read.
pub const MAX_DOCUMENT: u64 = 1 << 20;

/// What trust decisions remember between runs, `trust/state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustState {
    /// High-water mark of every signed time seen (package release dates, recall lists,
    /// entitlements); the clock-rollback rule compares the system clock with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_mark: Option<DateTime<Utc>>,
    /// The highest recall list version seen; an older list is a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall_version: Option<u64>,
    /// The highest security counter seen on each device, by serial number.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub security_counters: BTreeMap<String, u32>,
    /// The highest generation seen of each entitlement id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entitlement_generations: BTreeMap<String, u32>,
}

impl TrustState {
    /// Raises this state to at least `snapshot` (the log's record of it). Returns whether
    /// anything rose.
    fn raise_to(&mut self, snapshot: &TrustSnapshot, serial: Option<&str>) -> bool {
        let mut rose = false;
        if snapshot.recall_version > self.recall_version {
            self.recall_version = snapshot.recall_version;
            rose = true;
        }
        if snapshot.time_mark > self.time_mark {
            self.time_mark = snapshot.time_mark;
            rose = true;
        }
        if let (Some(serial), Some(c)) = (serial, snapshot.security_counter) {
            let have = self.security_counters.entry(serial.to_owned()).or_default();
            if c > *have {
                *have = c;
                rose = true;
            }
        }
        rose
    }
}

/// Why trust material could not be read, kept or trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The home has no trust root.
    #[error(
        "no trust root: {path} does not exist and this build pins none; required your manufacturer's trust root: install it with `fieldkit trust import FILE` or on the app's first screen (a release engineer makes one with `fieldkit trust init`); to try fieldkit without one, use the DEMO, which keeps a home of its own (`fieldkit --demo demo init`, `fieldkit-app --demo`)"
    )]
    NoRoot {
        /// Where the root was looked for.
        path: PathBuf,
    },
    /// A first root was offered to a home that already trusts one.
    #[error(
        "{path}: a trust root (version {version}) is already trusted here; required none: a new root comes by rotation, signed by the current one (`fieldkit trust rotate`)"
    )]
    RootPresent {
        /// Where the trusted root is (the home's file, or the one pinned into the build).
        path: PathBuf,
        /// Its version.
        version: u64,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A trust rule refused the file.
    #[error("{path}: {source}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// The refusal and its finding.
        #[source]
        source: TrustError,
    },
    /// The trust state file is damaged.
    #[error("{path}: {message}; required a JSON object with time_mark and recall_version")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The newest recall list in the home is older than one already seen.
    #[error(
        "recall lists in {dir}: newest valid version is {found}, required {required} (a newer list was seen before and has gone missing or been damaged)"
    )]
    RecallMissing {
        /// The recall directory.
        dir: PathBuf,
        /// The newest valid version there, or `none`.
        found: String,
        /// The highest version seen.
        required: u64,
    },
    /// A different file with the same identity is already in the home.
    #[error(
        "{path} already holds a different {what} with the same id; found other bytes, required the same bytes or a new id"
    )]
    Conflict {
        /// The file in the home.
        path: PathBuf,
        /// What kind of file.
        what: &'static str,
    },
    /// The audit log could not record or be read: trust state is kept there too.
    #[error("the audit log cannot keep the trust state: {0}")]
    Audit(String),
    /// A document is larger than allowed.
    #[error("{path}: {found} bytes, required at most {required}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        found: u64,
        /// The limit.
        required: u64,
    },
}

impl StoreError {
    /// The trust finding behind the error, if a trust rule refused.
    pub fn finding(&self) -> Option<Finding> {
        match self {
            StoreError::Refused { source, .. } => Some(source.finding()),
            _ => None,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a whole small file, refusing one over `max` bytes before reading it.
pub fn read_small(path: &Path, max: u64) -> Result<Vec<u8>, StoreError> {
    let file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    if len > max {
        return Err(StoreError::TooLarge {
            path: path.to_owned(),
            found: len,
            required: max,
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    Ok(bytes)
}

/// Writes `bytes` to `path` atomically (beside, flushed, then renamed), creating the parent
/// directory. The file is private (`0600`), new directories too (`0700`): see
/// `fieldkit-private`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fieldkit_private::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = tmp_beside(path);
    let write = || -> io::Result<()> {
        fieldkit_private::write(&tmp, bytes)?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err(path)(e)
    })
}

fn tmp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Reads the trust state; a home without one has seen nothing yet.
pub fn load_state(home: &Home) -> Result<TrustState, StoreError> {
    let path = home.trust_state();
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::State {
            path,
            message: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(TrustState::default()),
        Err(source) => Err(StoreError::Io { path, source }),
    }
}

/// Writes the trust state.
pub fn save_state(home: &Home, state: &TrustState) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
    bytes.push(b'\n');
    write_atomic(&home.trust_state(), &bytes)
}

/// What [`load_root`] reports as the place of the root pinned into the build.
pub const PINNED_ROOT: &str = "(the trust root pinned into this build)";

/// Reads and checks the home's trust root: `trust/root.json`, or, in a home without one, the
/// root pinned into this build (never in a DEMO home: the demo uses only its own root).
pub fn load_root(home: &Home) -> Result<TrustRoot, StoreError> {
    let path = home.trust_root();
    if !path.exists() {
        return match crate::pinned::pinned_root().filter(|_| !home.is_demo()) {
            Some(bytes) => TrustRoot::load_pinned(bytes).map_err(|source| StoreError::Refused {
                path: PathBuf::from(PINNED_ROOT),
                source,
            }),
            None => Err(StoreError::NoRoot { path }),
        };
    }
    let bytes = read_small(&path, MAX_DOCUMENT)?;
    TrustRoot::load_pinned(&bytes).map_err(|source| StoreError::Refused { path, source })
}

/// Installs the manufacturer's first trust root from `source`, explicitly imported (the app's
/// first screen, `fieldkit trust import`): only into a home that trusts no root yet, and only
/// a root that verifies (its own signatures, threshold and expiry). A later root comes by
/// rotation, signed by the current one.
pub fn import_root(home: &Home, source: &Path) -> Result<TrustRoot, StoreError> {
    match load_root(home) {
        Ok(existing) => {
            let path = if home.trust_root().exists() {
                home.trust_root()
            } else {
                PathBuf::from(PINNED_ROOT)
            };
            return Err(StoreError::RootPresent {
                path,
                version: existing.version(),
            });
        }
        Err(StoreError::NoRoot { .. }) => {}
        Err(other) => return Err(other),
    }
    let bytes = read_small(source, MAX_DOCUMENT)?;
    let root = TrustRoot::load_pinned(&bytes).map_err(|e| StoreError::Refused {
        path: source.to_owned(),
        source: e,
    })?;
    install_root(home, &root)?;
    Ok(root)
}

/// Installs `root` as the home's trust root, keeping any previous one in the history.
pub fn install_root(home: &Home, root: &TrustRoot) -> Result<(), StoreError> {
    let path = home.trust_root();
    if let Ok(old) = fs::read(&path)
        && let Ok(old_root) = TrustRoot::load_pinned(&old)
    {
        let keep = home
            .trust_history_dir()
            .join(format!("root.{}.json", old_root.version()));
        write_atomic(&keep, &old)?;
    }
    write_atomic(&path, root.as_bytes())
}

/// The midnight (UTC) that starts `day`, as a signed time for the high-water mark.
pub fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// An entitlement in the home that opened under the trust root.
#[derive(Debug, Clone)]
pub struct EntitlementFile {
    /// Where it is.
    pub path: PathBuf,
    /// What it says.
    pub entitlement: Entitlement,
}

/// A file in the home that was refused, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// The refusal.
    pub finding: Finding,
}

/// Everything the home holds for trust decisions.
#[derive(Debug, Clone)]
pub struct TrustMaterial {
    /// The installed trust root.
    pub root: TrustRoot,
    /// The remembered state.
    pub state: TrustState,
    /// The newest recall list that verified, if any.
    pub recall: Option<RecallList>,
    /// The recall list file that `recall` came from.
    pub recall_path: Option<PathBuf>,
    /// Entitlements that verified.
    pub entitlements: Vec<EntitlementFile>,
    /// Package files (verified on use: verification streams the whole file).
    pub packages: Vec<PathBuf>,
    /// Entitlement and recall files that were refused.
    pub problems: Vec<Problem>,
    /// Whether the state file was missing or behind the audit log and was restored from it.
    pub restored_from_log: bool,
}

fn files_in(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|x| x == ext)
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn problem(path: &Path, e: &StoreError) -> Problem {
    Problem {
        path: path.to_owned(),
        finding: e.finding().unwrap_or_else(|| {
            Finding::fail(
                fieldkit_trust::rules::IO,
                e.to_string(),
                "a readable file",
                "The file could not be read.",
            )
        }),
    }
}

impl TrustMaterial {
    /// Loads the home's trust material, restoring the remembered state from `audit` where the
    /// state file is missing or behind it (and saving it again). Fails when there is no valid
    /// trust root, when the state is damaged, or when the newest recall list that verifies is
    /// older than one seen before (fail closed: a recall may be hidden). Entitlement and
    /// recall files that do not verify are listed in [`TrustMaterial::problems`].
    pub fn load(home: &Home, audit: &AuditLog) -> Result<TrustMaterial, StoreError> {
        let root = load_root(home)?;
        let mut state = load_state(home)?;
        let restored_from_log = match latest_snapshot(audit)? {
            Some(snapshot) => state.raise_to(&snapshot, None),
            None => false,
        };
        if restored_from_log {
            save_state(home, &state)?;
        }
        let mut problems = Vec::new();

        let mut recall: Option<(RecallList, PathBuf)> = None;
        for path in files_in(&home.recalls_dir(), "json")? {
            let opened = read_small(&path, MAX_DOCUMENT).and_then(|bytes| {
                RecallList::open(&bytes, &root, None).map_err(|source| StoreError::Refused {
                    path: path.clone(),
                    source,
                })
            });
            match opened {
                Ok(list) => {
                    if recall
                        .as_ref()
                        .is_none_or(|(r, _)| list.version > r.version)
                    {
                        recall = Some((list, path));
                    }
                }
                Err(e) => problems.push(problem(&path, &e)),
            }
        }
        if let Some(seen) = state.recall_version
            && recall.as_ref().is_none_or(|(r, _)| r.version < seen)
        {
            return Err(StoreError::RecallMissing {
                dir: home.recalls_dir(),
                found: recall
                    .as_ref()
                    .map_or("none".into(), |(r, _)| r.version.to_string()),
                required: seen,
            });
        }

        let mut entitlements = Vec::new();
        for path in files_in(&home.entitlements_dir(), "json")? {
            let opened = read_small(&path, MAX_DOCUMENT).and_then(|bytes| {
                Entitlement::open(&bytes, &root).map_err(|source| StoreError::Refused {
                    path: path.clone(),
                    source,
                })
            });
            match opened {
                Ok(entitlement) => entitlements.push(EntitlementFile { path, entitlement }),
                Err(e) => problems.push(problem(&path, &e)),
            }
        }
        let mut generations_rose = false;
        for e in &entitlements {
            let seen = state
                .entitlement_generations
                .entry(e.entitlement.id.clone())
                .or_default();
            if e.entitlement.generation > *seen {
                *seen = e.entitlement.generation;
                generations_rose = true;
            }
        }
        if generations_rose {
            save_state(home, &state)?;
        }

        let (recall, recall_path) = match recall {
            Some((r, p)) => (Some(r), Some(p)),
            None => (None, None),
        };
        Ok(TrustMaterial {
            root,
            state,
            recall,
            recall_path,
            entitlements,
            packages: files_in(&home.packages_dir(), "fkpkg")?,
            problems,
            restored_from_log,
        })
    }

    /// The highest security counter remembered for the device `serial`, from the state file
    /// and the last check of that device in the log.
    pub fn security_counter(
        &self,
        audit: &AuditLog,
        serial: &str,
    ) -> Result<Option<u32>, StoreError> {
        let from_log = latest_device_snapshot(audit, serial)?.and_then(|s| s.security_counter);
        Ok(self
            .state
            .security_counters
            .get(serial)
            .copied()
            .max(from_log))
    }

    /// The trust state as a decision records it, for the device `serial`.
    pub fn snapshot(&self, security_counter: Option<u32>) -> TrustSnapshot {
        TrustSnapshot {
            root_version: self.root.version(),
            recall_version: [
                self.state.recall_version,
                self.recall.as_ref().map(|r| r.version),
            ]
            .into_iter()
            .flatten()
            .max(),
            time_mark: self.state.time_mark,
            security_counter,
        }
    }

    /// The trusted time from the remembered high-water mark.
    pub fn trusted_time(&self) -> TrustedTime {
        TrustedTime::new(self.state.time_mark)
    }

    /// "Now" for time-dependent decisions, or the clock-rollback refusal.
    pub fn now(&self, system: DateTime<Utc>) -> Result<DateTime<Utc>, TrustError> {
        self.trusted_time().now(system)
    }

    /// Raises the high-water mark to `signed` (persist with [`save_state`]).
    pub fn observe(&mut self, signed: DateTime<Utc>) {
        let mut t = self.trusted_time();
        t.observe(signed);
        self.state.time_mark = t.mark();
    }

    /// Verifies a package file against the root at `now` (streaming, bounded memory), then
    /// against the recall list.
    pub fn verify_package_file(
        &self,
        path: &Path,
        now: DateTime<Utc>,
    ) -> Result<VerifiedPackage, StoreError> {
        let file = File::open(path).map_err(io_err(path))?;
        let refused = |source| StoreError::Refused {
            path: path.to_owned(),
            source,
        };
        let mut vp =
            verify_package_with(
                file,
                &self.root,
                now,
                &Limits::default(),
                &mut |_, _| Ok(()),
            )
            .map_err(refused)?;
        if let Some(recall) = &self.recall {
            let f = recall.check_package(&vp.manifest);
            if !f.passed {
                return Err(refused(f.into()));
            }
            vp.findings.push(f);
        }
        Ok(vp)
    }
}

/// The file name a package is kept under in the home: `PRODUCT-VERSION.fkpkg`.
pub fn package_file_name(m: &Manifest) -> String {
    format!("{}-{}.fkpkg", m.product, m.version)
}

/// What importing one package did.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    /// Where it is kept.
    pub path: PathBuf,
    /// Whether the same package was already there.
    pub already_present: bool,
    /// The verified package.
    pub package: VerifiedPackage,
}

fn same_file(a: &Path, b: &Path) -> Result<bool, StoreError> {
    let mut fa = File::open(a).map_err(io_err(a))?;
    let mut fb = File::open(b).map_err(io_err(b))?;
    if fa.metadata().map_err(io_err(a))?.len() != fb.metadata().map_err(io_err(b))?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    loop {
        let n = fa.read(&mut ba).map_err(io_err(a))?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n]).map_err(io_err(b))?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// Copies a package into the home, verifies the copy (signatures, hashes, expiry at trusted
/// "now", recall) and keeps it as [`package_file_name`]; raises the time mark to its release
/// date. A different package with the same id already in the home is a conflict.
pub fn import_package(
    home: &Home,
    audit: &Recorder<'_>,
    material: &mut TrustMaterial,
    source: &Path,
    system_now: DateTime<Utc>,
) -> Result<Imported, StoreError> {
    let now = material
        .now(system_now)
        .map_err(|source_err| StoreError::Refused {
            path: source.to_owned(),
            source: source_err,
        })?;
    let dir = home.packages_dir();
    fieldkit_private::create_dir_all(&dir).map_err(io_err(&dir))?;
    let tmp = dir.join(format!(".import-{}.tmp", std::process::id()));
    let result = (|| {
        let mut from = File::open(source).map_err(io_err(source))?;
        let mut to = fieldkit_private::create(&tmp).map_err(io_err(&tmp))?;
        io::copy(&mut from, &mut to).map_err(io_err(source))?;
        to.sync_all().map_err(io_err(&tmp))?;
        drop(to);
        let package = material
            .verify_package_file(&tmp, now)
            .map_err(|e| match e {
                StoreError::Refused { source: s, .. } => StoreError::Refused {
                    path: source.to_owned(),
                    source: s,
                },
                other => other,
            })?;
        let dest = dir.join(package_file_name(&package.manifest));
        let already_present = dest.exists();
        if already_present {
            if !same_file(&tmp, &dest)? {
                return Err(StoreError::Conflict {
                    path: dest,
                    what: "package",
                });
            }
        } else {
            fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        }
        Ok(Imported {
            path: dest,
            already_present,
            package,
        })
    })();
    let _ = fs::remove_file(&tmp);
    let imported = result?;
    let before = material.state.time_mark;
    material.observe(start_of(imported.package.manifest.release_date));
    save_state(home, &material.state)?;
    if material.state.time_mark != before {
        audit.trust_raised(
            material,
            format!("imported package {}", imported.package.manifest.id()),
        )?;
    }
    if !material.packages.contains(&imported.path) {
        material.packages.push(imported.path.clone());
    }
    Ok(imported)
}

/// The file name a recall list is kept under: `recall-VERSION.json`.
pub fn recall_file_name(list: &RecallList) -> String {
    format!("recall-{}.json", list.version)
}

/// Verifies a recall list against the root and the highest version seen, keeps it in the
/// home, and remembers its version and issue time. Returns where it is kept.
pub fn import_recall(
    home: &Home,
    audit: &Recorder<'_>,
    material: &mut TrustMaterial,
    source: &Path,
) -> Result<(PathBuf, RecallList), StoreError> {
    let bytes = read_small(source, MAX_DOCUMENT)?;
    let seen = [
        material.state.recall_version,
        material.recall.as_ref().map(|r| r.version),
    ]
    .into_iter()
    .flatten()
    .max();
    let list = RecallList::open(&bytes, &material.root, seen).map_err(|e| StoreError::Refused {
        path: source.to_owned(),
        source: e,
    })?;
    let dest = home.recalls_dir().join(recall_file_name(&list));
    match fs::read(&dest) {
        Ok(existing) if existing != bytes => {
            return Err(StoreError::Conflict {
                path: dest,
                what: "recall list",
            });
        }
        Ok(_) => {}
        Err(_) => write_atomic(&dest, &bytes)?,
    }
    let before = (material.state.recall_version, material.state.time_mark);
    material.state.recall_version = Some(seen.map_or(list.version, |s| s.max(list.version)));
    material.observe(list.issued);
    save_state(home, &material.state)?;
    if (material.state.recall_version, material.state.time_mark) != before {
        audit.trust_raised(
            material,
            format!("imported recall list version {}", list.version),
        )?;
    }
    if material
        .recall
        .as_ref()
        .is_none_or(|r| r.version <= list.version)
    {
        material.recall = Some(list.clone());
        material.recall_path = Some(dest.clone());
    }
    Ok((dest, list))
}

/// Writes trust-state raises to the audit log, as the technician and site of the visit.
#[derive(Debug, Clone, Copy)]
pub struct Recorder<'a> {
    /// The log.
    pub audit: &'a AuditLog,
    /// The technician.
    pub technician: &'a str,
    /// The site.
    pub site: &'a str,
}

impl Recorder<'_> {
    /// Records that the remembered state rose, and why.
    pub fn trust_raised(&self, material: &TrustMaterial, cause: String) -> Result<(), StoreError> {
        self.audit
            .append(NewEntry {
                technician: self.technician.to_owned(),
                site: self.site.to_owned(),
                event: Event::TrustUpdated(TrustUpdate {
                    trust: material.snapshot(None),
                    cause,
                }),
            })
            .map(|_| ())
            .map_err(|e| StoreError::Audit(e.to_string()))
    }
}

/// Events whose records carry the trust state they were decided with.
const SNAPSHOT_EVENTS: [&str; 4] = [
    events::CHECK_PASSED,
    events::CHECK_REFUSED,
    events::CHECK_UP_TO_DATE,
    events::TRUST_UPDATED,
];

fn snapshot_of(entry: Option<fieldkit_audit::Entry>) -> Option<TrustSnapshot> {
    match entry?.read().ok()? {
        Reading::Typed(e) => e.trust().cloned(),
        _ => None,
    }
}

/// The trust state of the newest entry that records one. Every such entry records the state
/// after raising it to what the log held before, so the newest one holds the highest values.
fn latest_snapshot(audit: &AuditLog) -> Result<Option<TrustSnapshot>, StoreError> {
    let entry = audit
        .latest(&SNAPSHOT_EVENTS, None)
        .map_err(|e| StoreError::Audit(e.to_string()))?;
    Ok(snapshot_of(entry))
}

/// The trust state of the newest check of the device `serial`.
fn latest_device_snapshot(
    audit: &AuditLog,
    serial: &str,
) -> Result<Option<TrustSnapshot>, StoreError> {
    let entry = audit
        .latest(&SNAPSHOT_EVENTS[..3], Some(serial))
        .map_err(|e| StoreError::Audit(e.to_string()))?;
    Ok(snapshot_of(entry))
}
