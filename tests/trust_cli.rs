//! The release-engineering commands end to end, as a release engineer and a technician run
//! them: OpenSSL-made keys in every role, imgtool-made images inspected and verified, our
//! images checked by `imgtool verify`, packages built, verified and imported, and refusals with
//! their one-line reason. The exhaustive threat and mutation tests of the rules themselves are
//! in `crates/trust/tests/threats.rs`; here each threat is seen through the CLI.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::{Run, fieldkit};

/// Runs a program that must succeed; returns its stdout.
#[track_caller]
fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An ed25519 key pair made by OpenSSL: (private PEM path, public PEM path).
fn openssl_key(dir: &Path, name: &str) -> (String, String) {
    let private = dir.join(format!("{name}.key.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let (p, q) = (private.to_str().unwrap(), public.to_str().unwrap());
    tool("openssl", &["genpkey", "-algorithm", "ed25519", "-out", p]);
    tool("openssl", &["pkey", "-in", p, "-pubout", "-out", q]);
    (p.to_owned(), q.to_owned())
}

/// A release engineer's workspace: OpenSSL keys for every role and a home with the trust root
/// made from them.
struct Kit {
    dir: tempfile::TempDir,
    home: PathBuf,
    root: (String, String),
    release: (String, String),
    entitlement: (String, String),
    recall: (String, String),
}

impl Kit {
    fn new() -> Kit {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let [root, release, entitlement, recall] =
            ["root", "release", "entitlement", "recall"].map(|r| openssl_key(dir.path(), r));
        let kit = Kit {
            dir,
            home,
            root,
            release,
            entitlement,
            recall,
        };
        kit.run(&[
            "--json",
            "trust",
            "init",
            "--root-key",
            &kit.root.0,
            "--release-key",
            &kit.release.1,
            "--entitlement-key",
            &kit.entitlement.1,
            "--recall-key",
            &kit.recall.1,
            "--expires",
            "2099-12-31",
        ])
        .ok();
        kit
    }

    fn run(&self, args: &[&str]) -> Run {
        fieldkit(&self.home, args)
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// Writes the sources of a release (firmware, signed image, manifest, SBOM) into
    /// `name/` with `edit` applied to the manifest; returns the manifest path.
    fn release_sources(&self, name: &str, version: &str, edit: impl FnOnce(&mut Value)) -> String {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let fw = dir.join("app.raw");
        std::fs::write(&fw, format!("firmware {name} {version}").repeat(300)).unwrap();
        self.run(&[
            "image",
            "sign",
            "--key",
            &self.release.0,
            "--version",
            version,
            "--security-counter",
            "3",
            fw.to_str().unwrap(),
            dir.join("app.bin").to_str().unwrap(),
        ])
        .ok();
        let mut manifest = json!({
            "format": 1,
            "product": "acme-infusion-p7",
            "version": version,
            "release_date": "2025-05-01",
            "class": "feature",
            "security_counter": 3,
            "expires": "2099-01-01T00:00:00Z",
            "entitlement_feature": "firmware-updates",
            "requires": { "hardware_revisions": ["C"], "components": { "app": ">=2.0.0" } },
            "payloads": [{
                "component": "app", "image": 0, "version": version,
                "format": "mcuboot", "file": "app.bin"
            }]
        });
        edit(&mut manifest);
        std::fs::write(
            dir.join("manifest.json"),
            serde_json::to_vec_pretty(&manifest).unwrap(),
        )
        .unwrap();
        let sbom = json!({
            "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
            "components": [{
                "type": "firmware", "name": "pump-app", "version": version,
                "purl": format!("pkg:generic/acme/pump-app@{version}"),
                "hashes": [{ "alg": "SHA-256", "content": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" }],
                "licenses": [{ "license": { "id": "Apache-2.0" } }]
            }]
        });
        std::fs::write(dir.join("sbom.cdx.json"), sbom.to_string()).unwrap();
        dir.join("manifest.json").to_str().unwrap().to_owned()
    }

    /// Builds a package signed by `key`; returns its path.
    fn package(
        &self,
        name: &str,
        version: &str,
        key: &str,
        edit: impl FnOnce(&mut Value),
    ) -> String {
        let manifest = self.release_sources(name, version, edit);
        let out = self.path(&format!("{name}.fkpkg"));
        self.run(&[
            "package",
            "build",
            "--manifest",
            &manifest,
            "--key",
            key,
            "--out",
            &out,
        ])
        .ok();
        out
    }
}

#[test]
fn openssl_keys_work_in_every_role() {
    let kit = Kit::new();
    let shown = kit.run(&["--json", "trust", "show"]).json();
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["expires"], "2099-12-31");
    for (role, (_, public)) in [
        ("root", &kit.root),
        ("release", &kit.release),
        ("entitlement", &kit.entitlement),
        ("recall", &kit.recall),
    ] {
        let id = kit.run(&["--json", "keys", "show", public]).json()["key_id"].clone();
        assert_eq!(shown["roles"][role]["keyids"], json!([id]), "{role}");
    }

    // release: images and packages.
    let pkg = kit.package("p210", "2.1.0", &kit.release.0, |_| {});
    let verified = kit.run(&["--json", "package", "verify", &pkg]).json();
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["id"], "acme-infusion-p7@2.1.0");
    assert_eq!(verified["payloads"][0]["security_counter"], 3);
    assert!(verified["payloads"][0]["image_signed_by"].is_string());

    // entitlement.
    let ent = kit.path("ent.json");
    kit.run(&[
        "entitlement",
        "issue",
        "--key",
        &kit.entitlement.0,
        "--customer",
        "St. Example",
        "--device",
        "acme-infusion-p7:P7-004217",
        "--device",
        "vitalis-monitor-m3:*",
        "--feature",
        "firmware-updates",
        "--valid-from",
        "2025-01-01",
        "--valid-until",
        "2099-12-31",
        "--maintenance-through",
        "2030-01-01",
        "--id",
        "ENT-1",
        "--out",
        &ent,
    ])
    .ok();
    let e = kit.run(&["--json", "entitlement", "inspect", &ent]).json();
    assert_eq!(e["signature"], "verified");
    assert_eq!(e["contract"], "in-force");
    assert_eq!(e["entitlement"]["id"], "ENT-1");
    assert_eq!(
        e["entitlement"]["devices"],
        json!([
            { "model": "acme-infusion-p7", "serials": ["P7-004217"] },
            { "model": "vitalis-monitor-m3", "serials": ["*"] }
        ])
    );
    assert_eq!(e["entitlement"]["maintenance_through"], "2030-01-01");

    // recall.
    let list = kit.path("recall.json");
    kit.run(&[
        "recall",
        "issue",
        "--key",
        &kit.recall.0,
        "--version",
        "1",
        "--package",
        "acme-infusion-p7@2.1.0",
        "--entitlement",
        "ENT-1",
        "--min-version",
        "vitalis-monitor-m3=4.0.0",
        "--out",
        &list,
    ])
    .ok();
    let r = kit.run(&["--json", "recall", "inspect", &list]).json();
    assert_eq!(r["signature"], "verified");
    assert_eq!(
        r["list"]["minimums"]["vitalis-monitor-m3"]["version"],
        "4.0.0"
    );
    kit.run(&["recall", "import", &list]).ok();
    // Now the package is recalled and the entitlement revoked.
    let refused = kit.run(&["package", "verify", &pkg]);
    assert!(
        refused.fails().contains("recall.package"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        kit.run(&["--json", "entitlement", "inspect", &ent]).json()["revoked"],
        true
    );
}

#[test]
fn our_keys_are_read_by_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let g = fieldkit(
        dir.path(),
        &[
            "--json",
            "keys",
            "generate",
            "--name",
            "ours",
            "--out",
            keys.to_str().unwrap(),
        ],
    )
    .json();
    let private = g["private_key"].as_str().unwrap();
    let public = g["public_key"].as_str().unwrap();
    let derived = tool("openssl", &["pkey", "-in", private, "-pubout"]);
    assert_eq!(derived, std::fs::read_to_string(public).unwrap());
    // Keys are never overwritten.
    let again = fieldkit(
        dir.path(),
        &[
            "keys",
            "generate",
            "--name",
            "ours",
            "--out",
            keys.to_str().unwrap(),
        ],
    );
    assert!(again.fails().contains("already exists"));
    // Without --out, keys go to the home.
    let in_home = fieldkit(dir.path(), &["--json", "keys", "generate", "--name", "h"]).json();
    assert_eq!(
        in_home["private_key"],
        dir.path().join("keys/h.key.pem").to_str().unwrap()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "private keys are owner-only");
    }
}

/// A private key that other users can read is refused wherever it is loaded (signing keys the
/// release engineer passes, the laptop's own key), with the command that fixes it, as ssh does.
#[cfg(unix)]
#[test]
fn a_private_key_others_can_read_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let g = fieldkit(&home, &["--json", "keys", "generate", "--name", "rel"]).json();
    let key = g["private_key"].as_str().unwrap().to_owned();
    let chmod = |path: &str, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let image = dir.path().join("app.bin");
    std::fs::write(&image, vec![0x5a; 4096]).unwrap();
    let signed = dir.path().join("app-signed.bin");
    let sign = |home: &Path| {
        fieldkit(
            home,
            &[
                "image",
                "sign",
                "--key",
                &key,
                "--version",
                "1.2.3",
                image.to_str().unwrap(),
                signed.to_str().unwrap(),
            ],
        )
    };
    for mode in [0o644, 0o640, 0o604] {
        chmod(&key, mode);
        let line = sign(&home).fails().to_owned();
        assert!(line.contains(&format!("mode {mode:04o}")), "{line}");
        assert!(line.contains(&format!("run `chmod 600 {key}`")), "{line}");
        let shown = fieldkit(&home, &["keys", "show", &key]);
        assert!(shown.fails().contains("chmod 600"));
    }
    chmod(&key, 0o600);
    sign(&home).ok();

    // The laptop's key in the home, the same way.
    fieldkit(&home, &["audit", "id"]).ok();
    let laptop = home.join("keys/laptop.pem");
    chmod(laptop.to_str().unwrap(), 0o644);
    let line = fieldkit(&home, &["audit", "id"]).fails().to_owned();
    assert!(
        line.contains(&format!("chmod 600 {}", laptop.display())),
        "{line}"
    );
    chmod(laptop.to_str().unwrap(), 0o600);
    fieldkit(&home, &["audit", "id"]).ok();
}

/// imgtool version, further imgtool arguments; then the version, security counter and
/// dependencies `image inspect` must show.
type ImgtoolCase<'a> = (&'a str, &'a [&'a str], &'a str, Option<u64>, Value);

/// imgtool's options and what `image inspect` must read from the image it makes.
#[test]
fn imgtool_images_inspect_and_verify() {
    let kit = Kit::new();
    let fw = kit.path("fw.raw");
    std::fs::write(&fw, vec![0xa5u8; 5000]).unwrap();
    let cases: &[ImgtoolCase] = &[
        ("1.2.3", &[], "1.2.3", None, json!([])),
        (
            "2.0.0+7",
            &["--security-counter", "9"],
            "2.0.0.7",
            Some(9),
            json!([]),
        ),
        (
            "3.1.0",
            &["--security-counter", "4", "--dependencies", "(1,1.5.0+0)"],
            "3.1.0",
            Some(4),
            json!([{ "image": 1, "min_version": "1.5.0" }]),
        ),
        (
            "3.2.0",
            &["--dependencies", "(1,1.5.0+0),(2,0.9.1+3)"],
            "3.2.0",
            None,
            json!([{ "image": 1, "min_version": "1.5.0" }, { "image": 2, "min_version": "0.9.1.3" }]),
        ),
    ];
    for (i, (version, extra, shown, counter, deps)) in cases.iter().enumerate() {
        let img = kit.path(&format!("imgtool-{i}.bin"));
        let mut args = vec![
            "sign",
            "--key",
            &kit.release.0,
            "--header-size",
            "0x200",
            "--pad-header",
            "--slot-size",
            "0x20000",
            "--version",
            version,
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&fw, &img]);
        tool("imgtool", &args);

        let v = kit
            .run(&["--json", "image", "inspect", "--key", &kit.release.1, &img])
            .json();
        assert_eq!(v["version"], *shown, "case {i}");
        assert_eq!(v["security_counter"], json!(counter), "case {i}");
        assert_eq!(v["dependencies"], *deps, "case {i}");
        assert_eq!(v["hash_ok"], true, "case {i}");
        assert_eq!(v["signature"]["status"], "verified", "case {i}");
        // Without --key, the installed root's release key is found.
        let v = kit.run(&["--json", "image", "inspect", &img]).json();
        assert_eq!(v["signature"]["role"], "release", "case {i}");
        // With another key, the check fails with a one-line reason.
        let r = kit.run(&["image", "inspect", "--key", &kit.root.1, &img]);
        assert!(r.fails().contains("signature check"), "case {i}");
    }
}

/// Our images, with each option, pass `imgtool verify` and read back as signed.
#[test]
fn our_images_pass_imgtool_verify() {
    let kit = Kit::new();
    let fw = kit.path("fw.raw");
    std::fs::write(&fw, b"our firmware ".repeat(700)).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--version", "1.0.0"], "1.0.0+0"),
        (
            &["--version", "1.2.3+45", "--security-counter", "6"],
            "1.2.3+45",
        ),
        (
            &["--version", "2.0.0", "--dependency", "1,1.5.0"],
            "2.0.0+0",
        ),
        (
            &[
                "--version",
                "2.1.0.9",
                "--security-counter",
                "2",
                "--dependency",
                "1,1.5.0",
                "--dependency",
                "2,0.1.0",
                "--header-size",
                "0x400",
            ],
            "2.1.0+9",
        ),
    ];
    for (i, (opts, imgtool_version)) in cases.iter().enumerate() {
        let img = kit.path(&format!("ours-{i}.bin"));
        let mut args = vec!["--json", "image", "sign", "--key", &kit.release.0];
        args.extend_from_slice(opts);
        args.extend_from_slice(&[&fw, &img]);
        let signed = kit.run(&args).json();
        let out = tool("imgtool", &["verify", "-k", &kit.release.0, &img]);
        assert!(
            out.contains("Image was correctly validated"),
            "case {i}: {out}"
        );
        assert!(
            out.contains(&format!("Image version: {imgtool_version}")),
            "case {i}: {out}"
        );
        assert!(
            out.contains(signed["hash"].as_str().unwrap()),
            "case {i}: {out}"
        );
    }
    // A damaged image is refused by inspect with its reason.
    let img = kit.path("ours-0.bin");
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[0x200 + 10] ^= 1;
    std::fs::write(&img, bytes).unwrap();
    let r = kit.run(&["--json", "image", "inspect", &img]);
    assert!(r.fails().contains("SHA256"), "{}", r.stderr);
    assert_eq!(r.json()["hash_ok"], false);
}

#[test]
fn package_build_inspect_verify_import_round_trip() {
    let kit = Kit::new();
    let pkg = kit.package("p220", "2.2.0", &kit.release.0, |_| {});
    let inspected = kit.run(&["--json", "package", "inspect", &pkg]).json();
    assert_eq!(inspected["signatures_checked"], false);
    assert_eq!(inspected["manifest"]["version"], "2.2.0");
    assert_eq!(inspected["sbom"]["spec_version"], "1.6");
    assert_eq!(
        inspected["sbom"]["components"][0]["purl"],
        "pkg:generic/acme/pump-app@2.2.0"
    );

    let imported = kit.run(&["--json", "package", "import", &pkg]).json();
    assert_eq!(imported[0]["imported"], true);
    assert_eq!(imported[0]["already_present"], false);
    let kept = imported[0]["kept_as"].as_str().unwrap().to_owned();
    assert_eq!(std::fs::read(&kept).unwrap(), std::fs::read(&pkg).unwrap());
    let verified = kit.run(&["--json", "package", "verify", &kept]).json();
    assert_eq!(verified["manifest"], inspected["manifest"]);
    // The trusted-time mark rose to the release date.
    let state: Value =
        serde_json::from_slice(&std::fs::read(kit.home.join("trust/state.json")).unwrap()).unwrap();
    assert!(
        state["time_mark"]
            .as_str()
            .unwrap()
            .starts_with("2025-05-01")
    );

    // Importing the same package again changes nothing.
    let again = kit.run(&["--json", "package", "import", &pkg]).json();
    assert_eq!(again[0]["already_present"], true);
    // Another package with the same id is a conflict, and is not kept.
    let other = kit.package("p220b", "2.2.0", &kit.release.0, |m| {
        m["release_date"] = json!("2025-05-02");
    });
    let r = kit.run(&["package", "import", &other]);
    assert!(
        r.fails().contains("already holds a different package"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(&kept).unwrap(), std::fs::read(&pkg).unwrap());
    // Human output names what was done.
    let text = kit.run(&["package", "verify", &kept]).ok().to_owned();
    assert!(
        text.contains("Package      acme-infusion-p7@2.2.0"),
        "{text}"
    );
    assert!(text.contains("Verified: genuine"), "{text}");
}

/// Each threat, seen through the CLI: refused, exit non-zero, one line naming the rule.
#[test]
fn refusals_carry_their_reason() {
    let kit = Kit::new();
    let stranger = openssl_key(kit.dir.path(), "stranger");
    let good = kit.package("good", "2.1.0", &kit.release.0, |_| {});

    let tampered = kit.path("tampered.fkpkg");
    let mut bytes = std::fs::read(&good).unwrap();
    let at = bytes.len() - 1024 - 100;
    bytes[at] ^= 0x40;
    std::fs::write(&tampered, &bytes).unwrap();
    let appended = kit.path("appended.fkpkg");
    let mut bytes = std::fs::read(&good).unwrap();
    bytes.extend_from_slice(&[0; 512]);
    bytes.extend_from_slice(b"more");
    std::fs::write(&appended, &bytes).unwrap();

    let unsigned_by_root = kit.package("stranger", "2.1.1", &stranger.0, |_| {});
    let expired = kit.package("expired", "2.1.2", &kit.release.0, |m| {
        m["expires"] = json!("2001-01-01T00:00:00Z");
    });
    // Mix and match: the manifest says 2.3.0, the image inside is 2.1.3.
    let mixed_manifest = kit.release_sources("mixed", "2.1.3", |m| {
        m["version"] = json!("2.3.0");
        m["payloads"][0]["version"] = json!("2.3.0");
    });
    let traversal_manifest = kit.release_sources("traversal", "2.1.4", |m| {
        m["payloads"][0]["file"] = json!("../app.bin");
    });
    let wrong_ent = kit.path("wrong-ent.json");
    kit.run(&[
        "entitlement",
        "issue",
        "--key",
        &kit.release.0,
        "--customer",
        "X",
        "--device",
        "acme-infusion-p7:P7-1",
        "--feature",
        "f",
        "--valid-from",
        "2025-01-01",
        "--valid-until",
        "2026-01-01",
        "--out",
        &wrong_ent,
    ])
    .ok();
    let recall_v2 = kit.path("recall-2.json");
    let recall_v1 = kit.path("recall-1.json");
    for (v, out) in [("2", &recall_v2), ("1", &recall_v1)] {
        kit.run(&[
            "recall",
            "issue",
            "--key",
            &kit.recall.0,
            "--version",
            v,
            "--out",
            out,
        ])
        .ok();
    }
    kit.run(&["recall", "import", &recall_v2]).ok();
    let forged_recall = kit.path("forged-recall.json");
    kit.run(&[
        "recall",
        "issue",
        "--key",
        &stranger.0,
        "--version",
        "3",
        "--out",
        &forged_recall,
    ])
    .ok();
    // A release carrying a GPL component: the release licence policy refuses the build.
    let gpl_manifest = kit.release_sources("gpl", "2.1.5", |_| {});
    let gpl_sbom = Path::new(&gpl_manifest).with_file_name("sbom.cdx.json");
    let mut sbom: Value = serde_json::from_slice(&std::fs::read(&gpl_sbom).unwrap()).unwrap();
    sbom["components"].as_array_mut().unwrap().push(json!({
        "type": "application", "name": "busybox", "version": "1.36.1",
        "purl": "pkg:generic/busybox@1.36.1",
        "licenses": [{ "license": { "id": "GPL-2.0-only" } }]
    }));
    std::fs::write(&gpl_sbom, sbom.to_string()).unwrap();
    let bad_policy = kit.path("policy.toml");
    std::fs::write(&bad_policy, "otherwise = \"maybe\"\n").unwrap();
    let out = kit.path("x");

    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "signed by a key outside the root",
            vec!["package", "verify", &unsigned_by_root],
            "signature.threshold",
        ),
        (
            "a flipped byte",
            vec!["package", "verify", &tampered],
            "package.",
        ),
        (
            "appended data",
            vec!["package", "verify", &appended],
            "package.structure",
        ),
        (
            "expired metadata",
            vec!["package", "verify", &expired],
            "manifest.expiry",
        ),
        (
            "import of a forged package",
            vec!["package", "import", &unsigned_by_root],
            "signature.threshold",
        ),
        (
            "mix and match",
            vec![
                "package",
                "build",
                "--manifest",
                &mixed_manifest,
                "--key",
                &kit.release.0,
                "--out",
                &out,
            ],
            "payload.version",
        ),
        (
            "a component the release licence policy denies",
            vec![
                "package",
                "build",
                "--manifest",
                &gpl_manifest,
                "--key",
                &kit.release.0,
                "--out",
                &out,
            ],
            "package.licence: The release contains a component whose licence the manufacturer's release policy denies. (found component busybox 1.36.1 (pkg:generic/busybox@1.36.1): GPL-2.0-only deny by rule \"category strong-copyleft\"",
        ),
        (
            "a licence policy that does not parse",
            vec![
                "package",
                "build",
                "--manifest",
                &gpl_manifest,
                "--key",
                &kit.release.0,
                "--out",
                &out,
                "--licence-policy",
                &bad_policy,
            ],
            "unknown variant `maybe`, expected one of `allow`, `flag`, `deny`",
        ),
        (
            "path traversal",
            vec![
                "package",
                "build",
                "--manifest",
                &traversal_manifest,
                "--key",
                &kit.release.0,
                "--out",
                &out,
            ],
            "plain file name",
        ),
        (
            "entitlement by the wrong key",
            vec!["entitlement", "inspect", &wrong_ent],
            "entitlement.signature",
        ),
        (
            "replayed older recall list",
            vec!["recall", "import", &recall_v1],
            "recall.version",
        ),
        (
            "forged recall list",
            vec!["recall", "import", &forged_recall],
            "signature.threshold",
        ),
        (
            "unknown device model",
            vec![
                "entitlement",
                "issue",
                "--key",
                &kit.entitlement.0,
                "--customer",
                "X",
                "--device",
                "toaster:1",
                "--feature",
                "f",
                "--valid-from",
                "2025-01-01",
                "--valid-until",
                "2026-01-01",
                "--out",
                &out,
            ],
            "unknown model",
        ),
        (
            "contract ending before it starts",
            vec![
                "entitlement",
                "issue",
                "--key",
                &kit.entitlement.0,
                "--customer",
                "X",
                "--device",
                "acme-infusion-p7:1",
                "--feature",
                "f",
                "--valid-from",
                "2026-01-01",
                "--valid-until",
                "2025-01-01",
                "--out",
                &out,
            ],
            "before --valid-from",
        ),
        (
            "a threshold above the keys",
            vec![
                "trust",
                "init",
                "--root-key",
                &kit.root.0,
                "--release-key",
                &kit.release.1,
                "--entitlement-key",
                &kit.entitlement.1,
                "--recall-key",
                &kit.recall.1,
                "--threshold",
                "release=2",
                "--out",
                &out,
            ],
            "root.format",
        ),
        (
            "a second first root",
            vec![
                "trust",
                "init",
                "--root-key",
                &kit.root.0,
                "--release-key",
                &kit.release.1,
                "--entitlement-key",
                &kit.entitlement.1,
                "--recall-key",
                &kit.recall.1,
            ],
            "already holds trust root version 1",
        ),
        (
            "rotation not signed by the old root",
            vec![
                "trust",
                "rotate",
                "--old-root-key",
                &stranger.0,
                "--out",
                &out,
            ],
            "signature.threshold",
        ),
        (
            "a private key that is not one",
            vec![
                "image",
                "sign",
                "--key",
                &kit.release.1,
                "--version",
                "1.0.0",
                &good,
                &out,
            ],
            "key.format",
        ),
    ];
    for (what, args, rule) in &cases {
        for json in [false, true] {
            let mut a = args.clone();
            if json {
                a.insert(0, "--json");
            }
            let r = kit.run(&a);
            let line = r.fails();
            assert!(line.contains(rule), "{what}: {line}");
        }
    }

    // A malformed argument is a usage error: clap names it and what is required.
    let r = kit.run(&[
        "trust",
        "init",
        "--root-key",
        &kit.root.0,
        "--expires",
        "31.12.2030",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("required YYYY-MM-DD"), "{}", r.stderr);

    // Clock set back: a signed time far ahead of the system clock makes time-dependent
    // decisions fail closed.
    std::fs::write(
        kit.home.join("trust/state.json"),
        r#"{"time_mark":"2098-01-01T00:00:00Z","recall_version":2}"#,
    )
    .unwrap();
    let r = kit.run(&["package", "verify", &good]);
    assert!(r.fails().contains("time.clock"), "{}", r.stderr);
    // A recall list seen before that has gone missing fails closed too.
    std::fs::write(kit.home.join("trust/state.json"), r#"{"recall_version":5}"#).unwrap();
    let r = kit.run(&["package", "verify", &good]);
    assert!(r.fails().contains("required 5"), "{}", r.stderr);
    // Without a trust root nothing verifies.
    let empty = support::home();
    let r = fieldkit(empty.path(), &["package", "verify", &good]);
    assert!(
        r.fails().contains("no trust root") && r.stderr.contains("fieldkit trust import FILE"),
        "{}",
        r.stderr
    );
}

#[test]
fn trust_rotate_then_accept_elsewhere() {
    let kit = Kit::new();
    let new_root = openssl_key(kit.dir.path(), "root2");
    let new_release = openssl_key(kit.dir.path(), "release2");
    let before = kit.run(&["--json", "trust", "show"]).json();
    let next = kit.path("root-2.json");
    let made = kit
        .run(&[
            "--json",
            "trust",
            "rotate",
            "--old-root-key",
            &kit.root.0,
            "--root-key",
            &new_root.0,
            "--release-key",
            &new_release.1,
            "--threshold",
            "release=1",
            "--expires",
            "2098-01-01",
            "--current",
            kit.home.join("trust/root.json").to_str().unwrap(),
            "--out",
            &next,
        ])
        .json();
    assert_eq!(made["version"], 2);
    assert_eq!(made["installed"], false);
    assert_ne!(made["roles"]["root"], before["roles"]["root"]);
    assert_eq!(made["roles"]["entitlement"], before["roles"]["entitlement"]);

    // Another laptop with root 1 accepts it, and keeps root 1 in its history.
    let accepted = kit
        .run(&["--json", "trust", "rotate", "--accept", &next])
        .json();
    assert_eq!(accepted["version"], 2);
    assert_eq!(accepted["installed"], true);
    assert_eq!(accepted["history"], json!([1]));
    // A package signed by the old release key no longer verifies; the new key's does.
    let old = kit.package("old", "2.5.0", &kit.release.0, |_| {});
    let r = kit.run(&["package", "verify", &old]);
    assert!(r.fails().contains("signature.threshold"));
    // Accepting the same root again is a replay.
    let r = kit.run(&["trust", "rotate", "--accept", &next]);
    assert!(r.fails().contains("root.version"), "{}", r.stderr);
    // Rotating in place from root 2 needs the new root key.
    let r = kit.run(&["trust", "rotate", "--old-root-key", &kit.root.0]);
    assert!(r.fails().contains("signature.threshold"));
    let third = kit
        .run(&["--json", "trust", "rotate", "--old-root-key", &new_root.0])
        .json();
    assert_eq!(third["version"], 3);
    assert_eq!(third["history"], json!([1, 2]));
}
