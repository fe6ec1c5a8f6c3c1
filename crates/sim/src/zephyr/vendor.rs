//! The model's own identity group (64 and up), as its profile declares it (`[smp.vendor]`):
//! one read command whose reply maps each `from = "vendor"` field's key to the device's
//! value. Another command of the group gets `{"rc": 8}`, as any command Zephyr has no handler
//! for.

use ciborium::Value;
use fieldkit_profile::{FieldSource, FieldValue};
use fieldkit_wire::smp::{MGMT_ERR_ENOTSUP, Op, Packet, vendor};

use super::ZephyrDevice;

/// Whether `group` is the profile's vendor identity group.
pub(super) fn is_identity_group(dev: &ZephyrDevice, group: u16) -> bool {
    dev.profile
        .vendor_group()
        .is_some_and(|v| *v.group.get_ref() == group)
}

pub(super) fn handle(dev: &mut ZephyrDevice, req: &Packet) -> Packet {
    let h = &req.header;
    let Some(group) = dev.profile.vendor_group() else {
        return Packet::mgmt_error(h, MGMT_ERR_ENOTSUP);
    };
    if h.op != Op::Read || h.id != group.command {
        return Packet::mgmt_error(h, MGMT_ERR_ENOTSUP);
    }
    // A battery that drains between a check and an update, when the fault asks for it.
    let drained = dev
        .faults
        .battery_drain
        .filter(|(after, _)| dev.identity_reads >= *after)
        .map(|(_, p)| p);
    dev.identity_reads += 1;
    let s = &dev.state;
    let mut map = vendor::Map::new();
    for (name, spec) in &dev.profile.identity {
        if *spec.from.get_ref() != FieldSource::Vendor {
            continue;
        }
        // A fault overrides what the device would say; the model and MCUboot's security
        // counter are the device's own.
        let value = match (dev.faults.fields.get(name), name.as_str()) {
            (_, "battery_percent") if drained.is_some() => {
                FieldValue::Int(i64::from(drained.expect("checked")))
            }
            (Some(v), _) => v.clone(),
            (None, "model") => FieldValue::Text(s.model.clone()),
            (None, "security_counter") => FieldValue::Int(i64::from(s.security_counter)),
            (None, _) => match s.fields.get(name) {
                Some(v) => v.clone(),
                None => continue,
            },
        };
        map.insert(spec.key_or(name).to_owned(), cbor(value));
    }
    Packet::response(h, &map)
}

fn cbor(v: FieldValue) -> Value {
    match v {
        FieldValue::Bool(b) => Value::from(b),
        FieldValue::Int(n) => Value::from(n),
        FieldValue::Text(t) => Value::from(t),
    }
}
