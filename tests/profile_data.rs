//! A device model is data. A new identity field — here `occlusion_alarm`, read from the
//! pump's vendor group and used as a safety precondition — is added by writing one profile
//! and nothing else: the simulator plays it, `identify` reads and shows it, and `check`
//! refuses an update while the alarm is on, saying so.

mod support;

use support::{Sim, fieldkit};

/// The pump's profile with one more field, as a manufacturer would write it: a new model id,
/// the field, a precondition on it, and the simulated device's value. No code changes.
fn pump_with_occlusion_alarm() -> String {
    let pump = include_str!("../device-profiles/acme-infusion-p7.toml");
    pump.replacen(
        "id = \"acme-infusion-p7\"",
        "id = \"acme-infusion-p7-occl\"",
        1,
    )
    .replacen("pid = 0x0100", "pid = 0x0101", 1)
    .replacen(
        "[[component]]",
        r#"[identity.occlusion_alarm]
type = "boolean"
from = "vendor"
key = "occl"
label = "Occlusion alarm"

[[precondition]]
field = "occlusion_alarm"
op = "=="
value = false
explanation = "The occlusion alarm must be cleared: check the line for kinks and clamps first."

[[component]]"#,
        1,
    )
    .replacen(
        "therapy_running = false\n\n[simulator.installed]",
        "therapy_running = false\nocclusion_alarm = false\n\n[simulator.installed]",
        1,
    )
}

#[test]
fn a_new_identity_field_is_one_profile_and_nothing_else() {
    let home = support::home();
    fieldkit(home.path(), &["demo", "init"]).ok();
    let profiles = home.path().join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("acme-infusion-p7-occl.toml"),
        pump_with_occlusion_alarm(),
    )
    .unwrap();
    let profile = ["--profile", "acme-infusion-p7-occl"];

    let sim = Sim::start_in_home(home.path(), "acme-infusion-p7-occl", &[]);
    let mut identify = vec!["--json", "identify", "--port", sim.port()];
    identify.extend(profile);
    let id = fieldkit(home.path(), &identify);
    id.ok();
    let field = &id.json()["fields"]["occlusion_alarm"];
    assert_eq!(field["value"], false);
    assert_eq!(field["label"], "Occlusion alarm");
    assert_eq!(field["source"], "vendor");
    let mut text = vec!["identify", "--port", sim.port()];
    text.extend(profile);
    assert!(
        fieldkit(home.path(), &text)
            .ok()
            .contains("Occlusion alarm          false")
    );

    // With the alarm on, the precondition refuses the update and says why.
    drop(sim);
    let sim = Sim::start_in_home(
        home.path(),
        "acme-infusion-p7-occl",
        &["--fault", "field=occlusion_alarm=true"],
    );
    let mut check = vec!["--json", "check", "--port", sim.port()];
    check.extend(profile);
    let run = fieldkit(home.path(), &check);
    let findings: Vec<serde_json::Value> = run.json()["plan"]["rules"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["required"] == "occlusion_alarm == false")
        .cloned()
        .collect();
    assert_eq!(findings.len(), 1, "{}", run.stdout);
    assert_eq!(findings[0]["passed"], false);
    assert_eq!(findings[0]["found"], "occlusion_alarm = true");
    assert_eq!(run.json()["plan"]["verdict"], "refused");
}
