//! Reading who a device is and what runs on it, whatever its protocol family.
//!
//! Every identity field is declared in the device's profile with a type and a source; each
//! family's driver reads the sources it has (the SMP vendor group, OS and bootloader info, a
//! line query's capture group), and [`assemble`] turns those answers, the port's USB serial
//! number and the technician's typing into the [`Identity`]'s fields, checking each value's
//! type and range. A value the technician typed is recorded as typed.
//!
//! [`identify_device`] reads a device of a known profile; [`probe`] finds the profile of a
//! device on a port with no USB identity, trying every family in rounds for up to the longest
//! reset time among the profiles (a device that is restarting answers once it is back), and
//! reports each family's last attempt when none answered.

use std::collections::BTreeMap;
use std::time::Duration;

use fieldkit_profile::{
    Family, FieldSource, FieldSpec, FieldValue, Identity, Profile, ProfileSet, Reading, SlotState,
};
use fieldkit_wire::framing::Framing;

use crate::apply::Connector;
use crate::driver::{Driver, for_profile};
use crate::line::LineError;
use crate::smp::SessionError;

/// Values the technician typed, by field name (`serial=P7-004217`): the fields a device
/// cannot report. Each is recorded as typed.
pub type Typed = BTreeMap<String, String>;

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
    /// The port could not be opened.
    #[error(transparent)]
    Link(#[from] fieldkit_link::LinkError),
    /// The device never answered, not even after the time a restart takes.
    #[error(
        "the device did not answer within {} s (its profile's reset time, in case it was restarting): {last}",
        .waited.as_secs()
    )]
    Silent {
        /// How long we waited.
        waited: Duration,
        /// The last attempt's failure, in words that fit what was seen.
        last: String,
    },
    /// A field the profile requires has no value: the device did not report it and the
    /// technician did not type it.
    #[error("{}", missing_message(.profile, .fields))]
    Missing {
        /// Profile id.
        profile: String,
        /// The fields without a value: name, label, and where they were looked for.
        fields: Vec<MissingField>,
    },
    /// A value (read or typed) is not of the field's declared type or range.
    #[error("field {field} ({source_name}): found {found:?}, required {required}")]
    BadValue {
        /// The field.
        field: String,
        /// Where the value came from.
        source_name: String,
        /// The value as found.
        found: String,
        /// What the profile declares.
        required: String,
    },
    /// A typed value for a field the device reports: fieldkit reads it instead.
    #[error(
        "field {field} is read from the device ({source_name}): it cannot be typed; required one of the typed fields: {typed}"
    )]
    NotTyped {
        /// The field.
        field: String,
        /// Its source.
        source_name: String,
        /// The fields that may be typed.
        typed: String,
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
        /// What each family's attempt found.
        reason: String,
        /// Ids of the known profiles.
        known: String,
    },
}

/// A required field without a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingField {
    /// The field's name.
    pub name: String,
    /// Its label, for people.
    pub label: String,
    /// Where it was looked for.
    pub source: String,
    /// Whether the technician may type it.
    pub typable: bool,
}

fn missing_message(profile: &str, fields: &[MissingField]) -> String {
    let list: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.typable {
                format!(
                    "{} ({}: type it with --typed {}=VALUE)",
                    f.name, f.label, f.name
                )
            } else {
                format!(
                    "{} ({}, not reported by the device: {})",
                    f.name, f.label, f.source
                )
            }
        })
        .collect();
    format!(
        "profile {profile} needs {} without a value: {}",
        if fields.len() == 1 {
            "a field"
        } else {
            "fields"
        },
        list.join("; ")
    )
}

impl IdentifyError {
    /// A short machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            IdentifyError::Session(e) => e.kind(),
            IdentifyError::Line(e) => e.kind(),
            IdentifyError::Link(_) => "link",
            IdentifyError::Silent { .. } => "timeout",
            IdentifyError::Missing { .. } => "missing_field",
            IdentifyError::BadValue { .. } => "bad_value",
            IdentifyError::NotTyped { .. } => "not_typed",
            IdentifyError::WrongModel { .. } => "wrong_model",
            IdentifyError::NoProfile { .. } => "no_profile",
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

/// Reads the identity of a device of `profile` through `connector`, speaking the profile's
/// family, with `typed` for the fields the device cannot report.
pub async fn identify_device<C: Connector>(
    connector: C,
    profile: &Profile,
    typed: &Typed,
) -> Result<Identity, IdentifyError> {
    for_profile(profile, connector, typed.clone())
        .identify()
        .await
}

/// How `spec` describes its source, for messages.
pub(crate) fn source_name(name: &str, spec: &FieldSpec, profile: &Profile) -> String {
    match spec.from.get_ref() {
        FieldSource::Vendor => match profile.vendor_group() {
            Some(g) => format!(
                "vendor group {} command {}, key {:?}",
                g.group.get_ref(),
                g.command,
                spec.key_or(name)
            ),
            None => "vendor group".into(),
        },
        FieldSource::OsInfo => format!("MCUmgr OS info {:?}", spec.key_or(name)),
        FieldSource::BootloaderInfo => format!("MCUmgr bootloader info {:?}", spec.key_or(name)),
        FieldSource::UsbSerial => "the USB descriptor's serial number".into(),
        FieldSource::Line => format!("line query capture {:?}", spec.key_or(name)),
        FieldSource::Typed => "typed by the technician".into(),
    }
}

/// A value a device reported for a field, before it is checked against the declaration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reported {
    /// A typed value (CBOR integer, boolean, text).
    Value(FieldValue),
    /// Text to be read as the field's type (a regex capture, OS info, a USB string).
    Text(String),
}

/// Checks that every typed value is for a field that may be typed; called before the device
/// is asked anything, so that a typing mistake costs no exchange.
pub(crate) fn check_typed(profile: &Profile, typed: &Typed) -> Result<(), IdentifyError> {
    for name in typed.keys() {
        let typable = profile
            .field(name)
            .is_some_and(|f| *f.from.get_ref() == FieldSource::Typed || f.or_typed);
        if !typable {
            let typed_fields: Vec<&str> = profile
                .identity
                .iter()
                .filter(|(_, f)| *f.from.get_ref() == FieldSource::Typed || f.or_typed)
                .map(|(n, _)| n.as_str())
                .collect();
            return Err(IdentifyError::NotTyped {
                field: name.clone(),
                source_name: profile.field(name).map_or_else(
                    || "not a field of this profile".into(),
                    |f| source_name(name, f, profile),
                ),
                typed: if typed_fields.is_empty() {
                    "none".into()
                } else {
                    typed_fields.join(", ")
                },
            });
        }
    }
    Ok(())
}

/// Turns what the device reported (`reported(name)`), the port's USB serial number and what
/// the technician typed into the profile's identity fields, checked against their types and
/// ranges. Fields without a value are left out, except `serial` and `hardware_revision`,
/// without which a device cannot be identified.
pub(crate) fn assemble(
    profile: &Profile,
    mut reported: impl FnMut(&str, &FieldSpec) -> Option<Reported>,
    usb_serial: Option<String>,
    typed: &Typed,
) -> Result<BTreeMap<String, Reading>, IdentifyError> {
    check_typed(profile, typed)?;
    let mut fields = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, spec) in &profile.identity {
        let from = *spec.from.get_ref();
        let read = match from {
            FieldSource::Typed => None,
            FieldSource::UsbSerial => usb_serial.clone().map(Reported::Text),
            _ => reported(name, spec),
        };
        let (value, source) = match (read, typed.get(name)) {
            (Some(v), _) => (v, from),
            (None, Some(t)) => (Reported::Text(t.clone()), FieldSource::Typed),
            (None, None) => {
                if matches!(name.as_str(), "serial" | "hardware_revision") {
                    missing.push(MissingField {
                        name: name.clone(),
                        label: spec.label_or(name).to_owned(),
                        source: source_name(name, spec, profile),
                        typable: from == FieldSource::Typed || spec.or_typed,
                    });
                }
                continue;
            }
        };
        let kind = *spec.kind.get_ref();
        let shown = match &value {
            Reported::Value(v) => v.to_string(),
            Reported::Text(t) => t.clone(),
        };
        let checked = match value {
            Reported::Value(v) if kind.admits(&v) => Some(v),
            Reported::Value(_) => None,
            Reported::Text(t) => kind.parse(&t),
        }
        .filter(|v| match v {
            FieldValue::Int(n) => {
                spec.min.is_none_or(|m| *n >= m) && spec.max.is_none_or(|m| *n <= m)
            }
            _ => true,
        });
        let Some(value) = checked else {
            let required = match (kind.name(), spec.min, spec.max) {
                ("integer", Some(a), Some(b)) => format!("an integer from {a} to {b}"),
                ("integer", ..) => "an integer".into(),
                ("boolean", ..) => "true or false".into(),
                _ => "text".into(),
            };
            return Err(IdentifyError::BadValue {
                field: name.clone(),
                source_name: if source == FieldSource::Typed {
                    "typed by the technician".into()
                } else {
                    source_name(name, spec, profile)
                },
                found: shown,
                required,
            });
        };
        fields.insert(
            name.clone(),
            Reading {
                value,
                label: spec.label_or(name).to_owned(),
                source,
            },
        );
    }
    // The model the device reports, when it reports one, decides first: a wrong profile
    // explains every other mismatch.
    if let Some(found) = fields.get("model").map(|r| r.value.to_string())
        && found != profile.model
    {
        return Err(IdentifyError::WrongModel {
            profile: profile.id().to_owned(),
            found,
            required: profile.model.clone(),
        });
    }
    if !missing.is_empty() {
        return Err(IdentifyError::Missing {
            profile: profile.id().to_owned(),
            fields: missing,
        });
    }
    Ok(fields)
}

/// Builds the identity from the checked fields and the slots, checking the reported model.
pub(crate) fn identity(
    profile: &Profile,
    fields: BTreeMap<String, Reading>,
    slots: Vec<SlotState>,
    bootloader: Option<String>,
    buffers: Option<(u32, u32)>,
) -> Result<Identity, IdentifyError> {
    let text = |name: &str| fields.get(name).map(|r| r.value.to_string());
    let model = text("model").unwrap_or_else(|| profile.model.clone());
    if model != profile.model {
        return Err(IdentifyError::WrongModel {
            profile: profile.id().to_owned(),
            found: model,
            required: profile.model.clone(),
        });
    }
    Ok(Identity {
        profile: profile.id().to_owned(),
        model,
        serial: text("serial").unwrap_or_default(),
        hardware_revision: text("hardware_revision").unwrap_or_default(),
        bootloader,
        bootloader_version: text("bootloader_version"),
        slots,
        fields,
        buffers,
    })
}

/// Finds the profile of a device on a port with no USB identity (a simulator, a bare UART
/// adapter). In rounds, for up to the longest reset time of the profiles (a device that is
/// restarting answers once it is back): SMP first (echo, then each vendor identity group,
/// matching the model it reports; a device with no vendor group is one of the profiles
/// without one), then each line profile's first query. When nothing matches, the error says
/// what each family's last attempt found.
pub async fn probe<'p, C: Connector>(
    connector: &mut C,
    profiles: &'p ProfileSet,
) -> Result<&'p Profile, IdentifyError> {
    let patience = profiles
        .iter()
        .map(|p| Duration::from_millis(p.timeouts.reset_ms))
        .max()
        .unwrap_or(Duration::from_secs(10));
    let deadline = tokio::time::Instant::now() + patience;
    let mut attempts: BTreeMap<&'static str, String> = BTreeMap::new();
    loop {
        let mut link = match connector.connect() {
            Ok(l) => Some(l),
            Err(e @ fieldkit_link::LinkError::NotFound { .. }) => {
                // The port is gone: a USB device re-enumerating after a reset.
                attempts.insert("port", e.to_string());
                None
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(link) = link.as_mut() {
            if profiles.iter().any(|p| p.family() == Family::Smp) {
                match crate::smp::probe(link, profiles).await {
                    Ok(Some(p)) => return Ok(p),
                    // An SMP device that matches no profile: that is the answer.
                    Err(e @ IdentifyError::NoProfile { .. }) => return Err(e),
                    Ok(None) => {}
                    Err(e) => {
                        attempts.insert("SMP", e.to_string());
                    }
                }
            }
            if profiles.iter().any(|p| p.family() == Family::Line) {
                match crate::line::probe_profile(link, profiles).await {
                    Ok(Some(p)) => return Ok(p),
                    Ok(None) => {
                        attempts.insert(
                            "line",
                            "no line profile's identity query was answered as it declares".into(),
                        );
                    }
                    Err(e) => {
                        attempts.insert("line", e.to_string());
                    }
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let reason = attempts
                .iter()
                .map(|(family, what)| format!("{family}: {what}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(IdentifyError::NoProfile {
                reason: format!(
                    "nothing answered within {} s, the longest reset time of the profiles; {reason}",
                    patience.as_secs()
                ),
                known: profiles.ids().join(", "),
            });
        }
        // The device's time to come back, not a test's.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
