//! Manager accounts, sessions, and the guard in front of every password check.
//!
//! Passwords are stored as argon2id PHC strings. A session is a random 256-bit token sent as
//! an `HttpOnly`, `SameSite=Strict` (and, wherever the browser can send it back, `Secure`)
//! cookie; the hub keeps only its SHA-256, so a copy of the database holds no usable session.
//!
//! The [`SignInGuard`] is what a password guesser meets:
//! - **Back-off per account and per client address.** Each may fail a few times freely; after
//!   that every attempt must wait twice as long as the last since the last failure (up to
//!   [`MAX_BACKOFF_SECS`]). An attempt that comes too early is answered 429 with `Retry-After`
//!   and the reason, without touching argon2. Attempts in flight count as failures until they
//!   are settled, so fifty parallel guesses buy no more tries than fifty serial ones.
//! - **Bounded argon2.** Checks run on [`ARGON2_PARALLEL`] long-lived threads, each of which
//!   owns one argon2 working area (19 MiB for the default parameters), allocated at its first
//!   check and reused by every later one; at most [`ARGON2_QUEUE`] checks wait, beyond that the
//!   hub answers 503 at once. The memory password checks can take is those areas, however many
//!   attempts arrive, and nothing is allocated or freed per attempt.
//! - **Equal work for unknown names.** An unknown name is checked against a dummy hash with the
//!   same parameters (a random salt and a random output, which no password produces), so it
//!   costs the same argon2 run as a known name and gets the same answer: names cannot be told
//!   apart by time or by message.
//!
//! Time is a parameter ([`Clock`]), so the back-off is tested by moving a clock, not by waiting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "fieldkit_session";

/// How long a session lasts.
pub const SESSION_SECS: i64 = 12 * 3600;

/// The shortest password `add-manager` accepts.
pub const MIN_PASSWORD_LEN: usize = 8;

/// The longest password checked (longer ones are refused before hashing).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Failures an account may have before back-off starts.
pub const ACCOUNT_FREE_FAILURES: u32 = 5;
/// Failures one client address may have before back-off starts.
pub const ADDRESS_FREE_FAILURES: u32 = 20;
/// The longest back-off.
pub const MAX_BACKOFF_SECS: u64 = 15 * 60;
/// argon2 hashes computed at once.
pub const ARGON2_PARALLEL: usize = 2;
/// Password checks that may wait for an argon2 slot.
pub const ARGON2_QUEUE: usize = 32;
/// Tracked names and addresses; beyond this, entries out of back-off are forgotten first.
const MAX_TRACKED: usize = 100_000;

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
    /// Too long.
    #[error("password is {found} characters; at most {max} are accepted")]
    TooLong {
        /// Its length.
        found: usize,
        /// The maximum.
        max: usize,
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
    if found > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong {
            found,
            max: MAX_PASSWORD_LEN,
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
    verify_with_memory(password, stored, &mut Vec::new())
}

/// Checks a password against a stored argon2 PHC string, computing in `memory` (grown to the
/// hash's memory cost if smaller, never shrunk): the same memory serves every check.
fn verify_with_memory(password: &str, stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(expected), Some(salt)) = (
        Algorithm::try_from(hash.algorithm),
        Params::try_from(&hash),
        hash.hash,
        hash.salt,
    ) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_buf = [0u8; argon2::password_hash::Salt::MAX_LENGTH];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = &mut out[..expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..])
        .is_ok()
        // Output's equality is constant-time.
        && Output::new(out).is_ok_and(|o| o == expected)
}

/// A hash with the default parameters that no password produces: a random salt and a random
/// output. Checking a password against it costs what checking a real one does.
fn dummy_hash() -> String {
    let salt = SaltString::generate(&mut OsRng);
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let params = Params::default();
    let Ok(output) = Output::new(&raw) else {
        return String::new();
    };
    let Ok(params) = argon2::password_hash::ParamsString::try_from(&params) else {
        return String::new();
    };
    PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::default().into()),
        params,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string()
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

/// Milliseconds on a clock that never goes back.
pub trait Clock: Send + Sync + 'static {
    /// Now, in milliseconds from an arbitrary start.
    fn now_ms(&self) -> u64;
}

/// The process's monotonic clock.
#[derive(Debug)]
pub struct MonotonicClock(std::time::Instant);

impl Default for MonotonicClock {
    fn default() -> Self {
        Self(std::time::Instant::now())
    }
}

impl Clock for MonotonicClock {
    fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

/// A clock moved by hand, for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why a sign-in attempt was not even checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The account or address is in back-off.
    #[error("too many failed sign-ins {who}: try again in {retry_after_secs} s")]
    BackOff {
        /// "for manager \"maria\"" or "from 10.0.0.7".
        who: String,
        /// Seconds until the next attempt is accepted.
        retry_after_secs: u64,
    },
    /// Too many checks are waiting for argon2.
    #[error(
        "the hub is checking {queued} other sign-ins: try again in a moment (at most {max} wait)"
    )]
    Busy {
        /// Checks waiting.
        queued: usize,
        /// The bound.
        max: usize,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    count: u32,
    in_flight: u32,
    last_ms: u64,
}

impl Failures {
    /// Milliseconds until the next attempt is allowed (0: now).
    fn wait_ms(&self, free: u32, now: u64) -> u64 {
        let n = self.count + self.in_flight;
        if n < free {
            return 0;
        }
        let exp = (n - free).min(20);
        let backoff = (1000u64 << exp).min(MAX_BACKOFF_SECS * 1000);
        if self.in_flight > 0 && self.count < free {
            // Free attempts are all in flight: wait for them to settle.
            return 1000;
        }
        (self.last_ms + backoff).saturating_sub(now)
    }
}

#[derive(Debug, Default)]
struct Tracker {
    accounts: HashMap<String, Failures>,
    addresses: HashMap<IpAddr, Failures>,
}

/// A sign-in attempt admitted by the guard; settle it with [`SignInGuard::settle`].
#[derive(Debug)]
pub struct Ticket {
    name: String,
    addr: IpAddr,
}

/// Rate limits, back-off and bounded argon2 for sign-in. See the module documentation.
pub struct SignInGuard {
    tracker: Mutex<Tracker>,
    workers: std::sync::mpsc::SyncSender<Job>,
    dummy_hash: String,
    clock: Arc<dyn Clock>,
    checks: AtomicU64,
}

impl std::fmt::Debug for SignInGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInGuard").finish_non_exhaustive()
    }
}

impl SignInGuard {
    /// A guard reading `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let dummy_hash = dummy_hash();
        Self {
            tracker: Mutex::default(),
            workers: start_workers(),
            dummy_hash,
            clock,
            checks: AtomicU64::new(0),
        }
    }

    /// How many password checks (argon2 runs) have been made: the same for known and unknown
    /// names.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits an attempt for `name` from `addr`, or says why not.
    pub fn admit(&self, name: &str, addr: IpAddr) -> Result<Ticket, Refusal> {
        let now = self.clock.now_ms();
        let mut t = self.lock();
        let account = t.accounts.get(name).copied().unwrap_or_default();
        let address = t.addresses.get(&addr).copied().unwrap_or_default();
        let wait_account = account.wait_ms(ACCOUNT_FREE_FAILURES, now);
        let wait_address = address.wait_ms(ADDRESS_FREE_FAILURES, now);
        if wait_account > 0 || wait_address > 0 {
            let (who, ms) = if wait_account >= wait_address {
                (format!("for manager {name:?}"), wait_account)
            } else {
                (format!("from {addr}"), wait_address)
            };
            return Err(Refusal::BackOff {
                who,
                retry_after_secs: ms.div_ceil(1000),
            });
        }
        if t.accounts.len() + t.addresses.len() > MAX_TRACKED {
            t.accounts
                .retain(|_, f| f.in_flight > 0 || f.wait_ms(ACCOUNT_FREE_FAILURES, now) > 0);
            t.addresses
                .retain(|_, f| f.in_flight > 0 || f.wait_ms(ADDRESS_FREE_FAILURES, now) > 0);
        }
        t.accounts.entry(name.to_owned()).or_default().in_flight += 1;
        t.addresses.entry(addr).or_default().in_flight += 1;
        Ok(Ticket {
            name: name.to_owned(),
            addr,
        })
    }

    /// Records the result of an admitted attempt: success clears both records.
    pub fn settle(&self, ticket: Ticket, ok: bool) {
        self.finish(ticket, Some(ok));
    }

    /// Ends an admitted attempt that was never checked (the hub failed): neither a failure nor
    /// a success.
    pub fn release(&self, ticket: Ticket) {
        self.finish(ticket, None);
    }

    fn finish(&self, ticket: Ticket, ok: Option<bool>) {
        let now = self.clock.now_ms();
        let mut t = self.lock();
        let settle = |f: &mut Failures| {
            f.in_flight = f.in_flight.saturating_sub(1);
            match ok {
                Some(true) => f.count = 0,
                Some(false) => {
                    f.count = f.count.saturating_add(1);
                    f.last_ms = now;
                }
                None => {}
            }
        };
        if let Some(f) = t.accounts.get_mut(&ticket.name) {
            settle(f);
        }
        if let Some(f) = t.addresses.get_mut(&ticket.addr) {
            settle(f);
        }
    }

    /// Checks `password` against `stored` (the dummy hash when the name is unknown) on one of
    /// [`ARGON2_PARALLEL`] long-lived threads, each computing in its own reused working area,
    /// with at most [`ARGON2_QUEUE`] checks waiting.
    pub async fn check(&self, password: &str, stored: Option<&str>) -> Result<bool, Refusal> {
        let known = stored.is_some();
        let hash = stored.unwrap_or(&self.dummy_hash).to_owned();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            password: password.to_owned(),
            hash,
            reply: tx,
        };
        if let Err(e) = self.workers.try_send(job) {
            let queued = match e {
                std::sync::mpsc::TrySendError::Full(_) => ARGON2_QUEUE,
                std::sync::mpsc::TrySendError::Disconnected(_) => 0,
            };
            return Err(Refusal::Busy {
                queued,
                max: ARGON2_QUEUE,
            });
        }
        self.checks.fetch_add(1, Ordering::SeqCst);
        Ok(rx.await.unwrap_or(false) && known)
    }
}

struct Job {
    password: String,
    hash: String,
    reply: tokio::sync::oneshot::Sender<bool>,
}

fn start_workers() -> std::sync::mpsc::SyncSender<Job> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(ARGON2_QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..ARGON2_PARALLEL {
        let rx = rx.clone();
        let _ = std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || {
                // This thread's argon2 working area, allocated by its first check.
                let mut memory = Vec::new();
                loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let ok = verify_with_memory(&job.password, &job.hash, &mut memory);
                    let _ = job.reply.send(ok);
                }
            });
    }
    tx
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
        // A hash made elsewhere with other parameters verifies too (the memory grows to fit).
        let other = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"correct horse", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        let mut memory = Vec::new();
        assert!(verify_with_memory("correct horse", &other, &mut memory));
        assert_eq!(memory.len(), 8 * 1024);
        assert!(verify_with_memory("correct horse", &h, &mut memory));
        assert_eq!(memory.len(), Params::default().block_count());
        assert!(!verify_with_memory(
            "correct horse",
            &dummy_hash(),
            &mut memory
        ));
        let dummy = dummy_hash();
        assert!(
            dummy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{dummy}"
        );
        assert!(PasswordHash::new(&dummy).unwrap().hash.unwrap().len() == 32);
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::TooShort { found: 5, min: 8 })
        ));
    }

    fn guard() -> (SignInGuard, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        (SignInGuard::new(clock.clone()), clock)
    }

    #[test]
    fn failures_back_off_per_account_doubling_and_success_clears() {
        let (g, clock) = guard();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        for _ in 0..ACCOUNT_FREE_FAILURES {
            let t = g.admit("maria", ip).unwrap();
            g.settle(t, false);
        }
        let e = g.admit("maria", ip).unwrap_err();
        assert_eq!(
            e.to_string(),
            "too many failed sign-ins for manager \"maria\": try again in 1 s"
        );
        // Another account from another address is not affected.
        g.settle(g.admit("bo", "10.0.0.8".parse().unwrap()).unwrap(), true);
        clock.advance_ms(1000);
        g.settle(g.admit("maria", ip).unwrap(), false);
        assert!(matches!(
            g.admit("maria", ip),
            Err(Refusal::BackOff {
                retry_after_secs: 2,
                ..
            })
        ));
        clock.advance_ms(2000);
        g.settle(g.admit("maria", ip).unwrap(), true);
        for _ in 0..ACCOUNT_FREE_FAILURES {
            g.settle(g.admit("maria", ip).unwrap(), false);
        }
    }

    #[test]
    fn in_flight_attempts_count_so_parallel_guesses_buy_nothing() {
        let (g, _clock) = guard();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let tickets: Vec<_> = (0..50).filter_map(|_| g.admit("maria", ip).ok()).collect();
        assert_eq!(tickets.len(), ACCOUNT_FREE_FAILURES as usize);
    }

    #[test]
    fn one_address_guessing_many_names_backs_off_too() {
        let (g, clock) = guard();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let admitted = (0..50)
            .filter_map(|i| g.admit(&format!("user{i}"), ip).ok())
            .map(|t| g.settle(t, false))
            .count();
        assert_eq!(admitted, ADDRESS_FREE_FAILURES as usize);
        let e = g.admit("someone", ip).unwrap_err();
        assert!(e.to_string().contains("from 10.0.0.9"), "{e}");
        clock.advance_ms(MAX_BACKOFF_SECS * 1000);
        assert!(g.admit("someone", ip).is_ok());
    }
}
