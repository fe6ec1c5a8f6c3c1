//! Post-market answers end to end, with the real binaries as processes: the demo kit's
//! manufacturer material goes into a `fieldkit-hub` (trust root pinned, releases, the firmware
//! advisory feed, entitlements, recall list); a technician's CLI reads three simulated devices
//! and syncs; the hub lists exactly the pumps whose network core the advisory affects; one pump
//! is updated through the CLI, the laptop syncs again, and it drops out of the list.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{Served, Sim, fieldkit, hub_bin};

const ADVISORY: &str = "DEMO-ACME-INFUSION-P7-1";

/// Runs `fieldkit-hub ARGS`; returns (success, stdout, stderr).
fn hub_run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(hub_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn hub_ok(args: &[&str]) -> String {
    let (ok, out, err) = hub_run(args);
    assert!(ok, "fieldkit-hub {args:?}: {err}\n{out}");
    out
}

fn hub_json(args: &[&str]) -> Value {
    let out = hub_ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"))
}

fn files(dir: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The serials the hub lists for the advisory, with whether each is exposed.
fn exposed(db: &str) -> Vec<String> {
    let v = hub_json(&["exposure", "--json", "--db", db, "--id", ADVISORY]);
    assert_eq!(v["by"], "vulnerability", "{v}");
    v["rows"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["exposed"] == true)
        .map(|r| r["serial"].as_str().unwrap().to_owned())
        .collect()
}

/// A simulated pump with another serial: the default one's state, renamed, on a port of its own.
fn pump_with_serial(serial: &str) -> Sim {
    let first = Sim::start("acme-infusion-p7", &[]);
    let mut state = first.state();
    drop(first);
    state["fields"]["serial"] = Value::String(serial.into());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    Sim::start_with_state("acme-infusion-p7", &[], path, dir)
}

#[test]
fn an_advisory_lists_exactly_the_pumps_running_an_affected_release_until_one_is_updated() {
    let home = support::home();
    let h = home.path();
    fieldkit(h, &["demo", "init"]).ok();
    std::fs::write(
        h.join("settings.json"),
        r#"{"technician": "Dana Reyes", "site": "DEMO Ward 4", "customer": "DEMO St. Example Hospital", "hub": null}"#,
    )
    .unwrap();

    // The field: two pumps on the network core the advisory affects, and a monitor.
    let a = Sim::start("acme-infusion-p7", &[]);
    let b = pump_with_serial("P7-DEMO-0002");
    let c = Sim::start("vitalis-monitor-m3", &[]);
    let serial_a = a.state()["fields"]["serial"].as_str().unwrap().to_owned();
    for sim in [&a, &b, &c] {
        fieldkit(h, &["identify", "--port", sim.port()]).ok();
    }

    // The office: the manufacturer's material under the pinned root, then the laptop's sync.
    let office = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", office.path().join("hub.db").display());
    let root = h.join("trust/root.json");
    let pinned = hub_json(&[
        "trust",
        "pin",
        "--json",
        "--db",
        &db,
        root.to_str().unwrap(),
    ]);
    assert_eq!(pinned["result"], "pinned", "{pinned}");
    let packages = files(&h.join("packages"), ".fkpkg");
    let mut args = vec!["releases", "import", "--json", "--db", &db];
    args.extend(packages.iter().map(String::as_str));
    let imported = hub_json(&args);
    assert!(
        imported["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["result"] == "imported"),
        "{imported}"
    );
    let advisories = files(&h.join("demo/advisories"), ".json");
    let mut args = vec!["advisories", "import", "--json", "--db", &db];
    args.extend(advisories.iter().map(String::as_str));
    let adv = hub_json(&args);
    assert!(adv["analysis"]["matches"].as_u64().unwrap() > 0, "{adv}");
    let mut ents = files(&h.join("entitlements"), ".json");
    ents.extend(files(&h.join("demo/entitlements"), ".json"));
    let mut args = vec!["entitlements", "import", "--db", &db];
    args.extend(ents.iter().map(String::as_str));
    hub_ok(&args);
    let recalls = files(&h.join("recalls"), ".json");
    let mut args = vec!["recalls", "import", "--db", &db];
    args.extend(recalls.iter().map(String::as_str));
    hub_ok(&args);
    // A forged file among them is refused on its own, the exit status says so.
    let junk = office.path().join("advisory.json");
    std::fs::write(&junk, "{\"id\": \"X\u{1b}[2J\"}").unwrap();
    let (ok, out, err) = hub_run(&["advisories", "import", "--db", &db, junk.to_str().unwrap()]);
    assert!(!ok && err.contains("1 of 1 file(s) refused"), "{out}{err}");
    assert!(
        !out.contains('\u{1b}'),
        "a terminal escape reached the terminal: {out:?}"
    );

    let id = fieldkit(h, &["--json", "audit", "id"]).json();
    let key = office.path().join("laptop.pub.pem");
    std::fs::write(&key, id["public_key"].as_str().unwrap()).unwrap();
    let enrolled = hub_ok(&[
        "enroll-laptop",
        "--db",
        &db,
        "--name",
        "dana-laptop",
        "--key",
        key.to_str().unwrap(),
    ]);
    let hub_key = enrolled
        .split_whitespace()
        .find(|w| w.starts_with("fieldkit-hub/"))
        .expect("enroll-laptop names the hub key")
        .to_owned();
    let served = Served::start(&db);
    let url = served.url.clone();
    fieldkit(
        h,
        &["audit", "sync", "--hub", &url, "--accept-hub-key", &hub_key],
    )
    .ok();

    // Exactly the two pumps; not the monitor.
    let mut want = vec![serial_a.clone(), "P7-DEMO-0002".to_owned()];
    want.sort();
    assert_eq!(exposed(&db), want);
    let v = hub_json(&["exposure", "--json", "--db", &db, "--id", ADVISORY]);
    assert_eq!(v["releases"][0]["release"], "acme-infusion-p7@1.4.0", "{v}");
    let row = v["rows"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["serial"] == serial_a.as_str())
        .unwrap();
    // The customer, from the entitlements that name the serial.
    assert_eq!(row["customer"], "DEMO St. Example Hospital", "{row}");
    assert_eq!(row["site"], "DEMO Ward 4");
    assert_eq!(
        row["fix"]["fixed_in"], "acme-infusion-p7@1.5.0",
        "the network core update fixes it: {row}"
    );
    // The same question in words, for a person at a terminal.
    let text = hub_ok(&["exposure", "--db", &db, "--id", ADVISORY]);
    assert!(
        text.contains("2 device(s) run an affected release, 2 exposed"),
        "{text}"
    );

    // Pump A gets the network core update through the CLI; the laptop syncs again.
    fieldkit(h, &["check", "--port", a.port()]).ok();
    let netcore = h.join("packages/acme-infusion-p7-1.5.0.fkpkg");
    fieldkit(
        h,
        &[
            "update",
            "--port",
            a.port(),
            "--yes",
            "--package",
            netcore.to_str().unwrap(),
        ],
    )
    .ok();
    fieldkit(h, &["audit", "sync", "--hub", &url]).ok();
    assert_eq!(exposed(&db), ["P7-DEMO-0002"]);

    // What runs on pump A now, and how it got there: the update's record names the package and
    // its SBOM digest, which is the release the hub holds.
    let d = hub_json(&["exposure", "--json", "--db", &db, "--device", &serial_a]);
    let netcore = d["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == "netcore")
        .unwrap();
    assert_eq!(netcore["version"], "1.5.0", "{d}");
    assert_eq!(netcore["releases"][0], "acme-infusion-p7@1.5.0");
    assert_eq!(netcore["installed_from"], "acme-infusion-p7@1.5.0");
    let history: Vec<&str> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["component"] == "netcore")
        .map(|x| x["version"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["1.4.0", "1.5.0"]);

    // By component and range: the one pump left on the affected network core.
    let comp = hub_json(&[
        "exposure",
        "--json",
        "--db",
        &db,
        "--component",
        "pkg:generic/acme-medical/acme-infusion-p7-netcore@vers:semver/<1.5.0",
    ]);
    assert_eq!(comp["devices"], 1, "{comp}");
    // Up to date and licences answer too.
    let u = hub_json(&["uptodate", "--json", "--db", &db]);
    assert!(u["lines"].as_array().unwrap().len() >= 2, "{u}");
    let l = hub_json(&["licences", "report", "--json", "--db", &db]);
    assert!(!l["releases"].as_array().unwrap().is_empty(), "{l}");
    // A bad question is refused with the rule.
    let (ok, _, err) = hub_run(&["exposure", "--db", &db, "--id", "<script>"]);
    assert!(!ok && err.contains("required a vulnerability id"), "{err}");
    drop((a, b, c));
}
