//! Update progress, sent to the web view over a `tauri::ipc::Channel`.
//!
//! `core` reports stages and acknowledged bytes through its `Progress` trait; this forwards
//! them as [`ProgressEvent`]s. Byte reports are thinned to one every 50 ms (and always the
//! last one), so a fast line does not flood the web view. Rate and time left are computed by
//! the UI from these events and their arrival times.

use std::time::{Duration, Instant};

use fieldkit_core::apply::{Progress, Stage};
use serde::Serialize;
use tauri::ipc::Channel;

/// One progress message.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ProgressEvent {
    /// A new stage began.
    Stage {
        /// The stage, machine-readable.
        stage: Stage,
        /// The stage in words.
        label: &'static str,
        /// What is being done.
        message: String,
        /// Whether cancelling now still leaves the previous firmware in charge (decided in
        /// core).
        cancel_safe: bool,
    },
    /// Bytes of a component acknowledged by the device.
    Bytes {
        /// The component.
        component: String,
        /// Bytes the device holds.
        done: u64,
        /// Bytes to send.
        total: u64,
    },
}

/// A `Progress` that sends to a channel.
pub(crate) struct ChannelProgress {
    channel: Channel<ProgressEvent>,
    last_bytes: Option<Instant>,
}

impl ChannelProgress {
    pub(crate) fn new(channel: Channel<ProgressEvent>) -> Self {
        ChannelProgress {
            channel,
            last_bytes: None,
        }
    }

    fn send(&self, event: ProgressEvent) {
        // The window may have gone: the update goes on and is logged either way.
        let _ = self.channel.send(event);
    }
}

impl Progress for ChannelProgress {
    fn stage(&mut self, stage: Stage, message: &str) {
        self.send(ProgressEvent::Stage {
            stage,
            label: stage.label(),
            message: message.to_owned(),
            cancel_safe: stage.cancel_safe(),
        });
    }

    fn bytes(&mut self, component: &str, done: u64, total: u64) {
        let due = self
            .last_bytes
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(50));
        if due || done >= total {
            self.last_bytes = Some(Instant::now());
            self.send(ProgressEvent::Bytes {
                component: component.to_owned(),
                done,
                total,
            });
        }
    }
}
