//! The content-addressed package store: what was checked is what is applied.
//!
//! A package file named for a check may change before the update (rewritten while the
//! technician reads the plan, a USB stick swapped, a FIFO that serves other bytes on every
//! read). So every package a check considers is read **once**, bounded, into
//! `<home>/store/sha256/<hex>` (written beside, fsynced, renamed; the directory 0700, files
//! 0600), and verified from there. The plan names each step's package by those digests, and
//! an update reads only from the store, hashing again as it streams; the plan's rule
//! (`package.changed_since_check`) compares before the first byte goes to the device.
//!
//! What is taken in is refused early when it cannot be a package: anything but a regular file
//! or a FIFO (directories, devices, sockets), a file larger than [`MAX_PACKAGE`], or one whose
//! first block is not the package format's marker. Its bytes are never quoted in the refusal:
//! a file named as a package may be anything, a symlink to a private file included, and
//! refusals reach the audit log.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use fieldkit_trust::{
    Limits, TrustError, TrustRoot, VerifiedPackage, rules, verify_package_signed,
};
use sha2::{Digest, Sha256};

use crate::home::Home;
use crate::trust_store::StoreError;

/// The largest package file taken in. Real firmware packages are a few megabytes; this bound
/// stops an endless stream from filling the disk.
pub const MAX_PACKAGE: u64 = 512 << 20;

/// The tar block the marker's header occupies.
const BLOCK: usize = 512;

/// A package file's bytes, kept in the store under their SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Where the store keeps them.
    pub path: PathBuf,
    /// Their size.
    pub size: u64,
}

/// The store's directory, `<home>/store/sha256`.
pub fn dir(home: &Home) -> PathBuf {
    home.join("store/sha256")
}

/// Where the bytes with `sha256` are kept.
pub fn path_of(home: &Home, sha256: &str) -> PathBuf {
    dir(home).join(sha256)
}

fn refused(path: &Path, source: TrustError) -> StoreError {
    StoreError::Refused {
        path: path.to_owned(),
        source,
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What kind of file `meta` describes, when it is not one a package can be read from.
fn unreadable_kind(meta: &fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return None;
        }
        if t.is_char_device() || t.is_block_device() {
            return Some("a device file");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    if t.is_dir() {
        Some("a directory")
    } else {
        Some("not a regular file")
    }
}

/// Reads until `buf` is full or the input ends (a FIFO may deliver in pieces).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    fieldkit_private::create_dir_all(path).map_err(io_err(path))
}

fn create_private_file(path: &Path) -> io::Result<File> {
    fieldkit_private::create_new(path)
}

/// Reads `source` once into the store and returns its digest. Refuses, without reading
/// further, what cannot be a package (see the module documentation).
pub fn take_in(home: &Home, source: &Path) -> Result<Stored, StoreError> {
    let meta = fs::metadata(source).map_err(io_err(source))?;
    if let Some(kind) = unreadable_kind(&meta) {
        return Err(refused(
            source,
            TrustError::refused(
                rules::NOT_A_PACKAGE,
                kind,
                "a fieldkit package file",
                "The path named as a package is not a file a package can be read from.",
            ),
        ));
    }
    if meta.is_file() && meta.len() > MAX_PACKAGE {
        return Err(refused(source, too_large(meta.len())));
    }
    let mut input = File::open(source).map_err(io_err(source))?;
    let mut first = [0u8; BLOCK];
    let n = read_full(&mut input, &mut first).map_err(io_err(source))?;
    if !fieldkit_trust::looks_like_package(&first[..n]) {
        return Err(refused(source, fieldkit_trust::not_a_package()));
    }

    let store = dir(home);
    create_private_dir(&store)?;
    let tmp = store.join(format!(
        ".incoming-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut out = create_private_file(&tmp).map_err(io_err(&tmp))?;
        let mut hash = Sha256::new();
        hash.update(&first[..n]);
        out.write_all(&first[..n]).map_err(io_err(&tmp))?;
        let mut size = n as u64;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let k = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(source)(e)),
            };
            size += k as u64;
            if size > MAX_PACKAGE {
                return Err(refused(source, too_large(size)));
            }
            hash.update(&buf[..k]);
            out.write_all(&buf[..k]).map_err(io_err(&tmp))?;
        }
        let sha256 = hex::encode(hash.finalize());
        let dest = path_of(home, &sha256);
        if dest.exists() {
            // The same bytes are already kept: their name is their hash.
            drop(out);
            let _ = fs::remove_file(&tmp);
        } else {
            out.sync_all().map_err(io_err(&tmp))?;
            drop(out);
            fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
            if let Ok(d) = File::open(&store) {
                let _ = d.sync_all();
            }
        }
        Ok(Stored {
            sha256,
            path: dest,
            size,
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn too_large(size: u64) -> TrustError {
    TrustError::refused(
        rules::PACKAGE_SIZE,
        format!("{size} bytes or more"),
        format!("at most {MAX_PACKAGE} bytes"),
        "The file named as a package is larger than any package; it is not read further.",
    )
}

/// A package read back from the store for applying: what was read, hashed as it streamed.
#[derive(Debug)]
pub struct Loaded {
    /// SHA-256 of every byte read from the store.
    pub file_sha256: String,
    /// The package as verified from those bytes (signatures and digests, not time: the
    /// planner's rules decide that), or why it no longer verifies.
    pub package: Result<VerifiedPackage, TrustError>,
    /// Each payload's bytes, in manifest order (empty when verification failed).
    pub payloads: Vec<Vec<u8>>,
}

/// Reads the package kept under `sha256` and verifies it against `root`, keeping its payloads
/// in memory. `payload_limit` bounds each payload (the device's slot size).
pub fn load(
    home: &Home,
    sha256: &str,
    root: &TrustRoot,
    payload_limit: u64,
) -> Result<Loaded, StoreError> {
    let path = path_of(home, sha256);
    let file = File::open(&path).map_err(io_err(&path))?;
    let mut hashing = HashingReader {
        inner: io::BufReader::new(file),
        hash: Sha256::new(),
    };
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let limits = Limits {
        payload: payload_limit.max(1),
        ..Limits::default()
    };
    let package = verify_package_signed(&mut hashing, root, &limits, &mut |i, chunk| {
        if payloads.len() <= i {
            payloads.resize(i + 1, Vec::new());
        }
        payloads[i].extend_from_slice(chunk);
        Ok(())
    });
    // Whatever verification stopped at, hash the rest so the digest names the whole file.
    io::copy(&mut hashing, &mut io::sink()).map_err(io_err(&path))?;
    if package.is_err() {
        payloads.clear();
    }
    Ok(Loaded {
        file_sha256: hex::encode(hashing.hash.finalize()),
        package,
        payloads,
    })
}

struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, Home) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("home"));
        (dir, home)
    }

    fn refusal(home: &Home, path: &Path) -> (String, String) {
        match take_in(home, path) {
            Err(StoreError::Refused { source, .. }) => {
                let f = source.finding();
                (f.rule, f.found)
            }
            other => panic!("{path:?}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn what_cannot_be_a_package_is_refused_without_quoting_it() {
        let (dir, home) = home();
        let secret = dir.path().join("secret.txt");
        fs::write(&secret, "password=hunter2\n".repeat(100)).unwrap();
        let cases: Vec<(PathBuf, &str)> = vec![
            (
                secret.clone(),
                "a file that does not start with the fieldkit-package marker",
            ),
            (dir.path().to_owned(), "a directory"),
            (PathBuf::from("/dev/null"), "a device file"),
        ];
        #[cfg(unix)]
        {
            let link = dir.path().join("update.fkpkg");
            std::os::unix::fs::symlink(&secret, &link).unwrap();
            let (rule, found) = refusal(&home, &link);
            assert_eq!(rule, rules::NOT_A_PACKAGE);
            assert!(!found.contains("hunter2"), "{found}");
        }
        for (path, want) in cases {
            let (rule, found) = refusal(&home, &path);
            assert_eq!(
                (rule.as_str(), found.as_str()),
                (rules::NOT_A_PACKAGE, want)
            );
        }
        assert!(
            !dir.path().join("home/store/sha256").exists() || {
                fs::read_dir(dir.path().join("home/store/sha256"))
                    .unwrap()
                    .next()
                    .is_none()
            }
        );
    }

    #[cfg(unix)]
    #[test]
    fn kept_bytes_are_private_and_named_by_their_hash() {
        use std::os::unix::fs::PermissionsExt;
        let (tmp, home) = home();
        // A minimal file that starts like a package: the marker's header block.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, "fieldkit-package", &b"abc"[..])
            .unwrap();
        let bytes = b.into_inner().unwrap();
        let src = tmp.path().join("p.fkpkg");
        fs::write(&src, &bytes).unwrap();
        let s = take_in(&home, &src).unwrap();
        assert_eq!(s.sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(fs::read(&s.path).unwrap(), bytes);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&s.path), 0o600);
        assert_eq!(mode(&super::dir(&home)), 0o700);
        // Taking the same bytes in again keeps one copy.
        assert_eq!(take_in(&home, &src).unwrap(), s);
        assert_eq!(fs::read_dir(super::dir(&home)).unwrap().count(), 1);
    }
}
