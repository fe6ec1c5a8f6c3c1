//! One pass of a pipelined image upload over an SMP client, steered by the [`Window`].
//!
//! Two devices take uploads differently, and the pass follows the one it talks to:
//! - Zephyr's img_mgmt (application mode): the first chunk carries `len` and `sha`; sent again
//!   with the same `sha`, it resumes where the device stands; the last reply carries `match`.
//! - MCUboot's serial recovery: the first chunk carries `len` only (MCUboot ignores `sha` and
//!   never answers `match`); offset 0 always starts over, erasing slot 0; the device writes
//!   and acknowledges whole units of its flash write alignment.
//!
//! Either way every chunk is a whole multiple of the write alignment (the last excepted), so
//! the device acknowledges all it was sent, and a device that answers with another offset
//! than the one expected is followed: it knows best what it holds.

use std::collections::VecDeque;
use std::time::Duration;

use fieldkit_link::Link;
use fieldkit_wire::smp::{Header, Op, image};
use serde_bytes::ByteBuf;
use tokio::time::Instant;

use super::client::{SessionError, SmpClient};
use super::window::{Window, chunk_len};
use crate::apply::ImageToInstall;
use crate::progress::{Cancel, Progress};

/// How the device takes an upload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// Zephyr img_mgmt: `sha` on the first chunk resumes a matching upload, and the last
    /// reply says whether the bytes match it. MCUboot's serial recovery: neither.
    pub(crate) resumable: bool,
    /// The flash write alignment, bytes.
    pub(crate) alignment: usize,
    /// How long the first chunk may take (the device erases first).
    pub(crate) first_chunk: Duration,
}

/// How a pass ended, when it did not fail.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Every byte is acknowledged; `matched` is the device's verdict on the whole image,
    /// when it gives one.
    Done {
        /// The last reply's `match`.
        matched: Option<bool>,
    },
    /// The technician cancelled between chunks.
    Cancelled,
}

/// A pass that failed, with the bytes the device had acknowledged.
pub(crate) struct Failed {
    pub(crate) acked: u64,
    pub(crate) error: SessionError,
}

/// Resyncs and silences in one pass before it gives up and lets the caller decide.
const MAX_SETBACKS: u32 = 16;

/// Sends `img` from the offset the device names (0 for a device that cannot resume).
pub(crate) async fn pass<L: Link>(
    client: &mut SmpClient<L>,
    img: &ImageToInstall,
    sha: &[u8],
    window: &mut Window,
    rules: Rules,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<Pass, Failed> {
    let total = img.bytes.len();
    let mut acked = 0usize;
    let fail = |acked: usize| {
        move |error: SessionError| Failed {
            acked: acked as u64,
            error,
        }
    };

    // The first chunk starts (or, on a resumable device, resumes) the upload.
    let first = chunk_at(img, sha, 0, window, rules);
    let reply = match client
        .request::<_, image::UploadRsp>(
            "upload",
            Op::Write,
            image::GROUP,
            image::UPLOAD,
            &first,
            rules.first_chunk,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            if matches!(e, SessionError::Timeout { .. }) {
                window.lost();
            }
            return Err(fail(0)(e));
        }
    };
    acked = acked.max((reply.off as usize).min(total));
    progress.bytes(&img.component, acked as u64, total as u64);
    if acked == total {
        return Ok(Pass::Done {
            matched: reply.matched,
        });
    }

    let mut next = acked;
    let mut inflight: VecDeque<(Header, usize, Instant)> = VecDeque::new();
    let mut setbacks = 0;
    while acked < total {
        if cancel.is_cancelled() {
            return Ok(Pass::Cancelled);
        }
        while inflight.len() < window.in_flight() && next < total {
            let req = chunk_at(img, sha, next, window, rules);
            let len = req.data.len();
            if len == 0 {
                // Not even one alignment unit fits: nothing sensible to send.
                break;
            }
            let packet = client
                .send("upload", Op::Write, image::GROUP, image::UPLOAD, &req)
                .await
                .map_err(fail(acked))?;
            inflight.push_back((packet.header, next + len, Instant::now()));
            next += len;
        }
        let headers: Vec<Header> = inflight.iter().map(|(h, _, _)| *h).collect();
        let reply = match client.receive_any("upload", &headers, window.wait()).await {
            Ok(p) => p,
            Err(SessionError::Timeout { .. }) => {
                // A lost request or reply: resend from what is acknowledged, smaller.
                window.lost();
                inflight.clear();
                next = acked;
                client.reset_decoder();
                setbacks += 1;
                if setbacks > MAX_SETBACKS {
                    return Err(fail(acked)(SessionError::Timeout {
                        what: "upload".into(),
                        after: window.wait(),
                        last_problem: None,
                        answered_before: client.has_answered(),
                    }));
                }
                continue;
            }
            Err(e) => return Err(fail(acked)(e)),
        };
        let rsp: image::UploadRsp = reply.body_as().map_err(|source| {
            fail(acked)(SessionError::Device {
                what: "upload".into(),
                source,
            })
        })?;
        let Some(pos) = inflight
            .iter()
            .position(|(h, _, _)| h.seq == reply.header.seq)
        else {
            continue;
        };
        let (_, end, sent) = inflight.remove(pos).expect("found above");
        let device_off = (rsp.off as usize).min(total);
        if device_off == end {
            acked = acked.max(end);
            window.acked(sent.elapsed());
            setbacks = 0;
        } else {
            // The device holds another amount than this chunk's end (a chunk was lost or
            // damaged, or the device restarted and starts over): resend from where it says.
            acked = device_off;
            next = device_off;
            inflight.clear();
            window.resynced();
            setbacks += 1;
            if setbacks > MAX_SETBACKS {
                return Err(fail(acked)(SessionError::Timeout {
                    what: "upload".into(),
                    after: window.wait(),
                    last_problem: Some(format!("the device keeps asking for offset {device_off}")),
                    answered_before: true,
                }));
            }
        }
        progress.bytes(&img.component, acked as u64, total as u64);
        if acked == total {
            return Ok(Pass::Done {
                matched: rsp.matched,
            });
        }
    }
    Ok(Pass::Done { matched: None })
}

/// The chunk that starts at `off`: at offset 0 it carries the length (and, for a device that
/// resumes, the hash and image number).
fn chunk_at(
    img: &ImageToInstall,
    sha: &[u8],
    off: usize,
    window: &Window,
    rules: Rules,
) -> image::UploadReq {
    let total = img.bytes.len();
    let first = off == 0;
    let len = first.then_some(total as u32);
    let sha = (first && rules.resumable).then_some(sha);
    let image_no = (first && (rules.resumable || img.image != 0)).then_some(img.image);
    let room = image::max_upload_data(window.budget(), image_no, len, off as u32, sha);
    let n = chunk_len(room, total - off, rules.alignment);
    image::UploadReq {
        image: image_no,
        len,
        off: off as u32,
        sha: sha.map(|s| ByteBuf::from(s.to_vec())),
        data: ByteBuf::from(img.bytes[off..off + n].to_vec()),
        upgrade: None,
    }
}
