//! CycloneDX 1.5/1.6 JSON SBOM validation.
//!
//! Not a full JSON-schema validation: the checks are the ones fieldkit relies on when it
//! answers "which software runs on which device" (format, spec version, and for every
//! component a name, a version, a parseable purl, well-formed hashes and licences). Unknown
//! fields are allowed, as the CycloneDX schema allows extensions.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, TrustError};
use crate::rules;

/// What the SBOM says, in the parts fieldkit shows and records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbomSummary {
    /// `1.5` or `1.6`.
    pub spec_version: String,
    /// Every component, flattened (nested components included).
    pub components: Vec<SbomComponent>,
}

/// One component of the SBOM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbomComponent {
    /// CycloneDX component type (`firmware`, `library`, ...).
    #[serde(default)]
    pub kind: String,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Package URL.
    pub purl: String,
    /// Licence ids, names or expressions.
    pub licenses: Vec<String>,
    /// Hashes of the component's bytes, as the SBOM gives them (hash matching of firmware).
    #[serde(default)]
    pub hashes: Vec<SbomHash>,
}

/// One hash of a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SbomHash {
    /// Algorithm, CycloneDX spelling (`SHA-256`).
    pub alg: String,
    /// Hex digest.
    pub content: String,
}

fn bad(found: impl Into<String>, required: impl Into<String>) -> TrustError {
    TrustError::refused(
        rules::SBOM,
        found,
        required,
        "The package's software bill of materials is not a valid CycloneDX 1.5 or 1.6 JSON document.",
    )
}

const HASH_ALGS: [(&str, usize); 12] = [
    ("MD5", 32),
    ("SHA-1", 40),
    ("SHA-256", 64),
    ("SHA-384", 96),
    ("SHA-512", 128),
    ("SHA3-256", 64),
    ("SHA3-384", 96),
    ("SHA3-512", 128),
    ("BLAKE2b-256", 64),
    ("BLAKE2b-384", 96),
    ("BLAKE2b-512", 128),
    ("BLAKE3", 64),
];

/// Component types of CycloneDX 1.5; 1.6 adds [`CRYPTOGRAPHIC_ASSET`].
const COMPONENT_TYPES: [&str; 12] = [
    "application",
    "framework",
    "library",
    "container",
    "platform",
    "operating-system",
    "device",
    "device-driver",
    "firmware",
    "file",
    "machine-learning-model",
    "data",
];

/// The component type CycloneDX 1.6 added (a CBOM's algorithms, keys and certificates).
const CRYPTOGRAPHIC_ASSET: &str = "cryptographic-asset";

fn str_field<'a>(v: &'a Value, field: &str, at: &str) -> Result<&'a str> {
    match v.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        other => Err(bad(
            format!(
                "{at}.{field} = {}",
                other.map_or("absent".into(), |o| o.to_string())
            ),
            format!("{at}.{field} as a non-empty string"),
        )),
    }
}

/// Checks a purl's shape: `pkg:TYPE/[NAMESPACE/]NAME[@VERSION][?QUALIFIERS][#SUBPATH]`.
fn purl_ok(purl: &str) -> bool {
    let Some(rest) = purl.strip_prefix("pkg:") else {
        return false;
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let Some((ty, path)) = rest.split_once('/') else {
        return false;
    };
    let ty_ok = !ty.is_empty()
        && ty.as_bytes()[0].is_ascii_alphabetic()
        && ty
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b));
    let name = path.rsplit_once('@').map_or(path, |(n, _)| n);
    ty_ok && !name.is_empty() && !name.ends_with('/')
}

fn component(v: &Value, spec: &str, at: &str, out: &mut Vec<SbomComponent>) -> Result<()> {
    let ty = str_field(v, "type", at)?;
    let known = COMPONENT_TYPES.contains(&ty) || (spec == "1.6" && ty == CRYPTOGRAPHIC_ASSET);
    if !known {
        return Err(bad(
            format!("{at}.type = {ty}"),
            format!("a CycloneDX {spec} component type"),
        ));
    }
    let name = str_field(v, "name", at)?.to_owned();
    let version = str_field(v, "version", at)?.to_owned();
    let purl = str_field(v, "purl", at)?.to_owned();
    if !purl_ok(&purl) {
        return Err(bad(
            format!("{at}.purl = {purl}"),
            "a package URL pkg:type/name@version",
        ));
    }
    let mut hash_list = Vec::new();
    if let Some(hashes) = v.get("hashes") {
        let list = hashes
            .as_array()
            .ok_or_else(|| bad(format!("{at}.hashes = {hashes}"), "an array"))?;
        for (i, h) in list.iter().enumerate() {
            let at = format!("{at}.hashes[{i}]");
            let alg = str_field(h, "alg", &at)?;
            let content = str_field(h, "content", &at)?;
            let Some((_, len)) = HASH_ALGS.iter().find(|(a, _)| *a == alg) else {
                return Err(bad(
                    format!("{at}.alg = {alg}"),
                    "a CycloneDX hash algorithm",
                ));
            };
            if content.len() != *len || !content.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(
                    format!("{at}.content = {content}"),
                    format!("{len} hex digits for {alg}"),
                ));
            }
            hash_list.push(SbomHash {
                alg: alg.to_owned(),
                content: content.to_ascii_lowercase(),
            });
        }
    }
    let mut licenses = Vec::new();
    if let Some(ls) = v.get("licenses") {
        let list = ls
            .as_array()
            .ok_or_else(|| bad(format!("{at}.licenses = {ls}"), "an array"))?;
        for (i, l) in list.iter().enumerate() {
            let at = format!("{at}.licenses[{i}]");
            let text = match (l.get("license"), l.get("expression")) {
                (Some(lic), None) => match (lic.get("id"), lic.get("name")) {
                    (Some(Value::String(s)), None) | (None, Some(Value::String(s)))
                        if !s.is_empty() =>
                    {
                        s.clone()
                    }
                    _ => {
                        return Err(bad(
                            format!("{at}.license = {lic}"),
                            "exactly one of id or name",
                        ));
                    }
                },
                (None, Some(Value::String(e))) if !e.is_empty() => e.clone(),
                _ => return Err(bad(format!("{at} = {l}"), "a license or an expression")),
            };
            licenses.push(text);
        }
    }
    out.push(SbomComponent {
        kind: ty.to_owned(),
        name,
        version,
        purl,
        licenses,
        hashes: hash_list,
    });
    if let Some(nested) = v.get("components") {
        components(nested, spec, at, out)?;
    }
    Ok(())
}

fn components(v: &Value, spec: &str, at: &str, out: &mut Vec<SbomComponent>) -> Result<()> {
    let list = v
        .as_array()
        .ok_or_else(|| bad(format!("{at}.components = {v}"), "an array"))?;
    for (i, c) in list.iter().enumerate() {
        component(c, spec, &format!("{at}.components[{i}]"), out)?;
    }
    Ok(())
}

/// Validates a CycloneDX JSON SBOM and summarises it. At least one component is required.
pub fn validate_sbom(bytes: &[u8]) -> Result<SbomSummary> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(e.to_string(), "a JSON document"))?;
    if v.get("bomFormat") != Some(&Value::String("CycloneDX".into())) {
        return Err(bad(
            format!("bomFormat = {}", v.get("bomFormat").unwrap_or(&Value::Null)),
            "bomFormat = \"CycloneDX\"",
        ));
    }
    let spec = str_field(&v, "specVersion", "sbom")?;
    if spec != "1.5" && spec != "1.6" {
        return Err(bad(format!("specVersion {spec}"), "specVersion 1.5 or 1.6"));
    }
    if let Some(version) = v.get("version")
        && version.as_u64().is_none_or(|n| n < 1)
    {
        return Err(bad(
            format!("version = {version}"),
            "an integer of at least 1",
        ));
    }
    if let Some(serial) = v.get("serialNumber") {
        let ok = serial.as_str().is_some_and(|s| {
            s.strip_prefix("urn:uuid:").is_some_and(|u| {
                u.len() == 36 && u.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
            })
        });
        if !ok {
            return Err(bad(format!("serialNumber = {serial}"), "urn:uuid:<uuid>"));
        }
    }
    let mut out = Vec::new();
    if let Some(meta) = v.get("metadata")
        && let Some(c) = meta.get("component")
    {
        component(c, spec, "sbom.metadata.component", &mut out)?;
    }
    match v.get("components") {
        Some(c) => components(c, spec, "sbom", &mut out)?,
        None => return Err(bad("no components", "a components array")),
    }
    if out.is_empty() {
        return Err(bad("0 components", "at least one component"));
    }
    Ok(SbomSummary {
        spec_version: spec.to_owned(),
        components: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(spec: &str, component: &str) -> String {
        format!(
            r#"{{"bomFormat":"CycloneDX","specVersion":"{spec}","version":1,
            "serialNumber":"urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
            "components":[{component}]}}"#
        )
    }

    const GOOD: &str = r#"{"type":"firmware","name":"pump-app","version":"2.1.0",
        "purl":"pkg:generic/acme/pump-app@2.1.0",
        "hashes":[{"alg":"SHA-256","content":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}],
        "licenses":[{"license":{"id":"Apache-2.0"}},{"expression":"MIT OR Apache-2.0"}]}"#;

    fn check(spec: &str, component: &str, expect: Result<usize, &str>) {
        match (validate_sbom(doc(spec, component).as_bytes()), expect) {
            (Ok(s), Ok(n)) => assert_eq!(s.components.len(), n),
            (Err(e), Err(fragment)) => {
                assert!(e.to_string().contains(fragment), "{component}: {e}")
            }
            (got, want) => panic!("{component}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn cases() {
        check("1.5", GOOD, Ok(1));
        check("1.6", GOOD, Ok(1));
        check("1.4", GOOD, Err("specVersion 1.5 or 1.6"));
        check("1.6", "", Err("at least one component"));
        check(
            "1.6",
            &GOOD.replace("SHA-256", "SHA-999"),
            Err("hash algorithm"),
        );
        check("1.6", &GOOD.replace("9f86d0", "9f86"), Err("64 hex digits"));
        check(
            "1.6",
            &GOOD.replace("pkg:generic/", "generic:"),
            Err("package URL"),
        );
        check(
            "1.6",
            &GOOD.replace(r#""version":"2.1.0","#, ""),
            Err(".version as a non-empty"),
        );
        check(
            "1.6",
            &GOOD.replace(r#""id":"Apache-2.0""#, ""),
            Err("exactly one of id or name"),
        );
        check(
            "1.6",
            &GOOD.replace("firmware", "gadget"),
            Err("component type"),
        );
        // 1.6 added cryptographic assets (a CBOM inside the SBOM); 1.5 has none.
        let crypto = GOOD.replace("firmware", "cryptographic-asset");
        check("1.6", &crypto, Ok(1));
        check("1.5", &crypto, Err("a CycloneDX 1.5 component type"));
        let nested = GOOD.replace(
            r#""type":"firmware","#,
            &format!(r#""type":"firmware","components":[{}],"#, GOOD),
        );
        check("1.6", &nested, Ok(2));
    }

    /// A firmware SBOM in the shape CycloneDX 1.6 tools write (the specification's own
    /// conformance documents: tools as an object, lifecycles, manufacturer, supplier,
    /// evidence with identity, external references, properties, licence acknowledgement,
    /// dependencies, compositions, annotations): every part fieldkit does not read is accepted,
    /// and the components are read, nested ones included.
    #[test]
    fn the_shape_tools_write() {
        let sbom = serde_json::json!({
            "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
            "version": 1,
            "metadata": {
                "timestamp": "2026-11-02T09:00:00Z",
                "lifecycles": [{ "phase": "build" }],
                "tools": { "components": [{ "type": "application", "name": "west", "version": "1.2.0" }] },
                "manufacturer": { "name": "Acme Medical", "url": ["https://acme-medical.example"] },
                "component": {
                    "bom-ref": "pkg:generic/acme-medical/acme-infusion-p7-app@2.4.0",
                    "type": "firmware",
                    "supplier": { "name": "Acme Medical" },
                    "name": "acme-infusion-p7-app",
                    "version": "2.4.0",
                    "purl": "pkg:generic/acme-medical/acme-infusion-p7-app@2.4.0",
                    "hashes": [{ "alg": "SHA-256", "content": "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08" }],
                    "licenses": [{ "license": { "id": "LicenseRef-Acme-Proprietary", "acknowledgement": "declared" } }]
                },
                "properties": [{ "name": "acme:hardware-revision", "value": "C" }]
            },
            "components": [{
                "bom-ref": "pkg:github/zephyrproject-rtos/zephyr@v3.7.0",
                "type": "operating-system",
                "name": "zephyr",
                "version": "3.7.0",
                "purl": "pkg:github/zephyrproject-rtos/zephyr@v3.7.0",
                "licenses": [{ "expression": "Apache-2.0", "acknowledgement": "concluded" }],
                "externalReferences": [{ "type": "vcs", "url": "https://github.com/zephyrproject-rtos/zephyr" }],
                "evidence": { "identity": [{ "field": "purl", "confidence": 1, "methods": [{ "technique": "manifest-analysis", "confidence": 1 }] }] },
                "components": [{
                    "type": "library",
                    "name": "mbedtls",
                    "version": "3.6.0",
                    "purl": "pkg:github/Mbed-TLS/mbedtls@v3.6.0",
                    "cpe": "cpe:2.3:a:arm:mbed_tls:3.6.0:*:*:*:*:*:*:*",
                    "licenses": [{ "license": { "id": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0" } }]
                }]
            }, {
                "type": "cryptographic-asset",
                "name": "AES-128-GCM",
                "version": "1",
                "purl": "pkg:generic/acme-medical/crypto/aes-128-gcm@1",
                "cryptoProperties": { "assetType": "algorithm", "algorithmProperties": { "primitive": "ae" } }
            }],
            "dependencies": [{ "ref": "pkg:generic/acme-medical/acme-infusion-p7-app@2.4.0", "dependsOn": ["pkg:github/zephyrproject-rtos/zephyr@v3.7.0"] }],
            "compositions": [{ "aggregate": "complete", "assemblies": ["pkg:generic/acme-medical/acme-infusion-p7-app@2.4.0"] }],
            "annotations": [{ "subjects": ["pkg:github/zephyrproject-rtos/zephyr@v3.7.0"], "annotator": { "organization": { "name": "Acme Medical" } }, "timestamp": "2026-11-02T09:00:00Z", "text": "Reviewed." }]
        });
        let s = validate_sbom(sbom.to_string().as_bytes()).unwrap();
        let names: Vec<(&str, &str)> = s
            .components
            .iter()
            .map(|c| (c.name.as_str(), c.kind.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("acme-infusion-p7-app", "firmware"),
                ("zephyr", "operating-system"),
                ("mbedtls", "library"),
                ("AES-128-GCM", "cryptographic-asset"),
            ]
        );
        assert_eq!(
            s.components[0].hashes[0].content,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(s.components[1].licenses, ["Apache-2.0"]);
    }

    #[test]
    fn not_cyclonedx() {
        for doc in [
            "",
            "[]",
            r#"{"bomFormat":"SPDX"}"#,
            r#"{"bomFormat":"CycloneDX"}"#,
        ] {
            assert_eq!(
                validate_sbom(doc.as_bytes()).unwrap_err().rule(),
                rules::SBOM
            );
        }
    }
}
