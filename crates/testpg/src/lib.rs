//! A real PostgreSQL server for the hub's tests and benchmarks, started here without Docker:
//! `initdb` and `postgres` from Debian's `postgresql` package, as the `postgres` user when run
//! as root, on loopback and a free port, in a temporary directory.
//!
//! This is a test harness: where the machine lacks something (the package, the `postgres`
//! user) it panics with what to install, as a test would fail.
//!
//! The server runs in a process group of its own. A small watchdog shell holds the read end of
//! a pipe whose write end this process keeps: when this process exits (or is killed), the pipe
//! closes and the watchdog kills the server's group and removes its directory. Readiness is
//! read from the server's own log line, and a killed server is waited for through pidfds:
//! nothing here sleeps to wait for a condition.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The live children of process `parent`.
fn children(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // pid (comm) state ppid …
                    let mut rest = s[s.rfind(')')? + 2..].split(' ');
                    let state = rest.next()?;
                    let ppid: i32 = rest.next()?.parse().ok()?;
                    Some(ppid == parent && state != "Z" && state != "X")
                })
                .unwrap_or(false)
        })
        .collect()
}

/// The PostgreSQL role the tests use.
pub const USER: &str = "fieldkit";

/// Server settings for tests: room for many connections, little memory. After a crash,
/// PostgreSQL makes everything in the data directory durable before replaying WAL; the default
/// fsyncs each of its ~1000 files (3.7 s per restart here), syncfs makes the same guarantee with
/// one call per file system (0.1 s). Commits stay as durable as in production: `fsync` and
/// `synchronous_commit` are on.
pub const TEST_SETTINGS: &[(&str, &str)] = &[
    ("max_connections", "300"),
    ("shared_buffers", "64MB"),
    ("recovery_init_sync_method", "syncfs"),
];

/// A running (or killed) PostgreSQL server.
#[derive(Debug)]
pub struct Pg {
    settings: Vec<(String, String)>,
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
    as_postgres: bool,
    server: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
}

fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("FIELDKIT_PG_BIN") {
        return d.into();
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|v| v.1).unwrap_or_else(|| {
        panic!(
            "the PostgreSQL conformance tests need PostgreSQL's server binaries \
             (/usr/lib/postgresql/N/bin/initdb): apt-get install postgresql, or run \
             `cargo xtask setup`, which installs it"
        )
    })
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn postgres_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("a postgres user (the postgresql package creates it)");
    let f: Vec<&str> = line.split(':').collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Pg {
    /// Creates a cluster in a new temporary directory and starts it with [`TEST_SETTINGS`].
    pub fn start() -> Self {
        Self::start_with(TEST_SETTINGS)
    }

    /// Creates a cluster in a new temporary directory (under `$TMPDIR`) and starts it with
    /// these `postgresql.conf` settings.
    pub fn start_with(settings: &[(&str, &str)]) -> Self {
        Self::start_in(&std::env::temp_dir(), settings)
    }

    /// The same, with the cluster in a new directory under `parent`.
    pub fn start_in(parent: &Path, settings: &[(&str, &str)]) -> Self {
        let bin = bin_dir();
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("fieldkit-pg-")
            .tempdir_in(parent)
            .unwrap()
            .keep();
        let password = {
            use rand::RngCore;
            let mut b = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut b);
            hex::encode(b)
        };
        std::fs::write(dir.join("pw"), &password).unwrap();
        if as_postgres {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
            std::os::unix::fs::chown(dir.join("pw"), Some(uid), Some(gid)).unwrap();
        }
        // The watchdog: when this process goes, so does the server.
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                "read _; pid=$(head -n 1 \"$1/data/postmaster.pid\" 2>/dev/null); \
                 [ -n \"$pid\" ] && kill -KILL \"-$pid\" 2>/dev/null; rm -rf \"$1\"",
            )
            .arg("watchdog")
            .arg(&dir)
            .stdin(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let stdin = watchdog.stdin.take().unwrap();
        let mut pg = Self {
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            dir,
            bin,
            port: free_port(),
            password,
            as_postgres,
            server: None,
            watchdog: Some((watchdog, stdin)),
        };
        let data = pg.dir.join("data");
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "--auth=scram-sha-256",
                "--no-locale",
                "-E",
                "UTF8",
            ])
            .args(["--no-sync", "--no-instructions"])
            .arg(format!("--pwfile={}", pg.dir.join("pw").display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.spawn_server();
        pg
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// Starts the server and returns once it accepts connections.
    pub fn spawn_server(&mut self) {
        assert!(self.server.is_none(), "the server is running");
        let mut child = self
            .command("postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(
                self.settings
                    .iter()
                    .flat_map(|(k, v)| ["-c".to_owned(), format!("{k}={v}")]),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut log = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if log.read_line(&mut line).unwrap() == 0 {
                panic!("PostgreSQL stopped while starting:\n{seen}");
            }
            seen.push_str(&line);
            if line.contains("database system is ready to accept connections") {
                break;
            }
        }
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = std::io::sink();
            let _ = std::io::copy(&mut log, &mut sink);
        });
        self.server = Some(child);
    }

    /// Kills the server and all its backends with SIGKILL, as a crash would, and returns when
    /// every one of them is gone.
    pub fn kill(&mut self) {
        use rustix::process::{Pid, PidfdFlags, Signal};
        let Some(mut server) = self.server.take() else {
            return;
        };
        let postmaster = Pid::from_raw(server.id() as i32).unwrap();
        // Every child of the postmaster (backends, WAL writer, checkpointer) makes itself a
        // process group of its own, so the postmaster's group does not reach them. Stopped, the
        // postmaster forks no new child while they are listed; each is then killed through a
        // pidfd, so a pid reused meanwhile is never hit.
        let _ = rustix::process::kill_process(postmaster, Signal::STOP);
        let kids: Vec<_> = children(postmaster.as_raw_nonzero().get())
            .into_iter()
            .filter_map(|pid| {
                rustix::process::pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()
            })
            .collect();
        let _ = rustix::process::kill_process_group(postmaster, Signal::KILL);
        for fd in &kids {
            let _ = rustix::process::pidfd_send_signal(fd, Signal::KILL);
        }
        server.wait().unwrap();
        // Wait until every child is gone: a live one stays attached to the shared memory the
        // next start checks. A pidfd becomes readable when its process has exited.
        for fd in kids {
            let mut p = [rustix::event::PollFd::new(
                &fd,
                rustix::event::PollFlags::IN,
            )];
            let _ = rustix::event::poll(&mut p, None);
        }
        // The postmaster's lock file names a dead process now; the next start removes it.
    }

    /// CPU time (user and system, in seconds) the server's processes have used so far: the
    /// postmaster, its live children (backends, WAL writer, checkpointer: each makes itself a
    /// process group of its own, so they are found by parent) and the children that have
    /// exited (the postmaster reaped them). Zero when the server is not running.
    pub fn cpu_secs(&self) -> f64 {
        let Some(server) = &self.server else {
            return 0.0;
        };
        let postmaster = server.id() as i32;
        let ticks = |pid: i32, with_children: bool| -> f64 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // After "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt
            // cmajflt utime stime cutime cstime.
            let rest = stat.rsplit_once(')').map_or("", |r| r.1);
            rest.split_whitespace()
                .skip(11)
                .take(if with_children { 4 } else { 2 })
                .filter_map(|v| v.parse::<f64>().ok())
                .sum()
        };
        let all: f64 = ticks(postmaster, true)
            + children(postmaster)
                .into_iter()
                .map(|pid| ticks(pid, false))
                .sum::<f64>();
        // Linux reports clock ticks: 100 per second.
        all / 100.0
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// What creating databases on this server needs.
    pub fn base(&self) -> Base {
        Base {
            url_postgres: self.url("postgres"),
            prefix: self.url(""),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.kill();
        // A line (or the pipe closing) lets the watchdog remove the directory; wait for it.
        if let Some((mut watchdog, mut stdin)) = self.watchdog.take() {
            let _ = stdin.write_all(b"\n");
            drop(stdin);
            let _ = watchdog.wait();
        }
    }
}

/// One server shared by every test of this process (each test makes a database of its own).
pub fn shared() -> &'static Mutex<Pg> {
    static SHARED: OnceLock<Mutex<Pg>> = OnceLock::new();
    SHARED.get_or_init(|| Mutex::new(Pg::start()))
}

/// A new database on the shared server.
pub async fn database() -> String {
    let base = shared().lock().unwrap().base();
    base.create().await
}

/// What creating a database needs, without holding the server.
#[derive(Debug, Clone)]
pub struct Base {
    url_postgres: String,
    prefix: String,
}

impl Base {
    /// Creates a database of its own for one test and returns its URL.
    pub async fn create(&self) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let (client, conn) = tokio_postgres::connect(&self.url_postgres, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        drop(client);
        let _ = task.await;
        format!("{}{name}", self.prefix)
    }
}
