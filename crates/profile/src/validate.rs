//! Parsing and validation. Every problem carries file, line and field; all problems of a file
//! are reported together.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use toml::Spanned;

use crate::schema::{Family, FieldSource, FieldType, FieldValue, Profile, SimMode, UpdateMode};

/// Why a profile could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file is not valid TOML or does not fit the schema.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file, as named by the caller.
        file: String,
        /// 1-based line.
        line: usize,
        /// What the TOML parser said.
        message: String,
    },
    /// The file parsed but some values break the rules.
    #[error("{file}: {} problem(s):\n{}", problems.len(), ProblemList(problems))]
    Invalid {
        /// The file, as named by the caller.
        file: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
    /// Two profiles share an id.
    #[error("{file}: profile id {id:?} is already defined by {other}")]
    DuplicateId {
        /// The second file.
        file: String,
        /// The shared id.
        id: String,
        /// The first file.
        other: String,
    },
}

/// One rule a profile breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the offending value (0 when the field is missing).
    pub line: usize,
    /// Dotted path of the field (`component[1].image`).
    pub field: String,
    /// What is wrong: the value found and the value required.
    pub message: String,
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  line {}: {}: {}", p.line, p.field, p.message)?;
        }
        Ok(())
    }
}

impl Profile {
    /// Parses and validates one profile. `file` names the source in messages; when it ends in
    /// `<id>.toml` the id must match it.
    pub fn parse(text: &str, file: &str) -> Result<Profile, ProfileError> {
        let profile: Profile = toml::from_str(text).map_err(|e| ProfileError::Syntax {
            file: file.to_owned(),
            line: e.span().map_or(0, |s| line_of(text, s.start)),
            message: e.message().trim().to_owned(),
        })?;
        let mut checker = Checker {
            text,
            problems: Vec::new(),
        };
        checker.profile(&profile, file);
        if checker.problems.is_empty() {
            Ok(profile)
        } else {
            checker.problems.sort_by_key(|p| p.line);
            Err(ProfileError::Invalid {
                file: file.to_owned(),
                problems: checker.problems,
            })
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

struct Checker<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem(
        &mut self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let line = if span == (0..0) {
            0
        } else {
            line_of(self.text, span.start)
        };
        self.problems.push(Problem {
            line,
            field: field.into(),
            message: message.into(),
        });
    }

    fn profile(&mut self, p: &Profile, file: &str) {
        let id = p.id.get_ref();
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            self.problem(
                p.id.span(),
                "id",
                format!("found {id:?}, required lowercase letters, digits and '-'"),
            );
        }
        let stem = file.rsplit(['/', '\\']).next().unwrap_or(file);
        if let Some(stem) = stem.strip_suffix(".toml")
            && stem != id
        {
            self.problem(
                p.id.span(),
                "id",
                format!("found {id:?}, required the file name {stem:?}"),
            );
        }
        if let Some(usb) = &p.usb {
            for (name, v) in [("usb.vid", &usb.vid), ("usb.pid", &usb.pid)] {
                if *v.get_ref() > 0xffff {
                    self.problem(
                        v.span(),
                        name,
                        format!("found {:#x}, required at most 0xffff", v.get_ref()),
                    );
                }
            }
        }
        self.line(p);
        self.protocol(p);
        self.device(p);
        self.identity(p);
        self.components(p);
        self.preconditions(p);
        self.simulator(p);
        for (name, v) in [
            ("timeouts.response_ms", p.timeouts.response_ms),
            ("timeouts.first_chunk_ms", p.timeouts.first_chunk_ms),
            ("timeouts.reset_ms", p.timeouts.reset_ms),
        ] {
            if v == 0 {
                self.problem(
                    0..0,
                    name,
                    "found 0, required a positive number of milliseconds",
                );
            }
        }
    }

    fn line(&mut self, p: &Profile) {
        let baud = &p.line.baud;
        if !(300..=4_000_000).contains(baud.get_ref()) {
            self.problem(
                baud.span(),
                "line.baud",
                format!("found {}, required 300 to 4000000", baud.get_ref()),
            );
        }
        let bits = &p.line.data_bits;
        if !(5..=8).contains(bits.get_ref()) {
            self.problem(
                bits.span(),
                "line.data_bits",
                format!("found {}, required 5 to 8", bits.get_ref()),
            );
        }
        let stop = &p.line.stop_bits;
        if !matches!(stop.get_ref(), 1 | 2) {
            self.problem(
                stop.span(),
                "line.stop_bits",
                format!("found {}, required 1 or 2", stop.get_ref()),
            );
        }
    }

    fn protocol(&mut self, p: &Profile) {
        match p.protocol.family {
            Family::Smp => {
                if let Some(framing) = &p.protocol.framing
                    && framing.get_ref() != "console"
                    && framing.get_ref() != "raw"
                {
                    self.problem(
                        framing.span(),
                        "protocol.framing",
                        format!(
                            "found {:?}, required \"console\" or \"raw\"",
                            framing.get_ref()
                        ),
                    );
                }
                if let Some(vendor) = p.vendor_group() {
                    let group = &vendor.group;
                    if *group.get_ref() < 64 {
                        self.problem(
                            group.span(),
                            "smp.vendor.group",
                            format!(
                                "found {}, required a vendor group (64 or more)",
                                group.get_ref()
                            ),
                        );
                    }
                }
            }
            Family::Line => {
                match &p.line_protocol {
                    None => self.problem(
                        0..0,
                        "line_protocol",
                        "missing, required for protocol family \"line\"",
                    ),
                    Some(lp) => {
                        let mut seen = BTreeSet::new();
                        for (i, q) in lp.queries.iter().enumerate() {
                            let field = format!("line_protocol.query[{i}].reply");
                            match regex::Regex::new(q.reply.get_ref()) {
                                Err(e) => self.problem(
                                    q.reply.span(),
                                    field,
                                    format!("not a valid regular expression: {e}"),
                                ),
                                Ok(re) => {
                                    for name in re.capture_names().flatten() {
                                        let declared = p.identity.iter().any(|(n, f)| {
                                            *f.from.get_ref() == FieldSource::Line
                                                && f.key_or(n) == name
                                        });
                                        if !declared && !name.starts_with("version_") {
                                            self.problem(q.reply.span(), field.clone(), format!(
                                            "capture group {name:?} is not the key of a [identity] field read from the line ({}) nor version_<component>",
                                            line_fields(p)
                                        ));
                                        }
                                        seen.insert(name.to_owned());
                                    }
                                }
                            }
                        }
                        if let Err(e) = regex::Regex::new(lp.enter_bootloader.reply.get_ref()) {
                            self.problem(
                                lp.enter_bootloader.reply.span(),
                                "line_protocol.enter_bootloader.reply",
                                format!("not a valid regular expression: {e}"),
                            );
                        }
                        for (name, f) in &p.identity {
                            let key = f.key_or(name);
                            if *f.from.get_ref() == FieldSource::Line && !seen.contains(key) {
                                self.problem(
                                    f.from.span(),
                                    format!("identity.{name}.key"),
                                    format!(
                                        "no query captures {key:?}, required to read field {name:?} from the line"
                                    ),
                                );
                            }
                        }
                        for c in &p.components {
                            let want = format!("version_{}", c.name.get_ref());
                            if !seen.contains(&want) {
                                self.problem(c.name.span(), "line_protocol.query", format!(
                                "no query captures {want:?}, required to read component {:?}", c.name.get_ref()
                            ));
                            }
                        }
                        if lp.upload != "ymodem" && lp.upload != "xmodem" {
                            self.problem(
                                0..0,
                                "line_protocol.upload",
                                format!("found {:?}, required \"ymodem\" or \"xmodem\"", lp.upload),
                            );
                        }
                    }
                }
            }
        }
    }

    fn components(&mut self, p: &Profile) {
        if p.components.is_empty() {
            self.problem(
                0..0,
                "component",
                "none declared, required at least one [[component]]",
            );
        }
        let mut names = BTreeMap::new();
        let mut images = BTreeMap::new();
        for (i, c) in p.components.iter().enumerate() {
            let name = c.name.get_ref();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                self.problem(
                    c.name.span(),
                    format!("component[{i}].name"),
                    format!("found {name:?}, required letters, digits, '-' and '_'"),
                );
            }
            if let Some(first) = names.insert(name.clone(), i) {
                self.problem(
                    c.name.span(),
                    format!("component[{i}].name"),
                    format!(
                        "{name:?} is already the name of component[{first}], required unique names"
                    ),
                );
            }
            if c.updatable
                && let Some(first) = images.insert(*c.image.get_ref(), i)
            {
                self.problem(c.image.span(), format!("component[{i}].image"), format!(
                        "image {} is already used by component[{first}], required one component per image number",
                        c.image.get_ref()
                    ));
            }
            if c.image_key.is_empty() {
                self.problem(
                    c.name.span(),
                    format!("component[{i}].image_key"),
                    "empty, required a trust-root role name",
                );
            }
            if let Some(field) = &c.sha256_field {
                let at = format!("component[{i}].sha256_field");
                match p.identity.get(field.get_ref()) {
                    None => self.problem(
                        field.span(),
                        at,
                        format!("found {:?}, {}", field.get_ref(), declared(p)),
                    ),
                    Some(f)
                        if *f.kind.get_ref() != FieldType::Text
                            || *f.from.get_ref() == FieldSource::Typed
                            || f.or_typed =>
                    {
                        self.problem(
                            field.span(),
                            at,
                            format!(
                                "found {:?} ({} from {:?}), required a text field the device reports, never typed",
                                field.get_ref(),
                                f.kind.get_ref().name(),
                                f.from.get_ref().name()
                            ),
                        );
                    }
                    Some(_) => {}
                }
            }
        }
    }

    fn device(&mut self, p: &Profile) {
        let d = &p.device;
        let fits = matches!(
            (p.family(), d.update),
            (
                Family::Smp,
                UpdateMode::McubootSwap | UpdateMode::McubootInPlace
            ) | (Family::Line, UpdateMode::YmodemInPlace)
        );
        if !fits {
            let required = match p.family() {
                Family::Smp => "\"mcuboot-swap\" or \"mcuboot-in-place\"",
                Family::Line => "\"ymodem-in-place\"",
            };
            self.problem(
                0..0,
                "device.update",
                format!(
                    "found {:?}, required {required} for protocol family {:?}",
                    d.update.name(),
                    match p.family() {
                        Family::Smp => "smp",
                        Family::Line => "line",
                    }
                ),
            );
        }
        let slots = *d.slots.get_ref();
        if d.update == UpdateMode::McubootSwap && slots != 2 {
            self.problem(
                d.slots.span(),
                "device.slots",
                format!("found {slots}, required 2 for \"mcuboot-swap\" (a slot to test in)"),
            );
        } else if !(1..=2).contains(&slots) {
            self.problem(
                d.slots.span(),
                "device.slots",
                format!("found {slots}, required 1 or 2"),
            );
        }
        if *d.slot_size.get_ref() < 4096 {
            self.problem(
                d.slot_size.span(),
                "device.slot_size",
                format!(
                    "found {}, required at least 4096 bytes",
                    d.slot_size.get_ref()
                ),
            );
        }
        let fallback = *d.buffer_fallback.get_ref();
        if !(128..=65_535).contains(&fallback) {
            self.problem(
                d.buffer_fallback.span(),
                "device.buffer_fallback",
                format!("found {fallback}, required 128 to 65535 bytes"),
            );
        }
        let align = *d.write_alignment.get_ref();
        if !(align.is_power_of_two() && align <= 256) {
            self.problem(
                d.write_alignment.span(),
                "device.write_alignment",
                format!("found {align}, required a power of two from 1 to 256"),
            );
        }
        if let Some(app) = &d.application
            && d.update != UpdateMode::McubootInPlace
        {
            self.problem(
                app.span(),
                "device.application",
                format!(
                    "found {:?}, required only on a bootloader-mode profile (update = \"mcuboot-in-place\")",
                    app.get_ref()
                ),
            );
        }
    }

    fn identity(&mut self, p: &Profile) {
        for required in ["serial", "hardware_revision"] {
            if !p.identity.contains_key(required) {
                self.problem(
                    0..0,
                    "identity",
                    format!("no [identity.{required}], required to identify a device"),
                );
            }
        }
        for (name, f) in &p.identity {
            let at = format!("identity.{name}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                self.problem(
                    f.kind.span(),
                    at.clone(),
                    format!("found name {name:?}, required lowercase letters, digits and '_'"),
                );
            }
            let kind = *f.kind.get_ref();
            for (fixed, want) in [
                ("serial", FieldType::Text),
                ("hardware_revision", FieldType::Text),
                ("model", FieldType::Text),
                ("bootloader_version", FieldType::Text),
                ("security_counter", FieldType::Integer),
            ] {
                if name == fixed && kind != want {
                    self.problem(
                        f.kind.span(),
                        format!("{at}.type"),
                        format!(
                            "found {:?}, required {:?}: fieldkit's rules read this field",
                            kind.name(),
                            want.name()
                        ),
                    );
                }
            }
            if (f.min.is_some() || f.max.is_some()) && kind != FieldType::Integer {
                self.problem(
                    f.kind.span(),
                    format!("{at}.min"),
                    format!(
                        "found a range on a {:?} field, required type \"integer\"",
                        kind.name()
                    ),
                );
            }
            let source = *f.from.get_ref();
            let family_ok = match source {
                FieldSource::Vendor | FieldSource::OsInfo | FieldSource::BootloaderInfo => {
                    p.family() == Family::Smp
                }
                FieldSource::Line => p.family() == Family::Line,
                FieldSource::UsbSerial | FieldSource::Typed => true,
            };
            if !family_ok {
                self.problem(
                    f.from.span(),
                    format!("{at}.from"),
                    format!(
                        "found {:?}, which protocol family {:?} has not",
                        source.name(),
                        match p.family() {
                            Family::Smp => "smp",
                            Family::Line => "line",
                        }
                    ),
                );
            }
            if source == FieldSource::Vendor && p.vendor_group().is_none() {
                self.problem(
                    f.from.span(),
                    format!("{at}.from"),
                    "found \"vendor\", required a [smp.vendor] group to read it from",
                );
            }
            if source == FieldSource::OsInfo {
                let letters = f.key.as_ref().map(|k| k.get_ref().as_str()).unwrap_or("");
                if letters.is_empty() || !letters.chars().all(|c| "snrvbmpioa".contains(c)) {
                    self.problem(
                        f.from.span(),
                        format!("{at}.key"),
                        format!(
                            "found {letters:?}, required OS info format letters (s n r v b m p i o a)"
                        ),
                    );
                }
            }
            if matches!(source, FieldSource::UsbSerial | FieldSource::Typed) && f.key.is_some() {
                self.problem(
                    f.from.span(),
                    format!("{at}.key"),
                    format!("found a key, required none for source {:?}", source.name()),
                );
            }
            if source == FieldSource::Typed && f.or_typed {
                self.problem(
                    f.from.span(),
                    format!("{at}.or_typed"),
                    "found or_typed on a typed field, required it only on a field read from the device",
                );
            }
        }
    }

    fn preconditions(&mut self, p: &Profile) {
        for (i, pre) in p.preconditions.iter().enumerate() {
            let name = pre.field.get_ref();
            let Some(spec) = p.field(name) else {
                self.problem(
                    pre.field.span(),
                    format!("precondition[{i}].field"),
                    format!("unknown identity field {name:?}, {}", declared(p)),
                );
                continue;
            };
            let kind = *spec.kind.get_ref();
            let value = pre.value.get_ref();
            let in_range = match value {
                FieldValue::Int(v) => {
                    spec.min.is_none_or(|m| *v >= m) && spec.max.is_none_or(|m| *v <= m)
                }
                _ => true,
            };
            if !kind.admits(value) || !in_range {
                self.problem(
                    pre.value.span(),
                    format!("precondition[{i}].value"),
                    format!(
                        "found {value}, required {} for field {name:?}",
                        describe_type(kind, spec.min, spec.max)
                    ),
                );
            }
            if pre.explanation.trim().is_empty() {
                self.problem(
                    pre.field.span(),
                    format!("precondition[{i}].explanation"),
                    "empty, required a sentence a technician understands",
                );
            }
        }
    }

    fn simulator(&mut self, p: &Profile) {
        let sim = &p.simulator;
        for c in &p.components {
            if !sim.installed.contains_key(c.name.get_ref()) {
                self.problem(
                    c.name.span(),
                    "simulator.installed",
                    format!(
                        "no installed version for component {:?}, required one per component",
                        c.name.get_ref()
                    ),
                );
            }
        }
        for (name, v) in &sim.installed {
            if p.component(name).is_none() {
                self.problem(
                    v.span(),
                    format!("simulator.installed.{name}"),
                    format!(
                        "no component called {name:?}, required one of the [[component]] names"
                    ),
                );
            }
            check_version(self, v, &format!("simulator.installed.{name}"));
        }
        for (name, v) in &sim.fields {
            let at = format!("simulator.fields.{name}");
            match p.field(name) {
                None => self.problem(
                    v.span(),
                    at,
                    format!("unknown identity field {name:?}, {}", declared(p)),
                ),
                Some(spec) if !spec.kind.get_ref().admits(v.get_ref()) => self.problem(
                    v.span(),
                    at,
                    format!(
                        "found {}, required {} for field {name:?}",
                        v.get_ref(),
                        describe_type(*spec.kind.get_ref(), spec.min, spec.max)
                    ),
                ),
                Some(_) => {}
            }
        }
        // The simulated device reports what it reads out; security_counter is MCUboot's own,
        // and a firmware's SHA-256 the device computes from its flash.
        for (name, f) in &p.identity {
            let reported = matches!(
                f.from.get_ref(),
                FieldSource::Vendor | FieldSource::OsInfo | FieldSource::Line
            );
            let computed = p
                .components
                .iter()
                .any(|c| c.sha256_field.as_ref().is_some_and(|s| s.get_ref() == name));
            if reported
                && !computed
                && name != "security_counter"
                && name != "model"
                && !sim.fields.contains_key(name)
            {
                self.problem(
                    f.from.span(),
                    "simulator.fields",
                    format!(
                        "no value for field {name:?}, required for every field the device reports"
                    ),
                );
            }
        }
        if let Some(v) = sim.fields.get("bootloader_version")
            && let FieldValue::Text(t) = v.get_ref()
        {
            check_version(
                self,
                &Spanned::new(v.span(), t.clone()),
                "simulator.fields.bootloader_version",
            );
        }
        if sim.mode == SimMode::SerialRecovery && p.device.update != UpdateMode::McubootInPlace {
            self.problem(
                0..0,
                "simulator.mode",
                "found \"serial-recovery\", required device.update = \"mcuboot-in-place\"",
            );
        }
        if sim.buf_size < 128 || sim.buf_count == 0 {
            self.problem(0..0, "simulator.buf_size", format!(
                "found buf_size {} and buf_count {}, required buf_size >= 128 and buf_count >= 1",
                sim.buf_size, sim.buf_count
            ));
        }
    }
}

fn describe_type(kind: FieldType, min: Option<i64>, max: Option<i64>) -> String {
    match (kind, min, max) {
        (FieldType::Integer, Some(a), Some(b)) => format!("an integer from {a} to {b}"),
        (FieldType::Integer, Some(a), None) => format!("an integer of at least {a}"),
        (FieldType::Integer, None, Some(b)) => format!("an integer of at most {b}"),
        (FieldType::Integer, None, None) => "an integer".into(),
        (FieldType::Boolean, ..) => "true or false".into(),
        (FieldType::Text, ..) => "a string".into(),
    }
}

fn declared(p: &Profile) -> String {
    let names: Vec<&str> = p.identity.keys().map(String::as_str).collect();
    format!(
        "required one of the [identity] fields: {}",
        names.join(", ")
    )
}

fn line_fields(p: &Profile) -> String {
    let names: Vec<&str> = p
        .identity
        .iter()
        .filter(|(_, f)| *f.from.get_ref() == FieldSource::Line)
        .map(|(n, f)| f.key_or(n))
        .collect();
    format!("keys: {}", names.join(", "))
}

/// Versions are `major.minor.revision` with an optional `+build` or `.build`, as MCUboot has
/// them.
fn check_version(c: &mut Checker<'_>, v: &Spanned<String>, field: &str) {
    let text = v.get_ref();
    let (main, build) = match text.split_once('+') {
        Some((m, b)) => (m, Some(b)),
        None => (text.as_str(), None),
    };
    let parts: Vec<&str> = main.split('.').collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = (parts.len() == 3 || (parts.len() == 4 && build.is_none()))
        && parts.iter().all(|p| numeric(p))
        && build.is_none_or(numeric);
    if !ok {
        c.problem(
            v.span(),
            field,
            format!(
                "found {text:?}, required a version like \"1.2.3\", \"1.2.3+4\" or \"1.2.3.4\""
            ),
        );
    }
}

/// The profiles fieldkit knows: the shipped ones plus any the caller adds.
#[derive(Debug, Clone, Default)]
pub struct ProfileSet {
    profiles: Vec<(String, Profile)>,
}

/// The profiles shipped with fieldkit: every file of `device-profiles/`, listed and embedded
/// by `build.rs` (adding a model is adding a file).
const BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin_profiles.rs"));

impl ProfileSet {
    /// The shipped profiles. They are validated by this crate's tests, so a failure here is a
    /// build defect.
    pub fn builtin() -> ProfileSet {
        let mut set = ProfileSet::default();
        for (file, text) in BUILTIN {
            set.add(text, &format!("device-profiles/{file}"))
                .expect("shipped profile is valid");
        }
        set.check_links().expect("shipped profiles name each other");
        set
    }

    /// Checks what profiles say about each other: a bootloader-mode profile's application
    /// profile exists and is the same model. Call it after adding a batch of profiles.
    pub fn check_links(&self) -> Result<(), ProfileError> {
        for (file, p) in &self.profiles {
            let Some(app) = &p.device.application else {
                continue;
            };
            let problem = match self.get(app.get_ref()) {
                None => Some(format!(
                    "found {:?}, required the id of a known profile ({})",
                    app.get_ref(),
                    self.ids().join(", ")
                )),
                Some(a) if a.model != p.model => Some(format!(
                    "found {:?}, a profile of model {:?}, required one of the same model {:?}",
                    app.get_ref(),
                    a.model,
                    p.model
                )),
                Some(_) => None,
            };
            if let Some(message) = problem {
                return Err(ProfileError::Invalid {
                    file: file.clone(),
                    problems: vec![Problem {
                        line: 0,
                        field: "device.application".into(),
                        message,
                    }],
                });
            }
        }
        Ok(())
    }

    /// Adds a profile from its text; `file` names it in messages.
    pub fn add(&mut self, text: &str, file: &str) -> Result<&Profile, ProfileError> {
        let profile = Profile::parse(text, file)?;
        if let Some((other, _)) = self.profiles.iter().find(|(_, p)| p.id() == profile.id()) {
            return Err(ProfileError::DuplicateId {
                file: file.to_owned(),
                id: profile.id().to_owned(),
                other: other.clone(),
            });
        }
        self.profiles.push((file.to_owned(), profile));
        Ok(&self.profiles.last().expect("just pushed").1)
    }

    /// The profile with this id.
    pub fn get(&self, id: &str) -> Option<&Profile> {
        self.iter().find(|p| p.id() == id)
    }

    /// Every profile, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.iter().map(|(_, p)| p)
    }

    /// The profile a USB port belongs to, if any.
    pub fn match_usb(&self, vid: u16, pid: u16, product: Option<&str>) -> Option<&Profile> {
        self.iter().find(|p| p.matches_usb(vid, pid, product))
    }

    /// Ids of every profile, for messages ("required one of ...").
    pub fn ids(&self) -> Vec<&str> {
        self.iter().map(Profile::id).collect()
    }
}
