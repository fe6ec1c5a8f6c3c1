//! Reading an SMP device's identity: the sources its profile declares (the vendor group, OS
//! info, bootloader info), its MCUmgr buffer parameters and every image slot; and probing an
//! unknown SMP device for its profile.
//!
//! Optional commands a device may lack (OS info, bootloader info, MCUmgr parameters) answer
//! `{"rc": 8}`, which leaves their fields empty rather than failing: MCUboot's serial
//! recovery has none of them, and no vendor group either.

use std::collections::BTreeMap;
use std::time::Duration;

use fieldkit_link::Link;
use fieldkit_profile::{
    FieldSource, FieldType, FieldValue, Identity, Profile, ProfileSet, SlotState,
};
use fieldkit_wire::smp::{Op, image, os, vendor};

use super::client::{SessionError, SmpClient};
use crate::identify::{IdentifyError, Reported, Typed, assemble, framing_of, identity};

/// Turns "the device has no such command" into `None`.
pub(crate) fn optional<T>(r: Result<T, SessionError>) -> Result<Option<T>, SessionError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(SessionError::Device { source, .. }) if source.is_not_supported() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the full identity of a device of `profile` over `client`.
pub(crate) async fn identify<L: Link>(
    client: &mut SmpClient<L>,
    profile: &Profile,
    usb_serial: Option<String>,
    typed: &Typed,
) -> Result<Identity, IdentifyError> {
    let t = Duration::from_millis(profile.timeouts.response_ms);
    let wants = |source: FieldSource| {
        profile
            .identity
            .values()
            .any(|f| *f.from.get_ref() == source)
    };

    let vendor_map: Option<vendor::Map> = match profile.vendor_group() {
        Some(g) if wants(FieldSource::Vendor) => Some(
            client
                .read(
                    "read identity",
                    *g.group.get_ref(),
                    g.command,
                    &os::Empty {},
                    t,
                )
                .await?,
        ),
        _ => None,
    };
    // OS info, once per distinct set of format letters.
    let mut os_info: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (name, spec) in &profile.identity {
        if *spec.from.get_ref() == FieldSource::OsInfo {
            let format = spec.key_or(name).to_owned();
            if let std::collections::btree_map::Entry::Vacant(slot) = os_info.entry(format.clone())
            {
                let got = optional(
                    client
                        .read::<_, os::InfoRsp>(
                            "read OS info",
                            os::GROUP,
                            os::INFO,
                            &os::InfoReq {
                                format: Some(format.clone()),
                            },
                            t,
                        )
                        .await,
                )?;
                slot.insert(got.map(|r| r.output));
            }
        }
    }
    // Bootloader info: its name, and each query the profile's fields ask.
    let mut bootloader_info: BTreeMap<Option<String>, Option<vendor::Map>> = BTreeMap::new();
    let mut queries: Vec<Option<String>> = vec![None];
    for spec in profile.identity.values() {
        if *spec.from.get_ref() == FieldSource::BootloaderInfo && !queries.contains(&spec.query) {
            queries.push(spec.query.clone());
        }
    }
    for query in queries {
        let got = optional(
            client
                .read::<_, vendor::Map>(
                    "read bootloader info",
                    os::GROUP,
                    os::BOOTLOADER_INFO,
                    &os::BootloaderInfoReq {
                        query: query.clone(),
                    },
                    t,
                )
                .await,
        )?;
        bootloader_info.insert(query, got);
    }
    let bootloader = bootloader_info
        .get(&None)
        .and_then(|m| m.as_ref())
        .and_then(|m| vendor::field_string(m, "bootloader"));
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
    if let Some((size, _)) = buffers {
        client.set_max_reply(size as usize + 64);
    }
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

    let fields = assemble(
        profile,
        |name, spec| {
            let key = spec.key_or(name);
            match spec.from.get_ref() {
                FieldSource::Vendor => from_map(vendor_map.as_ref()?, key, *spec.kind.get_ref()),
                FieldSource::OsInfo => os_info.get(key)?.clone().map(Reported::Text),
                FieldSource::BootloaderInfo => from_map(
                    bootloader_info.get(&spec.query)?.as_ref()?,
                    key,
                    *spec.kind.get_ref(),
                ),
                _ => None,
            }
        },
        usb_serial,
        typed,
    )?;
    identity(profile, fields, slots, bootloader, buffers)
}

/// A map value as the field's type, leniently (a firmware may send a number as text); a value
/// of another type is handed on as text, to be refused with what was found.
fn from_map(map: &vendor::Map, key: &str, kind: FieldType) -> Option<Reported> {
    let typed = match kind {
        FieldType::Text => vendor::field_string(map, key).map(FieldValue::Text),
        FieldType::Integer => vendor::field_i64(map, key).map(FieldValue::Int),
        FieldType::Boolean => vendor::field_bool(map, key).map(FieldValue::Bool),
    };
    match typed {
        Some(v) => Some(Reported::Value(v)),
        None => match map.get(key)? {
            ciborium::Value::Text(t) => Some(Reported::Text(t.clone())),
            other => Some(Reported::Text(format!("{other:?}"))),
        },
    }
}

fn slot_state(profile: &Profile, e: image::ImageStateEntry) -> SlotState {
    let image = e.image_number();
    SlotState {
        image,
        slot: e.slot,
        component: profile
            .component_by_image(image)
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

/// Whether `link` has an SMP device, and which SMP profile it is. `Ok(None)` when something
/// answers but not in SMP; an error when nothing answered at all (with words that fit it),
/// or [`IdentifyError::NoProfile`] for an SMP device no profile matches.
pub(crate) async fn probe<'p, L: Link>(
    link: &mut L,
    profiles: &'p ProfileSet,
) -> Result<Option<&'p Profile>, IdentifyError> {
    let smp: Vec<&Profile> = profiles
        .iter()
        .filter(|p| p.family() == fieldkit_profile::Family::Smp)
        .collect();
    let Some(first) = smp.first() else {
        return Ok(None);
    };
    let t = smp
        .iter()
        .map(|p| Duration::from_millis(p.timeouts.response_ms))
        .min()
        .unwrap_or(Duration::from_secs(3));
    let mut client = SmpClient::new(&mut *link, framing_of(first));
    // Any answer to echo, even "not supported", says an SMP server is there.
    let echo = client
        .request::<_, os::EchoRsp>(
            "echo",
            Op::Write,
            os::GROUP,
            os::ECHO,
            &os::EchoReq {
                d: "fieldkit".into(),
            },
            t,
        )
        .await;
    match echo {
        Ok(_) => {}
        Err(SessionError::Device { .. }) => {}
        Err(e @ SessionError::Timeout { .. }) => {
            // A text device answers an SMP frame with text: let the line family try.
            return Err(IdentifyError::Session(e));
        }
        Err(e) => return Err(e.into()),
    }
    let mut reported = None;
    let mut tried = Vec::new();
    for p in &smp {
        let Some(g) = p.vendor_group() else { continue };
        let id = (*g.group.get_ref(), g.command);
        if tried.contains(&id) {
            continue;
        }
        tried.push(id);
        match optional(
            client
                .read::<_, vendor::Map>("read identity", id.0, id.1, &os::Empty {}, t)
                .await,
        )? {
            None => {}
            Some(map) => {
                let model_of = |q: &&Profile| {
                    q.field("model")
                        .filter(|f| *f.from.get_ref() == FieldSource::Vendor)
                        .and_then(|f| vendor::field_string(&map, f.key_or("model")))
                };
                if let Some(found) = smp.iter().find(|q| {
                    q.vendor_group()
                        .is_some_and(|v| (*v.group.get_ref(), v.command) == id)
                        && model_of(q).as_deref() == Some(q.model.as_str())
                }) {
                    return Ok(Some(found));
                }
                reported = smp.iter().find_map(model_of).or(reported);
            }
        }
    }
    if let Some(model) = reported {
        return Err(IdentifyError::NoProfile {
            reason: format!("an SMP device that reports model {model:?}"),
            known: profiles.ids().join(", "),
        });
    }
    // No vendor group answered: a device that has none, such as MCUboot's serial recovery.
    let without: Vec<&Profile> = smp
        .iter()
        .copied()
        .filter(|p| p.vendor_group().is_none())
        .collect();
    match without[..] {
        [one] => Ok(Some(one)),
        [] => Err(IdentifyError::NoProfile {
            reason: "an SMP device without a vendor identity group, and no profile without one"
                .into(),
            known: profiles.ids().join(", "),
        }),
        _ => Err(IdentifyError::NoProfile {
            reason: format!(
                "an SMP device without a vendor identity group (MCUboot serial recovery?), which could be any of {}",
                without
                    .iter()
                    .map(|p| p.id())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            known: profiles.ids().join(", "),
        }),
    }
}
