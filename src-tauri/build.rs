//! Declares the app's commands so that each gets an `allow-*` permission, and the one
//! capability file in `capabilities/` grants exactly those to the main window.

/// Every command of `src/commands.rs`; a command missing here cannot be allowed.
const COMMANDS: &[&str] = &[
    "app_info",
    "import_trust_root",
    "start_demo",
    "ui_ready",
    "list_devices",
    "start_simulator",
    "stop_simulator",
    "identify",
    "connected_device",
    "list_packages",
    "suggest_import_folders",
    "import_packages",
    "check",
    "update",
    "cancel_update",
    "audit_entries",
    "audit_verify",
    "audit_status",
    "sync_now",
    "confirm_hub_key",
    "get_settings",
    "set_settings",
    "trust_details",
];

fn main() {
    // The UI is built by `npm run build` in ui/ (`cargo xtask run|test` do it). Without it the
    // app would have nothing to show: embed a page that says how to build it instead.
    let dist = std::path::Path::new("../ui/dist");
    if !dist.join("index.html").exists() {
        std::fs::create_dir_all(dist).expect("create ui/dist");
        std::fs::write(
            dist.join("index.html"),
            "<!doctype html><meta charset=utf-8><title>fieldkit</title><p>The user interface was not built. Run <code>cargo xtask run</code> (or <code>npm install &amp;&amp; npm run build</code> in ui/) and start the app again.</p>\n",
        )
        .expect("write ui/dist/index.html");
    }
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri build script");
}
