//! Pins the manufacturer's first trust root into the build: `FIELDKIT_TRUST_ROOT=FILE` at build
//! time (`cargo xtask dist --trust-root FILE` sets it) embeds FILE's bytes; without it the
//! build pins nothing. `fieldkit_core::pinned` reads what this writes.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FIELDKIT_TRUST_ROOT");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("pinned-root.json");
    let bytes = match std::env::var_os("FIELDKIT_TRUST_ROOT").filter(|v| !v.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("FIELDKIT_TRUST_ROOT={}: {e}", path.display());
            });
            assert!(
                !bytes.is_empty(),
                "FIELDKIT_TRUST_ROOT={} is empty; required a trust root (root.json)",
                path.display()
            );
            bytes
        }
        None => Vec::new(),
    };
    std::fs::write(&out, bytes).expect("write the pinned root into OUT_DIR");
}
