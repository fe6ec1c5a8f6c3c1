//! The hub key a laptop pinned: one SPKI PEM file in the laptop's home.
//!
//! It is written at enrolment (`fieldkit audit pin-hub --key FILE`, the key `fieldkit-hub
//! enroll-laptop` prints) or at the first sync, after the technician confirmed the key the hub
//! presents. From then on every sync requires that key. The file is replaced atomically and
//! kept 0600, like the rest of the home's keys.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use fieldkit_audit::identity::{HUB_PREFIX, key_name, parse_public_key_pem, public_key_pem};

/// The pinned hub key's file name inside the laptop's home.
pub const HUB_KEY_FILE: &str = "hub-key.pem";

/// Why the pinned key could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The file could not be read or written.
    #[error("pinned hub key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a public key.
    #[error("pinned hub key {path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        source: fieldkit_audit::IdentityError,
    },
    /// The key confirmed is not the key the hub presents.
    #[error("the hub presents key {presented}, not {confirmed} as confirmed: nothing was pinned")]
    NotConfirmed {
        /// What the hub presents.
        presented: String,
        /// What the technician confirmed.
        confirmed: String,
    },
}

/// The pinned key's file in `home`.
pub fn pin_path(home: &Path) -> PathBuf {
    home.join(HUB_KEY_FILE)
}

/// The pinned hub key, if one is pinned.
pub fn load_pin(home: &Path) -> Result<Option<VerifyingKey>, PinError> {
    let path = pin_path(home);
    match std::fs::read_to_string(&path) {
        Ok(pem) => parse_public_key_pem(&pem)
            .map(Some)
            .map_err(|source| PinError::Key { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PinError::Io { path, source }),
    }
}

/// Pins `key` (replacing any pin); returns its note key name.
pub fn save_pin(home: &Path, key: &VerifyingKey) -> Result<String, PinError> {
    let path = pin_path(home);
    let io = |source| PinError::Io {
        path: path.clone(),
        source,
    };
    fieldkit_private::create_dir_all(home).map_err(io)?;
    let tmp = home.join(format!(".{HUB_KEY_FILE}.{}", std::process::id()));
    fieldkit_private::write(&tmp, public_key_pem(key).as_bytes()).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(key_name(HUB_PREFIX, key))
}

/// Pins the key the hub presents, if it is the one the technician confirmed (by its name,
/// `fieldkit-hub/…`, or its full key id).
pub fn pin_confirmed(
    home: &Path,
    presented: &crate::proto::HubInfo,
    confirmed: &str,
) -> Result<String, PinError> {
    let key = parse_public_key_pem(&presented.public_key).map_err(|source| PinError::Key {
        path: PathBuf::from("(the hub's answer)"),
        source,
    })?;
    let name = key_name(HUB_PREFIX, &key);
    let id = fieldkit_audit::identity::key_id(&key);
    let confirmed = confirmed.trim();
    if confirmed != name && !confirmed.eq_ignore_ascii_case(&id) {
        return Err(PinError::NotConfirmed {
            presented: name,
            confirmed: confirmed.to_owned(),
        });
    }
    save_pin(home, &key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldkit_audit::Identity;

    #[test]
    fn a_pin_round_trips_privately_and_only_the_confirmed_key_is_pinned() {
        let home = tempfile::tempdir().unwrap();
        assert!(load_pin(home.path()).unwrap().is_none());
        let hub = Identity::generate(HUB_PREFIX);
        let info = crate::proto::HubInfo {
            name: hub.name().into(),
            key_id: hub.key_id(),
            public_key: hub.public_key_pem(),
            transport: crate::proto::Transport::Tls,
        };
        let e = pin_confirmed(home.path(), &info, "fieldkit-hub/0000000000000000").unwrap_err();
        assert!(e.to_string().contains("nothing was pinned"), "{e}");
        assert!(load_pin(home.path()).unwrap().is_none());
        assert_eq!(
            pin_confirmed(home.path(), &info, hub.name()).unwrap(),
            hub.name()
        );
        assert_eq!(load_pin(home.path()).unwrap(), Some(hub.public_key()));
        assert_eq!(
            pin_confirmed(home.path(), &info, &hub.key_id().to_uppercase()).unwrap(),
            hub.name()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(pin_path(home.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
