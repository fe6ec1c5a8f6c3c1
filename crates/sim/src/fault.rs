//! Faults on demand, parsed from `--fault SPEC` (`name` or `name=value`), and the seeded line
//! damage that makes a run with random faults replay.
//!
//! Random damage (corrupted or dropped bytes) is decided for each byte from the run's seed,
//! the direction and the byte's position in that direction's stream: the same seed and the
//! same bytes give the same damage however the operating system splits reads and writes, so
//! a failing run replays from the seed it printed at start.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use fieldkit_profile::FieldValue;

/// One fault the simulator injects.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Pull the cable once the device has received this many bytes in total; plug it back in
    /// after `unplug_ms`.
    DisconnectAfter(u64),
    /// How long the cable stays out after a pull, ms (default 300).
    UnplugMs(u64),
    /// Flip one bit of each byte, in both directions, with this probability.
    Corrupt(f64),
    /// Drop each byte, in both directions, with this probability.
    Drop(f64),
    /// Lose every Nth reply (1 = every reply).
    LoseReply(u64),
    /// Reboot the device when an upload reaches this offset.
    RebootAt(u64),
    /// Fail the flash write at this upload offset.
    FlashFailAt(u64),
    /// Refuse to confirm a tested image.
    RefuseConfirm,
    /// Print console log lines between frames.
    LogNoise,
    /// Never answer anything.
    NeverAnswer,
    /// Answer every request this many ms late.
    AnswerLate(u64),
    /// Answer with a sequence number one off from the request's.
    WrongSeq,
    /// Pull the cable halfway through the next reply.
    DisconnectMidReply,
    /// After the device has answered this many identity reads, its battery reports this
    /// level, percent: it drained between a check and an update.
    BatteryDrain(u64, u8),
    /// Report this value for an identity field (`field=NAME=VALUE`); `battery=N` and
    /// `therapy-running` are short for the fields `battery_percent` and `therapy_running`.
    Field(String, FieldValue),
    /// Line family: lose the device's ACK of this YMODEM data block (1 = the first), once.
    LoseAck(u64),
    /// Line family: the ACK of this YMODEM data block reaches the sender as a NAK, once, so
    /// the device receives the block twice and must keep it once.
    DuplicateBlock(u64),
    /// Line family: refuse the first YMODEM data block this many times with NAK.
    NakStorm(u32),
    /// Line family: erase this many ms (on top of the flash model) before ACKing block 0.
    EraseDelay(u64),
    /// Line family: acknowledge a whole transfer but leave the flash as it was (a programming
    /// step that silently failed): the device then runs its previous firmware.
    WriteIgnored,
}

/// A `--fault` value that is not understood.
#[derive(Debug, thiserror::Error)]
#[error("fault {spec:?}: {reason}; known faults: {KNOWN}")]
pub struct FaultError {
    spec: String,
    reason: String,
}

const KNOWN: &str = "disconnect-after=BYTES, unplug-ms=MS, corrupt=RATE, drop=RATE, \
lose-reply=N, reboot-at=OFFSET, flash-fail-at=OFFSET, refuse-confirm, log-noise, never-answer, \
answer-late=MS, wrong-seq, disconnect-mid-reply, field=NAME=VALUE, battery=PERCENT, \
battery-drain=READS:PERCENT, therapy-running, lose-ack=BLOCK, duplicate-block=BLOCK, nak-storm=N, \
erase-delay=MS, write-ignored";

impl FromStr for Fault {
    type Err = FaultError;

    fn from_str(spec: &str) -> Result<Fault, FaultError> {
        let (name, value) = match spec.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (spec.trim(), None),
        };
        let err = |reason: String| FaultError {
            spec: spec.to_owned(),
            reason,
        };
        let int = || -> Result<u64, FaultError> {
            let v = value.ok_or_else(|| err("needs a value (name=N)".into()))?;
            v.parse()
                .map_err(|_| err(format!("found {v:?}, required a whole number")))
        };
        let rate = || -> Result<f64, FaultError> {
            let v = value.ok_or_else(|| err("needs a rate (name=0.01)".into()))?;
            match v.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(err(format!(
                    "found {v:?}, required a probability from 0 to 1"
                ))),
            }
        };
        let flag = |f: Fault| -> Result<Fault, FaultError> {
            match value {
                None => Ok(f),
                Some(v) => Err(err(format!("found value {v:?}, required none"))),
            }
        };
        match name {
            "disconnect-after" => Ok(Fault::DisconnectAfter(int()?)),
            "unplug-ms" => Ok(Fault::UnplugMs(int()?)),
            "corrupt" => Ok(Fault::Corrupt(rate()?)),
            "drop" => Ok(Fault::Drop(rate()?)),
            "lose-reply" => match int()? {
                0 => Err(err("found 0, required 1 or more".into())),
                n => Ok(Fault::LoseReply(n)),
            },
            "reboot-at" => Ok(Fault::RebootAt(int()?)),
            "flash-fail-at" => Ok(Fault::FlashFailAt(int()?)),
            "answer-late" => Ok(Fault::AnswerLate(int()?)),
            "battery" => match int()? {
                n @ 0..=100 => Ok(Fault::Field(
                    "battery_percent".into(),
                    FieldValue::Int(n as i64),
                )),
                n => Err(err(format!("found {n}, required 0 to 100"))),
            },
            "battery-drain" => {
                let v = value
                    .ok_or_else(|| err("needs a value (battery-drain=READS:PERCENT)".into()))?;
                let parsed = v
                    .split_once(':')
                    .and_then(|(r, p)| Some((r.parse::<u64>().ok()?, p.parse::<u8>().ok()?)));
                match parsed {
                    Some((reads, percent)) if percent <= 100 => {
                        Ok(Fault::BatteryDrain(reads, percent))
                    }
                    _ => Err(err(format!(
                        "found {v:?}, required READS:PERCENT with PERCENT 0 to 100"
                    ))),
                }
            }
            "field" => {
                let v = value.ok_or_else(|| err("needs NAME=VALUE".into()))?;
                let Some((field, raw)) = v.split_once('=') else {
                    return Err(err(format!("found {v:?}, required NAME=VALUE")));
                };
                let value = match raw.trim() {
                    "true" => FieldValue::Bool(true),
                    "false" => FieldValue::Bool(false),
                    t => t
                        .parse()
                        .map(FieldValue::Int)
                        .unwrap_or_else(|_| FieldValue::Text(t.to_owned())),
                };
                Ok(Fault::Field(field.trim().to_owned(), value))
            }
            "lose-ack" => Ok(Fault::LoseAck(int()?)),
            "duplicate-block" => Ok(Fault::DuplicateBlock(int()?)),
            "nak-storm" => match u32::try_from(int()?) {
                Ok(n) => Ok(Fault::NakStorm(n)),
                Err(_) => Err(err(
                    "found a count too large, required at most 4294967295".into()
                )),
            },
            "erase-delay" => Ok(Fault::EraseDelay(int()?)),
            "refuse-confirm" => flag(Fault::RefuseConfirm),
            "log-noise" => flag(Fault::LogNoise),
            "never-answer" => flag(Fault::NeverAnswer),
            "wrong-seq" => flag(Fault::WrongSeq),
            "disconnect-mid-reply" => flag(Fault::DisconnectMidReply),
            "therapy-running" => flag(Fault::Field(
                "therapy_running".into(),
                FieldValue::Bool(true),
            )),
            "write-ignored" => flag(Fault::WriteIgnored),
            _ => Err(err("unknown fault".into())),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::DisconnectAfter(n) => write!(f, "disconnect-after={n}"),
            Fault::UnplugMs(n) => write!(f, "unplug-ms={n}"),
            Fault::Corrupt(r) => write!(f, "corrupt={r}"),
            Fault::Drop(r) => write!(f, "drop={r}"),
            Fault::LoseReply(n) => write!(f, "lose-reply={n}"),
            Fault::RebootAt(n) => write!(f, "reboot-at={n}"),
            Fault::FlashFailAt(n) => write!(f, "flash-fail-at={n}"),
            Fault::RefuseConfirm => f.write_str("refuse-confirm"),
            Fault::LogNoise => f.write_str("log-noise"),
            Fault::NeverAnswer => f.write_str("never-answer"),
            Fault::AnswerLate(n) => write!(f, "answer-late={n}"),
            Fault::WrongSeq => f.write_str("wrong-seq"),
            Fault::DisconnectMidReply => f.write_str("disconnect-mid-reply"),
            Fault::BatteryDrain(r, p) => write!(f, "battery-drain={r}:{p}"),
            Fault::Field(name, FieldValue::Int(n)) if name == "battery_percent" => {
                write!(f, "battery={n}")
            }
            Fault::Field(name, FieldValue::Bool(true)) if name == "therapy_running" => {
                f.write_str("therapy-running")
            }
            Fault::Field(name, v) => write!(f, "field={name}={v}"),
            Fault::LoseAck(n) => write!(f, "lose-ack={n}"),
            Fault::DuplicateBlock(n) => write!(f, "duplicate-block={n}"),
            Fault::NakStorm(n) => write!(f, "nak-storm={n}"),
            Fault::EraseDelay(n) => write!(f, "erase-delay={n}"),
            Fault::WriteIgnored => write!(f, "write-ignored"),
        }
    }
}

/// The set of faults in force, in the shape the simulator consults them.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// See [`Fault::DisconnectAfter`].
    pub disconnect_after: Option<u64>,
    /// See [`Fault::UnplugMs`].
    pub unplug_ms: u64,
    /// See [`Fault::Corrupt`].
    pub corrupt: f64,
    /// See [`Fault::Drop`].
    pub drop: f64,
    /// See [`Fault::LoseReply`].
    pub lose_reply: Option<u64>,
    /// See [`Fault::RebootAt`].
    pub reboot_at: Option<u64>,
    /// See [`Fault::FlashFailAt`].
    pub flash_fail_at: Option<u64>,
    /// See [`Fault::RefuseConfirm`].
    pub refuse_confirm: bool,
    /// See [`Fault::LogNoise`].
    pub log_noise: bool,
    /// See [`Fault::NeverAnswer`].
    pub never_answer: bool,
    /// See [`Fault::AnswerLate`].
    pub answer_late_ms: u64,
    /// See [`Fault::WrongSeq`].
    pub wrong_seq: bool,
    /// See [`Fault::DisconnectMidReply`].
    pub disconnect_mid_reply: bool,
    /// See [`Fault::BatteryDrain`].
    pub battery_drain: Option<(u64, u8)>,
    /// See [`Fault::Field`].
    pub fields: BTreeMap<String, FieldValue>,
    /// See [`Fault::LoseAck`].
    pub lose_ack: Option<u64>,
    /// See [`Fault::DuplicateBlock`].
    pub duplicate_block: Option<u64>,
    /// See [`Fault::NakStorm`].
    pub nak_storm: u32,
    /// See [`Fault::EraseDelay`].
    pub erase_delay_ms: u64,
    /// See [`Fault::WriteIgnored`].
    pub write_ignored: bool,
}

impl Faults {
    /// Collects a list of faults.
    pub fn new(list: &[Fault]) -> Faults {
        let mut f = Faults {
            unplug_ms: 300,
            ..Faults::default()
        };
        for fault in list {
            match fault.clone() {
                Fault::DisconnectAfter(n) => f.disconnect_after = Some(n),
                Fault::UnplugMs(n) => f.unplug_ms = n,
                Fault::Corrupt(r) => f.corrupt = r,
                Fault::Drop(r) => f.drop = r,
                Fault::LoseReply(n) => f.lose_reply = Some(n),
                Fault::RebootAt(n) => f.reboot_at = Some(n),
                Fault::FlashFailAt(n) => f.flash_fail_at = Some(n),
                Fault::RefuseConfirm => f.refuse_confirm = true,
                Fault::LogNoise => f.log_noise = true,
                Fault::NeverAnswer => f.never_answer = true,
                Fault::AnswerLate(n) => f.answer_late_ms = n,
                Fault::WrongSeq => f.wrong_seq = true,
                Fault::DisconnectMidReply => f.disconnect_mid_reply = true,
                Fault::BatteryDrain(r, p) => f.battery_drain = Some((r, p)),
                Fault::Field(name, v) => {
                    f.fields.insert(name, v);
                }
                Fault::LoseAck(n) => f.lose_ack = Some(n),
                Fault::DuplicateBlock(n) => f.duplicate_block = Some(n),
                Fault::NakStorm(n) => f.nak_storm = n,
                Fault::EraseDelay(n) => f.erase_delay_ms = n,
                Fault::WriteIgnored => f.write_ignored = true,
            }
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::Fault;

    #[test]
    fn specs_parse_and_print_back() {
        for spec in [
            "disconnect-after=4096",
            "unplug-ms=50",
            "corrupt=0.01",
            "drop=0.5",
            "lose-reply=3",
            "reboot-at=65536",
            "flash-fail-at=1024",
            "refuse-confirm",
            "log-noise",
            "never-answer",
            "answer-late=5000",
            "wrong-seq",
            "disconnect-mid-reply",
            "battery=12",
            "battery-drain=1:50",
            "write-ignored",
            "therapy-running",
            "field=occlusion_alarm=true",
            "field=mode=service",
            "lose-ack=3",
            "duplicate-block=2",
            "nak-storm=4",
            "erase-delay=3000",
        ] {
            let fault: Fault = spec.parse().unwrap();
            assert_eq!(fault.to_string(), spec);
        }
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let cases = [
            ("explode", "unknown fault"),
            (
                "corrupt=2",
                "found \"2\", required a probability from 0 to 1",
            ),
            ("corrupt", "needs a rate"),
            (
                "disconnect-after=-1",
                "found \"-1\", required a whole number",
            ),
            ("log-noise=1", "found value \"1\", required none"),
            ("lose-reply=0", "found 0, required 1 or more"),
            ("battery=101", "found 101, required 0 to 100"),
            ("battery-drain=3", "required READS:PERCENT"),
            (
                "battery-drain=1:120",
                "required READS:PERCENT with PERCENT 0 to 100",
            ),
            ("nak-storm=x", "found \"x\", required a whole number"),
        ];
        for (spec, want) in cases {
            let err = spec.parse::<Fault>().unwrap_err().to_string();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }
}

/// Seeded damage of one direction of the line (client to device, or device to client).
#[derive(Debug, Clone)]
pub struct Damage {
    seed: u64,
    stream: u64,
    corrupt: f64,
    drop: f64,
    position: u64,
}

/// The two directions of the line, for [`Damage::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Bytes the client sends.
    ToDevice,
    /// Bytes the device sends.
    ToClient,
}

impl Damage {
    /// Damage of `direction` with these rates (probability per byte), from `seed`.
    pub fn new(seed: u64, direction: Direction, corrupt: f64, drop: f64) -> Damage {
        Damage {
            seed,
            stream: match direction {
                Direction::ToDevice => 0x746f_6465_7669_6365,
                Direction::ToClient => 0x746f_636c_6965_6e74,
            },
            corrupt,
            drop,
            position: 0,
        }
    }

    /// Whether this damage changes anything at all.
    pub fn is_none(&self) -> bool {
        self.corrupt == 0.0 && self.drop == 0.0
    }

    /// The next bytes of the stream, as they come out of the damaged line.
    pub fn apply(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.is_none() {
            self.position += bytes.len() as u64;
            return bytes.to_vec();
        }
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            let h = splitmix64(self.seed ^ self.stream ^ splitmix64(self.position));
            self.position += 1;
            // Two independent draws from the one hash: 26 bits each, plenty for rates >= 1e-7.
            let unit = |bits: u64| (bits & ((1 << 26) - 1)) as f64 / (1u64 << 26) as f64;
            if unit(h) < self.drop {
                continue;
            }
            if unit(h >> 26) < self.corrupt {
                out.push(b ^ (1 << ((h >> 52) & 7)));
            } else {
                out.push(b);
            }
        }
        out
    }
}

/// A well-mixed 64-bit hash (Steele, Lea and Flood's SplitMix64 finaliser).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod damage_tests {
    use super::{Damage, Direction};

    fn run(seed: u64, chunks: &[usize], data: &[u8]) -> Vec<u8> {
        let mut d = Damage::new(seed, Direction::ToDevice, 0.05, 0.02);
        let mut out = Vec::new();
        let mut rest = data;
        for &n in chunks.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at(n.min(rest.len()));
            out.extend(d.apply(now));
            rest = later;
        }
        out
    }

    #[test]
    fn the_same_seed_replays_whatever_the_chunking() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let a = run(7, &[1], &data);
        let b = run(7, &[4096], &data);
        let c = run(7, &[3, 97, 1000], &data);
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_ne!(a, data, "some damage at these rates");
        assert_ne!(run(8, &[64], &data), a, "another seed, other damage");
        // Rates hold roughly: 2 % dropped.
        let dropped = data.len() - a.len();
        assert!((200..600).contains(&dropped), "{dropped}");
        // The two directions are damaged independently.
        let mut back = Damage::new(7, Direction::ToClient, 0.05, 0.02);
        assert_ne!(back.apply(&data), a);
    }

    #[test]
    fn no_rates_no_damage() {
        let mut d = Damage::new(1, Direction::ToClient, 0.0, 0.0);
        assert!(d.is_none());
        assert_eq!(d.apply(b"abc"), b"abc");
    }
}
