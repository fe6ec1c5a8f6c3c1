//! The only code in fieldkit that opens a port.
//!
//! A session talks to a device through a [`Link`]: any async byte stream. On a technician's
//! laptop that is a serial port opened with the line settings of the device's profile; in
//! tests and in the simulator it is one end of a pseudo-terminal pair; where a platform has no
//! pseudo-terminals the simulator runs in-process behind an in-memory duplex stream. The
//! session cannot tell the difference, which is the point: the code path that updates a real
//! pump is the code path the test suite runs.
//!
//! [`discover`] lists the serial ports with their USB details and the profile each matches.
//! [`open`] opens one with a profile's line settings. [`pty_pair`] makes a pseudo-terminal
//! pair for the simulator. Timeouts are the caller's: every read here is a plain async read, so
//! the session wraps each request in the timeout the profile declares for that stage.

use std::path::{Path, PathBuf};

use fieldkit_profile::{FlowControl, LineSettings, Parity, ProfileSet};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a device.
pub trait Link: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Link for T {}

/// Why a port could not be listed or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The operating system refused to list ports.
    #[error("cannot list serial ports: {0}")]
    Discover(#[source] serialport::Error),
    /// The port does not exist.
    #[error("port {path} does not exist: check the cable and the port name (see `fieldkit ports`)")]
    NotFound {
        /// The path asked for.
        path: PathBuf,
    },
    /// The port exists but could not be opened.
    #[error("cannot open port {path}: {source}")]
    Open {
        /// The path asked for.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: serialport::Error,
    },
    /// A pseudo-terminal pair could not be made.
    #[error("cannot create a pseudo-terminal pair: {0}")]
    Pty(#[source] serialport::Error),
}

/// A serial port as discovered, with its USB details and matched profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortInfo {
    /// Path to open (`/dev/ttyACM0`, `COM3`).
    pub path: String,
    /// `usb`, `pci`, `bluetooth` or `unknown`.
    pub kind: &'static str,
    /// USB vendor id.
    pub vid: Option<u16>,
    /// USB product id.
    pub pid: Option<u16>,
    /// USB serial number string.
    pub serial_number: Option<String>,
    /// USB manufacturer string.
    pub manufacturer: Option<String>,
    /// USB product string.
    pub product: Option<String>,
    /// Id of the device profile that matches, if any.
    pub profile: Option<String>,
}

/// Lists the serial ports of this machine and the profile each one matches.
pub fn discover(profiles: &ProfileSet) -> Result<Vec<PortInfo>, LinkError> {
    let ports = serialport::available_ports().map_err(LinkError::Discover)?;
    let mut out: Vec<PortInfo> = ports
        .into_iter()
        .map(|p| {
            let mut info = PortInfo {
                path: p.port_name,
                kind: "unknown",
                vid: None,
                pid: None,
                serial_number: None,
                manufacturer: None,
                product: None,
                profile: None,
            };
            match p.port_type {
                serialport::SerialPortType::UsbPort(usb) => {
                    info.kind = "usb";
                    info.profile = profiles
                        .match_usb(usb.vid, usb.pid, usb.product.as_deref())
                        .map(|p| p.id().to_owned());
                    info.vid = Some(usb.vid);
                    info.pid = Some(usb.pid);
                    info.serial_number = usb.serial_number;
                    info.manufacturer = usb.manufacturer;
                    info.product = usb.product;
                }
                serialport::SerialPortType::PciPort => info.kind = "pci",
                serialport::SerialPortType::BluetoothPort => info.kind = "bluetooth",
                serialport::SerialPortType::Unknown => {}
            }
            info
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The serial number in the USB descriptor of the device behind `path`, when it is a USB
/// serial port that has one. Symbolic links are followed, so a stable name
/// (`/dev/serial/by-id/...`) finds its port.
pub fn usb_serial_number(path: &Path) -> Option<String> {
    let wanted = std::fs::canonicalize(path).ok()?;
    serialport::available_ports()
        .ok()?
        .into_iter()
        .find(|p| std::fs::canonicalize(&p.port_name).ok().as_ref() == Some(&wanted))
        .and_then(|p| match p.port_type {
            serialport::SerialPortType::UsbPort(usb) => usb.serial_number,
            _ => None,
        })
}

/// How long [`open`] waits for a port another program holds.
const BUSY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// An open serial port.
pub type SerialLink = tokio_serial::SerialStream;

/// Opens `path` with the line settings of a profile. Must be called inside a Tokio runtime.
pub fn open(path: &Path, line: &LineSettings) -> Result<SerialLink, LinkError> {
    if !path.exists() {
        return Err(LinkError::NotFound {
            path: path.to_owned(),
        });
    }
    let data_bits = match line.data_bits.get_ref() {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let parity = match line.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop_bits = match line.stop_bits.get_ref() {
        2 => tokio_serial::StopBits::Two,
        _ => tokio_serial::StopBits::One,
    };
    let flow = match line.flow_control {
        FlowControl::None => tokio_serial::FlowControl::None,
        FlowControl::Software => tokio_serial::FlowControl::Software,
        FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
    };
    let builder = tokio_serial::new(path.to_string_lossy(), *line.baud.get_ref())
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(flow);
    // A port another program holds (`flock`) is busy, not missing: that program may be just
    // closing it (a tool run that ended, a child process between fork and exec still holding
    // our descriptor), so a busy port is tried again for a moment before it is reported.
    let busy_until = std::time::Instant::now() + BUSY_PATIENCE;
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut stream = loop {
        match tokio_serial::SerialStream::open(&builder) {
            Ok(s) => break s,
            Err(e)
                if e.kind() == serialport::ErrorKind::NoDevice
                    && path.exists()
                    && std::time::Instant::now() < busy_until =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(source) => {
                return Err(LinkError::Open {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    };
    // Exclusive access would stop a second tool (or the simulator's own keep-alive handle)
    // from sharing a pseudo-terminal; real ports are protected by the OS's device locking.
    #[cfg(unix)]
    {
        let _ = stream.set_exclusive(false);
    }
    Ok(stream)
}

/// The pseudo-terminal side the simulator plays the device on, and the trait its port
/// operations come from: re-exported so that only this crate depends on `serialport`.
#[cfg(unix)]
pub use serialport::{SerialPort, TTYPort};

/// Both ends of a pseudo-terminal: the simulator plays the device on `device`, clients open
/// `path`.
#[cfg(unix)]
pub struct PtyPair {
    /// The controlling side, which the simulator reads and writes.
    pub device: serialport::TTYPort,
    /// The client side, kept open so that the pair survives clients coming and going.
    pub client: serialport::TTYPort,
    /// Path of the client side (`/dev/pts/N`).
    pub path: PathBuf,
}

/// Creates a pseudo-terminal pair in raw mode.
#[cfg(unix)]
pub fn pty_pair() -> Result<PtyPair, LinkError> {
    use serialport::SerialPort;
    let (device, client) = serialport::TTYPort::pair().map_err(LinkError::Pty)?;
    let path = client.name().map(PathBuf::from).ok_or_else(|| {
        LinkError::Pty(serialport::Error::new(
            serialport::ErrorKind::Unknown,
            "the pseudo-terminal has no name",
        ))
    })?;
    Ok(PtyPair {
        device,
        client,
        path,
    })
}
