//! A manufacturer's material for post-market tests, made the way release engineers make it:
//! a trust root with one key per role, signed packages (MCUboot images with their CycloneDX
//! SBOMs), entitlements, recall lists, OSV advisories and VEX documents, written to files; and
//! laptops whose field records show devices running those releases.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use ed25519_dalek::SigningKey;
use fieldkit_audit::record::{
    DeviceRecord, Event, Identified, PackageDigests, PayloadDigest, StepVerdict, UpdateOutcome,
};
use fieldkit_audit::{AuditLog, NewEntry};
use fieldkit_mcuboot::{ImageVersion, SignOptions};
use fieldkit_trust::{
    DeviceGrant, Entitlement, MANIFEST_FORMAT, Manifest, MemberDigest, Payload, PayloadFormat,
    RecallList, ReleaseClass, Requirements, RootMetadata, build_package,
};
use serde_json::{Value, json};

/// The product of the tests: a pump with an application and a network core.
pub const PUMP: &str = "acme-infusion-p7";
/// The vendor namespace of its firmware purls.
pub const VENDOR: &str = "acme-medical";
/// Feature code its entitlements grant.
pub const FEATURE: &str = "firmware-updates";

/// Keys and files of one manufacturer.
pub struct Kit {
    pub dir: tempfile::TempDir,
    pub root_key: SigningKey,
    pub release_key: SigningKey,
    pub entitlement_key: SigningKey,
    pub recall_key: SigningKey,
    pub now: DateTime<Utc>,
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// One release to build.
pub struct Rel<'a> {
    pub component: &'a str,
    pub version: &'a str,
    pub class: ReleaseClass,
    pub hardware: &'a [&'a str],
    /// Libraries in its SBOM: (name, version, purl, licence).
    pub libs: &'a [(&'a str, &'a str, &'a str, &'a str)],
    pub age_days: i64,
    pub counter: u32,
}

impl<'a> Rel<'a> {
    pub fn new(component: &'a str, version: &'a str) -> Self {
        Rel {
            component,
            version,
            class: ReleaseClass::Feature,
            hardware: &[],
            libs: &[(
                "mbedtls",
                "3.6.0",
                "pkg:github/Mbed-TLS/mbedtls@v3.6.0",
                "Apache-2.0",
            )],
            age_days: 30,
            counter: 1,
        }
    }
}

/// A built release: its file, and the image hash a device reports once it runs it.
pub struct Built {
    pub path: PathBuf,
    pub image_hash: String,
    pub image_sha256: String,
    pub sbom: Vec<u8>,
}

impl Kit {
    pub fn new() -> Kit {
        Kit {
            dir: tempfile::tempdir().unwrap(),
            root_key: key(101),
            release_key: key(102),
            entitlement_key: key(103),
            recall_key: key(104),
            now: Utc::now(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    pub fn day(&self, days_ago: i64) -> NaiveDate {
        (self.now - Duration::days(days_ago)).date_naive()
    }

    /// Root `version` with the kit's keys; `policy_security` is the security-release waiver.
    pub fn root(&self, version: u64, policy_security: bool) -> Vec<u8> {
        let mut meta = RootMetadata::new(version, self.now + Duration::days(3 * 365));
        for (role, k) in [
            ("root", &self.root_key),
            ("release", &self.release_key),
            ("entitlement", &self.entitlement_key),
            ("recall", &self.recall_key),
        ] {
            meta.set_role(role, &[k.verifying_key()], 1);
        }
        meta.policy.security_updates_without_entitlement = policy_security;
        meta.sign(&[&self.root_key])
    }

    /// The SBOM of a release: its firmware as `metadata.component` plus libraries.
    pub fn sbom(&self, r: &Rel<'_>, image: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        let libs: Vec<Value> = r
            .libs
            .iter()
            .map(|(n, v, p, l)| {
                json!({"type": "library", "name": n, "version": v, "purl": p,
                       "licenses": [{"expression": l}]})
            })
            .collect();
        serde_json::to_vec_pretty(&json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "version": 1,
            "metadata": {"component": {
                "type": "firmware",
                "name": format!("{PUMP}-{}", r.component),
                "version": r.version,
                "purl": format!("pkg:generic/{VENDOR}/{PUMP}-{}@{}", r.component, r.version),
                "hashes": [{"alg": "SHA-256", "content": hex::encode(sha2::Sha256::digest(image))}],
                "licenses": [{"license": {"name": "Acme proprietary"}}]
            }},
            "components": libs,
        }))
        .unwrap()
    }

    /// Builds and writes a package; `signer` defaults to the release key.
    pub fn package(&self, r: &Rel<'_>, signer: Option<&SigningKey>) -> Built {
        use sha2::Digest;
        let v: ImageVersion = r.version.parse().unwrap();
        let payload = format!("{PUMP} {} {} firmware", r.component, r.version).into_bytes();
        let img = fieldkit_mcuboot::sign(
            &payload,
            &SignOptions {
                security_counter: Some(r.counter),
                key: Some(&self.release_key),
                ..SignOptions::new(v)
            },
        )
        .unwrap();
        let sbom = self.sbom(r, &img);
        let file = format!("{}-{}.bin", r.component, r.version);
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            product: PUMP.into(),
            version: semver::Version::parse(r.version).unwrap(),
            release_date: self.day(r.age_days),
            class: r.class,
            security_counter: r.counter,
            expires: self.now + Duration::days(365),
            entitlement_feature: Some(FEATURE.into()),
            requires: Requirements {
                hardware_revisions: r.hardware.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            sbom: MemberDigest::default(),
            payloads: vec![Payload {
                component: r.component.into(),
                image: u32::from(r.component == "netcore"),
                version: v,
                format: PayloadFormat::Mcuboot,
                file,
                image_key: "release".into(),
                size: 0,
                sha256: String::new(),
                image_hash: None,
            }],
        };
        let mut out = Vec::new();
        let built = build_package(
            &manifest,
            &sbom,
            &[&img],
            &[signer.unwrap_or(&self.release_key)],
            &mut out,
        )
        .unwrap();
        let name = format!("{PUMP}-{}-{}.fkpkg", r.component, r.version);
        Built {
            path: self.write(&name, &out),
            image_hash: built.payloads[0].image_hash.clone().unwrap(),
            image_sha256: hex::encode(sha2::Sha256::digest(&img)),
            sbom,
        }
    }

    pub fn entitlement(&self, id: &str, customer: &str, serials: &[&str]) -> PathBuf {
        let e = Entitlement {
            id: id.into(),
            customer: customer.into(),
            sites: vec![],
            devices: vec![DeviceGrant {
                model: PUMP.into(),
                serials: serials.iter().map(|s| s.to_string()).collect(),
            }],
            features: vec![FEATURE.into()],
            valid_from: self.day(200),
            valid_until: self.day(-200),
            maintenance_through: None,
            issued: self.now,
            generation: 1,
        };
        self.write(&format!("{id}.json"), &e.issue(&self.entitlement_key))
    }

    pub fn recall(&self, version: u64, packages: &[&str]) -> PathBuf {
        let mut l = RecallList::new(version, self.now, self.now + Duration::days(90));
        l.packages = packages.iter().map(|s| s.to_string()).collect();
        self.write(
            &format!("recall-{version}.json"),
            &l.sign(&[&self.recall_key]),
        )
    }

    /// An OSV advisory against the pump's `component` up to (not including) `fixed`.
    pub fn advisory(&self, id: &str, component: &str, fixed: &str, severity: &str) -> Value {
        json!({
            "schema_version": "1.6.0",
            "id": id,
            "modified": (self.now - Duration::days(3)).to_rfc3339(),
            "published": (self.now - Duration::days(20)).to_rfc3339(),
            "summary": format!("{component} accepts an oversized frame"),
            "severity": [{"type": "CVSS_V3", "score": severity}],
            "affected": [{
                "package": {"ecosystem": "Acme firmware", "name": format!("{PUMP}-{component}"),
                            "purl": format!("pkg:generic/{VENDOR}/{PUMP}-{component}")},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}]
            }]
        })
    }
}

/// High severity (CVSS 3.1 base 8.8).
pub const HIGH: &str = "CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
/// Critical (9.8).
pub const CRITICAL: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";

/// A device record as a laptop writes it.
pub fn device(serial: &str, app: &str, netcore: &str, hardware: &str) -> DeviceRecord {
    DeviceRecord {
        profile: PUMP.into(),
        model: "Infusion Pump P7".into(),
        serial: serial.into(),
        hardware_revision: hardware.into(),
        firmware: [("app", app), ("netcore", netcore)]
            .iter()
            .map(|(c, v)| ((*c).to_owned(), (*v).to_owned()))
            .collect(),
        ..DeviceRecord::default()
    }
}

/// `device_identified` for a device.
pub fn identified(device: DeviceRecord) -> Event {
    Event::DeviceIdentified(Identified {
        device,
        port: "/dev/ttyACM0".into(),
    })
}

/// A successful update outcome installing `package` (`product@version`) on `component`.
pub fn updated(device: DeviceRecord, package: &str, component: &str, sbom_sha256: &str) -> Event {
    Event::Update(UpdateOutcome {
        after: device.firmware.clone(),
        before: Default::default(),
        device,
        intent_seq: 0,
        package: PackageDigests {
            id: package.into(),
            file_sha256: "0".repeat(64),
            manifest_sha256: "1".repeat(64),
            sbom_sha256: sbom_sha256.into(),
            payloads: vec![PayloadDigest {
                component: component.into(),
                sha256: "3".repeat(64),
                size: 1,
                image_hash: None,
            }],
        },
        result: StepVerdict::Applied,
        read_back: true,
    })
}

/// Appends an identify entry for a device at a site.
pub fn seen(log: &AuditLog, site: &str, dev: DeviceRecord) {
    log.append(NewEntry {
        technician: "dana".into(),
        site: site.into(),
        event: identified(dev),
    })
    .unwrap();
}

/// The paths as `&Path`s.
pub fn paths(p: &[PathBuf]) -> Vec<&Path> {
    p.iter().map(PathBuf::as_path).collect()
}

/// A laptop whose log was written over past weeks: entries with the times given, chained and
/// hashed as the audit log does, synced with checkpoints the laptop signs. (An `AuditLog`
/// stamps "now"; a fleet's history needs the past.)
pub struct Historic {
    pub identity: fieldkit_audit::Identity,
    bodies: Vec<String>,
    leaves: Vec<[u8; 32]>,
    sent: usize,
}

impl Historic {
    pub fn new(seed: u8) -> Historic {
        Historic {
            identity: fieldkit_audit::Identity::from_key(
                fieldkit_audit::identity::LAPTOP_PREFIX,
                SigningKey::from_bytes(&[seed; 32]),
            ),
            bodies: Vec::new(),
            leaves: Vec::new(),
            sent: 0,
        }
    }

    /// Appends an entry written at `time`.
    pub fn push(&mut self, time: DateTime<Utc>, site: &str, event: Event) {
        let prev = self
            .leaves
            .last()
            .map_or_else(|| "0".repeat(64), hex::encode);
        let (device, name, details) = event.to_parts();
        let entry = fieldkit_audit::Entry {
            schema: fieldkit_audit::record::SCHEMA,
            seq: self.bodies.len() as u64,
            origin: self.identity.name().to_owned(),
            time,
            mono_ns: None,
            boot_id: "historic".into(),
            pid: 1,
            technician: "dana".into(),
            site: site.into(),
            device,
            event: name.into(),
            details,
            prev,
        };
        let body = serde_json::to_string(&entry).unwrap();
        self.leaves
            .push(fieldkit_audit::merkle::leaf_hash(body.as_bytes()));
        self.bodies.push(body);
    }

    /// Sends what was not sent yet, in batches, each with the laptop's checkpoint.
    pub async fn sync(&mut self, url: &str) {
        use fieldkit_sync::proto::{APPEND_PATH, AppendRequest};
        while self.sent < self.bodies.len() {
            let end = (self.sent + 500).min(self.bodies.len());
            let root = fieldkit_audit::merkle::root_from_leaves(&self.leaves[..end]);
            let cp =
                fieldkit_audit::SignedCheckpoint::sign(&self.identity, end as u64, root).unwrap();
            let req = AppendRequest {
                origin: self.identity.name().into(),
                old_size: self.sent as u64,
                entries: self.bodies[self.sent..end].to_vec(),
                checkpoint: cp.as_str().into(),
            };
            let resp = reqwest::Client::new()
                .post(format!("{url}{APPEND_PATH}"))
                .json(&req)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
            self.sent = end;
        }
    }
}
