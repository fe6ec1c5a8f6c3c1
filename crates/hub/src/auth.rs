//! Manager accounts and sessions.
//!
//! Passwords are stored as argon2id PHC strings. A session is a random 256-bit token sent as
//! an `HttpOnly`, `SameSite=Strict` cookie; the hub keeps only its SHA-256, so a copy of the
//! database does not hold usable sessions.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "fieldkit_session";

/// How long a session lasts.
pub const SESSION_SECS: i64 = 12 * 3600;

/// The shortest password `add-manager` accepts.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Why a password was not accepted for a new account.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Too short.
    #[error("password is {found} characters; at least {min} are required")]
    TooShort {
        /// Its length.
        found: usize,
        /// The minimum.
        min: usize,
    },
    /// Hashing failed.
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// Hashes a new password (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let found = password.chars().count();
    if found < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort {
            found,
            min: MIN_PASSWORD_LEN,
        });
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks a password against a stored hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A new session token (hex) and the hash the hub stores.
pub fn new_token() -> (String, [u8; 32]) {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = hex::encode(raw);
    let hash = token_hash(&token);
    (token, hash)
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::TooShort { found: 5, min: 8 })
        ));
    }
}
