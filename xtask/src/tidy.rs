//! `cargo xtask tidy`: the architecture's invariants, checked from `cargo metadata` and the
//! sources, so that ARCHITECTURE.md's "X does not depend on Y" lines fail a run when broken.
//! `cargo xtask test` runs it first.
//!
//! The crate graph comes from `cargo metadata` (run as a subprocess, parsed with serde_json):
//! the no-IO crates have no tokio, rusqlite or serialport anywhere below them; only `link`
//! depends on serialport; only `audit` and `hub` (and the benchmark harness, whose baseline is
//! SQLite's own commit rate) depend on a database driver; `core` knows no Tauri, clap,
//! indicatif or axum. The sources are read as text: no profile id or model name in code (a
//! device model is data); nothing outside the simulator and the demo kit reads a profile's
//! `[simulator]` section; every file opens with a `//!` paragraph; every public error enum is
//! `#[non_exhaustive]`; the CLI, the app and the crates under them create files and
//! directories only through `fieldkit-private` (0600/0700). Test code (files under `tests/`, `tests.rs`, and what follows
//! `#[cfg(test)]`) and the benchmark harness may name the shipped models.
//!
//! Each rule is a small function over plain data, tested below with tiny fixtures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::root;

/// Crates that do no IO: bytes in, values out (ARCHITECTURE.md).
const NO_IO: [&str; 8] = [
    "fieldkit-wire",
    "fieldkit-mcuboot",
    "fieldkit-profile",
    "fieldkit-trust",
    "fieldkit-plan",
    "fieldkit-inert",
    "fieldkit-licence",
    "fieldkit-vuln",
];
/// What a no-IO crate may not have anywhere below it.
const IO_CRATES: [&str; 4] = ["tokio", "rusqlite", "serialport", "tokio-serial"];
/// Crates that open ports, and the only workspace crate allowed to depend on them directly.
const PORT_CRATES: [&str; 2] = ["serialport", "tokio-serial"];
const PORT_OWNER: &str = "fieldkit-link";
/// Database drivers, and the workspace crates that may depend on them directly (`testpg` runs
/// the PostgreSQL server of the hub's tests and benchmarks).
const DB_CRATES: [&str; 3] = ["rusqlite", "tokio-postgres", "postgres"];
const DB_OWNERS: [&str; 4] = [
    "fieldkit-audit",
    "fieldkit-hub",
    "fieldkit-bench",
    "fieldkit-testpg",
];
/// What `core` may not have anywhere below it.
const NOT_IN_CORE: [&str; 4] = ["tauri", "clap", "indicatif", "axum"];

/// Paths (prefixes) where the profile's `[simulator]` section may be read: the simulator, the
/// demo kit, the profile schema that defines it, and the front ends' simulator commands.
const SIMULATOR_READERS: [&str; 6] = [
    "crates/sim/",
    "crates/demo/",
    "crates/profile/",
    "crates/bench/",
    "src/cmd/sim.rs",
    "src-tauri/src/sims.rs",
];
/// Code that may name the shipped models: the benchmark harness starts their simulators.
const MAY_NAME_MODELS: [&str; 1] = ["crates/bench/"];

/// A workspace crate's direct and transitive normal dependencies, by package name.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    /// Workspace member -> direct normal dependencies (package names).
    pub(crate) direct: BTreeMap<String, BTreeSet<String>>,
    /// Workspace member -> every package below it through normal dependencies.
    pub(crate) below: BTreeMap<String, BTreeSet<String>>,
}

/// Reads the crate graph of the workspace from `cargo metadata`.
fn graph() -> anyhow::Result<Graph> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1"])
        .current_dir(root())
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("cargo metadata's JSON")?;
    graph_of(&v)
}

/// Builds the graph from `cargo metadata`'s document: packages by id, the resolved nodes, and
/// only dependency edges of the normal kind (not dev, not build).
pub(crate) fn graph_of(v: &Value) -> anyhow::Result<Graph> {
    let name_of: BTreeMap<&str, &str> = v["packages"]
        .as_array()
        .context("packages")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in v["resolve"]["nodes"].as_array().context("resolve.nodes")? {
        let id = node["id"].as_str().context("node id")?;
        let deps = node["deps"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let normal = deps.iter().filter(|d| {
            d["dep_kinds"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k["kind"].is_null()))
        });
        edges.insert(id, normal.filter_map(|d| d["pkg"].as_str()).collect());
    }
    let mut g = Graph::default();
    for member in v["workspace_members"]
        .as_array()
        .context("workspace_members")?
    {
        let id = member.as_str().context("member id")?;
        let name = name_of.get(id).copied().unwrap_or(id).to_owned();
        let direct = edges
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|d| name_of.get(d).map(|n| (*n).to_owned()))
            .collect();
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = edges.get(id).cloned().unwrap_or_default();
        while let Some(d) = todo.pop() {
            if seen.insert(d) {
                todo.extend(edges.get(d).into_iter().flatten().copied());
            }
        }
        g.direct.insert(name.clone(), direct);
        g.below.insert(
            name,
            seen.iter()
                .filter_map(|d| name_of.get(d).map(|n| (*n).to_owned()))
                .collect(),
        );
    }
    Ok(g)
}

/// The crate-graph rules, as problems found.
pub(crate) fn graph_problems(g: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for krate in NO_IO {
        for bad in IO_CRATES {
            if g.below.get(krate).is_some_and(|b| b.contains(bad)) {
                out.push(format!(
                    "{krate} does no IO, but depends on {bad}: found it below {krate}, required none of {}",
                    IO_CRATES.join(", ")
                ));
            }
        }
    }
    for (krate, direct) in &g.direct {
        for bad in PORT_CRATES {
            if direct.contains(bad) && krate != PORT_OWNER {
                out.push(format!(
                    "only {PORT_OWNER} opens ports, but {krate} depends on {bad} directly"
                ));
            }
        }
        for bad in DB_CRATES {
            if direct.contains(bad) && !DB_OWNERS.contains(&krate.as_str()) {
                out.push(format!(
                    "only {} touch a database, but {krate} depends on {bad} directly",
                    DB_OWNERS.join(", ")
                ));
            }
        }
    }
    for bad in NOT_IN_CORE {
        if g.below
            .get("fieldkit-core")
            .is_some_and(|b| b.contains(bad))
        {
            out.push(format!(
                "fieldkit-core knows nothing of {}, but depends on {bad}",
                NOT_IN_CORE.join(", ")
            ));
        }
    }
    out
}

/// Every `.rs` file of the repository, relative to the root, skipping build output and
/// installed packages.
fn rust_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !matches!(name, "target" | "node_modules" | ".git" | "dist") {
                    todo.push(path);
                }
            } else if name.ends_with(".rs") {
                out.push(path.strip_prefix(root)?.to_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a whole file is test code.
fn is_test_file(rel: &str) -> bool {
    rel.starts_with("tests/") || rel.contains("/tests/") || rel.ends_with("/tests.rs")
}

/// The code of a file: what precedes `#[cfg(test)]`, with comments removed.
fn code_of(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    code.lines()
        .map(|l| match l.find("//") {
            // `//` inside a string literal (a URL) is rare in this code base; a line that has
            // one is kept whole rather than guessed at.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The source rules for one file, as problems found.
pub(crate) fn file_problems(rel: &str, text: &str, names: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !first.starts_with("//!") {
        out.push(format!(
            "{rel}: found no opening `//!` paragraph, required one saying what the file is for"
        ));
    }
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let Some(rest) = t.strip_prefix("pub enum ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.ends_with("Error") {
            continue;
        }
        let attrs = lines[..i]
            .iter()
            .rev()
            .take_while(|l| {
                let l = l.trim();
                l.starts_with("#[") || l.starts_with("///") || l.starts_with(")]")
            })
            .any(|l| l.contains("non_exhaustive"));
        if !attrs {
            out.push(format!(
                "{rel}:{}: public error enum {name} is not #[non_exhaustive]",
                i + 1
            ));
        }
    }
    if is_test_file(rel) {
        return out;
    }
    let code = code_of(text);
    if !MAY_NAME_MODELS.iter().any(|p| rel.starts_with(p)) {
        for n in names {
            if code.contains(n.as_str()) {
                out.push(format!(
                    "{rel}: names the device model {n:?}; a device model is data (device-profiles/), required no model in code"
                ));
            }
        }
    }
    let reads_simulator = code.lines().any(|l| {
        l.match_indices(".simulator").any(|(i, m)| {
            !l[i + m.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    });
    let allowed = SIMULATOR_READERS.iter().any(|p| rel.starts_with(p));
    if reads_simulator && !allowed {
        out.push(format!(
            "{rel}: reads a profile's [simulator] section; only the simulator and the demo kit may (a real device's facts are in [device])"
        ));
    }
    out.extend(public_creations(rel, &code));
    out
}

/// Where files are made in a home (or a key anywhere): the CLI, the app and the crates below
/// them. Every file or directory they create goes through `fieldkit-private` (0600/0700).
const PRIVATE_FILES: [&str; 8] = [
    "src/",
    "src-tauri/src/",
    "crates/core/",
    "crates/audit/",
    "crates/hub/",
    "crates/sync/",
    "crates/sim/",
    "crates/demo/",
];
/// The std calls that create files or directories with the umask's modes.
const CREATES: [&str; 5] = [
    "create_dir_all(",
    "File::create(",
    "fs::write(",
    "OpenOptions::new(",
    "DirBuilder::new(",
];

/// Files and directories created in `code` other than through `fieldkit_private`.
fn public_creations(rel: &str, code: &str) -> Vec<String> {
    // A build script writes into cargo's OUT_DIR at build time, never into a home.
    let build_script = rel.ends_with("/build.rs");
    if build_script || !PRIVATE_FILES.iter().any(|p| rel.starts_with(p)) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for call in CREATES {
            let made_private = |i: usize| line[..i].ends_with("fieldkit_private::");
            if line.match_indices(call).any(|(i, _)| !made_private(i)) {
                out.push(format!(
                    "{rel}:{}: creates a file or directory with `{call}`; required fieldkit_private (directories 0700, files 0600)",
                    n + 1
                ));
            }
        }
    }
    out
}

/// Profile ids and model names of `device-profiles/*.toml`.
fn model_names(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root.join("device-profiles"))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if matches!(key.trim(), "id" | "model") {
                let v = value.trim().trim_matches('"');
                if !v.is_empty() {
                    out.push(v.to_owned());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Runs every rule; fails listing every problem.
pub(crate) fn run() -> anyhow::Result<()> {
    let root = root();
    let mut problems = graph_problems(&graph()?);
    let names = model_names(&root)?;
    for rel in rust_files(&root)? {
        let text = std::fs::read_to_string(root.join(&rel))?;
        problems.extend(file_problems(&rel.to_string_lossy(), &text, &names));
    }
    if problems.is_empty() {
        eprintln!("tidy: the crate graph and the sources keep ARCHITECTURE.md's invariants");
        return Ok(());
    }
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    bail!("{} architecture problem(s), listed above", problems.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A `cargo metadata` document: `members` are workspace crates; `edges` are
    /// (from, to, kind) with kind `None` for normal dependencies.
    fn metadata(members: &[&str], edges: &[(&str, &str, Option<&str>)]) -> Value {
        let mut names: BTreeSet<&str> = members.iter().copied().collect();
        for (a, b, _) in edges {
            names.insert(a);
            names.insert(b);
        }
        let id = |n: &str| format!("{n} 0.0.0");
        json!({
            "packages": names.iter().map(|n| json!({"id": id(n), "name": n})).collect::<Vec<_>>(),
            "workspace_members": members.iter().map(|n| id(n)).collect::<Vec<_>>(),
            "resolve": {"nodes": names.iter().map(|n| json!({
                "id": id(n),
                "deps": edges.iter().filter(|(a, _, _)| a == n).map(|(_, b, k)| json!({
                    "pkg": id(b),
                    "dep_kinds": [{"kind": k}],
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>()},
        })
    }

    fn problems(members: &[&str], edges: &[(&str, &str, Option<&str>)]) -> Vec<String> {
        graph_problems(&graph_of(&metadata(members, edges)).unwrap())
    }

    #[test]
    fn the_crate_graph_rules() {
        // Clean: link has serialport, plan only trust.
        assert!(
            problems(
                &["fieldkit-link", "fieldkit-plan", "fieldkit-trust"],
                &[
                    ("fieldkit-link", "serialport", None),
                    ("fieldkit-plan", "fieldkit-trust", None),
                ]
            )
            .is_empty()
        );
        // tokio added to plan, directly or two levels down.
        let p = problems(&["fieldkit-plan"], &[("fieldkit-plan", "tokio", None)]);
        assert_eq!(
            p,
            [
                "fieldkit-plan does no IO, but depends on tokio: found it below fieldkit-plan, required none of tokio, rusqlite, serialport, tokio-serial"
            ]
        );
        let p = problems(
            &["fieldkit-plan", "fieldkit-trust"],
            &[
                ("fieldkit-plan", "fieldkit-trust", None),
                ("fieldkit-trust", "mio-helper", None),
                ("mio-helper", "tokio", None),
            ],
        );
        assert_eq!(p.len(), 2, "{p:?}");
        // A dev-dependency is not a dependency of the crate.
        assert!(
            problems(
                &["fieldkit-plan"],
                &[("fieldkit-plan", "tokio", Some("dev"))]
            )
            .is_empty()
        );
        // serialport anywhere but link; core with clap; a database outside audit and hub.
        let p = problems(
            &["fieldkit-core", "fieldkit-sim"],
            &[
                ("fieldkit-sim", "serialport", None),
                ("fieldkit-core", "clap", None),
                ("fieldkit-core", "rusqlite", None),
            ],
        );
        assert_eq!(
            p,
            [
                "only fieldkit-audit, fieldkit-hub, fieldkit-bench, fieldkit-testpg touch a database, but fieldkit-core depends on rusqlite directly",
                "only fieldkit-link opens ports, but fieldkit-sim depends on serialport directly",
                "fieldkit-core knows nothing of tauri, clap, indicatif, axum, but depends on clap",
            ]
        );
    }

    fn check(rel: &str, text: &str) -> Vec<String> {
        file_problems(
            rel,
            text,
            &["acme-infusion-p7".into(), "InfuSafe P7".into()],
        )
    }

    #[test]
    fn the_source_rules() {
        let ok = "//! Does one thing.\n\n/// Why.\n#[derive(Debug)]\n#[non_exhaustive]\npub enum OpenError {}\n";
        assert!(check("crates/core/src/x.rs", ok).is_empty());
        let cases: &[(&str, &str, &str)] = &[
            (
                "crates/core/src/x.rs",
                "use a;\n",
                "no opening `//!` paragraph",
            ),
            (
                "crates/core/src/x.rs",
                "//! X.\n#[derive(Debug)]\npub enum ReadError {}\n",
                "public error enum ReadError is not #[non_exhaustive]",
            ),
            (
                "crates/core/src/x.rs",
                "//! X.\nfn f() { open(\"acme-infusion-p7\") }\n",
                "names the device model \"acme-infusion-p7\"",
            ),
            (
                "src/cmd/check.rs",
                "//! X.\nfn f(p: &Profile) -> u32 { p.simulator.slot_size }\n",
                "reads a profile's [simulator] section",
            ),
            (
                "crates/core/src/x.rs",
                "//! X.\nfn f(p: &Path) { std::fs::create_dir_all(p).unwrap() }\n",
                "creates a file or directory with `create_dir_all(`",
            ),
            (
                "src-tauri/src/state.rs",
                "//! X.\nfn f(p: &Path) { std::fs::write(p, b\"k\").unwrap() }\n",
                "creates a file or directory with `fs::write(`",
            ),
            (
                "crates/hub/src/keyfile.rs",
                "//! X.\nfn f() { let mut o = std::fs::OpenOptions::new(); }\n",
                "`OpenOptions::new(`",
            ),
        ];
        for (rel, text, want) in cases {
            let p = check(rel, text);
            assert!(p.len() == 1 && p[0].contains(want), "{rel}: {p:?}");
        }
        // Comments, tests and test files may name models; a field named simulator_x is not
        // the section.
        let fine = [
            (
                "crates/core/src/x.rs",
                "//! X (e.g. `acme-infusion-p7`).\n// InfuSafe P7\nfn f() {}\n#[cfg(test)]\nmod tests { const P: &str = \"acme-infusion-p7\"; }\n",
            ),
            (
                "tests/update.rs",
                "//! X.\nconst P: &str = \"acme-infusion-p7\";\n",
            ),
            (
                "crates/sim/src/serve.rs",
                "//! X.\nfn f(p: &P) -> u32 { p.simulator.buf_size }\n",
            ),
            (
                "crates/core/src/y.rs",
                "//! X.\nfn f(p: &P) -> u32 { p.simulators_seen }\n",
            ),
            (
                "crates/core/src/z.rs",
                "//! X.\nfn f(p: &Path) { fieldkit_private::create_dir_all(p).unwrap() }\n",
            ),
            (
                "crates/bench/src/audit.rs",
                "//! X.\nfn f(p: &Path) { std::fs::write(p, b\"\").unwrap() }\n",
            ),
        ];
        for (rel, text) in fine {
            assert!(check(rel, text).is_empty(), "{rel}: {:?}", check(rel, text));
        }
    }
}
