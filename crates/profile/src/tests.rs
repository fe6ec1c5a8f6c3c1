//! Profile loading: the shipped profiles load, and every broken rule names file, line and field.

use crate::{Family, FieldSource, FieldType, Profile, ProfileError, ProfileSet, UpdateMode};

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
    // Every file of device-profiles/, in file-name order: no list in code.
    assert_eq!(
        set.ids(),
        [
            "acme-infusion-p7",
            "labcore-analyzer-l2",
            "vitalis-monitor-m3-recovery",
            "vitalis-monitor-m3"
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
fn device_capabilities_are_declared() {
    let set = ProfileSet::builtin();
    let pump = set.get("acme-infusion-p7").unwrap();
    assert_eq!(pump.device.update, UpdateMode::McubootSwap);
    assert!(pump.device.update.has_test_slot());
    assert_eq!(*pump.device.write_alignment.get_ref(), 4);
    assert_eq!(*pump.device.buffer_fallback.get_ref(), 384);
    let recovery = set.get("vitalis-monitor-m3-recovery").unwrap();
    assert_eq!(recovery.device.update, UpdateMode::McubootInPlace);
    assert!(!recovery.device.update.has_test_slot());
    assert!(recovery.vendor_group().is_none());
    assert_eq!(
        recovery.device.application.as_ref().unwrap().get_ref(),
        "vitalis-monitor-m3"
    );
    // The recovery device and the application are told apart on USB.
    let app = set.get("vitalis-monitor-m3").unwrap();
    assert_eq!(recovery.model, app.model);
    assert_eq!(
        set.match_usb(0x2fe3, 0x0211, Some("VM-3 Recovery"))
            .unwrap()
            .id(),
        recovery.id()
    );
    assert_eq!(
        set.match_usb(0x2fe3, 0x0210, Some("VM-3 Service"))
            .unwrap()
            .id(),
        app.id()
    );
    let analyser = set.get("labcore-analyzer-l2").unwrap();
    assert_eq!(analyser.device.update, UpdateMode::YmodemInPlace);
    let serial = recovery.field("serial").unwrap();
    assert_eq!(*serial.from.get_ref(), FieldSource::UsbSerial);
    assert!(serial.or_typed);
    let battery = pump.field("battery_percent").unwrap();
    assert_eq!(*battery.kind.get_ref(), FieldType::Integer);
    assert_eq!(battery.key_or("battery_percent"), "bat");
}

#[test]
fn a_new_identity_field_is_toml_only() {
    // A field no code knows, read from the vendor group and used as a precondition.
    let text = PUMP
        .replacen(
            "[[component]]",
            "[identity.occlusion_alarm]\ntype = \"boolean\"\nfrom = \"vendor\"\nkey = \"occl\"\nlabel = \"Occlusion alarm\"\n\n[[precondition]]\nfield = \"occlusion_alarm\"\nop = \"==\"\nvalue = false\nexplanation = \"Clear the occlusion alarm first.\"\n\n[[component]]",
            1,
        )
        .replacen(
            "therapy_running = false\n\n[simulator.installed]",
            "therapy_running = false\nocclusion_alarm = false\n\n[simulator.installed]",
            1,
        );
    let p = Profile::parse(&text, "x/acme-infusion-p7.toml").unwrap();
    assert_eq!(
        *p.field("occlusion_alarm").unwrap().kind.get_ref(),
        FieldType::Boolean
    );
    assert!(
        p.preconditions
            .iter()
            .any(|c| c.field.get_ref() == "occlusion_alarm")
    );
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
            "{file}: 1 problem(s):\n  line 37: smp.vendor.group: found 1, required a vendor group (64 or more)"
        ),
    );
    check(
        "image = 1",
        "image = 0",
        &format!(
            "{file}: 1 problem(s):\n  line 93: component[1].image: image 0 is already used by component[0], required one component per image number"
        ),
    );
    check(
        "value = 40",
        "value = 140",
        &format!(
            "{file}: 1 problem(s):\n  line 100: precondition[0].value: found 140, required an integer from 0 to 100 for field \"battery_percent\""
        ),
    );
    check(
        "field = \"battery_percent\"",
        "field = \"charge\"",
        &format!(
            "{file}: 1 problem(s):\n  line 98: precondition[0].field: unknown identity field \"charge\", required one of the [identity] fields: battery_percent, bootloader_version, hardware_revision, model, security_counter, serial, therapy_running"
        ),
    );
    check(
        "netcore = \"1.4.0\"",
        "netcore = \"1.4\"",
        &format!(
            "{file}: 1 problem(s):\n  line 130: simulator.installed.netcore: found \"1.4\", required a version like \"1.2.3\", \"1.2.3+4\" or \"1.2.3.4\""
        ),
    );
    check(
        "write_alignment = 4",
        "write_alignment = 3",
        &format!(
            "{file}: 1 problem(s):\n  line 32: device.write_alignment: found 3, required a power of two from 1 to 256"
        ),
    );
    check(
        "update = \"mcuboot-swap\"",
        "update = \"ymodem-in-place\"",
        &format!(
            "{file}: 1 problem(s):\n  line 0: device.update: found \"ymodem-in-place\", required \"mcuboot-swap\" or \"mcuboot-in-place\" for protocol family \"smp\""
        ),
    );
    check(
        "type = \"integer\"\nfrom = \"vendor\"\nkey = \"bat\"",
        "type = \"integer\"\nfrom = \"line\"\nkey = \"bat\"",
        &format!(
            "{file}: 1 problem(s):\n  line 66: identity.battery_percent.from: found \"line\", which protocol family \"smp\" has not"
        ),
    );
    check(
        "label = \"Infusion running\"",
        "label = \"Infusion running\"\nmin = 0",
        &format!(
            "{file}: 1 problem(s):\n  line 73: identity.therapy_running.min: found a range on a \"boolean\" field, required type \"integer\""
        ),
    );
    check(
        "description = \"Pump application firmware\"",
        "description = \"Pump application firmware\"\nsha256_field = \"app_sha256\"",
        &format!(
            "{file}: 1 problem(s):\n  line 89: component[0].sha256_field: found \"app_sha256\", required one of the [identity] fields: battery_percent, bootloader_version, hardware_revision, model, security_counter, serial, therapy_running"
        ),
    );
    check(
        "description = \"Pump application firmware\"",
        "description = \"Pump application firmware\"\nsha256_field = \"battery_percent\"",
        &format!(
            "{file}: 1 problem(s):\n  line 89: component[0].sha256_field: found \"battery_percent\" (integer from \"vendor\"), required a text field the device reports, never typed"
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
        ("image = 1", "image = -1", 93),
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
