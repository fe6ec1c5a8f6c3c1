//! The MCUboot image version (`major.minor.revision+build`) and its three spellings.
//!
//! One value, three ways people write it: imgtool takes `1.2.3+45`, Zephyr's SMP image group
//! reports `1.2.3.45` (and drops `.0` when the build number is zero, see `img_mgmt_ver_str`),
//! and the rest of fieldkit speaks semver. Parsing accepts all of them; `Display` prints the
//! SMP form because that is what a technician sees the device report.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An MCUboot image version, as stored in the image header (`struct image_version`).
///
/// Ordering is by `(major, minor, revision, build)`, as MCUboot's `boot_version_cmp` does when
/// built with `MCUBOOT_VERSION_CMP_USE_BUILD_NUMBER`; without that option MCUboot ignores the
/// build number, so a downgrade rule that must match a device should compare
/// [`ImageVersion::without_build`] values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ImageVersion {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Revision (the third number).
    pub revision: u16,
    /// Build number (imgtool's `+N`, SMP's fourth number).
    pub build: u32,
}

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The text does not have the shape `MAJOR[.MINOR[.REVISION[(+|.)BUILD]]]`.
    #[error(
        "version {found:?} is not of the form MAJOR.MINOR.REVISION[+BUILD] or MAJOR.MINOR.REVISION.BUILD"
    )]
    Syntax {
        /// The text that was given.
        found: String,
    },
    /// A component is larger than its field in the image header allows.
    #[error("version {input:?}: {field} {found} exceeds its maximum {required}")]
    OutOfRange {
        /// The text that was given.
        input: String,
        /// Which component (`major`, `minor`, `revision`, `build`).
        field: &'static str,
        /// The value found.
        found: u64,
        /// The largest value the header can hold.
        required: u64,
    },
    /// A semver version with a pre-release tag or non-numeric build metadata has no
    /// MCUboot equivalent.
    #[error(
        "semver {found} has no MCUboot form: required no pre-release and build metadata that is a plain number"
    )]
    NotRepresentable {
        /// The semver version that was given.
        found: String,
    },
}

impl ImageVersion {
    /// A version from its four parts.
    pub const fn new(major: u8, minor: u8, revision: u16, build: u32) -> Self {
        Self {
            major,
            minor,
            revision,
            build,
        }
    }

    /// The same version with the build number set to zero.
    pub const fn without_build(self) -> Self {
        Self { build: 0, ..self }
    }

    /// The imgtool spelling, `1.2.3+45` (always with the build number).
    pub fn to_imgtool_string(&self) -> String {
        format!(
            "{}.{}.{}+{}",
            self.major, self.minor, self.revision, self.build
        )
    }

    /// The semver form: `major.minor.revision`, with the build number as build metadata when
    /// it is not zero (`1.2.3+45`).
    ///
    /// Build metadata is the only place semver offers for a fourth number that does not
    /// invent a pre-release. Note that semver precedence ignores build metadata: compare
    /// `ImageVersion`s, not the semver forms, when the build number matters.
    pub fn to_semver(&self) -> semver::Version {
        let mut v = semver::Version::new(
            u64::from(self.major),
            u64::from(self.minor),
            u64::from(self.revision),
        );
        if self.build != 0 {
            // A decimal number is always valid build metadata.
            v.build = semver::BuildMetadata::new(&self.build.to_string())
                .unwrap_or(semver::BuildMetadata::EMPTY);
        }
        v
    }

    /// The inverse of [`ImageVersion::to_semver`]: refuses pre-releases, non-numeric build
    /// metadata and components that do not fit the header's fields.
    pub fn from_semver(v: &semver::Version) -> Result<Self, VersionError> {
        if !v.pre.is_empty() {
            return Err(VersionError::NotRepresentable {
                found: v.to_string(),
            });
        }
        let input = v.to_string();
        let build = if v.build.is_empty() {
            0
        } else {
            let digits = v.build.as_str();
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VersionError::NotRepresentable { found: input });
            }
            fit(&input, "build", parse_u64(digits, &input)?, u32::MAX.into())? as u32
        };
        Ok(Self {
            major: fit(&input, "major", v.major, u8::MAX.into())? as u8,
            minor: fit(&input, "minor", v.minor, u8::MAX.into())? as u8,
            revision: fit(&input, "revision", v.patch, u16::MAX.into())? as u16,
            build,
        })
    }

    /// The 8 little-endian bytes of `struct image_version`.
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.major;
        b[1] = self.minor;
        b[2..4].copy_from_slice(&self.revision.to_le_bytes());
        b[4..8].copy_from_slice(&self.build.to_le_bytes());
        b
    }

    /// Reads `struct image_version` from its 8 little-endian bytes.
    pub fn from_bytes(b: [u8; 8]) -> Self {
        Self {
            major: b[0],
            minor: b[1],
            revision: u16::from_le_bytes([b[2], b[3]]),
            build: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

fn fit(input: &str, field: &'static str, found: u64, max: u64) -> Result<u64, VersionError> {
    if found > max {
        return Err(VersionError::OutOfRange {
            input: input.to_owned(),
            field,
            found,
            required: max,
        });
    }
    Ok(found)
}

fn parse_u64(digits: &str, input: &str) -> Result<u64, VersionError> {
    // Only plain decimal digits without a leading zero, as imgtool's regex requires; this
    // also keeps `Display` and `FromStr` a round trip.
    let syntax = || VersionError::Syntax {
        found: input.to_owned(),
    };
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return Err(syntax());
    }
    // More digits than any field can hold still deserves the range message, not a syntax one.
    Ok(digits.parse::<u64>().unwrap_or(u64::MAX))
}

impl fmt::Display for ImageVersion {
    /// The SMP form as Zephyr's `img_mgmt_ver_str` prints it: `1.2.3.45`, or `1.2.3` when the
    /// build number is zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.revision)?;
        if self.build != 0 {
            write!(f, ".{}", self.build)?;
        }
        Ok(())
    }
}

impl FromStr for ImageVersion {
    type Err = VersionError;

    /// Accepts `1`, `1.2`, `1.2.3` (missing parts are zero, as in imgtool), `1.2.3+45`
    /// (imgtool) and `1.2.3.45` (SMP).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || VersionError::Syntax {
            found: s.to_owned(),
        };
        let (main, plus_build) = match s.split_once('+') {
            Some((m, b)) => (m, Some(b)),
            None => (s, None),
        };
        let parts: Vec<&str> = main.split('.').collect();
        let (numbers, build) = match (parts.len(), plus_build) {
            (1..=3, b) => (&parts[..], b),
            (4, None) => (&parts[..3], Some(parts[3])),
            _ => return Err(syntax()),
        };
        if plus_build.is_some() && numbers.len() != 3 {
            return Err(syntax());
        }
        let mut n = [0u64; 3];
        for (slot, text) in n.iter_mut().zip(numbers) {
            *slot = parse_u64(text, s)?;
        }
        let build = match build {
            Some(b) => parse_u64(b, s)?,
            None => 0,
        };
        Ok(Self {
            major: fit(s, "major", n[0], u8::MAX.into())? as u8,
            minor: fit(s, "minor", n[1], u8::MAX.into())? as u8,
            revision: fit(s, "revision", n[2], u16::MAX.into())? as u16,
            build: fit(s, "build", build, u32::MAX.into())? as u32,
        })
    }
}

impl Serialize for ImageVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ImageVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, expect: Result<(u8, u8, u16, u32), &str>) {
        let got = input.parse::<ImageVersion>();
        match (got, expect) {
            (Ok(v), Ok((a, b, c, d))) => assert_eq!(v, ImageVersion::new(a, b, c, d), "{input}"),
            (Err(e), Err(fragment)) => {
                assert!(e.to_string().contains(fragment), "{input}: {e}")
            }
            (got, expect) => panic!("{input}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn parse_forms() {
        check("1.2.3", Ok((1, 2, 3, 0)));
        check("1.2.3+45", Ok((1, 2, 3, 45)));
        check("1.2.3.45", Ok((1, 2, 3, 45)));
        check("1", Ok((1, 0, 0, 0)));
        check("1.2", Ok((1, 2, 0, 0)));
        check("0.0.0+0", Ok((0, 0, 0, 0)));
        check("255.255.65535.4294967295", Ok((255, 255, 65535, u32::MAX)));
    }

    #[test]
    fn parse_refusals() {
        check("", Err("not of the form"));
        check("1.2.3.4.5", Err("not of the form"));
        check("1.2+3", Err("not of the form"));
        check("1.2.3+4.5", Err("not of the form"));
        check("1.2.3.4+5", Err("not of the form"));
        check("a.b.c", Err("not of the form"));
        check("+1.2.3", Err("not of the form"));
        check("1.+2.3", Err("not of the form"));
        check("01.2.3", Err("not of the form"));
        check("1.2.-3", Err("not of the form"));
        check(" 1.2.3", Err("not of the form"));
        check("256.0.0", Err("major 256 exceeds its maximum 255"));
        check("1.256.0", Err("minor 256 exceeds its maximum 255"));
        check("1.0.65536", Err("revision 65536 exceeds its maximum 65535"));
        check(
            "1.0.0+4294967296",
            Err("build 4294967296 exceeds its maximum 4294967295"),
        );
        check("1.0.0+99999999999999999999999", Err("build"));
    }

    #[test]
    fn display_follows_zephyr() {
        assert_eq!(ImageVersion::new(1, 2, 3, 0).to_string(), "1.2.3");
        assert_eq!(ImageVersion::new(1, 2, 3, 45).to_string(), "1.2.3.45");
        assert_eq!(ImageVersion::new(1, 2, 3, 0).to_imgtool_string(), "1.2.3+0");
    }

    #[test]
    fn ordering_includes_build() {
        let v = |s: &str| s.parse::<ImageVersion>().unwrap();
        assert!(v("1.2.3+4") < v("1.2.3+5"));
        assert!(v("1.2.3+400") < v("1.2.4"));
        assert!(v("1.9.0") < v("2.0.0"));
        assert!(v("1.2.3+5").without_build() == v("1.2.3"));
    }

    #[test]
    fn semver_refusals() {
        let s = |t: &str| semver::Version::parse(t).unwrap();
        assert!(ImageVersion::from_semver(&s("1.2.3-rc.1")).is_err());
        assert!(ImageVersion::from_semver(&s("1.2.3+abc")).is_err());
        assert!(ImageVersion::from_semver(&s("256.2.3")).is_err());
        assert_eq!(
            ImageVersion::from_semver(&s("1.2.3+7")).unwrap(),
            ImageVersion::new(1, 2, 3, 7)
        );
    }

    fn any_version() -> impl Strategy<Value = ImageVersion> {
        (any::<u8>(), any::<u8>(), any::<u16>(), any::<u32>())
            .prop_map(|(a, b, c, d)| ImageVersion::new(a, b, c, d))
    }

    proptest! {
        #[test]
        fn round_trips(v in any_version()) {
            prop_assert_eq!(v.to_string().parse::<ImageVersion>().unwrap(), v);
            prop_assert_eq!(v.to_imgtool_string().parse::<ImageVersion>().unwrap(), v);
            prop_assert_eq!(ImageVersion::from_semver(&v.to_semver()).unwrap(), v);
            prop_assert_eq!(ImageVersion::from_bytes(v.to_bytes()), v);
            let json = serde_json::to_string(&v).unwrap();
            prop_assert_eq!(serde_json::from_str::<ImageVersion>(&json).unwrap(), v);
        }
    }
}
