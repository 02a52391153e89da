//! Forwards the core's progress events to the UI over a Tauri Channel.

use std::sync::Mutex;

use migrator_core::progress::{ProgressEvent, Reporter};
use tauri::ipc::Channel;

/// A core [`Reporter`] that sends every event, in plain words
/// ([`ProgressEvent::in_plain_words`]), into a Channel, once a page gives one. The Channel can
/// be replaced while the run goes on: a reloaded page watches the run it did not start.
pub struct ChannelReporter {
    channel: Mutex<Option<Channel<ProgressEvent>>>,
}

impl ChannelReporter {
    pub fn new(channel: Channel<ProgressEvent>) -> Self {
        ChannelReporter {
            channel: Mutex::new(Some(channel)),
        }
    }

    /// A reporter with no page watching yet ([`ChannelReporter::retarget`] adds one).
    pub fn unwatched() -> Self {
        ChannelReporter {
            channel: Mutex::new(None),
        }
    }

    /// Sends the following events into `channel` instead.
    pub fn retarget(&self, channel: Channel<ProgressEvent>) {
        *self.channel.lock().unwrap_or_else(|p| p.into_inner()) = Some(channel);
    }
}

impl Reporter for ChannelReporter {
    fn report(&self, event: ProgressEvent) {
        let channel = self.channel.lock().unwrap_or_else(|p| p.into_inner());
        let Some(channel) = channel.as_ref() else {
            return;
        };
        // A closed window cannot receive more; the run goes on and the journal keeps the result.
        // The report's names and wording (one function in the core).
        if let Err(error) = channel.send(event.in_plain_words()) {
            tracing::debug!("progress event not delivered: {error}");
        }
    }
}
