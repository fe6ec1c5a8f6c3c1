//! `fieldkit demo init`: the kit holds what it promises, matches the simulator's default
//! devices, verifies (or is refused for the reason it is there for), and is idempotent.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use support::{Sim, fieldkit, home};

fn init(home: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json", "demo", "init"];
    a.extend_from_slice(args);
    fieldkit(home, &a).json()
}

/// The kit's items of `kind`, as (product, label) -> item.
fn items<'a>(kit: &'a Value, kind: &str) -> BTreeMap<(String, String, String), &'a Value> {
    kit["kit"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == kind)
        .map(|i| {
            let s = |f: &str| i[f].as_str().unwrap_or("").to_owned();
            ((s("product"), s("component"), s("label")), i)
        })
        .collect()
}

fn file(item: &Value) -> &str {
    item["files"][0].as_str().unwrap()
}

/// Every file of the home, relative path -> bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// For every shipped profile: the current packages carry exactly what the simulator runs, the
/// wrong-hardware one excludes its revision, and the valid entitlement covers its serial.
#[test]
fn the_kit_matches_the_simulators_default_devices() {
    let h = home();
    let kit = init(h.path(), &[]);
    assert_eq!(kit["already_initialised"], false);
    assert_eq!(kit["kit"]["demo"], true);
    let packages = items(&kit, "package");
    // One product per model: a bootloader-mode profile takes its application's packages.
    for p in fieldkit_profile::ProfileSet::builtin()
        .iter()
        .filter(|p| p.product() == p.id())
    {
        let id = p.id();
        let sim = Sim::start(id, &[]);
        let state = sim.state();
        let mut components: Vec<_> = p
            .components
            .iter()
            .map(|c| (*c.image.get_ref(), c.name.get_ref().as_str()))
            .collect();
        components.sort();
        let main = components[0].1;
        for (n, c) in &components {
            let current = packages
                .get(&(id.into(), (*c).into(), "current".into()))
                .unwrap_or_else(|| panic!("{id}: no current package for {c}"));
            let running = state["images"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["image"] == *n)
                .unwrap();
            assert_eq!(
                current["version"], running["primary"]["version"],
                "{id} {c}"
            );
        }
        for label in [
            "security",
            "stepping-stone",
            "recalled",
            "wrong-hardware",
            "newer",
        ] {
            assert!(
                packages.contains_key(&(id.into(), main.into(), label.into())),
                "{id}: no {label} package"
            );
        }
        let wrong = fieldkit(
            h.path(),
            &[
                "--json",
                "package",
                "verify",
                &h.path()
                    .join(file(
                        packages[&(id.into(), main.into(), "wrong-hardware".into())],
                    ))
                    .display()
                    .to_string(),
            ],
        )
        .json();
        let revisions = wrong["manifest"]["requires"]["hardware_revisions"].clone();
        assert!(
            !revisions
                .as_array()
                .unwrap()
                .contains(&state["fields"]["hardware_revision"]),
            "{id}: {revisions}"
        );
        let current = fieldkit(
            h.path(),
            &[
                "--json",
                "package",
                "verify",
                &h.path()
                    .join(file(packages[&(id.into(), main.into(), "current".into())]))
                    .display()
                    .to_string(),
            ],
        )
        .json();
        assert_eq!(
            current["manifest"]["requires"]["hardware_revisions"][0],
            state["fields"]["hardware_revision"]
        );
        let valid = fieldkit(
            h.path(),
            &[
                "--json",
                "entitlement",
                "inspect",
                &h.path()
                    .join("entitlements/demo-valid.json")
                    .display()
                    .to_string(),
            ],
        )
        .json();
        let devices = valid["entitlement"]["devices"].as_array().unwrap();
        assert!(
            devices
                .iter()
                .any(|d| d["model"] == id && d["serials"][0] == state["fields"]["serial"]),
            "{id}: {devices:?}"
        );
    }
}

/// Every package verifies against the demo root, except the recalled ones, which are refused
/// by the recall list; the pump's newer app depends on the netcore update by an MCUboot TLV.
#[test]
fn every_package_verifies_or_is_refused_for_its_reason() {
    let h = home();
    let kit = init(h.path(), &[]);
    let packages = items(&kit, "package");
    assert!(packages.len() >= 3 * 6 + 2, "{}", packages.len());
    for ((product, component, label), item) in &packages {
        let path = h.path().join(file(item)).display().to_string();
        let r = fieldkit(h.path(), &["--json", "package", "verify", &path]);
        if label == "recalled" {
            assert!(r.fails().contains("recall.package"), "{product} {label}");
            continue;
        }
        let v = r.json();
        assert_eq!(v["verified"], true, "{product} {component} {label}");
        assert_eq!(v["manifest"]["payloads"][0]["component"], *component);
        assert_eq!(v["manifest"]["payloads"][0]["version"], item["version"]);
        let class = &v["manifest"]["class"];
        assert_eq!(
            class == "security",
            label == "security",
            "{product} {label}"
        );
    }
    let netcore = &packages[&(
        "acme-infusion-p7".into(),
        "netcore".into(),
        "component-update".into(),
    )];
    let newer = &packages[&("acme-infusion-p7".into(), "app".into(), "newer".into())];
    let v = fieldkit(
        h.path(),
        &[
            "--json",
            "package",
            "verify",
            &h.path().join(file(newer)).display().to_string(),
        ],
    )
    .json();
    assert_eq!(
        v["payloads"][0]["dependencies"],
        serde_json::json!([{ "image": 1, "min_version": netcore["version"] }])
    );
    // The newer release needs the stepping stone installed first.
    let stone = &packages[&(
        "acme-infusion-p7".into(),
        "app".into(),
        "stepping-stone".into(),
    )];
    let req = v["manifest"]["requires"]["components"]["app"]
        .as_str()
        .unwrap();
    assert_eq!(req, format!(">={}", stone["version"].as_str().unwrap()));
}

/// The entitlements to try are each refused (or not) for the reason their label says.
#[test]
fn entitlements_and_recall_list_say_what_they_are_for() {
    let h = home();
    let kit = init(h.path(), &[]);
    let ents = items(&kit, "entitlement");
    let inspect = |label: &str| {
        let item = ents[&(String::new(), String::new(), label.to_owned())];
        fieldkit(
            h.path(),
            &[
                "--json",
                "entitlement",
                "inspect",
                &h.path().join(file(item)).display().to_string(),
            ],
        )
        .json()
    };
    let cases: &[(&str, &str, bool)] = &[
        ("valid", "in-force", false),
        ("expired", "ended", false),
        ("other-device", "in-force", false),
        ("missing-feature", "in-force", false),
        ("revoked", "in-force", true),
    ];
    for (label, contract, revoked) in cases {
        let e = inspect(label);
        assert_eq!(e["signature"], "verified", "{label}");
        assert_eq!(e["contract"], *contract, "{label}");
        assert_eq!(e["revoked"], *revoked, "{label}");
    }
    assert_eq!(
        inspect("missing-feature")["entitlement"]["features"],
        serde_json::json!(["extended-warranty"])
    );
    assert_ne!(
        inspect("other-device")["entitlement"]["devices"],
        inspect("valid")["entitlement"]["devices"]
    );
    // Only the valid one is carried in the home.
    let carried: Vec<_> = std::fs::read_dir(h.path().join("entitlements"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(carried, ["demo-valid.json"]);

    let recall = items(&kit, "recall-list");
    let item = recall.values().next().unwrap();
    let r = fieldkit(
        h.path(),
        &[
            "--json",
            "recall",
            "inspect",
            &h.path().join(file(item)).display().to_string(),
        ],
    )
    .json();
    assert_eq!(r["signature"], "verified");
    let recalled: Vec<_> = items(&kit, "package")
        .iter()
        .filter(|((_, _, l), _)| l == "recalled")
        .map(|((p, _, _), i)| format!("{p}@{}", i["version"].as_str().unwrap()))
        .collect();
    let mut listed: Vec<String> = serde_json::from_value(r["list"]["packages"].clone()).unwrap();
    listed.sort();
    let mut recalled = recalled;
    recalled.sort();
    assert_eq!(listed, recalled);
    assert_eq!(
        r["list"]["entitlements"],
        serde_json::json!(["DEMO-ENT-REVOKED"])
    );
}

/// The sources in demo/build rebuild each package byte for byte, and the README names every
/// file of the kit.
#[test]
fn sources_rebuild_the_packages_and_the_readme_names_everything() {
    let h = home();
    let kit = init(h.path(), &[]);
    let readme = std::fs::read_to_string(h.path().join("README.txt")).unwrap();
    assert!(readme.starts_with("FIELDKIT DEMO KIT"));
    for item in kit["kit"]["items"].as_array().unwrap() {
        for f in item["files"].as_array().unwrap() {
            let f = f.as_str().unwrap();
            assert!(h.path().join(f).is_file(), "{f} missing");
            if item["kind"] != "readme" {
                assert!(readme.contains(f), "README does not name {f}");
            }
        }
    }
    let images = items(&kit, "image");
    let packages = items(&kit, "package");
    for (key, image) in images
        .iter()
        .filter(|((p, _, _), _)| p == "vitalis-monitor-m3")
    {
        let manifest = image["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .find(|f| f.ends_with("manifest.json"))
            .unwrap();
        let out = h.path().join("rebuilt.fkpkg");
        fieldkit(
            h.path(),
            &[
                "package",
                "build",
                "--manifest",
                &h.path().join(manifest).display().to_string(),
                "--key",
                &h.path()
                    .join("keys/demo-release.key.pem")
                    .display()
                    .to_string(),
                "--out",
                &out.display().to_string(),
            ],
        )
        .ok();
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(h.path().join(file(packages[key]))).unwrap(),
            "{key:?}"
        );
    }
}

#[test]
fn init_is_idempotent_and_force_makes_a_new_kit() {
    let h = home();
    let first = init(h.path(), &[]);
    let before = snapshot(h.path());
    let again = init(h.path(), &[]);
    assert_eq!(again["already_initialised"], true);
    assert_eq!(again["kit"], first["kit"]);
    assert_eq!(snapshot(h.path()), before, "a second init changes nothing");
    let text = fieldkit(h.path(), &["demo", "init"]).ok().to_owned();
    assert!(text.contains("already in"), "{text}");

    // Something the technician added survives --force; the kit's own files are replaced.
    std::fs::write(h.path().join("packages/mine.txt"), "keep").unwrap();
    let forced = init(h.path(), &["--force"]);
    assert_eq!(forced["already_initialised"], false);
    assert_ne!(forced["kit"]["keys"], first["kit"]["keys"], "new demo keys");
    assert_eq!(
        std::fs::read_to_string(h.path().join("packages/mine.txt")).unwrap(),
        "keep"
    );
    let root = fieldkit(h.path(), &["--json", "trust", "show"]).json();
    assert_eq!(root["version"], 1);
    assert_eq!(
        root["roles"]["release"]["keyids"][0],
        forced["kit"]["keys"][1][1]
    );
    let any = items(&forced, "package");
    let (_, item) = any.iter().find(|((_, _, l), _)| l == "newer").unwrap();
    fieldkit(
        h.path(),
        &[
            "package",
            "verify",
            &h.path().join(file(item)).display().to_string(),
        ],
    )
    .ok();
}

#[test]
fn a_home_with_another_trust_root_is_left_alone() {
    let h = home();
    let keys = h.path().join("k");
    for name in ["r", "x"] {
        fieldkit(
            h.path(),
            &[
                "keys",
                "generate",
                "--name",
                name,
                "--out",
                keys.to_str().unwrap(),
            ],
        )
        .ok();
    }
    let (r, x) = (
        keys.join("r.key.pem").display().to_string(),
        keys.join("x.pub.pem").display().to_string(),
    );
    fieldkit(
        h.path(),
        &[
            "trust",
            "init",
            "--root-key",
            &r,
            "--release-key",
            &x,
            "--entitlement-key",
            &x,
            "--recall-key",
            &x,
        ],
    )
    .ok();
    let before = snapshot(h.path());
    for args in [&["demo", "init"][..], &["demo", "init", "--force"]] {
        let run = fieldkit(h.path(), args);
        assert!(run.fails().contains("not make"), "{}", run.stderr);
    }
    assert_eq!(snapshot(h.path()), before);
}
