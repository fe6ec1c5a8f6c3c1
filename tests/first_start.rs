//! A fresh installation: no trust root is installed and this build pins none, so nothing is
//! checked or applied, and every refusal says what to do. The manufacturer's root is imported
//! explicitly (once; later roots come by rotation); the DEMO is a choice, in a home of its own.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::{Sim, fieldkit};

/// Runs `fieldkit ARGS` with `HOME` at `user` and no `FIELDKIT_HOME`: the platform's default
/// data directory, as a technician's shell has it.
fn as_user(user: &Path, args: &[&str]) -> support::Run {
    let out = Command::new(support::bin())
        .args(args)
        .env("HOME", user)
        .env("XDG_DATA_HOME", user.join(".local/share"))
        .env_remove("FIELDKIT_HOME")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn without_a_trust_root_nothing_is_checked_or_applied_and_the_fix_is_named() {
    let home = support::home();
    let sim = Sim::start("acme-infusion-p7", &[]);
    for args in [
        vec!["check", "--port", sim.port()],
        vec!["update", "--port", sim.port(), "--yes"],
        vec!["trust", "show"],
    ] {
        let line = fieldkit(home.path(), &args).fails().to_owned();
        assert!(line.contains("no trust root"), "{args:?}: {line}");
        assert!(line.contains("fieldkit trust import FILE"), "{line}");
        assert!(line.contains("--demo"), "{line}");
    }
    // Nothing was sent: the device still runs what it ran.
    let state = sim.state();
    assert!(
        state["images"][0]["secondary"].is_null(),
        "nothing uploaded: {state}"
    );
}

#[test]
fn the_first_root_is_imported_explicitly_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // A release engineer's root, made elsewhere.
    let keys = dir.path().join("keys");
    for role in ["root", "release", "entitlement", "recall"] {
        fieldkit(
            dir.path(),
            &[
                "keys",
                "generate",
                "--name",
                role,
                "--out",
                keys.to_str().unwrap(),
            ],
        )
        .ok();
    }
    let k = |name: &str| keys.join(name).to_str().unwrap().to_owned();
    let root = dir.path().join("root.json");
    fieldkit(
        dir.path(),
        &[
            "trust",
            "init",
            "--root-key",
            &k("root.key.pem"),
            "--release-key",
            &k("release.pub.pem"),
            "--entitlement-key",
            &k("entitlement.pub.pem"),
            "--recall-key",
            &k("recall.pub.pem"),
            "--out",
            root.to_str().unwrap(),
        ],
    )
    .ok();

    // Not a root: refused, the home stays without one.
    let bogus = dir.path().join("bogus.json");
    std::fs::write(&bogus, "{\"signed\": {}, \"signatures\": []}\n").unwrap();
    let line = fieldkit(&home, &["trust", "import", bogus.to_str().unwrap()])
        .fails()
        .to_owned();
    assert!(line.contains("bogus.json"), "{line}");
    assert!(!home.join("trust/root.json").exists());

    let installed = fieldkit(
        &home,
        &["--json", "trust", "import", root.to_str().unwrap()],
    )
    .json();
    assert_eq!(installed["version"], 1);
    assert_eq!(
        std::fs::read(home.join("trust/root.json")).unwrap(),
        std::fs::read(&root).unwrap(),
        "the bytes imported are the bytes kept"
    );
    let shown = fieldkit(&home, &["--json", "trust", "show"]).json();
    assert_eq!(shown["version"], 1);

    // A second first root is refused: a new root comes by rotation.
    let line = fieldkit(&home, &["trust", "import", root.to_str().unwrap()])
        .fails()
        .to_owned();
    assert!(line.contains("already trusted here"), "{line}");
    assert!(line.contains("fieldkit trust rotate"), "{line}");
    // And the demo kit does not go into a home with a real root.
    let line = fieldkit(&home, &["demo", "init"]).fails().to_owned();
    assert!(line.contains("the demo did not make"), "{line}");
}

#[test]
fn the_demo_is_a_choice_with_a_home_of_its_own() {
    let user = tempfile::tempdir().unwrap();
    let data = user.path().join(".local/share");
    // `demo init` with no home named fills the DEMO's home, never the technician's own.
    let made = as_user(user.path(), &["--json", "demo", "init"]);
    let made = made.json();
    assert_eq!(made["home"], data.join("fieldkit-demo").to_str().unwrap());
    assert!(data.join("fieldkit-demo/demo/kit.json").exists());
    assert!(
        !data.join("fieldkit").exists(),
        "the real home is untouched"
    );

    // The real home still has no root; `--demo` reaches the demo.
    let line = as_user(user.path(), &["trust", "show"]).fails().to_owned();
    assert!(line.contains("no trust root"), "{line}");
    let shown = as_user(user.path(), &["--demo", "--json", "trust", "show"]).json();
    assert_eq!(
        shown["file"],
        data.join("fieldkit-demo/trust/root.json").to_str().unwrap()
    );

    // Labelled: in text, a DEMO line once the command is done; stdout stays the command's.
    let shown = as_user(user.path(), &["--demo", "trust", "show"]);
    assert!(shown.ok().contains("Trust root"));
    assert!(
        shown.stderr.starts_with("DEMO: done in the DEMO's home"),
        "{}",
        shown.stderr
    );
    // The technician's own home is not labelled (it has no root yet: it refuses).
    let own = as_user(user.path(), &["profiles"]);
    own.ok();
    assert!(!own.stderr.contains("DEMO"), "{}", own.stderr);

    // `--home DIR --demo` is DIR's DEMO home, beside it.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("site-a");
    let kit = fieldkit(&home, &["--demo", "--json", "demo", "init"]).json();
    assert_eq!(
        kit["home"],
        dir.path().join("site-a-demo").to_str().unwrap()
    );
    assert!(!home.exists());
}
