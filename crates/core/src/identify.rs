//! Reading who a device is and what runs on it.
//!
//! [`identify_device`] and [`probe`] work for every protocol family and are what the CLI and
//! the app call; [`identify`] and [`probe_profile`] are the SMP halves, [`crate::line`] holds
//! the line-family ones.

use std::time::Duration;

use fieldkit_link::Link;
use fieldkit_profile::{Family, Identity, Profile, ProfileSet, SlotState};
use fieldkit_wire::framing::Framing;
use fieldkit_wire::smp::{Op, image, os, vendor};

use crate::line::{self, LineClient, LineError};
use crate::smp::{SessionError, SmpClient};

/// Why a device could not be identified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentifyError {
    /// Talking to the device failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// Talking to a line-family device failed.
    #[error(transparent)]
    Line(#[from] LineError),
    /// A line-family device's replies matched, but none carried a required field.
    #[error(
        "no reply of the device carries {field:?}, required by profile {profile}: its query patterns must capture it"
    )]
    MissingReplyField {
        /// Profile id.
        profile: String,
        /// Identity field.
        field: String,
    },
    /// The device answered, but an identity field the profile requires is missing.
    #[error(
        "the device's identity reply has no {field:?} (key {key:?} in vendor group {group}); required by profile {profile}"
    )]
    MissingField {
        /// Profile id.
        profile: String,
        /// Identity field.
        field: String,
        /// Key looked up.
        key: String,
        /// Vendor group.
        group: u16,
    },
    /// The device reports a different model from the profile it was read with.
    #[error(
        "the device reports model {found:?}, but profile {profile} is for {required:?}: pick the right profile (--profile)"
    )]
    WrongModel {
        /// Profile id.
        profile: String,
        /// Reported model.
        found: String,
        /// The profile's model.
        required: String,
    },
    /// No profile matches the device.
    #[error(
        "no device profile matches this device ({reason}); known profiles: {known}. Pass --profile ID"
    )]
    NoProfile {
        /// What was tried.
        reason: String,
        /// Ids of the known profiles.
        known: String,
    },
    /// The profile's protocol family is not the one this function speaks.
    #[error("profile {0} is not an SMP device: identify it with `identify_device`")]
    Unsupported(String),
}

impl IdentifyError {
    /// A short machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            IdentifyError::Session(e) => e.kind(),
            IdentifyError::Line(e) => e.kind(),
            IdentifyError::MissingReplyField { .. } => "missing_field",
            IdentifyError::MissingField { .. } => "missing_field",
            IdentifyError::WrongModel { .. } => "wrong_model",
            IdentifyError::NoProfile { .. } => "no_profile",
            IdentifyError::Unsupported(_) => "unsupported",
        }
    }
}

/// The SMP framing a profile declares.
pub fn framing_of(profile: &Profile) -> Framing {
    match profile
        .protocol
        .framing
        .as_ref()
        .map(|f| f.get_ref().as_str())
    {
        Some("raw") => Framing::Raw,
        _ => Framing::Console,
    }
}

/// Reads the identity of a device of `profile` on `link`, speaking the profile's family.
pub async fn identify_device<L: Link>(
    link: L,
    profile: &Profile,
) -> Result<Identity, IdentifyError> {
    match profile.family() {
        Family::Smp => identify(&mut SmpClient::new(link, framing_of(profile)), profile).await,
        Family::Line => line::identify(&mut LineClient::new(link, profile)?, profile).await,
    }
}

/// Finds the profile of a device on a port with no USB identity: SMP profiles first (their
/// probe is a frame that text devices answer with an error line), then line profiles.
pub async fn probe<'p, L: Link>(
    link: &mut L,
    profiles: &'p ProfileSet,
) -> Result<&'p Profile, IdentifyError> {
    let smp_error = match profiles.iter().find(|p| p.family() == Family::Smp) {
        Some(first) => {
            let mut client = SmpClient::new(&mut *link, framing_of(first));
            match probe_profile(&mut client, profiles).await {
                Ok(p) => return Ok(p),
                Err(
                    e @ IdentifyError::Session(
                        SessionError::Disconnected { .. } | SessionError::Io { .. },
                    ),
                ) => return Err(e),
                Err(e) => Some(e),
            }
        }
        None => None,
    };
    match line::probe_profile(link, profiles).await? {
        Some(p) => Ok(p),
        None => Err(smp_error.unwrap_or_else(|| IdentifyError::NoProfile {
            reason: "no profile's identity query was answered".into(),
            known: profiles.ids().join(", "),
        })),
    }
}

/// Reads the full identity of a device of `profile` over `client`: the vendor identity
/// record, the bootloader, the MCUmgr buffer parameters and every image slot.
pub async fn identify<L: Link>(
    client: &mut SmpClient<L>,
    profile: &Profile,
) -> Result<Identity, IdentifyError> {
    if profile.family() != Family::Smp {
        return Err(IdentifyError::Unsupported(profile.id().to_owned()));
    }
    let t = Duration::from_millis(profile.timeouts.response_ms);
    let smp = profile
        .smp
        .as_ref()
        .expect("validated: smp profiles have [smp]");
    let group = *smp.identity.group.get_ref();

    let map: vendor::Map = client
        .read(
            "read identity",
            group,
            smp.identity.command,
            &os::Empty {},
            t,
        )
        .await?;
    let key = |name: &str| smp.identity.fields.get(name).map(|k| k.get_ref().as_str());
    let text = |name: &str| key(name).and_then(|k| vendor::field_string(&map, k));
    let required = |name: &str| {
        text(name).ok_or_else(|| IdentifyError::MissingField {
            profile: profile.id().to_owned(),
            field: name.to_owned(),
            key: key(name).unwrap_or(name).to_owned(),
            group,
        })
    };
    let model = text("model").unwrap_or_else(|| profile.model.clone());
    if model != profile.model {
        return Err(IdentifyError::WrongModel {
            profile: profile.id().to_owned(),
            found: model,
            required: profile.model.clone(),
        });
    }
    let serial = required("serial")?;
    let hardware_revision = required("hardware_revision")?;
    let battery_percent = key("battery_percent").and_then(|k| vendor::field_i64(&map, k));
    let therapy_running = key("therapy_running").and_then(|k| vendor::field_bool(&map, k));
    let security_counter = key("security_counter").and_then(|k| vendor::field_i64(&map, k));

    // Optional groups: a device that does not implement them answers "not supported", which
    // leaves the field empty rather than failing the identification.
    let bootloader = optional(
        client
            .read::<_, os::BootloaderInfoRsp>(
                "read bootloader info",
                os::GROUP,
                os::BOOTLOADER_INFO,
                &os::BootloaderInfoReq::default(),
                t,
            )
            .await,
    )?
    .and_then(|b| b.bootloader);
    let buffers = optional(
        client
            .read::<_, os::ParamsRsp>(
                "read MCUmgr parameters",
                os::GROUP,
                os::PARAMS,
                &os::Empty {},
                t,
            )
            .await,
    )?
    .map(|p| (p.buf_size, p.buf_count));

    let state: image::StateRsp = client
        .read(
            "read image state",
            image::GROUP,
            image::STATE,
            &os::Empty {},
            t,
        )
        .await?;
    let slots = state
        .images
        .into_iter()
        .map(|e| slot_state(profile, e))
        .collect();

    Ok(Identity {
        profile: profile.id().to_owned(),
        model,
        serial,
        hardware_revision,
        bootloader,
        bootloader_version: text("bootloader_version"),
        slots,
        battery_percent,
        therapy_running,
        security_counter,
        buffers,
    })
}

/// Turns "the device has no such command" into `None`.
fn optional<T>(r: Result<T, SessionError>) -> Result<Option<T>, SessionError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(SessionError::Device { source, .. }) if source.is_not_supported() => Ok(None),
        Err(e) => Err(e),
    }
}

fn slot_state(profile: &Profile, e: image::ImageStateEntry) -> SlotState {
    SlotState {
        image: e.image_number(),
        slot: e.slot,
        component: profile
            .component_by_image(e.image_number())
            .map(|c| c.name.get_ref().clone()),
        version: e.version,
        hash: e
            .hash
            .map(|h| hex::encode(h.as_slice()))
            .unwrap_or_default(),
        bootable: e.bootable,
        pending: e.pending,
        confirmed: e.confirmed,
        active: e.active,
        permanent: e.permanent,
    }
}

/// Finds the profile of a device on a port with no USB identity (a simulator, a bare UART
/// adapter): asks each SMP profile's identity command and matches the model it reports.
pub async fn probe_profile<'p, L: Link>(
    client: &mut SmpClient<L>,
    profiles: &'p ProfileSet,
) -> Result<&'p Profile, IdentifyError> {
    let mut tried = Vec::new();
    let mut last_error = None;
    for p in profiles.iter().filter(|p| p.family() == Family::Smp) {
        let smp = p.smp.as_ref().expect("validated");
        let id = (*smp.identity.group.get_ref(), smp.identity.command);
        if tried.contains(&id) {
            continue;
        }
        tried.push(id);
        let t = Duration::from_millis(p.timeouts.response_ms);
        match client
            .request::<_, vendor::Map>("probe identity", Op::Read, id.0, id.1, &os::Empty {}, t)
            .await
        {
            Ok(map) => {
                let reported: Vec<String> = smp
                    .identity
                    .fields
                    .get("model")
                    .and_then(|k| vendor::field_string(&map, k.get_ref()))
                    .into_iter()
                    .collect();
                if let Some(found) = profiles.iter().find(|q| reported.contains(&q.model)) {
                    return Ok(found);
                }
                last_error = Some(format!(
                    "the device reports model {:?}",
                    reported.first().cloned().unwrap_or_default()
                ));
            }
            Err(
                e @ (SessionError::Timeout { .. }
                | SessionError::Disconnected { .. }
                | SessionError::Io { .. }),
            ) => {
                return Err(e.into());
            }
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    Err(IdentifyError::NoProfile {
        reason: last_error.unwrap_or_else(|| "no SMP profile to probe with".into()),
        known: profiles.ids().join(", "),
    })
}
