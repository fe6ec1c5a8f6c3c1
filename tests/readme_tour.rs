//! The README's five-minute tour, run as written: every `sh` block of the section, line by line,
//! with the real `fieldkit` and `fieldkit-hub` binaries, a real simulator, a real hub on
//! loopback, `jq`, MCUboot's `imgtool` and the `smpclient` SMP client.
//!
//! Only what would collide with another run on the same machine is moved: `/tmp/` becomes a
//! scratch directory, the hub's port 8080 a free port, and the working directory (where the
//! tour leaves `hub.db`, `laptop.pub.pem`, `key.pem`, `app.bin`) the scratch directory too.
//! `cargo build` lines are skipped (the test runs the binaries cargo built for it). A line
//! ending in `&` starts in the background and the next line runs once it has printed its first
//! line (its port, or the hub's address). Each foreground line runs on a pseudo-terminal
//! (`script`), as typed at a terminal, with `yes` typed for `fieldkit update`'s confirmation.
//!
//! After the tour the home it filled is checked: every directory `0700`, every file `0600`;
//! and so are the hub's database (with its `-wal` and `-shm`) and its key file. The tour runs
//! twice: as written (SQLite), and with the hub on a real PostgreSQL server.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::channel;
use std::time::Duration;

/// The `sh` blocks of the README section `## A five-minute tour`.
fn tour_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme
        .find("## A five-minute tour")
        .expect("the README has the tour");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(i) = rest.find("```sh\n") {
        let body = &rest[i + 6..];
        let end = body.find("```").expect("a closed code block");
        blocks.push(body[..end].to_owned());
        rest = &body[end..];
    }
    assert!(blocks.len() >= 3, "the tour has its command blocks");
    blocks
}

/// A shell line without its trailing `# comment`.
fn strip_comment(line: &str) -> &str {
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_space {
            return line[..i].trim_end();
        }
        prev_space = c.is_whitespace();
    }
    line.trim_end()
}

struct Background(Vec<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_readme_tour_works_as_written_and_leaves_a_private_home() {
    tour(None);
}

/// The same tour with the hub on PostgreSQL, as the README's fleet section runs it: every
/// `--db sqlite:hub.db` names a database of its own on a real server instead, and the hub's key
/// is the file `FIELDKIT_HUB_KEY` names. What the laptop synced is then read back from that
/// database.
#[test]
fn the_readme_tour_works_with_the_hub_on_postgresql() {
    let pg = fieldkit_testpg::Pg::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(pg.base().create());
    tour(Some(&url));
    let stored = rt.block_on(async {
        let store = fieldkit_hub::open_store(&url).await.unwrap();
        store.count(&Default::default(), u64::MAX).await.unwrap()
    });
    assert!(stored > 0, "the tour's sync landed in PostgreSQL");
}

/// Runs the tour; `postgres` is the hub's database URL when the hub runs on PostgreSQL.
fn tour(postgres: Option<&str>) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin_dir = Path::new(support::bin()).parent().unwrap().to_owned();
    assert!(
        bin_dir.join("fieldkit-hub").exists(),
        "fieldkit-hub is built by `cargo test --workspace`"
    );
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    std::fs::create_dir(dir.join("tmp")).unwrap();
    let tmp = format!("{}/tmp/", dir.display());
    let port = free_port().to_string();

    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
    if postgres.is_some() {
        env.insert(
            "FIELDKIT_HUB_KEY".into(),
            dir.join("hub-key.pem").display().to_string(),
        );
    }
    let mut background = Background(Vec::new());
    let mut outputs: Vec<(String, String)> = Vec::new();

    for block in tour_blocks() {
        for raw in block.lines() {
            let line = strip_comment(raw);
            if line.is_empty() || line.starts_with("cargo ") {
                continue;
            }
            let line = line
                .replace("/tmp/", &tmp)
                .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
                .replace(
                    "tests/interop/",
                    &format!("{}/tests/interop/", repo.display()),
                );
            let line = match postgres {
                Some(url) => line.replace("sqlite:hub.db", url),
                None => line,
            };
            if let Some(assignments) = line.strip_prefix("export ") {
                for a in assignments.split_whitespace() {
                    let (k, v) = a.split_once('=').expect("export NAME=VALUE");
                    let v = v
                        .replace("$PWD/target/debug", &bin_dir.display().to_string())
                        .replace("$PATH", &env["PATH"]);
                    env.insert(k.to_owned(), v);
                }
                continue;
            }
            if let Some(cmd) = line.strip_suffix('&') {
                // `exec`: the shell becomes the command, so stopping it stops the command.
                let mut child = Command::new("sh")
                    .args(["-c", &format!("exec {}", cmd.trim())])
                    .current_dir(dir)
                    .envs(&env)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap();
                let out = child.stdout.take().unwrap();
                background.0.push(child);
                let (tx, rx) = channel();
                std::thread::spawn(move || {
                    for l in BufReader::new(out).lines().map_while(Result::ok) {
                        let _ = tx.send(l);
                    }
                });
                let first = rx
                    .recv_timeout(Duration::from_secs(60))
                    .unwrap_or_else(|_| panic!("`{cmd}` printed nothing"));
                std::thread::spawn(move || for _ in rx {});
                outputs.push((line.clone(), first));
                continue;
            }
            // As typed at a terminal: `script` gives the command a pseudo-terminal and types
            // what it reads from its stdin.
            let mut child = Command::new("script")
                .args(["--quiet", "--return", "--command", &line, "/dev/null"])
                .current_dir(dir)
                .envs(&env)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("script (util-linux) runs");
            child.stdin.take().unwrap().write_all(b"yes\n").unwrap();
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
            assert!(
                out.status.success(),
                "README tour line `{raw}` failed ({}):\n{text}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            outputs.push((line.clone(), text));
        }
    }

    let said = |needle: &str| -> &str {
        outputs
            .iter()
            .find(|(l, _)| l.contains(needle))
            .map(|(_, o)| o.as_str())
            .unwrap_or_else(|| panic!("the tour runs `{needle}`"))
    };
    assert!(said("fieldkit check").contains("READY"));
    assert!(said("fieldkit update").contains("3.0.0"));
    assert!(said("fieldkit audit list").contains("update"));
    assert!(said("fieldkit audit sync").to_lowercase().contains("sync"));
    let identify_after = outputs
        .iter()
        .rev()
        .find(|(l, _)| l.contains("fieldkit identify"))
        .map(|(_, o)| o.as_str())
        .unwrap();
    assert!(
        identify_after.contains("2.4.0"),
        "smpclient's upload landed in slot 1:\n{identify_after}"
    );

    let home = PathBuf::from(&env["FIELDKIT_HOME"]);
    assert!(
        home.starts_with(dir),
        "the tour's home is in the scratch dir"
    );
    assert_eq!(
        fieldkit_private::find_not_private(&home).unwrap(),
        vec![],
        "every directory of the home is 0700 and every file 0600"
    );
    assert_eq!(
        fieldkit_private::find_not_private(&dir.join("tmp/pump.json")).unwrap(),
        vec![],
        "the simulator's state file is private too"
    );
    // What the hub made beside its database (the files the tour's shell redirections made are
    // the shell's).
    let mut hub_files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("hub.db") || name == "hub-key.pem"
        })
        .collect();
    hub_files.sort();
    let expected = match postgres {
        Some(_) => vec![dir.join("hub-key.pem")],
        None => vec![dir.join("hub.db"), dir.join("hub-key.pem")],
    };
    assert!(
        expected.iter().all(|f| hub_files.contains(f)),
        "{hub_files:?}"
    );
    if postgres.is_some() {
        assert_eq!(
            hub_files, expected,
            "no SQLite file beside a PostgreSQL hub"
        );
    }
    for f in hub_files {
        assert_eq!(
            fieldkit_private::find_not_private(&f).unwrap(),
            vec![],
            "the hub's files are 0600"
        );
    }
}
