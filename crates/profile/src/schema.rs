//! The profile schema, as it appears in `device-profiles/*.toml`.
//!
//! Fields whose values need checks beyond their type are wrapped in [`Spanned`] so that a
//! validation error can point at the line that holds the bad value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// One device model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Stable identifier, equal to the file name without `.toml` (e.g. `acme-infusion-p7`).
    pub id: Spanned<String>,
    /// Manufacturer name shown to people.
    pub vendor: String,
    /// Model name shown to people and matched against the device's reported model.
    pub model: String,
    /// What kind of device this is ("infusion pump"), for people.
    #[serde(default)]
    pub kind: String,
    /// How to recognise the device on USB.
    #[serde(default)]
    pub usb: Option<Usb>,
    /// Serial line settings.
    pub line: LineSettings,
    /// Protocol family and framing.
    pub protocol: Protocol,
    /// What the real device can do: update mode, slots, buffers, alignment, reset.
    pub device: DeviceCaps,
    /// Parameters of the "smp" family.
    #[serde(default)]
    pub smp: Option<SmpSettings>,
    /// Parameters of the "line" family.
    #[serde(default)]
    pub line_protocol: Option<LineProtocol>,
    /// The identity fields of the model, by name: their type and where each is read from.
    #[serde(default)]
    pub identity: BTreeMap<String, FieldSpec>,
    /// Firmware components, in the order they are shown.
    #[serde(rename = "component")]
    pub components: Vec<Component>,
    /// Safety preconditions that must hold before any byte of an update reaches the device.
    #[serde(default, rename = "precondition")]
    pub preconditions: Vec<Precondition>,
    /// How long to wait for the device at each stage.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// What the simulator plays when asked to be this model. Only the simulator and the demo
    /// kit read it: what a real device can do is in [`Profile::device`].
    pub simulator: SimulatorDefaults,
}

/// What the real device can do, declared so that no code has to guess it from the protocol
/// family.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCaps {
    /// How an update reaches the device.
    pub update: UpdateMode,
    /// Image slots per MCUboot image (2 with swap; 1 for a single-slot device).
    #[serde(default = "default_slots")]
    pub slots: Spanned<u32>,
    /// Size of each image slot, bytes: the largest image the device takes.
    pub slot_size: Spanned<u32>,
    /// The SMP buffer size to assume when the device does not answer MCUmgr parameters:
    /// Zephyr's default `CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE`, 384.
    #[serde(default = "default_buffer_fallback")]
    pub buffer_fallback: Spanned<u32>,
    /// Flash write alignment, bytes: upload chunks are whole multiples of it (MCUboot's serial
    /// recovery writes, and acknowledges, whole units only).
    #[serde(default = "default_alignment")]
    pub write_alignment: Spanned<u32>,
    /// How the device restarts.
    #[serde(default)]
    pub reset: ResetBehaviour,
    /// For a bootloader-mode profile (MCUboot serial recovery): the profile of the
    /// application it boots into on reset, the same model seen in application mode.
    #[serde(default)]
    pub application: Option<Spanned<String>>,
}

fn default_slots() -> Spanned<u32> {
    Spanned::new(0..0, 2)
}
fn default_buffer_fallback() -> Spanned<u32> {
    Spanned::new(0..0, 384)
}
fn default_alignment() -> Spanned<u32> {
    Spanned::new(0..0, 4)
}

/// How an update reaches the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateMode {
    /// MCUboot with swap: upload to the secondary slot, test boot, confirm.
    McubootSwap,
    /// MCUboot serial recovery or overwrite-only: slot 0 is written in place, no test slot.
    McubootInPlace,
    /// A legacy bootloader that takes the firmware by YMODEM and writes it in place.
    YmodemInPlace,
}

impl UpdateMode {
    /// Whether the device can test a new image and go back to the old one on its own: the one
    /// fact the planner's "no test slot" risk rests on.
    pub fn has_test_slot(self) -> bool {
        self == UpdateMode::McubootSwap
    }

    /// Whether the new image is written over the running one.
    pub fn in_place(self) -> bool {
        !self.has_test_slot()
    }

    /// The mode's name as written in profiles.
    pub fn name(self) -> &'static str {
        match self {
            UpdateMode::McubootSwap => "mcuboot-swap",
            UpdateMode::McubootInPlace => "mcuboot-in-place",
            UpdateMode::YmodemInPlace => "ymodem-in-place",
        }
    }
}

/// How the device restarts.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResetBehaviour {
    /// What restarts it.
    #[serde(default)]
    pub command: ResetCommand,
    /// Whether its USB port goes away on reset and comes back (re-enumerates), possibly under
    /// another identity, so the port must be opened again.
    #[serde(default)]
    pub reenumerates: bool,
}

/// What restarts a device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResetCommand {
    /// The MCUmgr OS group's reset command.
    #[default]
    Smp,
    /// Nothing: the device restarts by itself when a transfer ends (YMODEM bootloaders).
    Automatic,
}

/// One identity field: its type, where the value comes from, and how people call it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The value's type.
    #[serde(rename = "type")]
    pub kind: Spanned<FieldType>,
    /// Where it is read from.
    pub from: Spanned<FieldSource>,
    /// The key within the source: a vendor map key, OS info format letters, a bootloader info
    /// reply key, a line query's capture group. Defaults to the field's name where a key is
    /// needed and the source allows it.
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    /// For `bootloader-info`: the query to send (`mode`); none asks for the bootloader's name.
    #[serde(default)]
    pub query: Option<String>,
    /// When the source gives no answer, the technician types the value (recorded as typed).
    #[serde(default)]
    pub or_typed: bool,
    /// The field's name for people ("Battery").
    #[serde(default)]
    pub label: String,
    /// For integers: the smallest valid value.
    #[serde(default)]
    pub min: Option<i64>,
    /// For integers: the largest valid value.
    #[serde(default)]
    pub max: Option<i64>,
}

impl FieldSpec {
    /// The key within the source (the field's name when none is declared).
    pub fn key_or<'a>(&'a self, name: &'a str) -> &'a str {
        self.key.as_ref().map_or(name, |k| k.get_ref().as_str())
    }

    /// The label, or the name when no label is declared.
    pub fn label_or<'a>(&'a self, name: &'a str) -> &'a str {
        if self.label.is_empty() {
            name
        } else {
            &self.label
        }
    }
}

/// The type of an identity field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Text.
    Text,
    /// A whole number.
    Integer,
    /// true or false.
    Boolean,
}

impl FieldType {
    /// The type's name as written in profiles.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Boolean => "boolean",
        }
    }

    /// Reads a value of this type from text (a technician's typing, a regex capture).
    pub fn parse(self, text: &str) -> Option<FieldValue> {
        let t = text.trim();
        match self {
            FieldType::Text => Some(FieldValue::Text(t.to_owned())),
            FieldType::Integer => t.parse().ok().map(FieldValue::Int),
            FieldType::Boolean => match t.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "on" => Some(FieldValue::Bool(true)),
                "false" | "no" | "0" | "off" => Some(FieldValue::Bool(false)),
                _ => None,
            },
        }
    }

    /// Whether `value` is of this type.
    pub fn admits(self, value: &FieldValue) -> bool {
        matches!(
            (self, value),
            (FieldType::Text, FieldValue::Text(_))
                | (FieldType::Integer, FieldValue::Int(_))
                | (FieldType::Boolean, FieldValue::Bool(_))
        )
    }
}

/// Where an identity field's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldSource {
    /// A key of the vendor identity group's reply (`[smp.vendor]`).
    Vendor,
    /// MCUmgr OS/application info, with the key's format letters.
    OsInfo,
    /// MCUmgr bootloader info: the key of its reply (after `query`, when declared).
    BootloaderInfo,
    /// The USB descriptor's serial number of the port the device is on.
    UsbSerial,
    /// A named capture group of the line family's queries.
    Line,
    /// Typed by the technician, and recorded as typed, not read.
    Typed,
}

impl FieldSource {
    /// The source's name as written in profiles.
    pub fn name(self) -> &'static str {
        match self {
            FieldSource::Vendor => "vendor",
            FieldSource::OsInfo => "os-info",
            FieldSource::BootloaderInfo => "bootloader-info",
            FieldSource::UsbSerial => "usb-serial",
            FieldSource::Line => "line",
            FieldSource::Typed => "typed",
        }
    }
}

/// USB identifiers of the adapter or device.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Usb {
    /// USB vendor id.
    pub vid: Spanned<u32>,
    /// USB product id.
    pub pid: Spanned<u32>,
    /// Product string, when the VID/PID pair is shared by several models.
    #[serde(default)]
    pub product: Option<String>,
}

/// Serial line settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LineSettings {
    /// Bits per second.
    pub baud: Spanned<u32>,
    /// Data bits per character (5 to 8).
    #[serde(default = "default_data_bits")]
    pub data_bits: Spanned<u8>,
    /// Parity.
    #[serde(default)]
    pub parity: Parity,
    /// Stop bits (1 or 2).
    #[serde(default = "default_stop_bits")]
    pub stop_bits: Spanned<u8>,
    /// Flow control.
    #[serde(default)]
    pub flow_control: FlowControl,
}

fn default_data_bits() -> Spanned<u8> {
    Spanned::new(0..0, 8)
}

fn default_stop_bits() -> Spanned<u8> {
    Spanned::new(0..0, 1)
}

impl LineSettings {
    /// Bits on the wire per character: start bit, data bits, parity bit, stop bits. Used to
    /// compute the line-rate ceiling and the simulator's pacing.
    pub fn bits_per_char(&self) -> u32 {
        let parity = u32::from(self.parity != Parity::None);
        1 + u32::from(*self.data_bits.get_ref()) + parity + u32::from(*self.stop_bits.get_ref())
    }
}

/// Serial parity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    /// No parity bit.
    #[default]
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// Serial flow control.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowControl {
    /// No flow control.
    #[default]
    None,
    /// XON/XOFF.
    Software,
    /// RTS/CTS.
    Hardware,
}

/// Protocol family and its framing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// The family.
    pub family: Family,
    /// SMP framing: "console" (base64 lines, the Zephyr default) or "raw".
    #[serde(default)]
    pub framing: Option<Spanned<String>>,
}

/// The protocol families fieldkit speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// MCUmgr SMP over serial, MCUboot images.
    Smp,
    /// Text commands with regex-parsed replies, YMODEM upload.
    Line,
}

/// Parameters of the SMP family.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmpSettings {
    /// The vendor command whose reply carries the `from = "vendor"` identity fields; absent on
    /// a device without one (MCUboot's serial recovery has no vendor group).
    #[serde(default)]
    pub vendor: Option<VendorGroup>,
}

/// The vendor group command that reports identity fields no standard group carries.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VendorGroup {
    /// Vendor group number (64 and up).
    pub group: Spanned<u16>,
    /// Command id within the group (a read).
    pub command: u8,
}

/// Parameters of the legacy line family.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LineProtocol {
    /// Line terminator the device expects after a command ("\r\n" by default).
    #[serde(default = "default_eol")]
    pub eol: String,
    /// Queries that read identity fields.
    #[serde(rename = "query")]
    pub queries: Vec<LineQuery>,
    /// Command that puts the device in its bootloader, ready for YMODEM.
    pub enter_bootloader: LineQuery,
    /// Upload protocol: "ymodem" (1K blocks, CRC-16) with XMODEM-1K as fallback.
    #[serde(default = "default_upload")]
    pub upload: String,
}

fn default_eol() -> String {
    "\r\n".into()
}

fn default_upload() -> String {
    "ymodem".into()
}

/// One command and the regular expression its reply must match; named groups are identity
/// fields.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LineQuery {
    /// The command text, without the line terminator.
    pub command: String,
    /// Regular expression the reply must match; named capture groups become fields.
    pub reply: Spanned<String>,
}

/// A firmware component of the device.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Component name used in packages (`app`, `netcore`, `bootloader`).
    pub name: Spanned<String>,
    /// MCUboot image number (SMP) or 0 for single-image devices.
    #[serde(default = "default_image")]
    pub image: Spanned<u32>,
    /// People-facing description.
    #[serde(default)]
    pub description: String,
    /// Trust-root role whose keys verify this component's image signature.
    #[serde(default = "default_image_key")]
    pub image_key: String,
    /// Whether fieldkit may update this component (bootloaders usually are not).
    #[serde(default = "default_true")]
    pub updatable: bool,
    /// The identity field in which the device reports the SHA-256 of this component's
    /// firmware as it is in flash (a line query, say). After an in-place update the read-back
    /// compares it with the SHA-256 of the bytes sent: a device that runs the right version
    /// but other bytes ran the wrong image.
    #[serde(default)]
    pub sha256_field: Option<Spanned<String>>,
}

fn default_image() -> Spanned<u32> {
    Spanned::new(0..0, 0)
}

fn default_image_key() -> String {
    "release".into()
}

fn default_true() -> bool {
    true
}

/// A comparison in a precondition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Op {
    /// Equal.
    #[serde(rename = "==")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
    /// At least.
    #[serde(rename = ">=")]
    Ge,
    /// At most.
    #[serde(rename = "<=")]
    Le,
    /// More than.
    #[serde(rename = ">")]
    Gt,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
}

impl Op {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
        }
    }
}

/// The value of an identity field, and what a precondition compares it against.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// A boolean (therapy running).
    Bool(bool),
    /// An integer (battery percent).
    Int(i64),
    /// A string (hardware revision).
    Text(String),
}

impl std::fmt::Display for FieldValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldValue::Bool(b) => write!(f, "{b}"),
            FieldValue::Int(i) => write!(f, "{i}"),
            FieldValue::Text(s) => f.write_str(s),
        }
    }
}

/// A safety precondition, read live from the device before an update.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Precondition {
    /// The identity field tested.
    pub field: Spanned<String>,
    /// The comparison.
    pub op: Op,
    /// The required value.
    pub value: Spanned<FieldValue>,
    /// Why it matters, in words a technician understands.
    pub explanation: String,
}

/// Timeouts, in milliseconds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Ordinary request/response.
    pub response_ms: u64,
    /// The first upload chunk, during which the device erases the slot.
    pub first_chunk_ms: u64,
    /// From reset until the device answers again.
    pub reset_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            response_ms: 3_000,
            first_chunk_ms: 20_000,
            reset_ms: 30_000,
        }
    }
}

/// What the simulator plays by default for this model. The demo kit is built to match it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorDefaults {
    /// Which of the device's programs the simulator plays.
    #[serde(default)]
    pub mode: SimMode,
    /// Bootloader name as reported (e.g. "MCUboot").
    pub bootloader: String,
    /// SMP buffer size advertised (MCUmgr params `buf_size`).
    #[serde(default = "default_buf_size")]
    pub buf_size: u32,
    /// SMP buffer count advertised (MCUmgr params `buf_count`).
    #[serde(default = "default_buf_count")]
    pub buf_count: u32,
    /// Flash erase time per 4 KiB sector, microseconds.
    #[serde(default = "default_erase_us")]
    pub erase_us_per_sector: u32,
    /// Flash write speed, KiB per second.
    #[serde(default = "default_write_kib")]
    pub write_kib_per_s: u32,
    /// The value the device reports for each identity field it reads out, by field name.
    #[serde(default)]
    pub fields: BTreeMap<String, Spanned<FieldValue>>,
    /// Installed version of each component, by component name.
    pub installed: BTreeMap<String, Spanned<String>>,
}

/// Which program of the device the simulator plays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SimMode {
    /// The application (a Zephyr application with MCUmgr, or the line family's firmware).
    #[default]
    Application,
    /// MCUboot's serial recovery, after `boot/boot_serial`.
    SerialRecovery,
}

impl SimulatorDefaults {
    /// The value the simulated device reports for `field`.
    pub fn field(&self, name: &str) -> Option<&FieldValue> {
        self.fields.get(name).map(Spanned::get_ref)
    }

    /// The value the simulated device reports for `field`, as text (empty if none).
    pub fn text(&self, field: &str) -> String {
        self.field(field)
            .map(ToString::to_string)
            .unwrap_or_default()
    }
}

fn default_buf_size() -> u32 {
    2048
}
fn default_buf_count() -> u32 {
    4
}
fn default_erase_us() -> u32 {
    2_000
}
fn default_write_kib() -> u32 {
    512
}

impl Profile {
    /// The profile id.
    pub fn id(&self) -> &str {
        self.id.get_ref()
    }

    /// The protocol family.
    pub fn family(&self) -> Family {
        self.protocol.family
    }

    /// The product this device is, for packages and entitlements: the application's profile
    /// id for a bootloader-mode profile (the same firmware serves the device in either mode),
    /// this profile's id otherwise.
    pub fn product(&self) -> &str {
        self.device
            .application
            .as_ref()
            .map_or(self.id(), |a| a.get_ref().as_str())
    }

    /// The declared identity field called `name`.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.identity.get(name)
    }

    /// The vendor identity group, when the device has one.
    pub fn vendor_group(&self) -> Option<&VendorGroup> {
        self.smp.as_ref().and_then(|s| s.vendor.as_ref())
    }

    /// The component updated through MCUboot image number `image`.
    pub fn component_by_image(&self, image: u32) -> Option<&Component> {
        self.components.iter().find(|c| *c.image.get_ref() == image)
    }

    /// The component called `name`.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name.get_ref() == name)
    }

    /// Whether a USB port with these identifiers is this model.
    pub fn matches_usb(&self, vid: u16, pid: u16, product: Option<&str>) -> bool {
        let Some(usb) = &self.usb else { return false };
        *usb.vid.get_ref() == u32::from(vid)
            && *usb.pid.get_ref() == u32::from(pid)
            && match (&usb.product, product) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, _) => true,
            }
    }
}
