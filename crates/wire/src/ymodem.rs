//! YMODEM-1K and XMODEM-1K, sans-IO: a [`Sender`] and a [`Receiver`] state machine.
//!
//! The protocol is Chuck Forsberg's "XMODEM/YMODEM Protocol Reference" (1988) as lrzsz's
//! `sb`/`rb` speak it and as legacy bootloaders (ST AN4657 style) take firmware:
//!
//! - The receiver drives. It asks for CRC-16 with `C` (or for the 8-bit checksum with NAK).
//! - Blocks are `SOH|STX, n, 255-n, 128|1024 data bytes, CRC-16 BE` (or one checksum byte).
//!   Block numbers count modulo 256; the receiver ACKs a good block, NAKs a bad one, and ACKs
//!   the repeat of the previous block without keeping it (its ACK was lost).
//! - YMODEM sends block 0 first: `name NUL size` in decimal. After its ACK the receiver asks
//!   again with `C` and the data blocks follow. The last block is padded with `^Z`; the size in
//!   block 0 lets the receiver drop the padding.
//! - End of file: the sender sends EOT until ACKed; lrzsz's receiver NAKs the first EOT and
//!   ACKs the second, which guards against a line hit that looks like an EOT. YMODEM then asks
//!   for the next file with `C`, and an empty block 0 ends the batch.
//! - Two consecutive CANs abort, from either side.
//!
//! Fallback: a receiver that opens with NAK instead of `C` is a classic XMODEM receiver. The
//! spec forbids CRC-16 unless the receiver asks for it, so the sender then sends XMODEM-1K
//! with the 8-bit checksum and no block 0 (an integrity check this weak is acceptable here only
//! because a firmware image carries its own SHA-256, verified by the device). On the other
//! side, a receiver whose first block is block 1 is talking to an XMODEM sender: it takes the
//! file with no name and no size, padding included.
//!
//! Both machines are pull-style, like [`crate::framing::Decoder`]: feed what arrived with
//! `receive`, tell them when the caller's wait ran out with `timeout`, and write out whatever
//! `transmit` returns. The caller owns the clock: [`Sender::waiting_for`] and
//! [`Receiver::waiting_for`] say what is awaited, so the caller can give the first block its
//! long timeout (the device erases its flash before acknowledging it). Following the spec's
//! advice, the sender discards whatever arrived in the same read after the byte that made it
//! transmit: nothing sent before a block can answer that block.

use std::fmt;

use crc::{CRC_16_XMODEM, Crc};

/// Start of a 128-byte block.
pub const SOH: u8 = 0x01;
/// Start of a 1024-byte block.
pub const STX: u8 = 0x02;
/// End of file.
pub const EOT: u8 = 0x04;
/// Block received.
pub const ACK: u8 = 0x06;
/// Block refused, or (as the receiver's first byte) "start, with the 8-bit checksum".
pub const NAK: u8 = 0x15;
/// Cancel; two in a row abort the transfer.
pub const CAN: u8 = 0x18;
/// The receiver's request for CRC-16.
pub const CRC_REQUEST: u8 = b'C';
/// Padding of the last block (CP/M end of file).
pub const PAD: u8 = 0x1a;
/// Consecutive failures of one step before a side gives up (the spec's figure).
pub const MAX_RETRIES: u32 = 10;
/// How many CANs a side sends when it aborts (YAM sends eight).
const CANCEL_LEN: usize = 8;

const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);

/// Which protocol a side speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Batch: block 0 carries name and size, an empty block 0 ends the batch.
    Ymodem,
    /// A single file from block 1, no name, no size.
    Xmodem,
}

/// How each block is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// CRC-16/XMODEM, two bytes big-endian (asked for with `C`).
    Crc16,
    /// The 8-bit arithmetic sum of the data (asked for with NAK).
    Checksum,
}

impl Check {
    fn len(self) -> usize {
        match self {
            Check::Crc16 => 2,
            Check::Checksum => 1,
        }
    }

    fn compute(self, data: &[u8]) -> Vec<u8> {
        match self {
            Check::Crc16 => CRC16.checksum(data).to_be_bytes().to_vec(),
            Check::Checksum => vec![data.iter().fold(0u8, |a, b| a.wrapping_add(*b))],
        }
    }
}

/// Why a transfer failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum YmodemError {
    /// The file name cannot go in block 0.
    #[error("file name {name:?} cannot be sent: {reason}")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// One step failed too often.
    #[error("{step}: no good answer after {tries} tries (last: {last})")]
    TooManyRetries {
        /// What was being done.
        step: String,
        /// How many tries.
        tries: u32,
        /// The last thing that went wrong.
        last: String,
    },
    /// The other side aborted with CAN CAN.
    #[error("the other side cancelled the transfer (CAN CAN) while {step}")]
    CancelledByPeer {
        /// What was being done.
        step: String,
    },
    /// This side was asked to cancel.
    #[error("transfer cancelled at the user's request")]
    Cancelled,
    /// Block 0 could not be read.
    #[error("block 0 is not a YMODEM header: {reason}")]
    BadHeader {
        /// What is wrong.
        reason: String,
    },
    /// The file is larger than the receiver takes.
    #[error("the file is {size} bytes, more than the {max} bytes this receiver takes")]
    TooLarge {
        /// Size announced or received so far.
        size: u64,
        /// The receiver's limit.
        max: u64,
    },
    /// A block number that is neither the expected one nor the repeat of the previous one.
    #[error(
        "lost block synchronisation: received block {found}, required {expected} or a repeat of {previous}"
    )]
    Sync {
        /// Number received (mod 256).
        found: u8,
        /// Number expected (mod 256).
        expected: u8,
        /// Number of the previous block (mod 256).
        previous: u8,
    },
    /// The sender ended the file before the size it announced.
    #[error("the file ended after {received} bytes, but block 0 announced {declared}")]
    ShortFile {
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        declared: u64,
    },
}

/// Encodes one block: `data` is padded with `^Z` to 128 bytes (if it fits) or to 1024.
///
/// # Panics
/// If `data` is longer than 1024 bytes.
pub fn encode_block(number: u8, data: &[u8], check: Check) -> Vec<u8> {
    assert!(data.len() <= 1024, "a block holds at most 1024 bytes");
    let (start, size) = if data.len() <= 128 {
        (SOH, 128)
    } else {
        (STX, 1024)
    };
    let mut body = data.to_vec();
    body.resize(size, PAD);
    let mut out = Vec::with_capacity(size + 5);
    out.extend_from_slice(&[start, number, !number]);
    out.extend_from_slice(&body);
    out.extend(check.compute(&body));
    out
}

/// The data of YMODEM block 0 for a file: `name NUL size NUL...`, 128 bytes, or 1024 when the
/// name is long.
fn header_data(name: &str, size: u64) -> Vec<u8> {
    let mut data = name.as_bytes().to_vec();
    data.push(0);
    data.extend_from_slice(size.to_string().as_bytes());
    let len = if data.len() < 128 { 128 } else { 1024 };
    data.resize(len, 0);
    data
}

/// A file announced by YMODEM block 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    /// The path name as sent.
    pub name: String,
    /// The file length, when sent.
    pub size: Option<u64>,
}

/// Reads block 0's data. `Ok(None)` is the empty name that ends a batch.
pub fn parse_header(data: &[u8]) -> Result<Option<FileHeader>, YmodemError> {
    let bad = |reason: String| YmodemError::BadHeader { reason };
    let Some(nul) = data.iter().position(|b| *b == 0) else {
        return Err(bad(format!(
            "no NUL after the file name in {} bytes",
            data.len()
        )));
    };
    if nul == 0 {
        return Ok(None);
    }
    let name = String::from_utf8(data[..nul].to_vec())
        .map_err(|_| bad("the file name is not UTF-8".into()))?;
    let rest = &data[nul + 1..];
    let end = rest
        .iter()
        .position(|b| *b == b' ' || *b == 0)
        .unwrap_or(rest.len());
    let field = &rest[..end];
    let size = if field.is_empty() {
        None
    } else {
        let text = std::str::from_utf8(field).unwrap_or("");
        match text.parse::<u64>() {
            Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => {
                return Err(bad(format!(
                    "file length {:?} is not a decimal number",
                    String::from_utf8_lossy(field)
                )));
            }
        }
    };
    Ok(Some(FileHeader { name, size }))
}

/// What a side is waiting for, so the caller can choose how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The other side's first word (the receiver's `C`/NAK, or the sender's first block).
    Start,
    /// The answer to block 0, which a device gives only after erasing its flash.
    HeaderAck,
    /// The receiver's `C` that starts the data blocks or the next file.
    Request,
    /// The answer to a data block.
    BlockAck,
    /// The answer to an EOT.
    EotAck,
    /// The next block (receiver).
    Block,
    /// The rest of a block already started (receiver).
    InBlock,
    /// Silence on a damaged line before the receiver NAKs (receiver).
    Purge,
    /// Nothing: the transfer is over.
    Nothing,
}

/// Where a transfer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Still going.
    Running,
    /// Finished; everything was acknowledged.
    Done,
    /// Failed; the other side has been sent CANs where that helps.
    Failed(YmodemError),
}

/// Tracks consecutive CANs across reads.
#[derive(Debug, Default)]
struct CanDetector(u8);

impl CanDetector {
    /// Returns true on the second CAN in a row.
    fn feed(&mut self, b: u8) -> bool {
        if b == CAN {
            self.0 += 1;
            self.0 >= 2
        } else {
            self.0 = 0;
            false
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxState {
    AwaitStart,
    AwaitHeaderAck,
    AwaitDataRequest,
    AwaitBlockAck,
    AwaitEotAck,
    AwaitBatchRequest,
    AwaitEndAck,
    Finished,
}

/// The sending side of one file.
#[derive(Debug)]
pub struct Sender {
    protocol: Protocol,
    check: Check,
    name: String,
    data: Vec<u8>,
    state: TxState,
    status: Status,
    /// Bytes of the file acknowledged by the receiver.
    acked: usize,
    /// Block number of the block in flight (mod 256).
    number: u8,
    /// The block in flight, as sent.
    block: Vec<u8>,
    /// File bytes the block in flight carries.
    block_len: usize,
    tries: u32,
    last_problem: String,
    out: Vec<u8>,
    cans: CanDetector,
}

impl Sender {
    /// A sender of `data` under `name`, speaking `protocol` (block 0 only for YMODEM).
    pub fn new(name: &str, data: Vec<u8>, protocol: Protocol) -> Result<Sender, YmodemError> {
        let bad = |reason| YmodemError::BadName {
            name: name.to_owned(),
            reason,
        };
        if protocol == Protocol::Ymodem {
            if name.is_empty() {
                return Err(bad("it is empty, and an empty name ends a batch"));
            }
            if name.bytes().any(|b| b == 0 || b == b' ') {
                return Err(bad("it contains a NUL or a space"));
            }
            if name.len() + 22 > 1024 {
                return Err(bad("it does not fit in block 0 (at most 1000 bytes)"));
            }
        }
        Ok(Sender {
            protocol,
            check: Check::Crc16,
            name: name.to_owned(),
            data,
            state: TxState::AwaitStart,
            status: Status::Running,
            acked: 0,
            number: 0,
            block: Vec::new(),
            block_len: 0,
            tries: 0,
            last_problem: "no answer".into(),
            out: Vec::new(),
            cans: CanDetector::default(),
        })
    }

    /// The protocol and check in use (they change if the receiver asks for the fallback).
    pub fn mode(&self) -> (Protocol, Check) {
        (self.protocol, self.check)
    }

    /// Bytes of the file the receiver has acknowledged.
    pub fn acked(&self) -> u64 {
        self.acked as u64
    }

    /// Size of the file.
    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Where the transfer stands.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// What the sender waits for.
    pub fn waiting_for(&self) -> Wait {
        match self.state {
            TxState::AwaitStart => Wait::Start,
            TxState::AwaitHeaderAck => Wait::HeaderAck,
            TxState::AwaitDataRequest | TxState::AwaitBatchRequest => Wait::Request,
            TxState::AwaitBlockAck | TxState::AwaitEndAck => Wait::BlockAck,
            TxState::AwaitEotAck => Wait::EotAck,
            TxState::Finished => Wait::Nothing,
        }
    }

    /// Bytes of the block (or EOT) in flight, for the caller's timeout arithmetic.
    pub fn in_flight(&self) -> usize {
        self.block.len()
    }

    /// Bytes to write now, if any.
    pub fn transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// Aborts: the receiver is sent CANs.
    pub fn cancel(&mut self) {
        if self.status == Status::Running {
            self.fail(YmodemError::Cancelled, true);
        }
    }

    /// Feeds bytes from the receiver. Bytes after the one that made the sender transmit are
    /// discarded: they were sent before the new block and cannot answer it.
    pub fn receive(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.status != Status::Running {
                return;
            }
            if self.cans.feed(b) {
                let step = self.step();
                self.fail(YmodemError::CancelledByPeer { step }, false);
                return;
            }
            if self.on_byte(b) {
                return;
            }
        }
    }

    /// The caller's wait ran out.
    pub fn timeout(&mut self) {
        if self.status != Status::Running {
            return;
        }
        self.last_problem = "no answer in time".into();
        match self.state {
            TxState::AwaitHeaderAck
            | TxState::AwaitBlockAck
            | TxState::AwaitEotAck
            | TxState::AwaitEndAck => self.retry(),
            TxState::AwaitStart | TxState::AwaitDataRequest | TxState::AwaitBatchRequest => {
                // Nothing to repeat: the receiver drives these steps.
                self.tries += 1;
                if self.tries >= self.limit() {
                    self.give_up();
                }
            }
            TxState::Finished => {}
        }
    }

    /// Handles one byte; returns true if it made the sender transmit.
    fn on_byte(&mut self, b: u8) -> bool {
        match (self.state, b) {
            (TxState::AwaitStart, CRC_REQUEST | NAK) => {
                if b == NAK {
                    // A checksum receiver is a classic XMODEM receiver: no block 0, and no CRC
                    // unless asked for.
                    self.check = Check::Checksum;
                    self.protocol = Protocol::Xmodem;
                }
                match self.protocol {
                    Protocol::Ymodem => {
                        let data = header_data(&self.name, self.data.len() as u64);
                        self.send_block(0, &data, 0, TxState::AwaitHeaderAck);
                    }
                    Protocol::Xmodem => self.next_data_block(),
                }
                true
            }
            (TxState::AwaitHeaderAck, ACK) => {
                self.state = TxState::AwaitDataRequest;
                self.tries = 0;
                false
            }
            // lrzsz's rb answers a damaged block 0 with another `C`.
            (TxState::AwaitHeaderAck, NAK | CRC_REQUEST) => self.nak(b),
            (TxState::AwaitDataRequest, CRC_REQUEST | NAK) => {
                self.check = if b == NAK {
                    Check::Checksum
                } else {
                    Check::Crc16
                };
                self.next_data_block();
                true
            }
            (TxState::AwaitBlockAck, ACK) => {
                self.acked += self.block_len;
                self.next_data_block();
                true
            }
            (TxState::AwaitBlockAck, NAK) => self.nak(b),
            // Before any data is acknowledged, lrzsz asks for the first block again with `C`;
            // later a `C` is a stale request and is ignored.
            (TxState::AwaitBlockAck, CRC_REQUEST) if self.acked == 0 => self.nak(b),
            (TxState::AwaitEotAck, ACK) => {
                self.tries = 0;
                match self.protocol {
                    Protocol::Ymodem => self.state = TxState::AwaitBatchRequest,
                    Protocol::Xmodem => self.finish(),
                }
                false
            }
            // The first EOT is NAKed by lrzsz on purpose: repeat it at once.
            (TxState::AwaitEotAck, NAK) => self.nak(b),
            (TxState::AwaitBatchRequest, CRC_REQUEST | NAK) => {
                self.send_block(0, &[0; 128], 0, TxState::AwaitEndAck);
                true
            }
            (TxState::AwaitEndAck, ACK) => {
                self.finish();
                false
            }
            (TxState::AwaitEndAck, NAK | CRC_REQUEST) => self.nak(b),
            (_, other) => {
                if other != CAN {
                    self.last_problem = format!("unexpected byte 0x{other:02x}");
                }
                false
            }
        }
    }

    fn nak(&mut self, b: u8) -> bool {
        self.last_problem = if b == NAK { "NAK".into() } else { "C".into() };
        self.retry();
        true
    }

    /// Sends the next data block, or the EOT after the last one.
    fn next_data_block(&mut self) {
        self.tries = 0;
        if self.acked >= self.data.len() {
            self.block = vec![EOT];
            self.block_len = 0;
            self.state = TxState::AwaitEotAck;
            self.out.extend_from_slice(&self.block);
            return;
        }
        let rest = self.data.len() - self.acked;
        // 1 KiB blocks, but a short tail goes in a 128-byte block to save line time.
        let len = if rest <= 128 { rest } else { rest.min(1024) };
        let number = self.number.wrapping_add(1);
        let chunk = self.data[self.acked..self.acked + len].to_vec();
        self.send_block(number, &chunk, len, TxState::AwaitBlockAck);
    }

    fn send_block(&mut self, number: u8, data: &[u8], file_bytes: usize, state: TxState) {
        self.number = number;
        self.block = encode_block(number, data, self.check);
        self.block_len = file_bytes;
        self.state = state;
        self.out.extend_from_slice(&self.block);
    }

    /// How many failures of the current step end the transfer. Once the EOT is acknowledged
    /// the file is delivered, and the end of the batch is a formality that some receivers
    /// (ST's, or one whose last ACK was lost) never complete: give it a few tries only.
    fn limit(&self) -> u32 {
        match self.state {
            TxState::AwaitBatchRequest | TxState::AwaitEndAck => 3,
            _ => MAX_RETRIES,
        }
    }

    fn retry(&mut self) {
        self.tries += 1;
        if self.tries >= self.limit() {
            self.give_up();
            return;
        }
        self.out.extend_from_slice(&self.block);
    }

    fn step(&self) -> String {
        match self.state {
            TxState::AwaitStart => "waiting for the receiver to start".into(),
            TxState::AwaitHeaderAck => "sending block 0 (file name and size)".into(),
            TxState::AwaitDataRequest => "waiting for the receiver to ask for data".into(),
            TxState::AwaitBlockAck => format!(
                "sending the block at byte {} of {}",
                self.acked,
                self.data.len()
            ),
            TxState::AwaitEotAck => "ending the file (EOT)".into(),
            TxState::AwaitBatchRequest | TxState::AwaitEndAck => "ending the batch".into(),
            TxState::Finished => "finished".into(),
        }
    }

    fn give_up(&mut self) {
        if matches!(
            self.state,
            TxState::AwaitBatchRequest | TxState::AwaitEndAck
        ) {
            self.finish();
            return;
        }
        let err = YmodemError::TooManyRetries {
            step: self.step(),
            tries: self.tries,
            last: self.last_problem.clone(),
        };
        self.fail(err, true);
    }

    fn fail(&mut self, err: YmodemError, tell_peer: bool) {
        self.out.clear();
        if tell_peer {
            self.out.extend_from_slice(&[CAN; CANCEL_LEN]);
        }
        self.state = TxState::Finished;
        self.status = Status::Failed(err);
    }

    fn finish(&mut self) {
        self.state = TxState::Finished;
        self.status = Status::Done;
    }
}

/// What a receiver reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RxEvent {
    /// A file begins: YMODEM block 0, or (XMODEM) the first data block.
    FileStart {
        /// Name and size from block 0; `None` for an XMODEM sender.
        header: Option<FileHeader>,
    },
    /// The data of a new block, padding dropped when the size is known.
    Data {
        /// Block index from 1, not wrapped.
        block: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A block already received came again and was not kept.
    Duplicate {
        /// Block index from 1 (0 for a repeated block 0), not wrapped.
        block: u64,
    },
    /// The file is complete.
    FileEnd {
        /// Bytes received.
        received: u64,
    },
}

/// How a receiver is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// What to ask the sender for: `C` (CRC-16) or NAK (8-bit checksum).
    pub check: Check,
    /// The largest file taken.
    pub max_size: u64,
    /// Consecutive timeouts or bad blocks before giving up.
    pub max_retries: u32,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            check: Check::Crc16,
            max_size: u64::MAX,
            max_retries: MAX_RETRIES,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for block 0 (or block 1 from an XMODEM sender).
    Header,
    /// Receiving a file; `next` is the index of the next block.
    Data {
        next: u64,
    },
    Finished,
}

/// The receiving side: one batch of files (YMODEM) or one file (XMODEM).
#[derive(Debug)]
pub struct Receiver {
    config: ReceiverConfig,
    phase: Phase,
    status: Status,
    /// The block being assembled.
    buf: Vec<u8>,
    /// Discarding until the line is quiet.
    purging: bool,
    /// The first EOT of a file was NAKed; the next one is believed.
    eot_seen: bool,
    /// Name and size of the current file (None for XMODEM).
    header: Option<FileHeader>,
    /// Protocol of the current file.
    protocol: Protocol,
    received: u64,
    /// Whether any block of this session has arrived (the first word differs).
    started: bool,
    /// A file just ended: a repeated EOT is acknowledged again.
    file_done: bool,
    tries: u32,
    out: Vec<u8>,
    events: std::collections::VecDeque<RxEvent>,
    cans: CanDetector,
}

impl Receiver {
    /// A receiver; its first request (`C` or NAK) is ready in [`Receiver::transmit`].
    pub fn new(config: ReceiverConfig) -> Receiver {
        let mut r = Receiver {
            config,
            phase: Phase::Header,
            status: Status::Running,
            buf: Vec::with_capacity(1029),
            purging: false,
            eot_seen: false,
            header: None,
            protocol: Protocol::Ymodem,
            received: 0,
            started: false,
            file_done: false,
            tries: 0,
            out: Vec::new(),
            events: Default::default(),
            cans: CanDetector::default(),
        };
        r.out.push(r.request());
        r
    }

    /// Where the transfer stands.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// What the receiver waits for.
    pub fn waiting_for(&self) -> Wait {
        if self.status != Status::Running {
            Wait::Nothing
        } else if self.purging {
            Wait::Purge
        } else if !self.buf.is_empty() {
            Wait::InBlock
        } else if !self.started {
            Wait::Start
        } else {
            Wait::Block
        }
    }

    /// Bytes to write now, if any.
    pub fn transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<RxEvent> {
        self.events.pop_front()
    }

    /// Aborts: the sender is sent CANs.
    pub fn cancel(&mut self) {
        if self.status == Status::Running {
            self.fail(YmodemError::Cancelled);
        }
    }

    /// Feeds bytes from the sender.
    pub fn receive(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.status != Status::Running {
                return;
            }
            if self.purging {
                continue;
            }
            if self.buf.is_empty() {
                if self.cans.feed(b) {
                    self.status =
                        Status::Failed(YmodemError::CancelledByPeer { step: self.step() });
                    self.phase = Phase::Finished;
                    return;
                }
                match b {
                    SOH | STX => self.buf.push(b),
                    EOT => self.on_eot(),
                    CAN => {}
                    _ => self.purging = true,
                }
                continue;
            }
            self.buf.push(b);
            if self.buf.len() == self.block_len() {
                let block = std::mem::take(&mut self.buf);
                self.on_block(&block);
                self.buf = block;
                self.buf.clear();
            }
        }
    }

    /// The caller's wait ran out: re-ask, or NAK a damaged block once the line is quiet.
    pub fn timeout(&mut self) {
        if self.status != Status::Running {
            return;
        }
        self.buf.clear();
        self.purging = false;
        self.tries += 1;
        if self.tries >= self.config.max_retries {
            let err = YmodemError::TooManyRetries {
                step: self.step(),
                tries: self.tries,
                last: "no good block in time".into(),
            };
            self.fail(err);
            return;
        }
        let b = if self.eot_seen { NAK } else { self.request() };
        self.out.push(b);
    }

    fn block_len(&self) -> usize {
        let data = if self.buf[0] == STX { 1024 } else { 128 };
        3 + data + self.config.check.len()
    }

    /// The byte that asks for a block: `C`/NAK to start a file, NAK afterwards.
    fn request(&self) -> u8 {
        match self.phase {
            Phase::Data { next } if next > 1 => NAK,
            _ => match self.config.check {
                Check::Crc16 => CRC_REQUEST,
                Check::Checksum => NAK,
            },
        }
    }

    fn step(&self) -> String {
        match self.phase {
            Phase::Header => "waiting for a file".into(),
            Phase::Data { next } => format!("receiving block {next}"),
            Phase::Finished => "finished".into(),
        }
    }

    fn bad_block(&mut self) {
        // The spec: wait for the line to clear, then NAK (see `timeout`).
        self.purging = true;
    }

    fn on_eot(&mut self) {
        let Phase::Data { .. } = self.phase else {
            if self.file_done {
                // Our ACK of the file's last EOT was lost: acknowledge it again.
                self.out.push(ACK);
                self.out.push(self.request());
            } else {
                // An EOT before any file: a line hit, or the tail of an earlier transfer.
                self.out.push(NAK);
            }
            return;
        };
        if !self.eot_seen {
            self.eot_seen = true;
            self.out.push(NAK);
            return;
        }
        self.eot_seen = false;
        self.tries = 0;
        if let Some(declared) = self.header.as_ref().and_then(|h| h.size)
            && self.received < declared
        {
            self.fail(YmodemError::ShortFile {
                received: self.received,
                declared,
            });
            return;
        }
        self.out.push(ACK);
        self.file_done = true;
        self.events.push_back(RxEvent::FileEnd {
            received: self.received,
        });
        match self.protocol {
            Protocol::Ymodem => {
                self.phase = Phase::Header;
                self.out.push(self.request());
            }
            Protocol::Xmodem => {
                self.phase = Phase::Finished;
                self.status = Status::Done;
            }
        }
    }

    fn on_block(&mut self, block: &[u8]) {
        let check = self.config.check;
        let data_end = block.len() - check.len();
        let (number, complement) = (block[1], block[2]);
        let data = &block[3..data_end];
        if number != !complement || check.compute(data) != block[data_end..] {
            self.bad_block();
            return;
        }
        self.started = true;
        self.file_done = false;
        // A block after a NAKed EOT means the EOT was a line hit.
        self.eot_seen = false;
        match self.phase {
            Phase::Header if number == 0 => self.on_header(data),
            Phase::Header if number == 1 && self.header.is_none() && self.received == 0 => {
                // An XMODEM sender: the file starts without block 0.
                self.protocol = Protocol::Xmodem;
                self.events.push_back(RxEvent::FileStart { header: None });
                self.phase = Phase::Data { next: 1 };
                self.on_data(1, data);
            }
            Phase::Header => self.bad_block(),
            Phase::Data { next } => {
                let expected = next as u8;
                let previous = expected.wrapping_sub(1);
                if number == expected {
                    self.on_data(next, data);
                } else if number == previous {
                    self.tries = 0;
                    self.events
                        .push_back(RxEvent::Duplicate { block: next - 1 });
                    self.out.push(ACK);
                    if next == 1 && self.protocol == Protocol::Ymodem {
                        // Block 0 again: our ACK and `C` were lost; ask for data again.
                        self.out.push(self.request());
                    }
                } else {
                    self.fail(YmodemError::Sync {
                        found: number,
                        expected,
                        previous,
                    });
                }
            }
            Phase::Finished => {}
        }
    }

    fn on_header(&mut self, data: &[u8]) {
        self.tries = 0;
        match parse_header(data) {
            Err(e) => self.fail(e),
            Ok(None) => {
                // The empty name: the batch is over.
                self.out.push(ACK);
                self.phase = Phase::Finished;
                self.status = Status::Done;
            }
            Ok(Some(h)) => {
                if let Some(size) = h.size
                    && size > self.config.max_size
                {
                    self.fail(YmodemError::TooLarge {
                        size,
                        max: self.config.max_size,
                    });
                    return;
                }
                self.protocol = Protocol::Ymodem;
                self.received = 0;
                self.header = Some(h.clone());
                self.events
                    .push_back(RxEvent::FileStart { header: Some(h) });
                self.phase = Phase::Data { next: 1 };
                self.out.push(ACK);
                self.out.push(self.request());
            }
        }
    }

    fn on_data(&mut self, index: u64, data: &[u8]) {
        self.tries = 0;
        let keep = match self.header.as_ref().and_then(|h| h.size) {
            Some(size) => (size.saturating_sub(self.received)).min(data.len() as u64) as usize,
            None => data.len(),
        };
        if self.received + keep as u64 > self.config.max_size {
            self.fail(YmodemError::TooLarge {
                size: self.received + keep as u64,
                max: self.config.max_size,
            });
            return;
        }
        self.received += keep as u64;
        self.events.push_back(RxEvent::Data {
            block: index,
            bytes: data[..keep].to_vec(),
        });
        self.phase = Phase::Data { next: index + 1 };
        self.out.push(ACK);
    }

    fn fail(&mut self, err: YmodemError) {
        self.out.clear();
        self.out.extend_from_slice(&[CAN; CANCEL_LEN]);
        self.phase = Phase::Finished;
        self.status = Status::Failed(err);
    }
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Wait::Start => "the start of the transfer",
            Wait::HeaderAck => "the answer to block 0",
            Wait::Request => "the receiver's request",
            Wait::BlockAck => "the answer to a block",
            Wait::EotAck => "the answer to EOT",
            Wait::Block => "the next block",
            Wait::InBlock => "the rest of a block",
            Wait::Purge => "the line to clear",
            Wait::Nothing => "nothing",
        })
    }
}

#[cfg(test)]
mod tests;
