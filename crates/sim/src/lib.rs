//! The device simulator: a virtual medical device on a real pseudo-terminal.
//!
//! It is the embedded default (a newcomer sees the whole flow with no hardware), the training
//! tool, and the test bench. It plays the device side of the same protocols real devices speak,
//! reusing `fieldkit-wire` for the codecs, so a third-party client such as `smpclient` or
//! `mcumgr` talks to it as it would to a Zephyr device.
//!
//! The crate has three layers:
//! - [`state`]: what the device keeps across resets (identity, image slots, MCUboot's swap
//!   state), persisted in a JSON state file so a restart behaves like a power cycle: a tested
//!   image boots once and reverts unless confirmed.
//! - [`zephyr`]: the SMP device in application mode (a Zephyr application over MCUboot),
//!   sans-IO, one module per MCUmgr group. A request in; a reply ([`smp::Reply`]), the flash
//!   time it cost, and whether it reboots, out.
//! - [`boot_serial`]: MCUboot's serial recovery, the bootloader mode many devices are
//!   serviced in, after `boot/boot_serial/src/boot_serial.c`: slot 0 written in place, no
//!   test slot, a reset into the application.
//! - [`transport`]: the device's serial input, as strict as Zephyr's and MCUboot's: console
//!   lines of at most 128 bytes, a decoded frame of at most `buf_size`, silence otherwise.
//! - [`line`]: the legacy line-command device with its YMODEM bootloader, sans-IO. Bytes in;
//!   bytes, the flash time they cost, and whether it reboots, out.
//! - [`serve`]: the IO loop, with the line model (baud pacing both ways, turnaround latency,
//!   flash erase and write time, a device that can only hold `buf_count` requests) and the
//!   faults of [`fault`], whose random damage is seeded so that a run replays.

pub mod boot_serial;
pub mod fault;
pub mod line;
pub mod serve;
pub mod smp;
pub mod state;
pub mod transport;
pub mod zephyr;

pub use boot_serial::BootSerial;
pub use fault::{Fault, Faults};
pub use line::LineDevice;
pub use serve::{SimConfig, SimError, run};
pub use state::DeviceState;
pub use zephyr::ZephyrDevice;

#[cfg(test)]
mod tests;
