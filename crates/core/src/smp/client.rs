//! The client side of MCUmgr SMP over a [`Link`]: requests with sequence numbers and
//! timeouts, replies matched to their requests, damage and silence reported in words that fit
//! the evidence (a device that has answered on this link is not "unpowered").

use std::time::Duration;

use fieldkit_link::Link;
use fieldkit_wire::framing::{self, Decoder, FrameError, Framing};
use fieldkit_wire::smp::{Header, Op, Packet, SmpError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// The largest reply accepted before the device has said what its buffers are. Bounded so a
/// hostile length field cannot make the client allocate without limit.
pub const MAX_REPLY: usize = 16 * 1024;

/// Attempts of a read before its timeout is reported.
pub const READ_ATTEMPTS: u32 = 2;

/// Why a request did not get a good answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Nothing usable came back in time.
    #[error("{what}: no reply within {} ms{}", .after.as_millis(), hint(.last_problem, *.answered_before))]
    Timeout {
        /// The request.
        what: String,
        /// How long we waited.
        after: Duration,
        /// The last thing that went wrong on the line while we waited, if anything did.
        last_problem: Option<String>,
        /// Whether the device had answered an earlier request on this link: then it is
        /// powered and on this port, and silence means something else.
        answered_before: bool,
    },
    /// The port closed (cable pulled, device reset its USB).
    #[error("{what}: the device disconnected{}: check the cable, then try again", if *.mid_reply { " in the middle of its reply" } else { "" })]
    Disconnected {
        /// The request.
        what: String,
        /// Whether part of a reply had arrived.
        mid_reply: bool,
    },
    /// Reading or writing the port failed.
    #[error("{what}: port error: {source}")]
    Io {
        /// The request.
        what: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The device answered with an error code, or a body we cannot read.
    #[error("{what}: {source}")]
    Device {
        /// The request.
        what: String,
        /// The device's error.
        #[source]
        source: SmpError,
    },
}

fn hint(last: &Option<String>, answered_before: bool) -> String {
    match (last, answered_before) {
        (Some(p), _) => format!(" (last problem on the line: {p})"),
        (None, true) => ": the device answered earlier on this port, so it is powered and connected; it may be restarting, busy, or ignoring a request it cannot take".into(),
        (None, false) => ": is the device powered, in service mode, and on this port?".into(),
    }
}

impl SessionError {
    /// A short machine-readable kind, for JSON output and the UI's `{kind, message}`.
    pub fn kind(&self) -> &'static str {
        match self {
            SessionError::Timeout { .. } => "timeout",
            SessionError::Disconnected { .. } => "disconnected",
            SessionError::Io { .. } => "io",
            SessionError::Device { .. } => "device",
        }
    }
}

/// An SMP client over a link.
pub struct SmpClient<L> {
    link: L,
    framing: Framing,
    decoder: Decoder,
    seq: u8,
    buf: Vec<u8>,
    /// Whether any SMP reply has come back on this link: the evidence that the device is
    /// powered and on this port.
    answered: bool,
}

impl<L: Link> SmpClient<L> {
    /// A client speaking `framing` over `link`.
    pub fn new(link: L, framing: Framing) -> SmpClient<L> {
        SmpClient {
            link,
            framing,
            decoder: Decoder::new(framing, MAX_REPLY),
            seq: 0,
            buf: vec![0; 4096],
            answered: false,
        }
    }

    /// Whether the device has answered anything on this link.
    pub fn has_answered(&self) -> bool {
        self.answered
    }

    /// The framing in use.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Gives the link back.
    pub fn into_inner(self) -> L {
        self.link
    }

    /// Sends one request and waits for its reply, decoded as `Rsp`.
    pub async fn request<Req: Serialize, Rsp: DeserializeOwned>(
        &mut self,
        what: &str,
        op: Op,
        group: u16,
        id: u8,
        body: &Req,
        timeout: Duration,
    ) -> Result<Rsp, SessionError> {
        let packet = self.send(what, op, group, id, body).await?;
        let reply = self.receive(what, &packet.header, timeout).await?;
        reply.body_as().map_err(|source| SessionError::Device {
            what: what.into(),
            source,
        })
    }

    /// A read request, sent again when its reply does not come: reads change nothing on the
    /// device, so a lost or damaged reply costs one more round trip rather than the visit.
    pub async fn read<Req: Serialize, Rsp: DeserializeOwned>(
        &mut self,
        what: &str,
        group: u16,
        id: u8,
        body: &Req,
        timeout: Duration,
    ) -> Result<Rsp, SessionError> {
        let mut attempt = 1;
        loop {
            match self.request(what, Op::Read, group, id, body, timeout).await {
                Err(SessionError::Timeout { .. }) if attempt < READ_ATTEMPTS => {
                    attempt += 1;
                    self.decoder.clear();
                }
                other => return other,
            }
        }
    }

    /// Encodes and writes a request; returns it so its reply can be matched.
    pub async fn send<Req: Serialize>(
        &mut self,
        what: &str,
        op: Op,
        group: u16,
        id: u8,
        body: &Req,
    ) -> Result<Packet, SessionError> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let packet = Packet::request(op, group, id, seq, body);
        let bytes = framing::encode(self.framing, &packet.encode());
        let io = |source| SessionError::Io {
            what: what.into(),
            source,
        };
        self.link.write_all(&bytes).await.map_err(io)?;
        self.link.flush().await.map_err(io)?;
        Ok(packet)
    }

    /// Waits for the reply to `request`: same group, id and sequence number. Replies to
    /// earlier requests (late answers after a timeout) are skipped; damaged frames and log text
    /// are skipped and remembered for the error message.
    pub async fn receive(
        &mut self,
        what: &str,
        request: &Header,
        timeout: Duration,
    ) -> Result<Packet, SessionError> {
        self.receive_any(what, std::slice::from_ref(request), timeout)
            .await
    }

    /// Waits for the reply to any of `requests` (several may be in flight when uploading).
    pub async fn receive_any(
        &mut self,
        what: &str,
        requests: &[Header],
        timeout: Duration,
    ) -> Result<Packet, SessionError> {
        let deadline = Instant::now() + timeout;
        let mut last_problem = None;
        loop {
            while let Some(frame) = self.decoder.next() {
                match frame
                    .map_err(frame_problem)
                    .and_then(|b| Packet::decode(&b).map_err(|e| format!("malformed packet: {e}")))
                {
                    Ok(p) if requests.iter().any(|r| matches(r, &p.header)) => {
                        self.answered = true;
                        return Ok(p);
                    }
                    Ok(p) => {
                        self.answered = true;
                        let want = requests
                            .first()
                            .map_or((0, 0, 0), |r| (r.seq, r.group, r.id));
                        last_problem = Some(format!(
                            "a reply with sequence number {} (group {}, command {}), required {} (group {}, command {})",
                            p.header.seq, p.header.group, p.header.id, want.0, want.1, want.2
                        ))
                    }
                    Err(problem) => last_problem = Some(problem),
                }
            }
            let read = tokio::time::timeout_at(deadline, self.link.read(&mut self.buf)).await;
            match read {
                Err(_) => {
                    if let Some(e) = self.decoder.finish() {
                        last_problem = Some(frame_problem(e));
                    }
                    return Err(SessionError::Timeout {
                        what: what.into(),
                        after: timeout,
                        last_problem,
                        answered_before: self.answered,
                    });
                }
                Ok(Ok(0)) => {
                    return Err(SessionError::Disconnected {
                        what: what.into(),
                        mid_reply: self.decoder.pending(),
                    });
                }
                Ok(Ok(n)) => self.decoder.push(&self.buf[..n]),
                Ok(Err(e)) if is_disconnect(&e) => {
                    return Err(SessionError::Disconnected {
                        what: what.into(),
                        mid_reply: self.decoder.pending(),
                    });
                }
                Ok(Err(source)) => {
                    return Err(SessionError::Io {
                        what: what.into(),
                        source,
                    });
                }
            }
        }
    }

    /// Sets the largest reply accepted, once the device has said what its buffers are.
    pub fn set_max_reply(&mut self, max: usize) {
        self.decoder = Decoder::new(self.framing, max.max(MAX_REPLY));
    }

    /// Drops anything half-received, e.g. after a timeout.
    pub fn reset_decoder(&mut self) {
        self.decoder.clear();
    }
}

fn matches(request: &Header, reply: &Header) -> bool {
    reply.op == request.op.response()
        && reply.seq == request.seq
        && reply.group == request.group
        && reply.id == request.id
}

fn frame_problem(e: FrameError) -> String {
    format!("damaged frame: {e}")
}

/// A pseudo-terminal whose other side went away reports EIO; a USB adapter that vanished
/// reports one of these too.
fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected | UnexpectedEof)
        || e.raw_os_error() == Some(5) // EIO
        || e.raw_os_error() == Some(19) // ENODEV
}
