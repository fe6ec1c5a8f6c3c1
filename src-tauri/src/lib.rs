//! The technician's desktop app: a thin Tauri 2 shell over `fieldkit-core`.
//!
//! This crate holds no rule, no format and no protocol. Each command in [`commands`] takes
//! what the web view sends, calls the same `core` function the CLI calls (identify, check,
//! update, import, audit, sync), and hands back the result as JSON or an [`AppError`]
//! `{kind, message}`. Progress of an update streams over a `tauri::ipc::Channel`
//! ([`progress`]); cancelling raises the `core` [`Cancel`](fieldkit_core::apply::Cancel) flag.
//!
//! State lives in one managed [`AppState`]: the home directory, the audit log, the simulated
//! devices running in this process ([`sims`]), the last check (so an update applies exactly
//! what the technician saw checked) and the cancel flag of the update under way.
//!
//! [`builder`] is generic over the Tauri `Runtime`, so the tests run every command on Tauri's
//! mock runtime, and the binary runs them on Wry.

mod commands;
mod error;
mod progress;
mod sims;
mod state;

pub use error::AppError;
pub use state::AppState;

use tauri::{Manager, Runtime};

/// The app's commands and state added to `base`, on any runtime: `tauri::Builder::default()`
/// for the window, `tauri::test::mock_builder()` in tests.
pub fn builder<R: Runtime>(base: tauri::Builder<R>, state: AppState) -> tauri::Builder<R> {
    base.manage(state).invoke_handler(tauri::generate_handler![
        commands::app_info,
        commands::import_trust_root,
        commands::start_demo,
        commands::ui_ready,
        commands::list_devices,
        commands::start_simulator,
        commands::stop_simulator,
        commands::identify,
        commands::connected_device,
        commands::list_packages,
        commands::suggest_import_folders,
        commands::import_packages,
        commands::check,
        commands::update,
        commands::cancel_update,
        commands::audit_entries,
        commands::audit_verify,
        commands::audit_status,
        commands::sync_now,
        commands::confirm_hub_key,
        commands::get_settings,
        commands::set_settings,
        commands::trust_details,
    ])
}

/// Runs the app on the real runtime until its window closes. Simulated devices stop with it.
///
/// `fieldkit-app --demo` opens the DEMO, in its own home beside the installation's; without it
/// the app works in the installation's home, which trusts only a root pinned into the build or
/// explicitly imported.
pub fn run() {
    let mut demo = false;
    for arg in std::env::args_os().skip(1) {
        match arg.to_str() {
            Some("--demo") => demo = true,
            Some("--help" | "-h") => {
                println!(
                    "usage: fieldkit-app [--demo]\n\n  --demo  try fieldkit with simulated devices, demo keys and packages, in a home of\n          its own beside the data directory (FIELDKIT_HOME, or the platform's)"
                );
                return;
            }
            _ => {
                eprintln!("fieldkit-app: unknown argument {arg:?}; required nothing, or --demo");
                std::process::exit(2);
            }
        }
    }
    let state = match AppState::from_env(demo) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fieldkit-app: {}", e.message);
            std::process::exit(1);
        }
    };
    let app = builder(tauri::Builder::<tauri::Wry>::default(), state)
        .build(tauri::generate_context!())
        .unwrap_or_else(|e| {
            eprintln!("fieldkit-app: cannot start the window: {e}");
            std::process::exit(1);
        });
    app.run(|handle, event| {
        if let tauri::RunEvent::Exit = event {
            handle.state::<AppState>().stop_simulators();
        }
    });
}

#[cfg(test)]
mod tests;
