//! The hub's signing key: an Ed25519 PKCS#8 PEM file of its own, 0600, beside the database.
//!
//! The key cosigns every receipt, so it never lives inside the database (a database dump or a
//! PostgreSQL replica must not carry it), and a key file that others may read is refused, as
//! ssh refuses one: the hub says which file, its mode and the mode required.

use std::path::{Path, PathBuf};

use fieldkit_audit::Identity;
use fieldkit_audit::identity::HUB_PREFIX;

/// Why the hub's key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading, generating or parsing failed.
    #[error("hub key: {0}")]
    Identity(#[from] fieldkit_audit::IdentityError),
    /// No place for the key follows from the database URL.
    #[error(
        "a PostgreSQL hub keeps its signing key in a file: give --hub-key FILE (created 0600 on first use)"
    )]
    NoDefault,
}

/// Where the key lives by default: beside a SQLite database (`hub.db` -> `hub-key.pem`).
pub fn default_path(db_url: &str) -> Result<PathBuf, KeyFileError> {
    let db = crate::store::SqliteStore::path_of_url(db_url).map_err(|_| KeyFileError::NoDefault)?;
    let stem = db
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "hub".into());
    Ok(db.with_file_name(format!("{stem}-key.pem")))
}

/// Loads the hub's key from `path`, creating it (0600) on first use. A key file others may
/// read is refused (`fieldkit-private`'s rule, the same as for the laptop's key).
pub fn load_or_create(path: &Path) -> Result<Identity, KeyFileError> {
    Ok(Identity::load_or_generate(path, HUB_PREFIX)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_sits_beside_a_sqlite_database_and_postgres_needs_a_path() {
        assert_eq!(
            default_path("sqlite:/var/lib/fieldkit/hub.db").unwrap(),
            Path::new("/var/lib/fieldkit/hub-key.pem")
        );
        assert_eq!(
            default_path("sqlite:fleet.sqlite").unwrap(),
            Path::new("fleet-key.pem")
        );
        assert!(matches!(
            default_path("postgres://db/fleet"),
            Err(KeyFileError::NoDefault)
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_new_key_is_private_and_a_readable_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub-key.pem");
        let id = load_or_create(&path).unwrap();
        assert!(id.name().starts_with("fieldkit-hub/"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&path).unwrap().name(), id.name());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create(&path).unwrap_err();
        assert!(
            e.to_string().contains("mode 0644); required mode 0600"),
            "{e}"
        );
    }
}
