//! The adaptive upload window, sans-IO: how many chunks to keep in flight, how large the next
//! may be, and how long to wait for a reply. The upload loop tells it what happened (a reply,
//! a silence, a device asking for another offset); it answers with the next limits.
//!
//! The rules, and why:
//! - It starts with every buffer the device advertised in flight and chunks as large as the
//!   device's buffer allows (`buf_size` counts the decoded frame, see
//!   [`fieldkit_wire::framing::Framing::max_packet`]): on a clean line that keeps the line
//!   busy, which is what bounds the transfer.
//! - A chunk that got no reply is resent smaller: its packet budget halves (down to a floor)
//!   and one chunk at a time is in flight. A chunk the device dropped for its size, or one a
//!   noisy line keeps damaging, then gets through.
//! - A device asking for another offset lost a chunk; after a few of those in a row, one at a
//!   time.
//! - After [`GROW_AFTER`] good replies in a row the chunks grow back, then the window.
//! - The wait for a reply is learnt from the replies, as TCP does (four times the slowest
//!   recent round trip, within [`MIN_WAIT`] and the profile's response time), so a lost chunk
//!   costs a few round trips rather than the worst case.
//!
//! [`chunk_len`] keeps chunks whole multiples of the device's flash write alignment, so that a
//! device that writes (and acknowledges) whole units only, as MCUboot's serial recovery does,
//! acknowledges every byte sent.

use std::time::Duration;

/// Good replies in a row before the chunks (then the window) grow back.
pub const GROW_AFTER: u32 = 8;

/// The shortest wait for an upload reply, whatever the round trips measured.
pub const MIN_WAIT: Duration = Duration::from_millis(250);

/// The smallest packet budget the chunks shrink to, bytes (header and CBOR included).
pub const FLOOR: usize = 128;

/// Offset requests in a row after which one chunk at a time is sent.
const RESYNCS_BEFORE_SINGLE: u32 = 3;

/// The upload window's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    max_packet: usize,
    buffers: usize,
    response: Duration,
    in_flight: usize,
    budget: usize,
    good: u32,
    resyncs: u32,
    slowest: Duration,
}

impl Window {
    /// A window for a device that takes packets of up to `max_packet` bytes into `buffers`
    /// buffers, waiting at most `response` for a reply.
    pub fn new(max_packet: usize, buffers: usize, response: Duration) -> Window {
        Window {
            max_packet,
            buffers: buffers.max(1),
            response,
            in_flight: buffers.max(1),
            budget: max_packet,
            good: 0,
            resyncs: 0,
            slowest: Duration::ZERO,
        }
    }

    /// How many chunks may be in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// How many bytes of packet (header and CBOR) the next chunk may take.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// How long to wait for the next reply.
    pub fn wait(&self) -> Duration {
        if self.slowest.is_zero() {
            self.response
        } else {
            (self.slowest * 4).clamp(MIN_WAIT.min(self.response), self.response)
        }
    }

    /// A reply came back for a chunk sent `rtt` ago, acknowledging it whole.
    pub fn acked(&mut self, rtt: Duration) {
        self.slowest = rtt.max(self.slowest * 7 / 8);
        self.resyncs = 0;
        self.good += 1;
        if self.good >= GROW_AFTER {
            self.good = 0;
            if self.budget < self.max_packet {
                self.budget = (self.budget * 2).min(self.max_packet);
            } else if self.in_flight < self.buffers {
                self.in_flight += 1;
            }
        }
    }

    /// No reply came in time: the chunks in flight are resent, smaller, one at a time.
    pub fn lost(&mut self) {
        self.in_flight = 1;
        self.budget = (self.budget / 2).max(FLOOR.min(self.max_packet));
        self.good = 0;
    }

    /// The device asked for another offset than the one sent: a chunk was lost or damaged.
    pub fn resynced(&mut self) {
        self.good = 0;
        self.resyncs += 1;
        if self.resyncs >= RESYNCS_BEFORE_SINGLE {
            self.in_flight = 1;
        }
    }
}

/// The data length of the next chunk, given `room` (the data bytes that fit the packet
/// budget) and `remaining` (bytes of the image not yet sent): all of the rest if it fits,
/// else as much as fits in whole units of `alignment`.
pub fn chunk_len(room: usize, remaining: usize, alignment: usize) -> usize {
    if remaining <= room {
        remaining
    } else {
        room - room % alignment.max(1)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Window, chunk_len};

    /// Runs `events` (`a` ack after 10 ms, `l` lost, `r` resynced) on a window for packets of
    /// 1020 bytes and 4 buffers, and renders the limits after each.
    fn run(events: &str) -> Vec<String> {
        let mut w = Window::new(1020, 4, Duration::from_secs(3));
        events
            .chars()
            .map(|e| {
                match e {
                    'a' => w.acked(Duration::from_millis(10)),
                    'l' => w.lost(),
                    'r' => w.resynced(),
                    _ => unreachable!("unknown event {e}"),
                }
                format!(
                    "{e}:{}x{}/{}ms",
                    w.in_flight(),
                    w.budget(),
                    w.wait().as_millis()
                )
            })
            .collect()
    }

    #[track_caller]
    fn check(events: &str, expect: &[&str]) {
        assert_eq!(run(events), expect, "{events}");
    }

    #[test]
    fn a_clean_line_keeps_every_buffer_busy_with_full_chunks() {
        check("a", &["a:4x1020/250ms"]);
        check("aaaaaaaaa", &["a:4x1020/250ms"; 9]);
    }

    #[test]
    fn a_chunk_without_reply_is_resent_smaller_one_at_a_time() {
        check("l", &["l:1x510/3000ms"]);
        check("ll", &["l:1x510/3000ms", "l:1x255/3000ms"]);
        check(
            "llll",
            &[
                "l:1x510/3000ms",
                "l:1x255/3000ms",
                "l:1x128/3000ms",
                "l:1x128/3000ms",
            ],
        );
    }

    #[test]
    fn good_replies_grow_the_chunks_then_the_window_back() {
        let after = run(&format!("ll{}", "a".repeat(40)));
        // 255 -> 510 after 8 replies, -> 1020 after 16, then one more buffer per 8 replies.
        assert_eq!(after[2 + 7], "a:1x510/250ms");
        assert_eq!(after[2 + 15], "a:1x1020/250ms");
        assert_eq!(after[2 + 23], "a:2x1020/250ms");
        assert_eq!(after[2 + 39], "a:4x1020/250ms");
    }

    #[test]
    fn repeated_offset_requests_go_one_at_a_time() {
        check("rr", &["r:4x1020/3000ms", "r:4x1020/3000ms"]);
        check(
            "rrr",
            &["r:4x1020/3000ms", "r:4x1020/3000ms", "r:1x1020/3000ms"],
        );
        // A good reply in between starts the count again.
        check(
            "rrarr",
            &[
                "r:4x1020/3000ms",
                "r:4x1020/3000ms",
                "a:4x1020/250ms",
                "r:4x1020/250ms",
                "r:4x1020/250ms",
            ],
        );
    }

    #[test]
    fn the_wait_follows_the_slowest_recent_reply() {
        let mut w = Window::new(1020, 1, Duration::from_secs(3));
        assert_eq!(w.wait(), Duration::from_secs(3), "nothing measured yet");
        w.acked(Duration::from_millis(200));
        assert_eq!(w.wait(), Duration::from_millis(800));
        w.acked(Duration::from_millis(10));
        assert_eq!(
            w.wait(),
            Duration::from_millis(700),
            "the slowest decays by 1/8"
        );
        w.acked(Duration::from_secs(2));
        assert_eq!(
            w.wait(),
            Duration::from_secs(3),
            "never more than the response time"
        );
    }

    #[test]
    fn chunks_are_whole_alignment_units_but_the_last() {
        let cases = [
            // (room, remaining, alignment) -> length
            ((989, 5000, 4), 988),
            ((989, 5000, 8), 984),
            ((989, 5000, 1), 989),
            ((989, 600, 4), 600),
            ((989, 989, 4), 989),
            ((3, 5000, 4), 0),
        ];
        for ((room, remaining, align), want) in cases {
            assert_eq!(
                chunk_len(room, remaining, align),
                want,
                "{room} {remaining} {align}"
            );
        }
    }
}
