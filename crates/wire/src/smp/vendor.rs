//! Vendor groups (64 and above).
//!
//! Vendor groups carry the identity fields no standard group has (serial number, hardware
//! revision, battery, therapy state). Which group, command and keys a device uses is declared
//! in its profile, not here, so replies are decoded as a generic [`Map`] and read with the
//! `field_*` helpers, which are lenient about the CBOR type a firmware chose.

use std::collections::BTreeMap;

use ciborium::Value;

/// A vendor reply: a CBOR map with text keys.
pub type Map = BTreeMap<String, Value>;

/// The first vendor group id; groups below are reserved for standard groups.
pub const FIRST_GROUP: u16 = 64;

/// `key` as a string: text as is, integers and booleans rendered in decimal or
/// `true`/`false`. `None` when absent or of another type.
pub fn field_string(map: &Map, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::Text(s) => Some(s.clone()),
        Value::Integer(n) => Some(i128::from(*n).to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `key` as an integer. `None` when absent, not an integer, or out of range.
pub fn field_i64(map: &Map, key: &str) -> Option<i64> {
    match map.get(key)? {
        Value::Integer(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}

/// `key` as a boolean. `None` when absent or not a boolean.
pub fn field_bool(map: &Map, key: &str) -> Option<bool> {
    map.get(key)?.as_bool()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let map = Map::from([
            ("serial".to_string(), Value::from("SN-1")),
            ("hw".to_string(), Value::from(3)),
            ("big".to_string(), Value::Integer(u64::MAX.into())),
            ("charging".to_string(), Value::from(true)),
            ("blob".to_string(), Value::Bytes(vec![1])),
        ]);
        assert_eq!(field_string(&map, "serial").as_deref(), Some("SN-1"));
        assert_eq!(field_string(&map, "hw").as_deref(), Some("3"));
        assert_eq!(
            field_string(&map, "big").as_deref(),
            Some("18446744073709551615")
        );
        assert_eq!(field_string(&map, "blob"), None);
        assert_eq!(field_string(&map, "missing"), None);
        assert_eq!(field_i64(&map, "hw"), Some(3));
        assert_eq!(field_i64(&map, "big"), None);
        assert_eq!(field_i64(&map, "serial"), None);
        assert_eq!(field_bool(&map, "charging"), Some(true));
        assert_eq!(field_bool(&map, "hw"), None);
    }
}
