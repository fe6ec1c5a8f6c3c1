//! Files only their owner can read.
//!
//! A technician's home holds private keys (the laptop's signing key, and in a release engineer's
//! hands the keys that sign packages), the audit database and the trust state. On a shared
//! machine another local user must not read or replace any of it, so everything fieldkit
//! creates goes through this crate: directories are made `0700`, files `0600`, whatever the
//! umask says. Reading a private key checks its mode first and refuses a key that anyone but its
//! owner can read, naming the command that fixes it, as OpenSSH does for `~/.ssh/id_*` ("a key
//! others could read may already be copied: say so, do not use it silently").
//!
//! On Unix (Linux and macOS) the modes are the protection. On Windows these functions create
//! plain files and directories: what protects them there is the ACL inherited from the user's
//! profile directory (`%LOCALAPPDATA%`, `%APPDATA%`: the user, SYSTEM and Administrators only),
//! and the key check has no mode to read, so it passes.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The mode of every directory fieldkit creates: the owner only.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file fieldkit creates: the owner reads and writes, nobody else.
pub const FILE_MODE: u32 = 0o600;
/// A private key file larger than this is not a PEM key and is not read.
pub const MAX_KEY_FILE: u64 = 64 << 10;

/// Why a private key file was not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be opened or read.
    #[error("private key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Someone other than the owner may read (or write) the key.
    #[error(
        "private key {path} is open to other users (mode {mode:04o}); required mode 0600, readable by its owner only, as ssh requires: run `chmod 600 {quoted}` (and replace the key if others may have copied it)",
        mode = mode & 0o7777,
        quoted = shell_quote(path)
    )]
    Exposed {
        /// The key file.
        path: PathBuf,
        /// Its mode bits as found.
        mode: u32,
    },
    /// The file is too large to be a PEM key.
    #[error("private key {path}: {found} bytes; required at most {MAX_KEY_FILE} (a PEM key)")]
    TooLarge {
        /// The key file.
        path: PathBuf,
        /// Its size.
        found: u64,
    },
}

/// Creates `dir` and every missing parent, each new one `0700`. Directories that exist already
/// are left as they are.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)
}

/// Creates `dir` like [`create_dir_all`] and, if it exists with access for others, takes that
/// access away: for a directory that is fieldkit's own (a home), made by an older version or by
/// hand.
pub fn make_private_dir(dir: &Path) -> io::Result<()> {
    create_dir_all(dir)?;
    restrict(&fs::metadata(dir)?, dir)
}

/// Opens `path` for writing, truncated; created `0600`. An existing file that others could
/// read is made `0600`.
pub fn create(path: &Path) -> io::Result<File> {
    let file = options().truncate(true).open(path)?;
    restrict(&file.metadata()?, path)?;
    Ok(file)
}

/// Creates `path` `0600`, failing if it exists.
pub fn create_new(path: &Path) -> io::Result<File> {
    let mut opts = options();
    opts.create_new(true);
    opts.open(path)
}

/// Creates `path` empty and `0600` if it does not exist; an existing file keeps its content and
/// loses any access others had. For files another library opens after us (SQLite creates its
/// `-wal` and `-shm` files with the database file's mode, so a database made here stays
/// private with them).
pub fn touch(path: &Path) -> io::Result<()> {
    let file = options().open(path)?;
    restrict(&file.metadata()?, path)
}

/// Writes `bytes` to `path` (created `0600`, or truncated) and flushes them to disk.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Reads a private key file, refusing one that others can read or write ([`KeyFileError::Exposed`])
/// and one too large to be a key. The mode is read from the open file, so the file checked is the
/// file read.
pub fn read_private_key(path: &Path) -> Result<String, KeyFileError> {
    let io_err = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    check_private_key(path, &meta)?;
    if meta.len() > MAX_KEY_FILE {
        return Err(KeyFileError::TooLarge {
            path: path.to_owned(),
            found: meta.len(),
        });
    }
    let mut text = String::new();
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(io_err)?;
    Ok(text)
}

/// The ssh rule: a private key's group and other permission bits must all be clear.
pub fn check_private_key(path: &Path, meta: &Metadata) -> Result<(), KeyFileError> {
    match mode(meta) {
        Some(mode) if mode & 0o077 != 0 => Err(KeyFileError::Exposed {
            path: path.to_owned(),
            mode,
        }),
        _ => Ok(()),
    }
}

/// The permission bits of a file, where the platform has them.
pub fn mode(meta: &Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Some(meta.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// Everything under `root` (itself included) that is not as this crate makes it: each directory
/// whose mode is not `0700` and each file whose mode is not `0600`, with the mode found.
/// Symbolic links (a simulator's stable port path) are not followed and have no mode of their
/// own. Empty on platforms without modes.
pub fn find_not_private(root: &Path) -> io::Result<Vec<(PathBuf, u32)>> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(path) = todo.pop() {
        let meta = fs::symlink_metadata(&path)?;
        let Some(mode) = mode(&meta) else { continue };
        let required = if meta.is_dir() {
            for entry in fs::read_dir(&path)? {
                todo.push(entry?.path());
            }
            DIR_MODE
        } else if meta.is_file() {
            FILE_MODE
        } else {
            continue;
        };
        if mode != required {
            found.push((path, mode));
        }
    }
    found.sort();
    Ok(found)
}

fn options() -> OpenOptions {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
    }
    opts
}

/// Clears the group and other bits of `path` if any is set (keeping the owner's).
fn restrict(meta: &Metadata, path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (meta, path);
    Ok(())
}

/// `path` as one shell word: as is when it holds only safe characters, single-quoted otherwise.
fn shell_quote(path: &Path) -> String {
    let s = path.to_string_lossy();
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%,".contains(&b))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn made_private() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b/c");
        create_dir_all(&nested).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode_of(&dir.path().join(d)), 0o700, "{d}");
        }
        let file = nested.join("f");
        write(&file, b"x").unwrap();
        assert_eq!(mode_of(&file), 0o600);
        let new = nested.join("g");
        create_new(&new).unwrap();
        assert_eq!(mode_of(&new), 0o600);
        assert!(
            create_new(&new).is_err(),
            "create_new refuses an existing file"
        );
        let touched = nested.join("db");
        touch(&touched).unwrap();
        assert_eq!(mode_of(&touched), 0o600);
        fs::write(&touched, b"kept").unwrap();
        set_mode(&touched, 0o644);
        touch(&touched).unwrap();
        assert_eq!(
            fs::read(&touched).unwrap(),
            b"kept",
            "touch leaves content alone"
        );
        assert_eq!(mode_of(&touched), 0o600, "and closes it to others");
    }

    #[test]
    fn an_open_file_or_home_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        fs::create_dir(&home).unwrap();
        set_mode(&home, 0o755);
        make_private_dir(&home).unwrap();
        assert_eq!(mode_of(&home), 0o700);
        let file = home.join("state.json");
        fs::write(&file, b"{}").unwrap();
        set_mode(&file, 0o644);
        write(&file, b"{}").unwrap();
        assert_eq!(mode_of(&file), 0o600);
    }

    #[test]
    fn keys_others_can_reach_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("laptop key.pem");
        fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        // (mode, refused)
        let cases = [
            (0o600, false),
            (0o400, false),
            (0o700, false),
            (0o640, true),
            (0o644, true),
            (0o604, true),
            (0o620, true),
            (0o602, true),
        ];
        for (mode, refused) in cases {
            set_mode(&key, mode);
            let got = read_private_key(&key);
            assert_eq!(got.is_err(), refused, "mode {mode:o}: {got:?}");
            if refused {
                let msg = got.unwrap_err().to_string();
                assert!(msg.contains(&format!("mode {mode:04o}")), "{msg}");
                assert!(msg.contains("required mode 0600"), "{msg}");
                let fix = format!("chmod 600 '{}'", key.display());
                assert!(msg.contains(&fix), "{msg}");
            }
        }
    }

    #[test]
    fn a_key_file_must_be_key_sized_and_present() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.pem");
        write(&big, &vec![b'A'; MAX_KEY_FILE as usize + 1]).unwrap();
        let err = read_private_key(&big).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{} bytes", MAX_KEY_FILE + 1)),
            "{err}"
        );
        let err = read_private_key(&dir.path().join("missing.pem")).unwrap_err();
        assert!(matches!(err, KeyFileError::Io { .. }), "{err}");
    }

    #[test]
    fn what_is_not_private_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("home");
        create_dir_all(&root.join("keys")).unwrap();
        write(&root.join("keys/a.pem"), b"k").unwrap();
        std::os::unix::fs::symlink("/dev/null", root.join("port.tty")).unwrap();
        assert_eq!(find_not_private(&root).unwrap(), vec![]);
        fs::create_dir(root.join("open")).unwrap();
        set_mode(&root.join("open"), 0o755);
        fs::write(root.join("keys/b.pem"), b"k").unwrap();
        set_mode(&root.join("keys/b.pem"), 0o644);
        write(&root.join("ro"), b"k").unwrap();
        set_mode(&root.join("ro"), 0o400);
        assert_eq!(
            find_not_private(&root).unwrap(),
            vec![
                (root.join("keys/b.pem"), 0o644),
                (root.join("open"), 0o755),
                (root.join("ro"), 0o400),
            ]
        );
    }

    #[test]
    fn the_fix_is_one_shell_word() {
        for (path, word) in [
            ("/home/dana/keys/a.pem", "/home/dana/keys/a.pem"),
            ("/tmp/my key.pem", "'/tmp/my key.pem'"),
            ("/tmp/it's.pem", r"'/tmp/it'\''s.pem'"),
            ("/tmp/$(rm -rf).pem", "'/tmp/$(rm -rf).pem'"),
        ] {
            assert_eq!(shell_quote(Path::new(path)), word);
        }
    }
}
