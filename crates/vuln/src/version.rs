//! Version orderings and version ranges.
//!
//! OSV ranges are ordered by the ecosystem's own rules; VEX statements and exposure queries use
//! `vers:` range specifiers. Both rest on the orderings of the `vers-rs` crate (semver, npm,
//! cargo, Debian's dpkg and integer-dot), so a version compares the same way everywhere here.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use vers_rs::range::VersionRange as _;
use vers_rs::schemes::{
    cargo::CargoVersion, deb::DebVersion, intdot::IntDotVersion, semver::SemVer,
};

/// A way of ordering versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Semantic Versioning 2.0.0 (a leading `v` and a missing patch number are tolerated, as
    /// firmware tags and Go modules write them).
    Semver,
    /// Cargo's semver.
    Cargo,
    /// Debian's dpkg ordering (Debian, Ubuntu).
    Deb,
    /// Dot-separated integers.
    Intdot,
}

impl Scheme {
    /// The ordering of an OSV ecosystem (the part before any `:`), if this crate knows it.
    /// Ecosystems without one are decided by their advisories' `versions` lists only.
    pub fn for_ecosystem(ecosystem: &str) -> Option<Scheme> {
        let base = ecosystem.split(':').next().unwrap_or("");
        match base {
            "crates.io" => Some(Scheme::Cargo),
            "npm" | "Go" | "Hex" | "Pub" | "SwiftURL" | "Bitnami" | "GitHub Actions" => {
                Some(Scheme::Semver)
            }
            "Debian" | "Ubuntu" => Some(Scheme::Deb),
            _ => None,
        }
    }

    /// The `vers:` scheme name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Semver => "semver",
            Scheme::Cargo => "cargo",
            Scheme::Deb => "deb",
            Scheme::Intdot => "intdot",
        }
    }

    /// Compares two versions; an error names the version that does not parse.
    pub fn compare(self, a: &str, b: &str) -> Result<Ordering, String> {
        fn cmp<T: FromStr + Ord>(scheme: Scheme, a: &str, b: &str) -> Result<Ordering, String> {
            let p = |s: &str| {
                s.parse::<T>()
                    .map_err(|_| format!("{s:?} is not a {} version", scheme.as_str()))
            };
            Ok(p(a)?.cmp(&p(b)?))
        }
        match self {
            Scheme::Semver => {
                let (a, b) = (lenient_semver(a), lenient_semver(b));
                cmp::<SemVer>(self, &a, &b)
            }
            Scheme::Cargo => cmp::<CargoVersion>(self, a, b),
            Scheme::Deb => cmp::<DebVersion>(self, a, b),
            Scheme::Intdot => cmp::<IntDotVersion>(self, a, b),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `v1.2.3` -> `1.2.3`, `1.2` -> `1.2.0`, `1` -> `1.0.0`; build metadata (`+45`, MCUboot's
/// build number) is dropped, as SemVer precedence ignores it; anything else unchanged.
pub(crate) fn lenient_semver(v: &str) -> String {
    let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
    let v = v.split('+').next().unwrap_or(v);
    let (core, rest) = match v.find(['-', '+']) {
        Some(i) => v.split_at(i),
        None => (v, ""),
    };
    let parts = core.split('.').count();
    let all_digits = core
        .split('.')
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    match (parts, all_digits) {
        (1, true) => format!("{core}.0.0{rest}"),
        (2, true) => format!("{core}.0{rest}"),
        _ => v.to_owned(),
    }
}

/// A `vers:` version range (`vers:semver/>=1.4.0|<1.5.0`), parsed by `vers-rs`.
#[derive(Debug, Clone, PartialEq)]
pub struct VersRange {
    text: String,
    range: vers_rs::DynamicVersionRange,
}

impl VersRange {
    /// Parses a range; the error says what is wrong and which schemes are supported.
    pub fn parse(text: &str) -> Result<VersRange, String> {
        let range = vers_rs::parse(text).map_err(|e| {
            format!(
                "{text:?} is not a supported vers range ({e}); required vers:SCHEME/CONSTRAINTS with SCHEME one of semver, npm, cargo, deb, intdot"
            )
        })?;
        Ok(VersRange {
            text: text.to_owned(),
            range,
        })
    }

    /// The range as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `version` lies in the range; an error says the version does not parse in the
    /// range's scheme.
    pub fn contains(&self, version: &str) -> Result<bool, String> {
        let v = if self.range.versioning_scheme() == "semver" {
            lenient_semver(version)
        } else {
            version.to_owned()
        };
        self.range
            .contains(v)
            .map_err(|e| format!("version {version:?} cannot be placed in {}: {e}", self.text))
    }
}

impl Serialize for VersRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for VersRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        VersRange::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orderings() {
        for (scheme, a, b, want) in [
            (Scheme::Semver, "1.4.0", "1.5.0", Ordering::Less),
            (Scheme::Semver, "v3.6.0", "3.6.0", Ordering::Equal),
            (Scheme::Semver, "1.10", "1.9.0", Ordering::Greater),
            (Scheme::Semver, "2.0.0-rc.1", "2.0.0", Ordering::Less),
            (Scheme::Semver, "1.2.3+45", "1.2.3", Ordering::Equal),
            (Scheme::Deb, "1:1.2-1", "1.9-1", Ordering::Greater),
            (Scheme::Deb, "2.0~rc1", "2.0", Ordering::Less),
            (Scheme::Cargo, "0.9.0", "0.10.0", Ordering::Less),
        ] {
            assert_eq!(scheme.compare(a, b), Ok(want), "{scheme} {a} {b}");
        }
        assert!(
            Scheme::Semver
                .compare("banana", "1.0.0")
                .unwrap_err()
                .contains("\"banana\" is not a semver version")
        );
    }

    #[test]
    fn ranges() {
        let r = VersRange::parse("vers:semver/>=1.4.0|<1.6.0").unwrap();
        assert_eq!(r.contains("1.4.0"), Ok(true));
        assert_eq!(r.contains("1.5.0"), Ok(true));
        assert_eq!(r.contains("v1.5"), Ok(true));
        assert_eq!(r.contains("1.6.0"), Ok(false));
        assert!(r.contains("not-a-version").is_err());
        let e = VersRange::parse("vers:cobol/>=1").unwrap_err();
        assert!(e.contains("SCHEME one of semver"), "{e}");
        assert!(VersRange::parse(">=1.0.0").is_err());
    }
}
