//! Forwards the core's progress events to the UI over a Tauri Channel.

use migrator_core::progress::{ProgressEvent, Reporter};
use tauri::ipc::Channel;

/// A core [`Reporter`] that sends every event, unchanged, into a Channel.
pub struct ChannelReporter {
    channel: Channel<ProgressEvent>,
}

impl ChannelReporter {
    pub fn new(channel: Channel<ProgressEvent>) -> Self {
        ChannelReporter { channel }
    }
}

impl Reporter for ChannelReporter {
    fn report(&self, event: ProgressEvent) {
        // A closed window cannot receive more; the run goes on and the journal keeps the result.
        if let Err(error) = self.channel.send(event) {
            tracing::debug!("progress event not delivered: {error}");
        }
    }
}
