//! The device's persistent state: what survives a reset or a restart of the simulator, as
//! flash and battery-backed settings survive on a real device.

use std::collections::BTreeMap;
use std::path::Path;

use fieldkit_mcuboot::{Image, ImageVersion, SignOptions};
use fieldkit_profile::{FieldValue, Profile};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Everything the simulated device keeps across resets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    /// Profile id of the model played.
    pub profile: String,
    /// Model name the device reports.
    pub model: String,
    /// Bootloader name.
    pub bootloader: String,
    /// The identity fields the device reports (serial number, battery, ...), by the profile's
    /// field names.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldValue>,
    /// How many times the device has booted.
    pub boot_count: u64,
    /// MCUboot's hardware security counter: raised to a confirmed image's SEC_CNT, never
    /// lowered, so an image with a lower counter is refused for good.
    #[serde(default)]
    pub security_counter: u32,
    /// One entry per MCUboot image (component).
    pub images: Vec<ImageSlots>,
}

/// The two slots of one MCUboot image and the swap state between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSlots {
    /// Image number.
    pub image: u32,
    /// Slot 0: the image that runs.
    pub primary: Option<SlotImage>,
    /// Slot 1: where uploads go.
    pub secondary: Option<SlotImage>,
    /// Whether the running image is confirmed (it keeps booting).
    pub primary_confirmed: bool,
    /// What the bootloader will do at the next boot.
    pub swap: Swap,
}

/// MCUboot's swap state for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Swap {
    /// Nothing pending.
    None,
    /// The secondary image is to be booted once, as a test.
    PendingTest,
    /// The secondary image is to be booted and kept.
    PendingPermanent,
    /// The primary image is on test: unless confirmed, the next boot reverts.
    Testing,
}

/// An image held in a slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotImage {
    /// Version from the image header, SMP form.
    pub version: String,
    /// Hex of the image's SHA256 TLV (what the device reports as its hash).
    pub hash: String,
    /// The image bytes, base64.
    #[serde(with = "b64")]
    pub bytes: Vec<u8>,
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading or writing the file failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a state file.
    #[error("state file {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl SlotImage {
    /// Reads a complete image as the bootloader would: header, hash TLV.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<SlotImage, fieldkit_mcuboot::ImageError> {
        let image = Image::parse(&bytes)?;
        let hash = image.verify_hash()?;
        Ok(SlotImage {
            version: image.version().to_string(),
            hash: hex::encode(hash),
            bytes,
        })
    }

    /// Dependencies declared by the image.
    pub fn dependencies(&self) -> Vec<fieldkit_mcuboot::Dependency> {
        Image::parse(&self.bytes)
            .map(|i| i.dependencies())
            .unwrap_or_default()
    }

    /// The image's version, parsed.
    pub fn parsed_version(&self) -> Option<ImageVersion> {
        self.version.parse().ok()
    }
}

impl DeviceState {
    /// A factory-fresh device of this model, running the profile's installed versions. The
    /// images are built here, unsigned (hash TLV only), with a payload derived from the model,
    /// component and version so that the same device always has the same hashes.
    pub fn factory(profile: &Profile) -> DeviceState {
        let sim = &profile.simulator;
        let images = profile
            .components
            .iter()
            .map(|c| {
                let version = sim.installed[c.name.get_ref()].get_ref();
                let payload = factory_payload(profile.id(), c.name.get_ref(), version);
                let version: ImageVersion = version.parse().expect("validated by the profile");
                let bytes = fieldkit_mcuboot::sign(&payload, &SignOptions::new(version))
                    .expect("a small unsigned image always builds");
                ImageSlots {
                    image: *c.image.get_ref(),
                    primary: Some(SlotImage::from_bytes(bytes).expect("image just built")),
                    secondary: None,
                    primary_confirmed: true,
                    swap: Swap::None,
                }
            })
            .collect();
        DeviceState {
            profile: profile.id().to_owned(),
            model: profile.model.clone(),
            bootloader: sim.bootloader.clone(),
            fields: sim
                .fields
                .iter()
                .map(|(name, v)| (name.clone(), v.get_ref().clone()))
                .collect(),
            boot_count: 1,
            security_counter: 0,
            images,
        }
    }

    /// Loads a state file. A file written before identity fields were data (with `serial`,
    /// `battery_percent`, ... at the top) is read into `fields`.
    pub fn load(path: &Path) -> Result<DeviceState, StateError> {
        let invalid = |e: serde_json::Error| StateError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let text = std::fs::read(path).map_err(|source| StateError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut value: serde_json::Value = serde_json::from_slice(&text).map_err(invalid)?;
        if let Some(map) = value.as_object_mut()
            && !map.contains_key("fields")
        {
            let mut fields = serde_json::Map::new();
            for key in [
                "serial",
                "hardware_revision",
                "bootloader_version",
                "battery_percent",
                "therapy_running",
            ] {
                if let Some(v) = map.remove(key) {
                    fields.insert(key.to_owned(), v);
                }
            }
            map.insert("fields".into(), fields.into());
        }
        serde_json::from_value(value).map_err(invalid)
    }

    /// A field's value as text, empty when the device has no such field.
    pub fn text(&self, field: &str) -> String {
        self.fields
            .get(field)
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// Writes the state file atomically (write beside, then rename), as flash writes are
    /// all-or-nothing per sector on the device.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_vec_pretty(self).expect("state serializes");
        fieldkit_private::write(&tmp, &text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The slots of image `n`.
    pub fn image(&self, n: u32) -> Option<&ImageSlots> {
        self.images.iter().find(|i| i.image == n)
    }

    /// The slots of image `n`, mutable.
    pub fn image_mut(&mut self, n: u32) -> Option<&mut ImageSlots> {
        self.images.iter_mut().find(|i| i.image == n)
    }

    /// Runs the bootloader: reverts an unconfirmed test, or swaps in a pending image whose
    /// hash and dependencies check out. Returns what happened, one line per image that changed.
    pub fn boot(&mut self) -> Vec<String> {
        self.boot_count += 1;
        let mut events = Vec::new();
        // Versions each image will run after this boot, for dependency checks: MCUboot checks
        // a pending image's dependencies against the images that will be in place.
        let after: Vec<(u32, Option<ImageVersion>)> = self
            .images
            .iter()
            .map(|i| {
                let slot = match i.swap {
                    Swap::PendingTest | Swap::PendingPermanent => i.secondary.as_ref(),
                    Swap::Testing => i.secondary.as_ref(),
                    Swap::None => i.primary.as_ref(),
                };
                (i.image, slot.and_then(SlotImage::parsed_version))
            })
            .collect();
        for slots in &mut self.images {
            match slots.swap {
                Swap::Testing => {
                    std::mem::swap(&mut slots.primary, &mut slots.secondary);
                    slots.primary_confirmed = true;
                    slots.swap = Swap::None;
                    events.push(format!(
                        "image {}: test image was not confirmed, reverted to {}",
                        slots.image,
                        slots
                            .primary
                            .as_ref()
                            .map_or("nothing", |p| p.version.as_str())
                    ));
                }
                Swap::PendingTest | Swap::PendingPermanent => {
                    let permanent = slots.swap == Swap::PendingPermanent;
                    slots.swap = Swap::None;
                    let Some(candidate) = &slots.secondary else {
                        continue;
                    };
                    let valid = SlotImage::from_bytes(candidate.bytes.clone()).is_ok();
                    let unmet = candidate.dependencies().into_iter().find(|d| {
                        let have = after.iter().find(|(n, _)| *n == u32::from(d.image));
                        !matches!(have, Some((_, Some(v))) if *v >= d.min_version)
                    });
                    if !valid {
                        events.push(format!(
                            "image {}: pending image is invalid, not booted",
                            slots.image
                        ));
                    } else if let Some(dep) = unmet {
                        events.push(format!(
                            "image {}: dependency on image {} >= {} not met, not booted",
                            slots.image, dep.image, dep.min_version
                        ));
                    } else {
                        std::mem::swap(&mut slots.primary, &mut slots.secondary);
                        slots.primary_confirmed = permanent;
                        if !permanent {
                            slots.swap = Swap::Testing;
                        }
                        events.push(format!(
                            "image {}: booted {} ({})",
                            slots.image,
                            slots.primary.as_ref().map_or("?", |p| p.version.as_str()),
                            if permanent { "permanent" } else { "on test" }
                        ));
                    }
                }
                Swap::None => {}
            }
        }
        events
    }
}

/// Deterministic filler for factory images: 16 KiB of SHA-256 chained output.
fn factory_payload(profile: &str, component: &str, version: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * 1024);
    let mut block: [u8; 32] = Sha256::digest(format!("{profile}/{component}/{version}")).into();
    while out.len() < 16 * 1024 {
        out.extend_from_slice(&block);
        block = Sha256::digest(block).into();
    }
    out
}

/// The first hex digits of a hash, for log lines.
pub(crate) fn short_hash(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
