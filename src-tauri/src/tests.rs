//! The commands on Tauri's mock runtime: invoked through the IPC as the web view invokes them,
//! against a DEMO home, simulated devices on real pseudo-terminals, and the real `core`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tauri::ipc::{CallbackFn, Channel, InvokeBody, InvokeResponseBody};
use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow, WebviewWindowBuilder};

use crate::AppState;
use crate::progress::{ChannelProgress, ProgressEvent};

struct Harness {
    _dir: tempfile::TempDir,
    app: App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
}

impl Harness {
    /// The DEMO (`fieldkit-app --demo`) over a new home: its DEMO home beside it, filled with
    /// the DEMO kit. The context is the real one (`tauri.conf.json` and the capability file),
    /// so a command the capability does not allow fails here as it would in the window.
    fn new() -> Harness {
        Harness::started(true)
    }

    /// A fresh installation (`fieldkit-app`): a new home, no trust root, and a build that
    /// pins none.
    fn installed() -> Harness {
        Harness::started(false)
    }

    fn started(demo: bool) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let state =
            AppState::new(fieldkit_core::Home::at(dir.path().join("home")), demo).expect("state");
        let app = crate::builder(mock_builder(), state)
            .build(tauri::generate_context!(test = true))
            .expect("app");
        let window = WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .expect("window");
        Harness {
            _dir: dir,
            app,
            window,
        }
    }

    /// Invokes `cmd` with `args` as the web view does; the error is the `{kind, message}` sent.
    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        let request = InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().expect("url"),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        };
        get_ipc_response(&self.window, request).map(|b| b.deserialize::<Value>().expect("JSON"))
    }

    fn ok(&self, cmd: &str, args: Value) -> Value {
        self.invoke(cmd, args)
            .unwrap_or_else(|e| panic!("{cmd} failed: {e}"))
    }

    fn home(&self) -> PathBuf {
        self._dir.path().join("home")
    }

    fn err_kind(&self, cmd: &str, args: Value) -> String {
        let e = self
            .invoke(cmd, args)
            .expect_err(&format!("{cmd} should fail"));
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
        e["kind"].as_str().expect("a kind").to_owned()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        use tauri::Manager;
        self.app.state::<AppState>().stop_simulators();
    }
}

#[test]
fn a_visit_through_the_commands() {
    let h = Harness::new();
    let info = h.ok("app_info", json!({}));
    assert_eq!(info["demo"], true);
    let stick = info["usb_stick"]
        .as_str()
        .expect("a DEMO USB stick")
        .to_owned();

    let devices = h.ok("list_devices", json!({}));
    let sims = devices["simulators"].as_array().expect("simulators");
    assert_eq!(sims.len(), 4, "one per shipped profile: {sims:?}");
    assert!(sims.iter().all(|s| s["running"] == false));

    // Nothing is imported until the technician imports the stick.
    assert_eq!(h.ok("list_packages", json!({}))["packages"], json!([]));
    let imported = h.ok("import_packages", json!({ "path": stick }));
    let imported = imported.as_array().expect("results");
    assert!(imported.iter().any(|r| r["ok"] == true));
    let refused: Vec<&Value> = imported.iter().filter(|r| r["ok"] == false).collect();
    assert!(
        !refused.is_empty()
            && refused
                .iter()
                .all(|r| r["finding"]["rule"] == "recall.package"),
        "only the recalled releases are refused: {refused:?}"
    );

    let port = h.ok("start_simulator", json!({ "profile": "acme-infusion-p7" }));
    let device = h.ok("identify", json!({ "port": port, "profile": null }));
    assert_eq!(device["identity"]["serial"], "P7-004217");
    assert_eq!(device["simulated"], true);
    assert!(
        device["sboms"][0]["components"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "the running firmware's SBOM comes from its imported package: {device}"
    );

    let packages = h.ok("list_packages", json!({}));
    let pump: Vec<&Value> = packages["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["for_device"] == true)
        .collect();
    assert!(!pump.is_empty());
    assert!(pump.iter().all(|p| {
        p["entitlement"]["findings"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    }));

    // The release made for another hardware revision, named: refused, with the rule that says why.
    let home = PathBuf::from(info["home"].as_str().expect("home"));
    let kit = fieldkit_demo::read_kit(&fieldkit_core::Home::at(&home))
        .expect("kit")
        .expect("a demo kit");
    let wrong = kit
        .items
        .iter()
        .find(|i| {
            i.kind == fieldkit_demo::ItemKind::Package
                && i.label == "wrong-hardware"
                && i.product.as_deref() == Some("acme-infusion-p7")
        })
        .expect("a wrong-hardware package");
    let named = home
        .join("packages")
        .join(wrong.files[0].file_name().expect("a file"));
    let check = h.ok("check", json!({ "package": named }));
    assert_eq!(check["checked"]["plan"]["verdict"], "refused", "{check}");
    let failed: Vec<&Value> = check["checked"]["plan"]["rules"]
        .as_array()
        .expect("rule groups")
        .iter()
        .flat_map(|g| g["findings"].as_array().expect("findings"))
        .filter(|f| f["passed"] == false)
        .collect();
    assert!(
        failed.iter().any(|f| f["rule"] == "target.hardware"),
        "{failed:?}"
    );

    let check = h.ok("check", json!({ "package": null }));
    assert_eq!(check["checked"]["plan"]["verdict"], "go", "{check}");
    let id = check["id"].as_u64().expect("id");
    assert_eq!(
        h.err_kind(
            "update",
            json!({ "checkId": id + 1, "acceptRisks": false, "onProgress": "__CHANNEL__:1" })
        ),
        "stale_check"
    );
    let check = h.ok("check", json!({ "package": null }));
    let id = check["id"].as_u64().expect("id");
    let updated = h.ok(
        "update",
        json!({ "checkId": id, "acceptRisks": false, "onProgress": "__CHANNEL__:2" }),
    );
    let steps = updated["steps"].as_array().expect("steps");
    assert!(
        updated["completed"] == true
            && !steps.is_empty()
            && steps.iter().all(|s| s["verdict"]["verdict"] == "applied"),
        "{updated}"
    );
    assert_eq!(
        h.ok("check", json!({ "package": null }))["checked"]["plan"]["verdict"],
        "up_to_date"
    );

    let entries = h.ok("audit_entries", json!({ "limit": null }));
    let events: Vec<&str> = entries
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["event"].as_str().expect("event"))
        .collect();
    for e in [
        "device_identified",
        "check_passed",
        "update_started",
        "update_succeeded",
    ] {
        assert!(events.contains(&e), "{e} in {events:?}");
    }
    assert_eq!(
        entries[0]["seq"].as_u64(),
        Some(events.len() as u64 - 1),
        "newest first"
    );
    let status = h.ok("audit_status", json!({}));
    assert_eq!(status["unsynced"], status["size"]);
    assert_eq!(h.ok("audit_verify", json!({}))["size"], status["size"]);

    let trust = h.ok("trust_details", json!({}));
    assert_eq!(trust["demo"], true);
    assert_eq!(trust["root_version"], 1);
    assert!(
        trust["laptop_public_key"]
            .as_str()
            .is_some_and(|k| k.contains("BEGIN PUBLIC KEY"))
    );

    h.ok("stop_simulator", json!({ "profile": "acme-infusion-p7" }));
    assert_eq!(h.err_kind("check", json!({ "package": null })), "no_device");

    // Everything the app made in its home (the kit, keys, audit log, settings, the
    // simulators' state) is its owner's only.
    let mut settings = h.ok("get_settings", json!({}));
    settings["technician"] = json!("Ana Ruiz");
    settings["site"] = json!("Ward 4");
    h.ok("set_settings", json!({ "settings": settings }));
    assert_eq!(
        fieldkit_private::find_not_private(&home).expect("walk the home"),
        vec![],
        "every directory 0700, every file 0600"
    );
}

/// A monitor in MCUboot's serial recovery, through the commands: the fields it cannot report
/// are offered for typing, the update needs its risk accepted, and the outcome is "applied
/// in place", read back by hash, with the device restarted into its application.
#[test]
fn a_device_in_serial_recovery_is_updated_in_place() {
    let h = Harness::new();
    let info = h.ok("app_info", json!({}));
    let stick = info["usb_stick"]
        .as_str()
        .expect("a DEMO USB stick")
        .to_owned();
    h.ok("import_packages", json!({ "path": stick }));

    let devices = h.ok("list_devices", json!({}));
    let prompts: Vec<&str> = devices["typed_fields"]["vitalis-monitor-m3-recovery"]
        .as_array()
        .expect("fields to type")
        .iter()
        .map(|f| f["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(
        prompts,
        [
            "bootloader_version",
            "hardware_revision",
            "on_mains",
            "serial",
            "therapy_running"
        ]
    );
    let port = h.ok(
        "start_simulator",
        json!({ "profile": "vitalis-monitor-m3-recovery" }),
    );
    // Without them the device cannot be identified, and the error says which.
    let e = h
        .invoke("identify", json!({ "port": port, "profile": null }))
        .expect_err("fields are missing");
    assert_eq!(e["kind"], "missing_field", "{e}");
    let typed = json!({
        "serial": "VM3-1180-2291",
        "hardware_revision": "B2",
        "bootloader_version": "1.10.0",
        "therapy_running": "false",
        "on_mains": "true",
    });
    let device = h.ok(
        "identify",
        json!({ "port": port, "profile": null, "typed": typed }),
    );
    assert_eq!(device["identity"]["profile"], "vitalis-monitor-m3-recovery");
    assert_eq!(device["identity"]["fields"]["serial"]["source"], "typed");
    // The monitor's packages are for it in serial recovery too (the product of its
    // application profile), with their entitlement rules.
    let packages = h.ok("list_packages", json!({}));
    let offered: Vec<&str> = packages["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["for_device"] == true)
        .filter_map(|p| p["file"].as_str())
        .collect();
    assert!(
        offered
            .iter()
            .any(|f| f.ends_with("/vitalis-monitor-m3-4.1.0.fkpkg")),
        "{packages}"
    );

    // The newest release the recovery device can take in one step.
    let home = PathBuf::from(info["home"].as_str().expect("home"));
    let package = home.join("packages/vitalis-monitor-m3-4.1.0.fkpkg");
    let check = h.ok("check", json!({ "package": package }));
    assert_eq!(check["checked"]["plan"]["verdict"], "go", "{check}");
    assert_eq!(
        check["checked"]["plan"]["risks"].as_array().map(Vec::len),
        Some(1)
    );
    let id = check["id"].as_u64().expect("id");
    assert_eq!(
        h.err_kind(
            "update",
            json!({ "checkId": id, "acceptRisks": false, "onProgress": "__CHANNEL__:4" })
        ),
        "risk_not_accepted"
    );
    let check = h.ok("check", json!({ "package": package }));
    let id = check["id"].as_u64().expect("id");
    let updated = h.ok(
        "update",
        json!({ "checkId": id, "acceptRisks": true, "onProgress": "__CHANNEL__:5" }),
    );
    let steps = updated["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 1, "{updated}");
    assert_eq!(
        steps[0]["verdict"]["verdict"], "applied_in_place",
        "{updated}"
    );
    assert_eq!(updated["completed"], true, "{updated}");
    let entries = h.ok("audit_entries", json!({ "limit": 1 }));
    assert_eq!(entries[0]["event"], "update_succeeded");
    h.ok(
        "stop_simulator",
        json!({ "profile": "vitalis-monitor-m3-recovery" }),
    );
}

#[test]
fn a_fresh_installation_checks_nothing_until_it_has_a_root_or_the_demo_is_chosen() {
    assert!(
        fieldkit_core::pinned::pinned_root().is_none(),
        "the tests' build pins no root"
    );
    let h = Harness::installed();
    let info = h.ok("app_info", json!({}));
    assert_eq!(info["needs_trust_root"], true);
    assert_eq!(info["demo"], false);
    assert_eq!(info["usb_stick"], Value::Null);
    assert!(
        !h.home().exists(),
        "nothing is made before the technician chooses"
    );

    // A device can be read, but nothing is checked, listed or imported without a root, and
    // the refusal says what to do.
    let port = h.ok("start_simulator", json!({ "profile": "acme-infusion-p7" }));
    h.ok("identify", json!({ "port": port, "profile": null }));
    let stick = h._dir.path().join("stick");
    std::fs::create_dir(&stick).expect("mkdir");
    std::fs::write(stick.join("x.fkpkg"), b"not checked without a root").expect("write");
    for (cmd, args) in [
        ("check", json!({ "package": null })),
        ("list_packages", json!({})),
        ("import_packages", json!({ "path": stick })),
    ] {
        let e = h.invoke(cmd, args).expect_err(cmd);
        assert_eq!(e["kind"], "no_trust_root", "{cmd}: {e}");
        assert!(
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("fieldkit trust import FILE") && m.contains("--demo")),
            "{e}"
        );
    }

    // A file that is not a root is refused; the installation still has none.
    let bogus = h._dir.path().join("bogus.json");
    std::fs::write(&bogus, "{\"signed\": {}}\n").expect("write");
    assert_eq!(
        h.err_kind("import_trust_root", json!({ "path": bogus })),
        "refused"
    );
    assert_eq!(h.ok("app_info", json!({}))["needs_trust_root"], true);

    // One click: the DEMO, in its own home; the installation's home gets no demo material.
    let demo = h.ok("start_demo", json!({}));
    assert_eq!(demo["demo"], true);
    assert_eq!(demo["needs_trust_root"], false);
    let demo_home = PathBuf::from(demo["home"].as_str().expect("home"));
    assert_eq!(demo_home, h._dir.path().join("home-demo"));
    assert!(demo["usb_stick"].as_str().is_some(), "{demo}");
    let keys: Vec<String> = std::fs::read_dir(h.home().join("keys"))
        .map(|d| {
            d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        fieldkit_demo::read_kit(&fieldkit_core::Home::at(h.home()))
            .expect("read")
            .is_none()
            && !keys.iter().any(|k| k.starts_with("demo"))
            && !h.home().join("trust").exists(),
        "no demo keys or root in the installation's home: {keys:?}"
    );
    assert_eq!(h.ok("trust_details", json!({}))["demo"], true);
    // The DEMO trusts its own root only: a manufacturer's root is not installed there.
    assert_eq!(
        h.err_kind("import_trust_root", json!({ "path": bogus })),
        "demo"
    );
    assert_eq!(
        fieldkit_private::find_not_private(&demo_home).expect("walk the home"),
        vec![],
        "every directory 0700, every file 0600"
    );
}

#[test]
fn errors_say_what_kind_they_are() {
    let h = Harness::new();
    let settings = h.ok("get_settings", json!({}));
    let with = |patch: Value| {
        let mut s = settings.clone();
        for (k, v) in patch.as_object().expect("object") {
            s[k] = v.clone();
        }
        json!({ "settings": s })
    };
    for (cmd, args, kind) in [
        ("check", json!({ "package": null }), "no_device"),
        ("sync_now", json!({}), "no_hub"),
        (
            "set_settings",
            with(json!({ "hub": "not a url" })),
            "bad_hub_url",
        ),
        (
            "set_settings",
            with(json!({ "technician": " " })),
            "invalid_settings",
        ),
        (
            "import_packages",
            json!({ "path": "/nonexistent/stick" }),
            "not_found",
        ),
        (
            "start_simulator",
            json!({ "profile": "no-such-model" }),
            "unknown_profile",
        ),
        (
            "update",
            json!({ "checkId": 1, "acceptRisks": false, "onProgress": "__CHANNEL__:3" }),
            "stale_check",
        ),
    ] {
        assert_eq!(h.err_kind(cmd, args), kind, "{cmd}");
    }
    // A hub nobody listens on: a sync with something to send fails, and says the hub is
    // unreachable.
    let port = h.ok(
        "start_simulator",
        json!({ "profile": "vitalis-monitor-m3" }),
    );
    h.ok(
        "identify",
        json!({ "port": port, "profile": "vitalis-monitor-m3" }),
    );
    let saved = h.ok("set_settings", with(json!({ "hub": "http://127.0.0.1:9" })));
    assert_eq!(saved["hub"], "http://127.0.0.1:9");
    assert_eq!(h.err_kind("sync_now", json!({})), "hub_unreachable");
}

#[test]
fn progress_goes_over_the_channel_thinned() {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let channel: Channel<ProgressEvent> = Channel::new(move |body: InvokeResponseBody| {
        sink.lock()
            .expect("lock")
            .push(body.deserialize::<Value>().expect("JSON"));
        Ok(())
    });
    let mut p = ChannelProgress::new(channel);
    use fieldkit_core::apply::{Progress, Stage};
    p.stage(Stage::Uploading, "sending app 2.4.0");
    for done in (0..=1000).step_by(10) {
        p.bytes("app", done, 1000);
    }
    let got = got.lock().expect("lock");
    assert_eq!(
        got[0],
        json!({ "type": "stage", "stage": "uploading", "label": "uploading", "message": "sending app 2.4.0", "cancel_safe": true })
    );
    let bytes: Vec<&Value> = got.iter().filter(|e| e["type"] == "bytes").collect();
    assert!(
        bytes.len() < 10,
        "a burst is thinned: {} messages",
        bytes.len()
    );
    assert_eq!(
        *bytes.last().expect("the last count"),
        &json!({ "type": "bytes", "component": "app", "done": 1000, "total": 1000 })
    );
}

#[test]
fn cancel_stops_an_update_and_the_old_firmware_runs() {
    use tauri::Manager;
    let h = Harness::new();
    let stick = h.ok("app_info", json!({}))["usb_stick"].clone();
    h.ok("import_packages", json!({ "path": stick }));
    let port = h.ok("start_simulator", json!({ "profile": "acme-infusion-p7" }));
    let before = h.ok("identify", json!({ "port": port, "profile": null }));
    let check = h.ok("check", json!({ "package": null }));
    let id = check["id"].as_u64().expect("id");

    // The technician presses Cancel as soon as the first bytes are acknowledged.
    let handle = h.app.handle().clone();
    let channel: Channel<ProgressEvent> = Channel::new(move |body: InvokeResponseBody| {
        let event = body.deserialize::<Value>().expect("JSON");
        if event["type"] == "bytes" {
            crate::commands::cancel_update(handle.state::<AppState>());
        }
        Ok(())
    });
    let updated = tauri::async_runtime::block_on(crate::commands::update(
        h.app.handle().clone(),
        id,
        false,
        channel,
    ))
    .expect("a cancelled update is an outcome, not an error");
    let updated = serde_json::to_value(&updated).expect("JSON");
    assert_eq!(updated["completed"], false, "{updated}");
    let cancelled = updated["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["verdict"]["verdict"] != "applied"))
        .expect("a step that did not apply");
    assert_eq!(cancelled["verdict"]["verdict"], "cancelled", "{updated}");
    let versions = |d: &Value| -> Vec<Value> {
        d["slots"]
            .as_array()
            .expect("slots")
            .iter()
            .filter(|s| s["active"] == true)
            .map(|s| json!([s["component"], s["version"]]))
            .collect()
    };
    assert_eq!(
        versions(&updated["identity"]),
        versions(&before["identity"])
    );
    let entries = h.ok("audit_entries", json!({ "limit": 1 }));
    assert_eq!(entries[0]["event"], "update_cancelled");
    // A cancelled plan is spent: an update needs a new check.
    assert_eq!(
        h.err_kind(
            "update",
            json!({ "checkId": id, "acceptRisks": false, "onProgress": "__CHANNEL__:4" })
        ),
        "stale_check"
    );
}
