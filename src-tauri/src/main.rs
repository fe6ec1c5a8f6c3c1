//! `fieldkit-app`: the technician's desktop app (see the library's documentation).

// No console window next to the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    fieldkit_app::run();
}
