//! Policy evaluation, one table of cases against the shipped release policy.

use super::*;

fn check(licences: &[&str], verdict: Verdict, rule: &str) {
    let policy = Policy::release_default();
    let list: Vec<String> = licences.iter().map(|s| s.to_string()).collect();
    let e = policy.evaluate(&list);
    assert_eq!(e.verdict, verdict, "{licences:?}: {e:?}");
    if !rule.is_empty() {
        assert!(
            e.terms
                .iter()
                .any(|t| t.rule == rule && t.verdict == verdict),
            "{licences:?}: no term decided by {rule:?}: {e:?}"
        );
    }
}

#[test]
fn the_shipped_policy_parses() {
    let p = Policy::parse(RELEASE_DEFAULT).unwrap();
    assert_eq!(p, Policy::release_default());
    assert!(p.categories.iter().any(|c| c.name == "strong-copyleft"));
}

#[test]
fn verdicts() {
    check(&["Apache-2.0"], Verdict::Allow, "licence Apache-2.0");
    check(&["MIT OR Apache-2.0"], Verdict::Allow, "");
    // OR: the licensee picks the best alternative; AND: every part applies.
    check(&["MIT OR GPL-3.0-only"], Verdict::Allow, "");
    check(
        &["MIT AND GPL-3.0-only"],
        Verdict::Deny,
        "category strong-copyleft",
    );
    check(
        &["GPL-2.0-or-later"],
        Verdict::Deny,
        "category strong-copyleft",
    );
    check(&["LGPL-2.1-only"], Verdict::Flag, "category weak-copyleft");
    check(
        &["MIT AND MPL-2.0"],
        Verdict::Flag,
        "category weak-copyleft",
    );
    check(&["LGPL-2.1-only OR GPL-2.0-only"], Verdict::Flag, "");
    // Several licences on one component all apply.
    check(
        &["MIT", "GPL-3.0-only"],
        Verdict::Deny,
        "category strong-copyleft",
    );
    check(
        &["LicenseRef-acme-proprietary"],
        Verdict::Flag,
        "category licence-ref",
    );
    check(&["Unicode-3.0"], Verdict::Flag, "otherwise");
    // A deprecated id names its licence precisely.
    check(&["GPL-2.0"], Verdict::Flag, "otherwise");
}

#[test]
fn unknown_is_always_flagged() {
    check(&[], Verdict::Flag, "no licence declared");
    check(&["NOASSERTION"], Verdict::Flag, "NOASSERTION");
    check(&["DEMO proprietary"], Verdict::Flag, "unknown licence");
    check(&["Apache 2"], Verdict::Flag, "unknown licence");
    check(&["FooBar-1.0"], Verdict::Flag, "unknown licence");
    check(
        &["MIT AND OR Apache-2.0"],
        Verdict::Flag,
        "unparsable expression",
    );
    check(&["(MIT"], Verdict::Flag, "unparsable expression");
    // An unknown licence next to a denied one: the denial still counts.
    check(
        &["NOASSERTION", "AGPL-3.0-only"],
        Verdict::Deny,
        "category strong-copyleft",
    );
    // A policy cannot lower `unknown` below flag.
    let p = Policy::parse("otherwise = \"allow\"\nunknown = \"allow\"\n").unwrap();
    assert_eq!(p.evaluate(&["NOASSERTION".into()]).verdict, Verdict::Flag);
    let p = Policy::parse("otherwise = \"allow\"\nunknown = \"deny\"\n").unwrap();
    assert_eq!(p.evaluate(&["Some licence".into()]).verdict, Verdict::Deny);
}

#[test]
fn an_id_beats_its_category_and_the_worst_category_wins() {
    let p = Policy::parse(
        r#"
otherwise = "allow"
[licences]
"LGPL-2.1-only" = "allow"
"GPL-2.0-only WITH Classpath-exception-2.0" = "flag"
[category.mine]
verdict = "flag"
licences = ["LGPL-2.1-only", "MPL-2.0"]
[category.copyleft]
verdict = "deny"
"#,
    )
    .unwrap();
    let v = |s: &str| p.evaluate(&[s.to_string()]);
    assert_eq!(v("LGPL-2.1-only").verdict, Verdict::Allow);
    // MPL-2.0 is in `mine` (flag) and in SPDX's copyleft list (deny): the worst wins.
    assert_eq!(v("MPL-2.0").verdict, Verdict::Deny);
    assert_eq!(
        v("GPL-2.0-only WITH Classpath-exception-2.0").verdict,
        Verdict::Flag
    );
    assert_eq!(v("GPL-2.0-only").verdict, Verdict::Deny);
    let e = v("MIT AND GPL-3.0-only");
    assert_eq!(
        e.deciding().map(|t| t.licence.as_str()).collect::<Vec<_>>(),
        ["GPL-3.0-only"]
    );
}

#[test]
fn bad_policies_say_what_is_wrong() {
    for (text, fragment) in [
        ("", "missing field `otherwise`"),
        (
            "otherwise = \"maybe\"",
            "unknown variant `maybe`, expected one of `allow`, `flag`, `deny`",
        ),
        (
            "otherwise = \"allow\"\n[licences]\n\"Apache 2\" = \"allow\"",
            "[licences] names \"Apache 2\", required an SPDX licence id",
        ),
        (
            "otherwise = \"allow\"\n[category.strict]\nverdict = \"deny\"",
            "category \"strict\" has no licences list, required a list or one of the built-in categories copyleft",
        ),
        (
            "otherwise = \"allow\"\nsurprise = 1",
            "unknown field `surprise`",
        ),
        (
            "otherwise = \"allow\"\n[category.x]\nverdict = \"deny\"\nlicences = [\"GPL-9.0\"]",
            "[category.x] names \"GPL-9.0\"",
        ),
    ] {
        let e = Policy::parse(text).unwrap_err().to_string();
        assert!(e.contains(fragment), "{text:?}: {e}");
    }
}
