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
    /// Parameters of the "smp" family.
    #[serde(default)]
    pub smp: Option<SmpSettings>,
    /// Parameters of the "line" family.
    #[serde(default)]
    pub line_protocol: Option<LineProtocol>,
    /// Firmware components, in the order they are shown.
    #[serde(rename = "component")]
    pub components: Vec<Component>,
    /// Safety preconditions that must hold before any byte of an update reaches the device.
    #[serde(default, rename = "precondition")]
    pub preconditions: Vec<Precondition>,
    /// How long to wait for the device at each stage.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// What the simulator plays when asked to be this model.
    pub simulator: SimulatorDefaults,
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmpSettings {
    /// The vendor command that reports identity fields no standard group carries.
    pub identity: SmpIdentity,
}

/// Where the identity fields live in the vendor group's reply map.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmpIdentity {
    /// Vendor group number (64 and up).
    pub group: Spanned<u16>,
    /// Command id within the group (a read).
    pub command: u8,
    /// Map key of each identity field in the reply, by field name
    /// (`model`, `serial`, `hardware_revision`, `bootloader_version`, `battery_percent`,
    /// `therapy_running`).
    pub fields: BTreeMap<String, Spanned<String>>,
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

/// The identity fields a profile can read and a precondition can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityField {
    /// Model name reported by the device.
    Model,
    /// Serial number.
    Serial,
    /// Hardware revision.
    HardwareRevision,
    /// Bootloader version.
    BootloaderVersion,
    /// Battery charge, percent.
    BatteryPercent,
    /// Whether therapy (an infusion, a measurement) is running.
    TherapyRunning,
    /// The bootloader's hardware security counter (rollback protection).
    SecurityCounter,
}

impl IdentityField {
    /// Every field, for validation messages.
    pub const ALL: [IdentityField; 7] = [
        IdentityField::Model,
        IdentityField::Serial,
        IdentityField::HardwareRevision,
        IdentityField::BootloaderVersion,
        IdentityField::BatteryPercent,
        IdentityField::TherapyRunning,
        IdentityField::SecurityCounter,
    ];

    /// The field's name in profiles and JSON.
    pub fn name(self) -> &'static str {
        match self {
            IdentityField::Model => "model",
            IdentityField::Serial => "serial",
            IdentityField::HardwareRevision => "hardware_revision",
            IdentityField::BootloaderVersion => "bootloader_version",
            IdentityField::BatteryPercent => "battery_percent",
            IdentityField::TherapyRunning => "therapy_running",
            IdentityField::SecurityCounter => "security_counter",
        }
    }

    /// Parses a field name.
    pub fn from_name(name: &str) -> Option<IdentityField> {
        IdentityField::ALL.into_iter().find(|f| f.name() == name)
    }
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

/// The value a precondition compares against.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum PreconditionValue {
    /// A boolean (therapy running).
    Bool(bool),
    /// An integer (battery percent).
    Int(i64),
    /// A string (hardware revision).
    Text(String),
}

impl std::fmt::Display for PreconditionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PreconditionValue::Bool(b) => write!(f, "{b}"),
            PreconditionValue::Int(i) => write!(f, "{i}"),
            PreconditionValue::Text(s) => f.write_str(s),
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
    pub value: Spanned<PreconditionValue>,
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
    /// Serial number.
    pub serial: String,
    /// Hardware revision.
    pub hardware_revision: String,
    /// Bootloader name as reported (e.g. "MCUboot").
    pub bootloader: String,
    /// Bootloader version.
    pub bootloader_version: Spanned<String>,
    /// Battery charge, percent.
    #[serde(default = "default_battery")]
    pub battery_percent: u8,
    /// Whether therapy is running.
    #[serde(default)]
    pub therapy_running: bool,
    /// SMP buffer size advertised (MCUmgr params `buf_size`).
    #[serde(default = "default_buf_size")]
    pub buf_size: u32,
    /// SMP buffer count advertised (MCUmgr params `buf_count`).
    #[serde(default = "default_buf_count")]
    pub buf_count: u32,
    /// Size of each image slot, bytes.
    #[serde(default = "default_slot_size")]
    pub slot_size: u32,
    /// Flash erase time per 4 KiB sector, microseconds.
    #[serde(default = "default_erase_us")]
    pub erase_us_per_sector: u32,
    /// Flash write speed, KiB per second.
    #[serde(default = "default_write_kib")]
    pub write_kib_per_s: u32,
    /// Installed version of each component, by component name.
    pub installed: BTreeMap<String, Spanned<String>>,
}

fn default_battery() -> u8 {
    85
}
fn default_buf_size() -> u32 {
    2048
}
fn default_buf_count() -> u32 {
    4
}
fn default_slot_size() -> u32 {
    1 << 20
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
