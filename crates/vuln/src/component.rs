//! What is matched: a package identity from a purl, component hashes, an installed component.

use std::fmt;
use std::str::FromStr;

use packageurl::PackageUrl;
use serde::{Deserialize, Serialize};

/// A package's identity: a purl's type, namespace and name, normalised by the `packageurl`
/// crate (lower case where the purl type says so). Version, qualifiers and subpath are not
/// part of it. `pkg:generic/acme-medical/acme-infusion-p7-netcore` is a manufacturer's firmware
/// component: `generic` type, the vendor as namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PackageKey(String);

impl PackageKey {
    /// Parses a purl into its identity and its version (if it has one).
    pub fn from_purl(purl: &str) -> Result<(PackageKey, Option<String>), String> {
        let p = PackageUrl::from_str(purl).map_err(|e| {
            format!(
                "{:?} is not a package URL ({e}); required pkg:TYPE/[NAMESPACE/]NAME[@VERSION]",
                purl.chars().take(200).collect::<String>()
            )
        })?;
        let mut key = format!("pkg:{}/", p.ty());
        if let Some(ns) = p.namespace() {
            key.push_str(ns);
            key.push('/');
        }
        key.push_str(p.name());
        Ok((PackageKey(key), p.version().map(str::to_owned)))
    }

    /// The identity as a versionless purl.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The purl type (`generic`, `github`, `npm`, ...).
    pub fn purl_type(&self) -> &str {
        self.0
            .strip_prefix("pkg:")
            .and_then(|s| s.split('/').next())
            .unwrap_or("")
    }
}

impl fmt::Display for PackageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A hash of a component's bytes: algorithm in CycloneDX spelling (`SHA-256`), lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hash {
    /// Algorithm, CycloneDX spelling (`SHA-256`, `SHA-512`, `BLAKE3`, ...).
    pub alg: String,
    /// Lower-case hex.
    pub content: String,
}

impl Hash {
    /// A hash from any common spelling of the algorithm (`sha256`, `sha-256`, `SHA256`) and hex
    /// in either case; `None` if the content is not hex of a plausible length.
    pub fn new(alg: &str, content: &str) -> Option<Hash> {
        let a = alg.to_ascii_uppercase().replace(['-', '_'], "");
        let alg = match a.as_str() {
            "SHA1" => "SHA-1",
            "SHA256" => "SHA-256",
            "SHA384" => "SHA-384",
            "SHA512" => "SHA-512",
            "SHA3256" => "SHA3-256",
            "SHA3384" => "SHA3-384",
            "SHA3512" => "SHA3-512",
            "BLAKE2B256" => "BLAKE2b-256",
            "BLAKE2B384" => "BLAKE2b-384",
            "BLAKE2B512" => "BLAKE2b-512",
            "BLAKE3" => "BLAKE3",
            "MD5" => "MD5",
            _ => return None,
        };
        let ok =
            (32..=128).contains(&content.len()) && content.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| Hash {
            alg: alg.to_owned(),
            content: content.to_ascii_lowercase(),
        })
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.alg, self.content)
    }
}

/// One installed component, as a release's SBOM lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Its identity, if its purl parsed.
    pub package: Option<PackageKey>,
    /// Its version as the SBOM says it.
    pub version: String,
    /// Hashes of its bytes.
    #[serde(default)]
    pub hashes: Vec<Hash>,
}

impl Component {
    /// A component from an SBOM entry: its purl (whose version, if any, is the fallback for an
    /// empty `version`), its version and its hashes as `(alg, content)` pairs; unusable hashes
    /// are left out.
    pub fn new(purl: &str, version: &str, hashes: &[(String, String)]) -> Component {
        let (package, purl_version) = match PackageKey::from_purl(purl) {
            Ok((k, v)) => (Some(k), v),
            Err(_) => (None, None),
        };
        let version = if version.is_empty() {
            purl_version.unwrap_or_default()
        } else {
            version.to_owned()
        };
        Component {
            package,
            version,
            hashes: hashes.iter().filter_map(|(a, c)| Hash::new(a, c)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise_as_the_purl_type_says() {
        let k = |s: &str| PackageKey::from_purl(s).unwrap();
        assert_eq!(
            k("pkg:github/Mbed-TLS/mbedtls@v3.6.0"),
            (
                PackageKey("pkg:github/mbed-tls/mbedtls".into()),
                Some("v3.6.0".into())
            )
        );
        assert_eq!(
            k("pkg:generic/acme-medical/acme-infusion-p7-netcore@1.4.0?arch=arm").0,
            k("pkg:generic/acme-medical/acme-infusion-p7-netcore").0
        );
        assert_ne!(
            k("pkg:generic/acme-medical/netcore").0,
            k("pkg:generic/other-vendor/netcore").0
        );
        assert_eq!(k("pkg:generic/lwip@2.2.0").0.purl_type(), "generic");
        assert!(PackageKey::from_purl("generic:lwip").is_err());
    }

    #[test]
    fn hashes_accept_common_spellings() {
        let h = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
        assert_eq!(
            Hash::new("sha256", h),
            Hash::new("SHA-256", &h.to_lowercase())
        );
        assert_eq!(Hash::new("sha-256", h).unwrap().alg, "SHA-256");
        assert_eq!(Hash::new("crc32", h), None);
        assert_eq!(Hash::new("SHA-256", "zz"), None);
    }
}
