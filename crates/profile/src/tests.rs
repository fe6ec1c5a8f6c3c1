//! Profile loading: the shipped profiles load, and every broken rule names file, line and field.

use crate::{Family, IdentityField, Profile, ProfileError, ProfileSet};

const PUMP: &str = include_str!("../../../device-profiles/acme-infusion-p7.toml");

/// Replaces `from` by `to` in the pump profile, loads it, and compares the rendered error.
#[track_caller]
fn check(from: &str, to: &str, expect: &str) {
    assert!(PUMP.contains(from), "fixture does not contain {from:?}");
    let text = PUMP.replacen(from, to, 1);
    let err = Profile::parse(&text, "device-profiles/acme-infusion-p7.toml")
        .expect_err("profile should be refused");
    assert_eq!(err.to_string(), expect);
}

#[test]
fn shipped_profiles_load() {
    let set = ProfileSet::builtin();
    assert_eq!(
        set.ids(),
        [
            "acme-infusion-p7",
            "vitalis-monitor-m3",
            "labcore-analyzer-l2"
        ]
    );
    let pump = set.get("acme-infusion-p7").unwrap();
    assert_eq!(pump.family(), Family::Smp);
    assert_eq!(pump.components.len(), 2);
    assert_eq!(
        pump.component_by_image(1).unwrap().name.get_ref(),
        "netcore"
    );
    assert_eq!(pump.line.bits_per_char(), 10);
    assert!(
        set.match_usb(0x2fe3, 0x0100, Some("InfuSafe P7 Service Port"))
            .is_some()
    );
    assert!(set.match_usb(0x2fe3, 0x0100, Some("Other")).is_none());
    assert_eq!(
        set.get("labcore-analyzer-l2").unwrap().family(),
        Family::Line
    );
}

#[test]
fn field_names_round_trip() {
    for f in IdentityField::ALL {
        assert_eq!(IdentityField::from_name(f.name()), Some(f));
    }
}

#[test]
fn broken_rules_name_file_line_and_field() {
    let file = "device-profiles/acme-infusion-p7.toml";
    check(
        "baud = 115200",
        "baud = 12",
        &format!("{file}: 1 problem(s):\n  line 15: line.baud: found 12, required 300 to 4000000"),
    );
    check(
        "data_bits = 8",
        "data_bits = 9",
        &format!("{file}: 1 problem(s):\n  line 16: line.data_bits: found 9, required 5 to 8"),
    );
    check(
        "stop_bits = 1",
        "stop_bits = 3",
        &format!("{file}: 1 problem(s):\n  line 18: line.stop_bits: found 3, required 1 or 2"),
    );
    check(
        "vid = 0x2fe3",
        "vid = 0x12fe3",
        &format!(
            "{file}: 1 problem(s):\n  line 10: usb.vid: found 0x12fe3, required at most 0xffff"
        ),
    );
    check(
        "id = \"acme-infusion-p7\"",
        "id = \"acme-pump\"",
        &format!(
            "{file}: 1 problem(s):\n  line 4: id: found \"acme-pump\", required the file name \"acme-infusion-p7\""
        ),
    );
    check(
        "group = 64",
        "group = 1",
        &format!(
            "{file}: 1 problem(s):\n  line 26: smp.identity.group: found 1, required a vendor group (64 or more)"
        ),
    );
    check(
        "image = 1",
        "image = 0",
        &format!(
            "{file}: 1 problem(s):\n  line 38: component[1].image: image 0 is already used by component[0], required one component per image number"
        ),
    );
    check(
        "value = 40",
        "value = 140",
        &format!(
            "{file}: 1 problem(s):\n  line 45: precondition[0].value: found 140, required an integer from 0 to 100 for field \"battery_percent\""
        ),
    );
    check(
        "field = \"battery_percent\"",
        "field = \"charge\"",
        &format!(
            "{file}: 1 problem(s):\n  line 43: precondition[0].field: unknown identity field \"charge\", required one of model, serial, hardware_revision, bootloader_version, battery_percent, therapy_running, security_counter"
        ),
    );
    check(
        "netcore = \"1.4.0\"",
        "netcore = \"1.4\"",
        &format!(
            "{file}: 1 problem(s):\n  line 74: simulator.installed.netcore: found \"1.4\", required a version like \"1.2.3\", \"1.2.3+4\" or \"1.2.3.4\""
        ),
    );
    check(
        "framing = \"console\"",
        "framing = \"slip\"",
        &format!(
            "{file}: 1 problem(s):\n  line 23: protocol.framing: found \"slip\", required \"console\" or \"raw\""
        ),
    );
}

#[test]
fn several_problems_are_reported_together() {
    let text =
        PUMP.replacen("baud = 115200", "baud = 1", 1)
            .replacen("value = 40", "value = true", 1);
    let Err(ProfileError::Invalid { problems, .. }) =
        Profile::parse(&text, "x/acme-infusion-p7.toml")
    else {
        panic!("expected Invalid");
    };
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["line.baud", "precondition[0].value"]);
}

#[test]
fn syntax_errors_name_the_line() {
    let cases = [
        ("parity = \"none\"", "parity = \"mark\"", 17),
        ("kind = \"infusion pump\"", "kind = \"infusion pump", 7),
        ("[line]", "[line]\nspeed = 9600", 15),
        ("image = 1", "image = -1", 38),
    ];
    for (from, to, line) in cases {
        let text = PUMP.replacen(from, to, 1);
        match Profile::parse(&text, "p.toml") {
            Err(ProfileError::Syntax { line: found, .. }) => assert_eq!(found, line, "{to}"),
            other => panic!("{to}: expected a syntax error, got {other:?}"),
        }
    }
}

#[test]
fn hostile_input_is_refused_without_panic() {
    for text in [
        "",
        "\0\0\0",
        "id = 5",
        &"[".repeat(10_000),
        &"a = [".repeat(5_000),
    ] {
        assert!(Profile::parse(text, "p.toml").is_err());
    }
}

#[test]
fn duplicate_ids_are_refused() {
    let mut set = ProfileSet::builtin();
    let err = set
        .add(PUMP, "elsewhere/acme-infusion-p7.toml")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("already defined by device-profiles/acme-infusion-p7.toml"),
        "{err}"
    );
}
