//! The technician's data directory.

use std::path::{Path, PathBuf};

use fieldkit_profile::{ProfileError, ProfileSet};

/// Where fieldkit keeps its data: `--home`, `FIELDKIT_HOME`, or the platform's data directory.
///
/// A home is either the technician's own (production) home, or the DEMO's, which sits beside it
/// ([`Home::demo_home`]) so that demo keys and the demo trust root never share a directory with
/// real trust material.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
    demo: bool,
}

/// Why the home directory could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    /// No directory was given and the platform has none.
    #[error("no data directory: pass --home DIR or set FIELDKIT_HOME")]
    NoDataDir,
    /// Reading a file in the home failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// An extra profile in `profiles/` is invalid.
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

impl Home {
    /// The home at `root` (not created until something is written).
    pub fn at(root: impl Into<PathBuf>) -> Home {
        Home {
            root: root.into(),
            demo: false,
        }
    }

    /// The DEMO's home that goes with this one: a directory of its own beside it,
    /// `<home>-demo` (`~/.local/share/fieldkit-demo` for the platform's default), chosen
    /// explicitly (`fieldkit --demo`, `fieldkit-app --demo`, the app's first screen).
    pub fn demo_home(&self) -> Home {
        if self.demo {
            return self.clone();
        }
        let root = match self.root.file_name() {
            Some(name) => {
                let mut name = name.to_owned();
                name.push("-demo");
                self.root.with_file_name(name)
            }
            None => self.root.join("fieldkit-demo"),
        };
        Home { root, demo: true }
    }

    /// Whether this is a DEMO home chosen as such ([`Home::demo_home`]). A home that the demo
    /// kit was made in by hand (`--home DIR demo init`) is labelled by its kit instead.
    pub fn is_demo(&self) -> bool {
        self.demo
    }

    /// The platform's default home (`~/.local/share/fieldkit` on Linux).
    pub fn platform_default() -> Result<Home, HomeError> {
        directories::ProjectDirs::from("org", "fieldkit", "fieldkit")
            .map(|d| Home::at(d.data_dir()))
            .ok_or(HomeError::NoDataDir)
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the home.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// The installed trust root, `trust/root.json`.
    pub fn trust_root(&self) -> PathBuf {
        self.join("trust/root.json")
    }

    /// Earlier trust roots, kept on rotation as `trust/history/root.<version>.json`.
    pub fn trust_history_dir(&self) -> PathBuf {
        self.join("trust/history")
    }

    /// What the trust decisions remember between runs (the trusted-time high-water mark and
    /// the highest recall list version seen), `trust/state.json`.
    pub fn trust_state(&self) -> PathBuf {
        self.join("trust/state.json")
    }

    /// Imported packages, `packages/*.fkpkg`.
    pub fn packages_dir(&self) -> PathBuf {
        self.join("packages")
    }

    /// Entitlements the technician carries, `entitlements/*.json`.
    pub fn entitlements_dir(&self) -> PathBuf {
        self.join("entitlements")
    }

    /// Recall lists, `recalls/*.json`.
    pub fn recalls_dir(&self) -> PathBuf {
        self.join("recalls")
    }

    /// Keys made by `fieldkit keys generate` without `--out`.
    pub fn keys_dir(&self) -> PathBuf {
        self.join("keys")
    }

    /// The demo kit's extra material (images, manifests, entitlements to try), `demo/`.
    pub fn demo_dir(&self) -> PathBuf {
        self.join("demo")
    }

    /// Creates the directory if needed, readable by its owner only (`0700`); a home that others
    /// could enter (made by hand or by an older version) is closed to them.
    pub fn ensure(&self) -> Result<(), HomeError> {
        fieldkit_private::make_private_dir(&self.root).map_err(|source| HomeError::Io {
            path: self.root.clone(),
            source,
        })
    }

    /// The shipped device profiles plus any in `<home>/profiles/*.toml`.
    pub fn profiles(&self) -> Result<ProfileSet, HomeError> {
        let mut set = ProfileSet::builtin();
        let dir = self.join("profiles");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(set);
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| HomeError::Io {
                path: path.clone(),
                source,
            })?;
            set.add(&text, &path.display().to_string())?;
        }
        set.check_links()?;
        Ok(set)
    }
}
