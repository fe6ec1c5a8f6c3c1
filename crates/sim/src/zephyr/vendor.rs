//! The model's own identity group (64 and up), as its profile declares it: one read command
//! whose reply maps the profile's keys to the device's values. Another command of the group
//! gets `{"rc": 8}`, as any command Zephyr has no handler for.

use ciborium::Value;
use fieldkit_wire::smp::{MGMT_ERR_ENOTSUP, Op, Packet, vendor};

use super::ZephyrDevice;

/// Whether `group` is the profile's vendor identity group.
pub(super) fn is_identity_group(dev: &ZephyrDevice, group: u16) -> bool {
    dev.profile
        .smp
        .as_ref()
        .is_some_and(|s| *s.identity.group.get_ref() == group)
}

pub(super) fn handle(dev: &mut ZephyrDevice, req: &Packet) -> Packet {
    let h = &req.header;
    let Some(smp) = &dev.profile.smp else {
        return Packet::mgmt_error(h, MGMT_ERR_ENOTSUP);
    };
    if h.op != Op::Read || h.id != smp.identity.command {
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
    let battery = drained.or(dev.faults.battery).unwrap_or(s.battery_percent);
    let therapy = dev.faults.therapy_running || s.therapy_running;
    let mut map = vendor::Map::new();
    for (field, key) in &smp.identity.fields {
        let value = match field.as_str() {
            "model" => Value::from(s.model.clone()),
            "serial" => Value::from(s.serial.clone()),
            "hardware_revision" => Value::from(s.hardware_revision.clone()),
            "bootloader_version" => Value::from(s.bootloader_version.clone()),
            "battery_percent" => Value::from(battery),
            "therapy_running" => Value::from(therapy),
            "security_counter" => Value::from(s.security_counter),
            _ => continue,
        };
        map.insert(key.get_ref().clone(), value);
    }
    Packet::response(h, &map)
}
