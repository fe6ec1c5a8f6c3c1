//! The demo kit: a complete, clearly labelled set of DEMO trust material in the home.
//!
//! A crate of its own, beside `core` rather than in it: it is the one place besides the
//! simulator that reads the profiles' `[simulator]` sections (the kit is built around what the
//! simulators run), and nothing a technician's session does depends on it.
//!
//! `fieldkit demo init` (and the app's first start) call [`init`]. It generates demo keys,
//! installs a demo trust root, and for every device profile builds signed MCUboot images and
//! packages around the version the simulator runs by default ([`SimulatorDefaults`]): the
//! current release, a security release, a stepping stone, a newer release that needs the
//! stepping stone first, a recalled release and one for another hardware revision; for every
//! further component (the pump's network core) its current version and an update, which the
//! newer main release names in an MCUboot DEPENDENCY TLV. Then entitlements (one valid, and
//! expired, other-device, missing-feature and revoked ones to try), a recall list, and a
//! README.txt that explains each item. Everything is named `demo`/`DEMO`.
//!
//! The versions are derived from the profiles, not written down here, so the kit keeps
//! matching the simulator when a profile changes. Dates are relative to "now" (a parameter):
//! releases lie in the past, contracts around today, metadata expires in a year.
//!
//! `demo/kit.json` lists every file the kit made. Its presence makes [`init`] idempotent;
//! `force` removes exactly those files (and the demo trust state) and builds a new kit. A home
//! whose trust root is not the demo's is never touched.
//!
//! [`SimulatorDefaults`]: fieldkit_profile::SimulatorDefaults

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Days, NaiveDate, Utc};
use ed25519_dalek::SigningKey;
use fieldkit_mcuboot::{Dependency, ImageVersion, SignOptions};
use fieldkit_profile::{Profile, ProfileSet};
use fieldkit_trust::keys::{generate, private_key_to_pem, public_key_to_pem};
use fieldkit_trust::{
    DeviceGrant, Entitlement, KeyId, Manifest, MemberDigest, Payload, PayloadFormat, RecallList,
    ReleaseClass, Requirements, RootMetadata, TrustError, TrustRoot, build_package,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use fieldkit_core::Home;
use fieldkit_core::trust_store::{self, StoreError, TrustState, start_of, write_atomic};

/// The feature code every demo package needs.
pub const DEMO_FEATURE: &str = "firmware-updates";
/// The feature the missing-feature entitlement grants instead.
pub const OTHER_FEATURE: &str = "extended-warranty";
/// The demo customer.
pub const DEMO_CUSTOMER: &str = "DEMO St. Example Hospital";
/// The demo site: the valid entitlement names it, and the kit sets it as the visit's site.
pub const DEMO_SITE: &str = "DEMO Ward 4";
/// Size of every demo firmware payload (the simulator's factory images are this size too).
pub const PAYLOAD_SIZE: usize = 16 * 1024;

/// What an item of the kit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    /// A key pair.
    Key,
    /// The trust root.
    TrustRoot,
    /// A signed MCUboot image with its package's manifest and SBOM sources.
    Image,
    /// A signed package in `packages/`.
    Package,
    /// An entitlement.
    Entitlement,
    /// A recall list.
    RecallList,
    /// An OSV advisory of the manufacturer's own firmware feed.
    Advisory,
    /// The README.
    Readme,
}

impl ItemKind {
    /// The kind in words, as tables and the README show it.
    pub fn name(self) -> &'static str {
        match self {
            ItemKind::Key => "key",
            ItemKind::TrustRoot => "trust root",
            ItemKind::Image => "image",
            ItemKind::Package => "package",
            ItemKind::Entitlement => "entitlement",
            ItemKind::RecallList => "recall list",
            ItemKind::Advisory => "advisory",
            ItemKind::Readme => "readme",
        }
    }
}

/// One item of the kit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoItem {
    /// What it is.
    pub kind: ItemKind,
    /// Its role in the demo (`current`, `stepping-stone`, `expired`, `release`, ...).
    pub label: String,
    /// Product (profile id), for images, packages and entitlements of one product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Component, for images and packages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Version, for images and packages; recall list and root version otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Files, relative to the home.
    pub files: Vec<PathBuf>,
    /// What it is for and what a check should say about it.
    pub purpose: String,
}

/// The kit as recorded in `demo/kit.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoKit {
    /// Always true: this is demo material.
    pub demo: bool,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// The demo trust root's key ids by role.
    pub keys: Vec<(String, KeyId)>,
    /// Every item.
    pub items: Vec<DemoItem>,
}

/// What [`init`] did.
#[derive(Debug, Clone, Serialize)]
pub struct DemoOutcome {
    /// The kit was already there and was left alone.
    pub already_initialised: bool,
    /// The kit.
    pub kit: DemoKit,
}

/// Why the demo kit could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The home has a trust root that the demo did not make.
    #[error(
        "{path} is a trust root the demo did not make (no demo/kit.json); required a home without a trust root: use another --home for the demo"
    )]
    ForeignRoot {
        /// The root file.
        path: PathBuf,
    },
    /// The home is an installation's own, which trusts the root pinned into the build.
    #[error(
        "{path} is this installation's own home, which trusts the manufacturer's root pinned into the build; required the DEMO's home of its own: `fieldkit --demo demo init` (or `fieldkit-app --demo`)"
    )]
    ProductionHome {
        /// The home.
        path: PathBuf,
    },
    /// A file could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A profile's simulator defaults do not make a kit.
    #[error("profile {profile}: {message}")]
    Profile {
        /// The profile.
        profile: String,
        /// What is wrong, with the value found.
        message: String,
    },
    /// Building a signed item failed.
    #[error("building the demo {what}: {source}")]
    Build {
        /// What was being built.
        what: String,
        /// The refusal.
        #[source]
        source: TrustError,
    },
}

/// The kit file.
pub fn kit_path(home: &Home) -> PathBuf {
    home.demo_dir().join("kit.json")
}

/// Reads the kit file, if the home has one.
pub fn read_kit(home: &Home) -> Result<Option<DemoKit>, StoreError> {
    let path = kit_path(home);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::State {
                path,
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Io { path, source }),
    }
}

/// Fills `home` with the demo kit at `now`, for the `profiles`, with keys from `rng`. Leaves an
/// existing kit alone unless `force`.
pub fn init(
    home: &Home,
    profiles: &ProfileSet,
    now: DateTime<Utc>,
    force: bool,
    rng: &mut (impl rand::RngCore + rand::CryptoRng),
) -> Result<DemoOutcome, DemoError> {
    let existing = read_kit(home)?;
    match (&existing, force) {
        (Some(kit), false) => {
            return Ok(DemoOutcome {
                already_initialised: true,
                kit: kit.clone(),
            });
        }
        (Some(kit), true) => remove(home, kit)?,
        (None, _) => {
            if home.trust_root().exists() {
                return Err(DemoError::ForeignRoot {
                    path: home.trust_root(),
                });
            }
            // Demo keys never sit in a production home: in a build that pins the
            // manufacturer's root, only the DEMO's own home takes the kit.
            if !home.is_demo() && fieldkit_core::pinned::pinned_root().is_some() {
                return Err(DemoError::ProductionHome {
                    path: home.root().to_owned(),
                });
            }
        }
    }
    let kit = Builder::new(home, now, rng).build(profiles)?;
    let mut bytes = serde_json::to_vec_pretty(&kit).unwrap_or_default();
    bytes.push(b'\n');
    write_atomic(&kit_path(home), &bytes)?;
    // The visit is the demo customer's, at the demo site, unless the technician said otherwise:
    // entitlements are scoped to both.
    let mut settings = fieldkit_core::session::Settings::load(home)?;
    if settings
        .customer
        .as_deref()
        .is_none_or(|c| c.trim().is_empty())
    {
        settings.customer = Some(DEMO_CUSTOMER.into());
    }
    if settings.site.trim().is_empty() {
        settings.site = DEMO_SITE.into();
    }
    settings.save(home)?;
    Ok(DemoOutcome {
        already_initialised: false,
        kit,
    })
}

/// Removes what a previous kit made, and the demo's trust state.
fn remove(home: &Home, kit: &DemoKit) -> Result<(), DemoError> {
    let rm = |path: &Path| -> Result<(), StoreError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    };
    for item in &kit.items {
        for f in &item.files {
            rm(&home.join(f))?;
        }
    }
    rm(&home.trust_state())?;
    for dir in [home.trust_history_dir(), home.demo_dir()] {
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|source| StoreError::Io { path: dir, source })?;
        }
    }
    Ok(())
}

/// One release of one component in the kit.
struct Release {
    label: &'static str,
    component: String,
    image: u32,
    version: ImageVersion,
    class: ReleaseClass,
    counter: u32,
    age_days: u64,
    requires_own: String,
    hardware: Vec<String>,
    dependencies: Vec<Dependency>,
    recalled: bool,
    purpose: String,
}

struct Builder<'a, R> {
    home: &'a Home,
    now: DateTime<Utc>,
    today: NaiveDate,
    rng: &'a mut R,
    items: Vec<DemoItem>,
}

fn rel(home: &Home, path: &Path) -> PathBuf {
    path.strip_prefix(home.root()).unwrap_or(path).to_owned()
}

fn write(home: &Home, path: &Path, bytes: &[u8]) -> Result<PathBuf, StoreError> {
    write_atomic(path, bytes)?;
    Ok(rel(home, path))
}

fn version(major: u8, minor: u8, revision: u16) -> ImageVersion {
    ImageVersion::new(major, minor, revision, 0)
}

/// The next hardware revision after `rev`: its last character counted up (`C` -> `D`,
/// `B2` -> `B3`), for the wrong-hardware release.
fn other_revision(rev: &str) -> String {
    let mut chars: Vec<char> = rev.chars().collect();
    match chars.last_mut() {
        Some(c) if c.is_ascii_digit() && *c != '9' => *c = (*c as u8 + 1) as char,
        Some(c) if c.is_ascii_alphabetic() && !matches!(*c, 'z' | 'Z') => {
            *c = (*c as u8 + 1) as char
        }
        _ => chars.push('X'),
    }
    chars.into_iter().collect()
}

/// Another device's serial: the trailing number counted up (`P7-004217` -> `P7-004218`).
fn other_serial(serial: &str) -> String {
    let digits = serial
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .count();
    let (head, tail) = serial.split_at(serial.len() - digits);
    match tail.parse::<u64>() {
        Ok(n) => format!("{head}{:0width$}", n + 1, width = digits),
        Err(_) => format!("{serial}-OTHER"),
    }
}

/// A deterministic demo firmware payload, starting with a banner that says what it is.
fn payload(product: &str, component: &str, v: ImageVersion) -> Vec<u8> {
    let mut out =
        format!("FIELDKIT DEMO FIRMWARE - NOT FOR CLINICAL USE - {product} {component} {v}\n\0")
            .into_bytes();
    let mut block: [u8; 32] =
        Sha256::digest(format!("fieldkit-demo/{product}/{component}/{v}")).into();
    while out.len() < PAYLOAD_SIZE {
        out.extend_from_slice(&block);
        block = Sha256::digest(block).into();
    }
    out.truncate(PAYLOAD_SIZE);
    out
}

/// A urn:uuid derived from `seed` (so a rebuilt SBOM keeps its serial number).
fn uuid_of(seed: &str) -> String {
    let h = hex::encode(&Sha256::digest(seed)[..16]);
    format!(
        "urn:uuid:{}-{}-4{}-8{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A CycloneDX 1.6 SBOM for a demo release: the firmware itself plus the usual open-source
/// parts of such firmware, with purls, versions, hashes and licences.
fn sbom(profile: &Profile, r: &Release, image: &[u8], now: DateTime<Utc>) -> Vec<u8> {
    let product = profile.id();
    let vendor = vendor_slug(profile);
    let v = r.version.to_string();
    let parts: Vec<serde_json::Value> = if profile.family() == fieldkit_profile::Family::Smp {
        // The security release carries the patched TLS library.
        let mbedtls = if r.counter >= 2 { "3.6.2" } else { "3.6.0" };
        vec![
            lib(
                "zephyr",
                "3.7.0",
                "pkg:github/zephyrproject-rtos/zephyr@v3.7.0",
                "Apache-2.0",
            ),
            lib(
                "mcuboot",
                "2.1.0",
                "pkg:github/mcu-tools/mcuboot@v2.1.0",
                "Apache-2.0",
            ),
            lib(
                "mbedtls",
                mbedtls,
                &format!("pkg:github/Mbed-TLS/mbedtls@v{mbedtls}"),
                "Apache-2.0",
            ),
            lib(
                "tinycbor",
                "0.6.0",
                "pkg:github/intel/tinycbor@v0.6.0",
                "MIT",
            ),
        ]
    } else {
        vec![
            lib(
                "FreeRTOS-Kernel",
                "11.1.0",
                "pkg:github/FreeRTOS/FreeRTOS-Kernel@V11.1.0",
                "MIT",
            ),
            lib("lwip", "2.2.0", "pkg:generic/lwip@2.2.0", "BSD-3-Clause"),
        ]
    };
    let doc = serde_json::json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": uuid_of(&format!("{product}/{}/{v}", r.component)),
        "version": 1,
        "metadata": {
            "timestamp": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "supplier": { "name": format!("{} (DEMO)", profile.vendor) },
            "component": {
                "type": "firmware",
                "name": format!("{product}-{}", r.component),
                "version": v,
                "description": format!("DEMO firmware for the {} {}, not for clinical use", profile.model, r.component),
                "purl": format!("pkg:generic/{vendor}/{product}-{}@{v}", r.component),
                "hashes": [{ "alg": "SHA-256", "content": hex::encode(Sha256::digest(image)) }],
                "licenses": [{ "license": { "name": "DEMO proprietary" } }]
            }
        },
        "components": parts,
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The vendor as a purl namespace: `Acme Medical` -> `acme-medical`.
fn vendor_slug(profile: &Profile) -> String {
    profile
        .vendor
        .to_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
}

fn lib(name: &str, version: &str, purl: &str, licence: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "library",
        "name": name,
        "version": version,
        "purl": purl,
        "licenses": [{ "license": { "id": licence } }]
    })
}

fn build_err(what: impl Into<String>) -> impl FnOnce(TrustError) -> DemoError {
    let what = what.into();
    move |source| DemoError::Build { what, source }
}

impl<'a, R: rand::RngCore + rand::CryptoRng> Builder<'a, R> {
    fn new(home: &'a Home, now: DateTime<Utc>, rng: &'a mut R) -> Self {
        Builder {
            home,
            now,
            today: now.date_naive(),
            rng,
            items: Vec::new(),
        }
    }

    fn days_ago(&self, n: u64) -> NaiveDate {
        self.today
            .checked_sub_days(Days::new(n))
            .unwrap_or(self.today)
    }

    fn days_ahead(&self, n: u64) -> NaiveDate {
        self.today
            .checked_add_days(Days::new(n))
            .unwrap_or(self.today)
    }

    fn item(
        &mut self,
        kind: ItemKind,
        label: &str,
        scope: Option<(&str, &str)>,
        version: Option<String>,
        files: Vec<PathBuf>,
        purpose: String,
    ) {
        self.items.push(DemoItem {
            kind,
            label: label.into(),
            product: scope.map(|(p, _)| p.into()),
            component: scope.map(|(_, c)| c.into()),
            version,
            files,
            purpose,
        });
    }

    fn key(&mut self, role: &str) -> Result<SigningKey, DemoError> {
        let key = generate(&mut *self.rng);
        let dir = self.home.keys_dir();
        let name = format!("demo-{role}");
        let private = write(
            self.home,
            &dir.join(format!("{name}.key.pem")),
            private_key_to_pem(&key).as_bytes(),
        )?;
        let public = write(
            self.home,
            &dir.join(format!("{name}.pub.pem")),
            public_key_to_pem(&key.verifying_key()).as_bytes(),
        )?;
        self.item(
            ItemKind::Key,
            role,
            None,
            None,
            vec![private, public],
            format!(
                "DEMO {role} key (id {}). Generated for this demo only: never put a demo key in a real trust root.",
                KeyId::of(&key.verifying_key())
            ),
        );
        Ok(key)
    }

    fn build(mut self, profiles: &ProfileSet) -> Result<DemoKit, DemoError> {
        let roles = ["root", "release", "entitlement", "recall"];
        let mut keys = Vec::new();
        for role in roles {
            keys.push(self.key(role)?);
        }
        let [root_key, release_key, entitlement_key, recall_key] = [0, 1, 2, 3].map(|i| &keys[i]);

        let mut meta = RootMetadata::new(1, start_of(self.days_ahead(3 * 365)));
        // The demo shows the manufacturer's strict setting: nothing without a current recall
        // list.
        meta.policy.require_recall_list = true;
        for (role, key) in roles.iter().zip(&keys) {
            meta.set_role(role, &[key.verifying_key()], 1);
        }
        let root_bytes = meta.sign(&[root_key]);
        let root = TrustRoot::load_pinned(&root_bytes).map_err(build_err("trust root"))?;

        // One product per model: a bootloader-mode profile's device takes its application's
        // packages (Profile::product).
        let products: Vec<&Profile> = profiles.iter().filter(|p| p.product() == p.id()).collect();
        let mut recalled = Vec::new();
        for profile in &products {
            recalled.extend(self.product(profile, release_key)?);
        }

        let mut devices = Vec::new();
        let mut other_devices = Vec::new();
        for profile in &products {
            devices.push(DeviceGrant {
                model: profile.id().into(),
                serials: vec![profile.simulator.text("serial")],
            });
            other_devices.push(DeviceGrant {
                model: profile.id().into(),
                serials: vec![other_serial(&profile.simulator.text("serial"))],
            });
        }
        let serials = devices
            .iter()
            .map(|d| format!("{}:{}", d.model, d.serials.join(",")))
            .collect::<Vec<_>>()
            .join(", ");
        let entitlements = [
            (
                "valid",
                devices.clone(),
                DEMO_FEATURE,
                (self.days_ago(180), self.days_ahead(365), None),
                format!(
                    "Valid entitlement, installed in entitlements/: covers the simulators ({serials}) for feature {DEMO_FEATURE} from {} to {}. With it, every genuine, applicable release is entitled.",
                    self.days_ago(180),
                    self.days_ahead(365)
                ),
            ),
            (
                "expired",
                devices.clone(),
                DEMO_FEATURE,
                (
                    self.days_ago(545),
                    self.days_ago(35),
                    Some(self.days_ago(35)),
                ),
                format!(
                    "Expired contract (ended {}), with maintenance through the same day: releases dated up to then stay installable (the stepping stone), later ones (the newer release) are refused by entitlement.window.",
                    self.days_ago(35)
                ),
            ),
            (
                "other-device",
                other_devices,
                DEMO_FEATURE,
                (self.days_ago(180), self.days_ahead(365), None),
                "Covers other serial numbers of the same models: refused by entitlement.device."
                    .to_string(),
            ),
            (
                "missing-feature",
                devices.clone(),
                OTHER_FEATURE,
                (self.days_ago(180), self.days_ahead(365), None),
                format!(
                    "Covers the simulators but grants only {OTHER_FEATURE}: refused by entitlement.feature."
                ),
            ),
            (
                "revoked",
                devices,
                DEMO_FEATURE,
                (self.days_ago(180), self.days_ahead(365), None),
                "Would be valid, but the demo recall list revokes it: refused by entitlement.revoked."
                    .to_string(),
            ),
        ];
        let mut revoked = Vec::new();
        for (label, devices, feature, (from, until, maintenance), purpose) in entitlements {
            let id = format!("DEMO-ENT-{}", label.to_uppercase());
            if label == "revoked" {
                revoked.push(id.clone());
            }
            let e = Entitlement {
                id: id.clone(),
                customer: DEMO_CUSTOMER.into(),
                sites: vec![DEMO_SITE.into()],
                devices,
                features: vec![feature.into()],
                valid_from: from,
                valid_until: until,
                maintenance_through: maintenance,
                issued: self.now,
                generation: 1,
            };
            // Only the valid one is carried in the home; the others are there to try.
            let dir = if label == "valid" {
                self.home.entitlements_dir()
            } else {
                self.home.demo_dir().join("entitlements")
            };
            let file = write(
                self.home,
                &dir.join(format!("demo-{label}.json")),
                &e.issue(entitlement_key),
            )?;
            self.item(
                ItemKind::Entitlement,
                label,
                None,
                None,
                vec![file],
                format!("{id}: {purpose}"),
            );
        }

        let mut list = RecallList::new(1, self.now, start_of(self.days_ahead(90)));
        list.packages = recalled.clone();
        list.entitlements = revoked.clone();
        let recall_bytes = list.sign(&[recall_key]);
        let recall_file = write(
            self.home,
            &self
                .home
                .recalls_dir()
                .join(trust_store::recall_file_name(&list)),
            &recall_bytes,
        )?;
        self.item(
            ItemKind::RecallList,
            "recall-list",
            None,
            Some("1".into()),
            vec![recall_file],
            format!(
                "Recall list version 1, signed by the demo recall key: recalls {} and revokes entitlement {}.",
                recalled.join(", "),
                revoked.join(", ")
            ),
        );

        let root_file = rel(self.home, &self.home.trust_root());
        trust_store::install_root(self.home, &root)?;
        self.item(
            ItemKind::TrustRoot,
            "trust-root",
            None,
            Some(root.version().to_string()),
            vec![root_file],
            format!(
                "DEMO trust root version 1, installed: one demo key per role (root, release, entitlement, recall), threshold 1, expires {}. Security releases install without an entitlement (the default policy); nothing is installed without a current recall list.",
                meta.expires.format("%Y-%m-%d")
            ),
        );
        // The demo's signed times: the recall list was issued now.
        let state = TrustState {
            time_mark: Some(self.now),
            recall_version: Some(list.version),
            ..TrustState::default()
        };
        trust_store::save_state(self.home, &state)?;

        let readme = self.readme(&root);
        let readme_file = write(self.home, &self.home.join("README.txt"), readme.as_bytes())?;
        self.item(
            ItemKind::Readme,
            "readme",
            None,
            None,
            vec![readme_file],
            "This explanation of the demo kit.".into(),
        );

        let key_ids = roles
            .iter()
            .zip(&keys)
            .map(|(r, k)| (r.to_string(), KeyId::of(&k.verifying_key())))
            .collect();
        Ok(DemoKit {
            demo: true,
            created: self.now,
            keys: key_ids,
            items: self.items,
        })
    }

    /// The releases of one product, derived from what its simulator runs.
    fn releases(&self, profile: &Profile) -> Result<Vec<Release>, DemoError> {
        let sim = &profile.simulator;
        let bad = |message: String| DemoError::Profile {
            profile: profile.id().into(),
            message,
        };
        let installed = |name: &str| -> Result<ImageVersion, DemoError> {
            let text = sim
                .installed
                .get(name)
                .ok_or_else(|| bad(format!("no installed version for component {name}")))?;
            text.get_ref()
                .parse()
                .map_err(|e| bad(format!("installed version of {name}: {e}")))
        };
        let mut components: Vec<_> = profile.components.iter().collect();
        components.sort_by_key(|c| *c.image.get_ref());
        let Some((main, others)) = components.split_first() else {
            return Err(bad("no components".into()));
        };
        let hw = vec![sim.text("hardware_revision")];
        let wrong_hw = vec![other_revision(&sim.text("hardware_revision"))];
        let mut out = Vec::new();

        // Further components first: the main component's newer release depends on them.
        let mut deps = Vec::new();
        for c in others {
            let name = c.name.get_ref().clone();
            let v = installed(&name)?;
            let image = *c.image.get_ref();
            let next = version(v.major, v.minor.saturating_add(1), 0);
            out.push(Release {
                label: "current",
                component: name.clone(),
                image,
                version: v,
                class: ReleaseClass::Maintenance,
                counter: 1,
                age_days: 200,
                requires_own: format!(">={}.0.0", v.major),
                hardware: hw.clone(),
                dependencies: Vec::new(),
                recalled: false,
                purpose: format!("{name} {v} as the simulator runs it: nothing to do."),
            });
            out.push(Release {
                label: "component-update",
                component: name.clone(),
                image,
                version: next,
                class: ReleaseClass::Feature,
                counter: 1,
                age_days: 15,
                requires_own: format!(">={}.{}.0", v.major, v.minor),
                hardware: hw.clone(),
                dependencies: Vec::new(),
                recalled: false,
                purpose: format!(
                    "{name} update {v} -> {next}; the newer {} release needs it (MCUboot DEPENDENCY TLV), so a plan installs it first.",
                    main.name.get_ref()
                ),
            });
            let image_id = u8::try_from(image)
                .map_err(|_| bad(format!("image number {image}, required at most 255")))?;
            deps.push((
                Dependency {
                    image: image_id,
                    min_version: next,
                },
                name,
            ));
        }

        let name = main.name.get_ref().clone();
        let v = installed(&name)?;
        let image = *main.image.get_ref();
        let security = version(v.major, v.minor, v.revision.saturating_add(1));
        let stone = version(v.major, v.minor.saturating_add(1), 0);
        let recalled = version(v.major, v.minor.saturating_add(1), 1);
        let wrong = version(v.major, v.minor.saturating_add(2), 0);
        let newer = version(v.major.saturating_add(1), 0, 0);
        let same =
            |label, version, class, counter, age_days, requires_own: String, purpose| Release {
                label,
                component: name.clone(),
                image,
                version,
                class,
                counter,
                age_days,
                requires_own,
                hardware: hw.clone(),
                dependencies: Vec::new(),
                recalled: false,
                purpose,
            };
        out.push(same(
            "current",
            v,
            ReleaseClass::Maintenance,
            1,
            200,
            format!(">={}.0.0", v.major),
            format!("{name} {v} as the simulator runs it: nothing to do."),
        ));
        out.push(same(
            "security",
            security,
            ReleaseClass::Security,
            2,
            60,
            format!(">={}.0.0", v.major),
            format!(
                "Security release {security} (security counter 2, patched mbedtls): installs without an entitlement under the root's policy."
            ),
        ));
        out.push(same(
            "stepping-stone",
            stone,
            ReleaseClass::Feature,
            2,
            40,
            format!(">={}.{}.0", v.major, v.minor),
            format!(
                "Feature release {stone}, installable over {v}; the newer release requires it first."
            ),
        ));
        let mut r = same(
            "recalled",
            recalled,
            ReleaseClass::Feature,
            2,
            25,
            format!(">={}.{}.0", v.major, v.minor),
            format!(
                "Release {recalled}, genuine but recalled by the demo recall list: refused by recall.package."
            ),
        );
        r.recalled = true;
        out.push(r);
        let mut r = same(
            "wrong-hardware",
            wrong,
            ReleaseClass::Feature,
            2,
            20,
            format!(">={}.{}.0", v.major, v.minor),
            format!(
                "Release {wrong} built for hardware revision {} only; the simulator is revision {}: refused by target.hardware.",
                wrong_hw[0],
                sim.text("hardware_revision")
            ),
        );
        r.hardware = wrong_hw;
        out.push(r);
        let mut r = same(
            "newer",
            newer,
            ReleaseClass::Feature,
            3,
            10,
            format!(">={}.{}.0", stone.major, stone.minor),
            format!(
                "Newer release {newer}: requires {name} {stone} or later installed, so the plan is {stone} first, then {newer}."
            ),
        );
        if !deps.is_empty() {
            r.purpose = format!(
                "{} It also carries MCUboot DEPENDENCY TLVs on {}, so those go before it.",
                r.purpose,
                deps.iter()
                    .map(|(d, n)| format!("{n} (image {}) {}", d.image, d.min_version))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        r.dependencies = deps.into_iter().map(|(d, _)| d).collect();
        out.push(r);

        let mut ids = BTreeSet::new();
        for r in &out {
            if !ids.insert(r.version) {
                return Err(bad(format!(
                    "two demo releases would both be version {} (package ids must be unique per product)",
                    r.version
                )));
            }
        }
        Ok(out)
    }

    /// Builds the images and packages of one product; returns the recalled package ids.
    fn product(
        &mut self,
        profile: &Profile,
        release_key: &SigningKey,
    ) -> Result<Vec<String>, DemoError> {
        let product = profile.id().to_owned();
        let bootloader = format!(">={}", profile.simulator.text("bootloader_version"));
        let bootloader = semver::VersionReq::parse(&bootloader).ok();
        let mut recalled = Vec::new();
        let releases = self.releases(profile)?;
        let mut image_hashes = Vec::new();
        for r in &releases {
            let what = format!("{product} {} {}", r.component, r.version);
            let opts = SignOptions {
                security_counter: Some(r.counter),
                dependencies: r.dependencies.clone(),
                key: Some(release_key),
                ..SignOptions::new(r.version)
            };
            let img = fieldkit_mcuboot::sign(&payload(&product, &r.component, r.version), &opts)
                .map_err(|e| DemoError::Profile {
                    profile: product.clone(),
                    message: format!("signing {what}: {e}"),
                })?;
            let file = format!("{}-{}.bin", r.component, r.version);
            let sbom_bytes = sbom(profile, r, &img, self.now);
            image_hashes.push(hex::encode(Sha256::digest(&img)));
            let mut components = std::collections::BTreeMap::new();
            if let Ok(req) = semver::VersionReq::parse(&r.requires_own) {
                components.insert(r.component.clone(), req);
            }
            let manifest = Manifest {
                format: fieldkit_trust::MANIFEST_FORMAT,
                product: product.clone(),
                version: r.version.to_semver(),
                release_date: self.days_ago(r.age_days),
                class: r.class,
                security_counter: r.counter,
                expires: start_of(self.days_ahead(365)),
                entitlement_feature: Some(DEMO_FEATURE.into()),
                requires: Requirements {
                    preconditions: Vec::new(),
                    hardware_revisions: r.hardware.clone(),
                    bootloader: bootloader.clone(),
                    components,
                },
                sbom: MemberDigest::default(),
                payloads: vec![Payload {
                    component: r.component.clone(),
                    image: r.image,
                    version: r.version,
                    format: PayloadFormat::Mcuboot,
                    file: file.clone(),
                    image_key: profile
                        .component(&r.component)
                        .map_or("release".into(), |c| c.image_key.clone()),
                    size: 0,
                    sha256: String::new(),
                    image_hash: None,
                }],
            };
            // The sources a release engineer would feed `fieldkit package build`.
            let src = self
                .home
                .demo_dir()
                .join("build")
                .join(format!("{product}-{}", r.version));
            let mut manifest_src = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
            manifest_src.push(b'\n');
            let files = vec![
                write(self.home, &src.join(&file), &img)?,
                write(self.home, &src.join("manifest.json"), &manifest_src)?,
                write(self.home, &src.join("sbom.cdx.json"), &sbom_bytes)?,
            ];
            self.item(
                ItemKind::Image,
                r.label,
                Some((&product, &r.component)),
                Some(r.version.to_string()),
                files,
                format!(
                    "Signed MCUboot image (image {}, security counter {}) with the manifest and SBOM it was packaged from.",
                    r.image, r.counter
                ),
            );

            let mut pkg = Vec::new();
            let built = build_package(&manifest, &sbom_bytes, &[&img], &[release_key], &mut pkg)
                .map_err(build_err(format!("package {what}")))?;
            if r.recalled {
                recalled.push(built.id());
            }
            let path = self
                .home
                .packages_dir()
                .join(trust_store::package_file_name(&built));
            let file = write(self.home, &path, &pkg)?;
            self.item(
                ItemKind::Package,
                r.label,
                Some((&product, &r.component)),
                Some(r.version.to_string()),
                vec![file],
                format!(
                    "{} ({}, released {}). {}",
                    built.id(),
                    class_name(r.class),
                    built.release_date,
                    r.purpose
                ),
            );
        }
        self.feed(profile, &releases, &image_hashes)?;
        Ok(recalled)
    }

    /// The manufacturer's own firmware advisories for one product, in OSV, one file each in
    /// `demo/advisories/`: for every further component (the pump's network core) one that its
    /// current version has and its update fixes, listing the current build's hash too; for the
    /// main component one that the security release fixes, and a withdrawn one.
    fn feed(
        &mut self,
        profile: &Profile,
        releases: &[Release],
        image_hashes: &[String],
    ) -> Result<(), DemoError> {
        let product = profile.id();
        let vendor = vendor_slug(profile);
        let main = releases
            .iter()
            .rfind(|r| r.label == "security")
            .map(|r| r.component.clone());
        let published = self.now - chrono::Duration::days(5);
        let mut docs = Vec::new();
        for (r, hash) in releases.iter().zip(image_hashes) {
            let is_main = main.as_deref() == Some(r.component.as_str());
            let fixed = |label: &str| {
                releases
                    .iter()
                    .find(|x| x.component == r.component && x.label == label)
                    .map(|x| x.version.to_string())
            };
            let (n, summary, fix, withdrawn) = match (r.label, is_main) {
                ("current", false) => (
                    1,
                    format!(
                        "DEMO: the {} {} accepts an oversized radio frame (not a real vulnerability)",
                        profile.model, r.component
                    ),
                    fixed("component-update"),
                    false,
                ),
                ("current", true) => (
                    2,
                    format!(
                        "DEMO: the {} {} trusts an unauthenticated service command (not a real vulnerability)",
                        profile.model, r.component
                    ),
                    fixed("security"),
                    false,
                ),
                ("newer", true) => (
                    3,
                    format!(
                        "DEMO: withdrawn report against the {} {} (it was a false alarm)",
                        profile.model, r.component
                    ),
                    None,
                    true,
                ),
                _ => continue,
            };
            let id = format!("DEMO-{}-{n}", product.to_uppercase());
            let mut events = vec![serde_json::json!({ "introduced": "0" })];
            events.push(match &fix {
                Some(v) => serde_json::json!({ "fixed": v }),
                None => serde_json::json!({ "last_affected": r.version.to_string() }),
            });
            let mut doc = serde_json::json!({
                "schema_version": "1.6.0",
                "id": id,
                "modified": self.now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "published": published.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "summary": summary,
                "details": format!(
                    "DEMO advisory of the {} (DEMO) firmware feed, for training. {}",
                    profile.vendor,
                    match &fix {
                        Some(v) => format!("Fixed in {} {v}.", r.component),
                        None => "No fix needed.".into(),
                    }
                ),
                "severity": [{ "type": "CVSS_V3", "score": if n == 2 {
                    "CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
                } else {
                    "CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:N/I:L/A:H"
                } }],
                "affected": [{
                    "package": {
                        "ecosystem": format!("{} firmware", profile.vendor),
                        "name": format!("{product}-{}", r.component),
                        "purl": format!("pkg:generic/{vendor}/{product}-{}", r.component),
                    },
                    "ranges": [{ "type": "SEMVER", "events": events }],
                    "database_specific": { "hashes": [{ "alg": "SHA-256", "content": hash }] },
                }],
                "database_specific": { "demo": true },
            });
            if withdrawn {
                doc["withdrawn"] =
                    serde_json::json!(self.now.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            }
            docs.push((id, r.component.clone(), r.version, fix, withdrawn, doc));
        }
        for (id, component, version, fix, withdrawn, doc) in docs {
            let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
            bytes.push(b'\n');
            let file = write(
                self.home,
                &self
                    .home
                    .demo_dir()
                    .join("advisories")
                    .join(format!("{id}.json")),
                &bytes,
            )?;
            self.item(
                ItemKind::Advisory,
                "advisory",
                Some((product, &component)),
                Some(version.to_string()),
                vec![file],
                match (withdrawn, fix) {
                    (true, _) => format!("{id}: a withdrawn advisory: it affects no release."),
                    (false, Some(v)) => format!(
                        "{id}: the manufacturer's own OSV advisory against {component} up to {version}, fixed in {v}; matched by purl and by the current build's hash."
                    ),
                    (false, None) => format!("{id}: an advisory against {component} {version}."),
                },
            );
        }
        Ok(())
    }

    fn readme(&self, root: &TrustRoot) -> String {
        let mut s = String::new();
        s += "FIELDKIT DEMO KIT\n=================\n\n";
        s += "Everything in this directory that `fieldkit demo init` made is DEMO material: demo keys,\n";
        s += "a demo trust root, demo firmware (filler bytes, not for clinical use), demo packages,\n";
        s += "entitlements for a made-up customer, and a demo recall list. The keys were generated on\n";
        s += "this machine for the demo only; never use them, or this trust root, for real devices.\n\n";
        s += &format!(
            "Made {} for the simulator's default devices (`fieldkit sim --profile ID`), so that\n",
            self.now.format("%Y-%m-%d")
        );
        s += "`fieldkit sim` followed by `fieldkit check` and `fieldkit update` works out of the box.\n";
        s += "`fieldkit demo init --force` makes a new kit; without --force it leaves this one alone.\n\n";
        s += "Layout\n------\n";
        s += "  keys/                      demo key pairs (PKCS#8 and SPKI PEM, as OpenSSL writes them)\n";
        s += &format!(
            "  trust/root.json            the installed demo trust root (version {})\n",
            root.version()
        );
        s += "  packages/                  signed packages (.fkpkg), verified with `fieldkit package verify FILE`\n";
        s += "  entitlements/              the valid entitlement the technician carries\n";
        s += "  recalls/                   the demo recall list\n";
        s += "  demo/entitlements/         entitlements that are refused, to try with `--entitlement FILE`\n";
        s += "  demo/advisories/           the manufacturer's own firmware advisories (OSV JSON), for the hub\n";
        s += "  demo/build/PRODUCT-VERSION/ the image, manifest.json and sbom.cdx.json of each package:\n";
        s += "                             `fieldkit package build --manifest .../manifest.json \\\n";
        s += "                                --key keys/demo-release.key.pem --out X.fkpkg` rebuilds it\n";
        s += "  demo/kit.json              the list of everything below, for tools\n\n";
        s += "Package versions equal the version of the one firmware image they carry; package ids are\n";
        s += "PRODUCT@VERSION. Every package needs the entitlement feature `firmware-updates`, except\n";
        s += "that security releases install without one (the trust root's policy).\n\n";
        s += "Items\n-----\n";
        for item in &self.items {
            let what = match (&item.product, &item.component, &item.version) {
                (Some(p), Some(c), Some(v)) => format!("{p} {c} {v}"),
                (Some(p), _, _) => p.clone(),
                (None, _, Some(v)) => format!("version {v}"),
                _ => String::new(),
            };
            let line = format!("* {} {} {what}", item.kind.name(), item.label);
            s += line.trim_end();
            s += "\n";
            for f in &item.files {
                s += &format!("    {}\n", f.display());
            }
            s += &wrap(&item.purpose, 90, "    ");
        }
        s
    }
}

fn class_name(c: ReleaseClass) -> &'static str {
    match c {
        ReleaseClass::Security => "security",
        ReleaseClass::Feature => "feature",
        ReleaseClass::Maintenance => "maintenance",
    }
}

fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > width {
            out += &format!("{indent}{line}\n");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line += word;
    }
    if !line.is_empty() {
        out += &format!("{indent}{line}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_revision_and_serial() {
        for (rev, next) in [
            ("C", "D"),
            ("B2", "B3"),
            ("REV-D", "REV-E"),
            ("9", "9X"),
            ("", "X"),
        ] {
            assert_eq!(other_revision(rev), next, "{rev}");
        }
        for (serial, next) in [
            ("P7-004217", "P7-004218"),
            ("VM3-1180-2291", "VM3-1180-2292"),
            ("L2-099", "L2-100"),
            ("ABC", "ABC-OTHER"),
        ] {
            assert_eq!(other_serial(serial), next, "{serial}");
        }
    }

    /// The firmware feed names exactly the releases it should: the pump's network core up to
    /// its current version (not its update), by purl and by the current build's hash; the
    /// main component up to the security release; the withdrawn advisory nothing.
    #[test]
    fn the_firmware_feed_matches_the_affected_releases() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let profiles = ProfileSet::builtin();
        init(&home, &profiles, Utc::now(), false, &mut rand::rngs::OsRng).unwrap();
        let mut catalog = fieldkit_vuln::Catalog::new();
        let feed = home.demo_dir().join("advisories");
        for entry in fs::read_dir(&feed).unwrap() {
            let path = entry.unwrap().path();
            let bytes = fs::read(&path).unwrap();
            let a = fieldkit_vuln::parse_advisory(
                &path.display().to_string(),
                &bytes,
                &fieldkit_vuln::Limits::default(),
            )
            .unwrap();
            catalog.insert(a);
        }
        let mut hits = Vec::new();
        for entry in fs::read_dir(home.demo_dir().join("build")).unwrap() {
            let dir = entry.unwrap().path();
            let sbom = fieldkit_trust::validate_sbom(&fs::read(dir.join("sbom.cdx.json")).unwrap())
                .unwrap();
            for c in &sbom.components {
                let hashes: Vec<(String, String)> = c
                    .hashes
                    .iter()
                    .map(|h| (h.alg.clone(), h.content.clone()))
                    .collect();
                let component = fieldkit_vuln::Component::new(&c.purl, &c.version, &hashes);
                for m in catalog.check(&component) {
                    hits.push(format!("{} {} {}", m.vulnerability, c.name, c.version));
                }
            }
        }
        hits.sort();
        assert_eq!(
            hits,
            [
                "DEMO-ACME-INFUSION-P7-1 acme-infusion-p7-netcore 1.4.0",
                "DEMO-ACME-INFUSION-P7-2 acme-infusion-p7-app 2.3.1",
                "DEMO-LABCORE-ANALYZER-L2-2 labcore-analyzer-l2-firmware 3.4.0",
                "DEMO-VITALIS-MONITOR-M3-2 vitalis-monitor-m3-app 4.0.2",
            ]
        );
        // The netcore build is found by its hash whatever its SBOM calls it.
        let a = catalog.get("DEMO-ACME-INFUSION-P7-1").unwrap();
        assert_eq!(a.affected[0].hashes.len(), 1);
        let renamed = fieldkit_vuln::Component::new(
            "pkg:generic/x/y@0",
            "0",
            &[(
                a.affected[0].hashes[0].alg.clone(),
                a.affected[0].hashes[0].content.clone(),
            )],
        );
        assert_eq!(catalog.check(&renamed).len(), 1);
    }

    #[test]
    fn uuid_has_the_cyclonedx_shape() {
        let u = uuid_of("x");
        let body = u.strip_prefix("urn:uuid:").unwrap();
        assert_eq!(body.len(), 36);
        assert_eq!(
            body.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
    }
}
