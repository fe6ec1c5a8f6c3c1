//! The simulator's IO loop: a pseudo-terminal, the line model and the faults around the
//! sans-IO device.
//!
//! Three threads per connection: a reader that timestamps bytes as the client writes them, a
//! writer that paces replies at the line rate, and the device, which receives each byte at the
//! time the line would have delivered it, stays busy while its flash erases and writes, and
//! answers after the turnaround latency. A cable pull closes the pseudo-terminal and opens a
//! new one behind the same stable path, as a USB adapter re-enumerates under the same name.
//!
//! The loop dispatches on the profile's family: SMP devices get the packet loop below, with
//! its buffers and request queue; line-family devices get [`run_line`], a byte loop around
//! [`LineDevice`] that shares the pseudo-terminal, pacing, damage and cable-pull machinery.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use std::sync::Mutex;

use fieldkit_link::{SerialPort, TTYPort};
use fieldkit_profile::Profile;
use fieldkit_wire::framing::{self, Framing};
use fieldkit_wire::smp::Packet;
use rand::{Rng, SeedableRng};

use crate::boot_serial::BootSerial;
use crate::fault::{Damage, Direction, Fault, Faults};
use crate::line::LineDevice;
use crate::smp::Server;
use crate::smp::{After, with_seq};
use crate::state::DeviceState;
use crate::transport::{Input, Transport};
use crate::zephyr::ZephyrDevice;

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The model played. A profile whose simulator `mode` is `serial-recovery` starts in
    /// MCUboot's serial recovery.
    pub profile: Profile,
    /// The profile of the application a serial-recovery device boots into on reset (the
    /// profile's `device.application`); without it the device stays in recovery.
    pub application: Option<Profile>,
    /// Where the device state persists; `None` keeps it in memory only.
    pub state_path: Option<PathBuf>,
    /// Stable path clients open: a symbolic link to the current pseudo-terminal.
    pub port_path: PathBuf,
    /// Line rate for pacing, bits per second.
    pub baud: u32,
    /// Turnaround latency before each reply (USB-serial adapters wait up to 16 ms).
    pub latency: Duration,
    /// Time the device takes to boot after a reset.
    pub boot_time: Duration,
    /// Faults to inject.
    pub faults: Vec<Fault>,
    /// Seed of every random fault (line damage, log noise); `None` picks one. The seed in use
    /// is the first event after the port, so a failing run can be replayed.
    pub seed: Option<u64>,
    /// Strict mode: a client error a real device answers with silence (a frame over
    /// `buf_size`, a console line over 128 bytes) stops the simulator with
    /// [`SimError::Strict`], so that a test using it fails. Only on a clean line: with
    /// corrupted or dropped bytes injected, a damaged length field is no client's fault.
    pub strict: bool,
}

/// Why the simulator stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The state file could not be used.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The pseudo-terminal could not be made.
    #[error(transparent)]
    Link(#[from] fieldkit_link::LinkError),
    /// Strict mode saw the client break a rule a real device enforces silently.
    #[error("strict mode: the client broke a device rule: {0}")]
    Strict(String),
    /// Other IO (the port link, cloning handles).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SimError {
    let what = what.into();
    move |source| SimError::Io { what, source }
}

struct Connection {
    stop: Arc<AtomicBool>,
    rx: mpsc::Receiver<(Instant, Vec<u8>)>,
    tx: mpsc::Sender<TxItem>,
    threads: Vec<thread::JoinHandle<()>>,
    _pty: fieldkit_link::PtyPair,
}

struct TxItem {
    not_before: Instant,
    bytes: Vec<u8>,
    /// Pull the cable after this many bytes of `bytes` went out.
    cut_after: Option<usize>,
}

/// Time on the wire for `n` characters.
fn wire_time(n: usize, char_time: Duration) -> Duration {
    char_time * n as u32
}

/// The line damage and randomness of one run, from its seed.
#[derive(Clone)]
struct Noise {
    to_device: Arc<Mutex<Damage>>,
    to_client: Arc<Mutex<Damage>>,
}

impl Noise {
    fn new(seed: u64, faults: &Faults) -> Noise {
        let d = |dir| {
            Arc::new(Mutex::new(Damage::new(
                seed,
                dir,
                faults.corrupt,
                faults.drop,
            )))
        };
        Noise {
            to_device: d(Direction::ToDevice),
            to_client: d(Direction::ToClient),
        }
    }
}

/// The seed in force: the configured one, or a fresh one.
fn seed_of(config: &SimConfig) -> u64 {
    config.seed.unwrap_or_else(|| rand::thread_rng().r#gen())
}

/// Runs the simulator until `stop` is set. `on_event` receives the port path first
/// (`port <path>`), then the seed of its random faults (`seed <n>`), then one line per
/// device event.
pub fn run(
    config: SimConfig,
    stop: Arc<AtomicBool>,
    mut on_event: impl FnMut(&str),
) -> Result<(), SimError> {
    if config.profile.family() == fieldkit_profile::Family::Line {
        return run_line(config, stop, on_event);
    }
    let state = match &config.state_path {
        Some(p) if p.exists() => DeviceState::load(p)?,
        _ => DeviceState::factory(&config.profile),
    };
    let faults = Faults::new(&config.faults);
    let framing = match config
        .profile
        .protocol
        .framing
        .as_ref()
        .map(|f| f.get_ref().as_str())
    {
        Some("raw") => Framing::Raw,
        _ => Framing::Console,
    };
    let bits = config.profile.line.bits_per_char();
    let char_time = Duration::from_secs_f64(f64::from(bits) / f64::from(config.baud.max(1)));
    let mut device = match config.profile.simulator.mode {
        fieldkit_profile::SimMode::Application => Server::Application(ZephyrDevice::new(
            config.profile.clone(),
            state,
            faults.clone(),
        )),
        fieldkit_profile::SimMode::SerialRecovery => Server::Recovery {
            bootloader: BootSerial::new(config.profile.clone(), state, faults.clone()),
            application: config.application.clone().map(Box::new),
        },
    };
    save(&config, device.state())?;

    let seed = seed_of(&config);
    let noise = Noise::new(seed, &faults);
    let mut conn = connect(&config.port_path, &noise, char_time)?;
    on_event(&format!("port {}", config.port_path.display()));
    on_event(&format!("seed {seed}"));

    let clean_line = faults.corrupt == 0.0 && faults.drop == 0.0;
    let mut buf_count = device.buf_count();
    let mut transport = Transport::new(framing, device.buf_size());
    // Packets received and waiting for the device, with the time their last byte arrived.
    let mut queue: VecDeque<(Instant, Packet)> = VecDeque::new();
    let mut rx_line_free = Instant::now();
    let mut device_free = Instant::now();
    let mut booting_until: Option<Instant> = None;
    let mut received: u64 = 0;
    let mut disconnect_after = faults.disconnect_after;
    let mut disconnect_mid_reply = faults.disconnect_mid_reply;
    let mut replies: u64 = 0;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Incoming chunks not yet delivered by the line model: (time the last byte lands, bytes).
    let mut inflight: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut woken_by: Option<(Instant, Vec<u8>)> = None;

    while !stop.load(Ordering::Relaxed) {
        // Take everything the reader has, and schedule it on the line.
        let mut incoming: Vec<(Instant, Vec<u8>)> = woken_by.take().into_iter().collect();
        incoming.extend(conn.rx.try_iter());
        for (at, bytes) in incoming {
            for piece in bytes.chunks(64) {
                let start = at.max(rx_line_free);
                rx_line_free = start + wire_time(piece.len(), char_time);
                inflight.push_back((rx_line_free, piece.to_vec()));
            }
        }
        let now = Instant::now();
        // Deliver what has arrived by now.
        while inflight.front().is_some_and(|(t, _)| *t <= now) {
            let (t, piece) = inflight.pop_front().expect("checked");
            if booting_until.is_some_and(|b| t < b) {
                continue; // a booting device hears nothing
            }
            received += piece.len() as u64;
            for input in transport.push(&piece) {
                match input {
                    Input::Packet(packet) if queue.len() < buf_count => {
                        queue.push_back((t, packet));
                    }
                    Input::Packet(_) => on_event("request dropped: all buffers busy"),
                    // On a line the simulator damages itself, a mangled length field looks
                    // like an oversize frame: only a clean line can blame the client.
                    Input::Dropped(why) if config.strict && clean_line && why.is_client_error() => {
                        on_event(&format!("strict mode: {why}"));
                        disconnect(conn);
                        let _ = std::fs::remove_file(&config.port_path);
                        return Err(SimError::Strict(why.to_string()));
                    }
                    Input::Dropped(why) => on_event(&why.to_string()),
                }
            }
            if let Some(n) = disconnect_after
                && received >= n
            {
                disconnect_after = None;
                on_event(&format!("cable pulled after {received} bytes (fault)"));
                conn = replug(conn, &config.port_path, &faults, &noise, char_time)?;
                on_event(&format!(
                    "cable plugged back in: port {}",
                    config.port_path.display()
                ));
                inflight.clear();
                transport.clear();
                queue.clear();
                break;
            }
        }
        if let Some(b) = booting_until
            && now >= b
        {
            booting_until = None;
            on_event(&format!("booted (boot {})", device.state().boot_count));
        }
        // Serve the oldest waiting request once the device is free.
        if booting_until.is_none()
            && let Some((arrived, _)) = queue.front()
            && (*arrived).max(device_free) <= now
        {
            let (arrived, packet) = queue.pop_front().expect("checked");
            let start = arrived.max(device_free);
            let reply = device.handle(&packet);
            for e in &reply.events {
                on_event(e);
            }
            if reply.state_changed {
                save(&config, device.state())?;
            }
            device_free = start + reply.busy;
            let mut reply_end = device_free;
            if let Some(mut p) = reply.packet {
                replies += 1;
                if faults.wrong_seq {
                    let seq = p.header.seq.wrapping_add(1);
                    p = with_seq(p, seq);
                }
                let lost = faults.never_answer
                    || faults.lose_reply.is_some_and(|n| replies.is_multiple_of(n));
                if lost {
                    on_event("reply lost (fault)");
                } else {
                    let mut bytes = Vec::new();
                    if faults.log_noise {
                        bytes.extend_from_slice(log_line(&device, &mut rng).as_bytes());
                    }
                    bytes.extend(framing::encode(framing, &p.encode()));
                    let not_before =
                        device_free + config.latency + Duration::from_millis(faults.answer_late_ms);
                    let cut_after = disconnect_mid_reply.then_some(bytes.len() / 2);
                    disconnect_mid_reply = false;
                    reply_end = not_before + wire_time(bytes.len(), char_time);
                    let _ = conn.tx.send(TxItem {
                        not_before,
                        bytes,
                        cut_after,
                    });
                    if cut_after.is_some() {
                        // The writer pulls the cable; the device stays up and is plugged back in.
                        thread::sleep(reply_end.saturating_duration_since(Instant::now()));
                        on_event("cable pulled mid-reply (fault)");
                        conn = replug(conn, &config.port_path, &faults, &noise, char_time)?;
                        on_event(&format!(
                            "cable plugged back in: port {}",
                            config.port_path.display()
                        ));
                        inflight.clear();
                        transport.clear();
                        queue.clear();
                    }
                }
            }
            match reply.after {
                After::Nothing => {}
                After::Reboot | After::CrashReboot => {
                    // A reset waits for its reply to leave the UART; a crash does not.
                    let at = if reply.after == After::Reboot {
                        reply_end
                    } else {
                        now
                    };
                    thread::sleep(at.saturating_duration_since(Instant::now()));
                    let swap = swap_time(device.state(), &config.profile);
                    for e in device.reboot(&faults) {
                        on_event(&e);
                    }
                    save(&config, device.state())?;
                    queue.clear();
                    // The program that boots may have buffers of another size.
                    transport = Transport::new(framing, device.buf_size());
                    buf_count = device.buf_count();
                    let boot = config.boot_time + swap;
                    booting_until = Some(Instant::now() + boot);
                    device_free = Instant::now() + boot;
                    on_event("rebooting");
                }
            }
            continue;
        }
        // Sleep until the next thing can happen or new input arrives; wake now and then to
        // notice `stop`.
        let mut next = now + Duration::from_millis(20);
        if let Some((t, _)) = inflight.front() {
            next = next.min(*t);
        }
        if let Some((arrived, _)) = queue.front() {
            next = next.min((*arrived).max(device_free));
        }
        if let Some(b) = booting_until {
            next = next.min(b);
        }
        if let Ok(item) = conn
            .rx
            .recv_timeout(next.saturating_duration_since(Instant::now()))
        {
            woken_by = Some(item);
        }
    }
    disconnect(conn);
    let _ = std::fs::remove_file(&config.port_path);
    Ok(())
}

/// The loop of a line-family device: bytes reach the device at the time the line delivers
/// them (later if it is busy erasing or writing), its answers leave after the turnaround
/// latency, its bootloader's timeouts run on the same clock, and a cable pull aborts a
/// transfer under way.
fn run_line(
    config: SimConfig,
    stop: Arc<AtomicBool>,
    mut on_event: impl FnMut(&str),
) -> Result<(), SimError> {
    let state = match &config.state_path {
        Some(p) if p.exists() => DeviceState::load(p)?,
        _ => DeviceState::factory(&config.profile),
    };
    let faults = Faults::new(&config.faults);
    let bits = config.profile.line.bits_per_char();
    let char_time = Duration::from_secs_f64(f64::from(bits) / f64::from(config.baud.max(1)));
    let mut device = LineDevice::new(config.profile.clone(), state, faults.clone());
    save(&config, &device.state)?;

    let seed = seed_of(&config);
    let noise = Noise::new(seed, &faults);
    let mut conn = connect(&config.port_path, &noise, char_time)?;
    on_event(&format!("port {}", config.port_path.display()));
    on_event(&format!("seed {seed}"));

    let mut inflight: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut rx_line_free = Instant::now();
    let mut device_free = Instant::now();
    let mut booting_until: Option<Instant> = None;
    let mut received: u64 = 0;
    let mut disconnect_after = faults.disconnect_after;

    while !stop.load(Ordering::Relaxed) {
        while let Ok((at, bytes)) = conn.rx.try_recv() {
            for piece in bytes.chunks(64) {
                let start = at.max(rx_line_free);
                rx_line_free = start + wire_time(piece.len(), char_time);
                inflight.push_back((rx_line_free, piece.to_vec()));
            }
        }
        let now = Instant::now();
        if let Some(b) = booting_until
            && now >= b
        {
            booting_until = None;
            on_event(&format!("booted (boot {})", device.state.boot_count));
        }
        let mut pulled = false;
        // Deliver what has arrived, once the device is free to read it.
        while device_free <= now
            && let Some((t, _)) = inflight.front()
            && *t <= now
        {
            let (t, piece) = inflight.pop_front().expect("checked");
            if booting_until.is_some_and(|b| t < b) {
                continue; // a booting device hears nothing
            }
            received += piece.len() as u64;
            let out = device.receive(&piece, t.max(device_free));
            let start = t.max(device_free);
            if line_output(
                &config,
                &conn,
                &mut device,
                out,
                start,
                &mut device_free,
                &mut booting_until,
                char_time,
                &mut on_event,
            )? {
                inflight.clear();
            }
            if let Some(n) = disconnect_after
                && received >= n
            {
                disconnect_after = None;
                on_event(&format!("cable pulled after {received} bytes (fault)"));
                pulled = true;
                break;
            }
        }
        if pulled {
            for e in device.link_reset() {
                on_event(&e);
            }
            conn = replug(conn, &config.port_path, &faults, &noise, char_time)?;
            on_event(&format!(
                "cable plugged back in: port {}",
                config.port_path.display()
            ));
            inflight.clear();
            continue;
        }
        if booting_until.is_none() && device_free <= now {
            let out = device.poll(now);
            line_output(
                &config,
                &conn,
                &mut device,
                out,
                now,
                &mut device_free,
                &mut booting_until,
                char_time,
                &mut on_event,
            )?;
        }
        // Sleep until the next thing can happen, but wake for new input within a millisecond.
        let mut next = now + Duration::from_millis(1);
        if let Some((t, _)) = inflight.front() {
            next = next.min((*t).max(device_free));
        }
        if let Some(d) = device.deadline() {
            next = next.min(d.max(device_free));
        }
        thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    disconnect(conn);
    let _ = std::fs::remove_file(&config.port_path);
    Ok(())
}

/// Acts on what the line device produced at `start`: log, persist, schedule its answer, and
/// reboot it once the answer has left. Returns whether it rebooted (its input is then lost).
#[allow(clippy::too_many_arguments)]
fn line_output(
    config: &SimConfig,
    conn: &Connection,
    device: &mut LineDevice,
    out: crate::line::Output,
    start: Instant,
    device_free: &mut Instant,
    booting_until: &mut Option<Instant>,
    char_time: Duration,
    on_event: &mut impl FnMut(&str),
) -> Result<bool, SimError> {
    for e in &out.events {
        on_event(e);
    }
    if out.state_changed {
        save(config, &device.state)?;
    }
    *device_free = (*device_free).max(start) + out.busy;
    let mut reply_end = *device_free;
    if !out.bytes.is_empty() {
        let not_before = *device_free + config.latency;
        reply_end = not_before + wire_time(out.bytes.len(), char_time);
        let _ = conn.tx.send(TxItem {
            not_before,
            bytes: out.bytes,
            cut_after: None,
        });
    }
    if !out.reboot {
        return Ok(false);
    }
    for e in device.reboot() {
        on_event(&e);
    }
    save(config, &device.state)?;
    let until = reply_end + config.boot_time;
    *booting_until = Some(until);
    *device_free = until;
    on_event("rebooting");
    Ok(true)
}

/// The time MCUboot's swap at this boot takes: every image with a pending test, a permanent
/// mark or an unconfirmed test to revert has both slots rewritten, sector by sector (erase,
/// then write), before the application starts.
fn swap_time(state: &DeviceState, profile: &Profile) -> Duration {
    use crate::state::Swap;
    let sim = &profile.simulator;
    let bytes: u64 = state
        .images
        .iter()
        .filter(|i| i.swap != Swap::None)
        .map(|i| {
            let len = |s: &Option<crate::state::SlotImage>| {
                s.as_ref().map_or(0, |s| s.bytes.len() as u64)
            };
            len(&i.primary) + len(&i.secondary)
        })
        .sum();
    let sectors = bytes.div_ceil(4096);
    let erase = Duration::from_micros(sectors * u64::from(sim.erase_us_per_sector));
    let write =
        Duration::from_secs_f64(bytes as f64 / (f64::from(sim.write_kib_per_s.max(1)) * 1024.0));
    erase + write
}

fn save(config: &SimConfig, state: &DeviceState) -> Result<(), SimError> {
    if let Some(p) = &config.state_path {
        state.save(p)?;
    }
    Ok(())
}

fn log_line(device: &Server, rng: &mut impl Rng) -> String {
    let state = device.state();
    let ms: u32 = rng.gen_range(0..1000);
    format!(
        "[00:{:02}:{:02}.{ms:03},000] <inf> app: {} heartbeat ok, battery {} %\r\n",
        state.boot_count % 60,
        rng.gen_range(0..60),
        state.model,
        state.text("battery_percent")
    )
}

fn connect(port_path: &Path, noise: &Noise, char_time: Duration) -> Result<Connection, SimError> {
    let pty = fieldkit_link::pty_pair()?;
    // Point the stable path at the new pseudo-terminal atomically.
    let tmp = port_path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&pty.path, &tmp).map_err(io(format!("link {}", tmp.display())))?;
    std::fs::rename(&tmp, port_path).map_err(io(format!("link {}", port_path.display())))?;

    let stop = Arc::new(AtomicBool::new(false));
    let (rx_send, rx) = mpsc::channel();
    let (tx, tx_recv) = mpsc::channel::<TxItem>();
    let mut reader = pty.device.try_clone_native().map_err(|e| SimError::Io {
        what: "clone the pseudo-terminal".into(),
        source: e.into(),
    })?;
    let mut writer = pty.device.try_clone_native().map_err(|e| SimError::Io {
        what: "clone the pseudo-terminal".into(),
        source: e.into(),
    })?;
    let _ = reader.set_timeout(Duration::from_millis(20));
    let _ = writer.set_timeout(Duration::from_millis(200));
    let to_device = noise.to_device.clone();
    let to_client = noise.to_client.clone();

    let s = stop.clone();
    let read_thread = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !s.load(Ordering::Relaxed) {
            match reader.read(&mut buf) {
                Ok(0) => thread::sleep(Duration::from_millis(5)),
                Ok(n) => {
                    let at = Instant::now();
                    let bytes = to_device
                        .lock()
                        .expect("damage is never poisoned")
                        .apply(&buf[..n]);
                    if rx_send.send((at, bytes)).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    let s = stop.clone();
    let write_thread = thread::spawn(move || {
        pace_writes(&mut writer, &tx_recv, &s, char_time, &to_client);
    });
    Ok(Connection {
        stop,
        rx,
        tx,
        threads: vec![read_thread, write_thread],
        _pty: pty,
    })
}

/// Writes replies at the line rate, in slices of about a millisecond of line time.
fn pace_writes(
    port: &mut TTYPort,
    items: &mpsc::Receiver<TxItem>,
    stop: &AtomicBool,
    char_time: Duration,
    damage: &Mutex<Damage>,
) {
    let mut line_free = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let Ok(item) = items.recv_timeout(Duration::from_millis(20)) else {
            continue;
        };
        let TxItem {
            not_before,
            bytes,
            cut_after,
        } = item;
        let limit = cut_after.unwrap_or(bytes.len());
        let slice =
            ((Duration::from_millis(1).as_nanos() / char_time.as_nanos().max(1)) as usize).max(1);
        let mut at = not_before.max(line_free);
        // A piece reaches the client when its last bit has crossed the line.
        for piece in bytes[..limit].chunks(slice) {
            at += wire_time(piece.len(), char_time);
            thread::sleep(at.saturating_duration_since(Instant::now()));
            let out = damage
                .lock()
                .expect("damage is never poisoned")
                .apply(piece);
            if port.write_all(&out).is_err() {
                break;
            }
        }
        line_free = at;
        if cut_after.is_some() {
            return;
        }
    }
}

fn disconnect(conn: Connection) {
    conn.stop.store(true, Ordering::Relaxed);
    drop(conn.tx);
    for t in conn.threads {
        let _ = t.join();
    }
}

fn replug(
    conn: Connection,
    port_path: &Path,
    faults: &Faults,
    noise: &Noise,
    char_time: Duration,
) -> Result<Connection, SimError> {
    disconnect(conn);
    let _ = std::fs::remove_file(port_path);
    thread::sleep(Duration::from_millis(faults.unplug_ms));
    connect(port_path, noise, char_time)
}

#[cfg(test)]
mod tests {
    use fieldkit_profile::ProfileSet;

    use super::swap_time;
    use crate::state::{DeviceState, Swap};

    #[test]
    fn only_a_boot_that_swaps_pays_for_the_swap() {
        let profile = ProfileSet::builtin()
            .get("acme-infusion-p7")
            .unwrap()
            .clone();
        let mut state = DeviceState::factory(&profile);
        assert!(swap_time(&state, &profile).is_zero());
        let image = state.images[0].primary.clone();
        state.images[0].secondary = image;
        state.images[0].swap = Swap::PendingTest;
        let one = swap_time(&state, &profile);
        // Two slots of a ~16 KiB image at 512 KiB/s, plus the erase of their sectors.
        assert!(
            one > std::time::Duration::from_millis(50)
                && one < std::time::Duration::from_millis(100),
            "{one:?}"
        );
        state.images[1].secondary = state.images[1].primary.clone();
        state.images[1].swap = Swap::Testing;
        assert!(swap_time(&state, &profile) > one);
    }
}
