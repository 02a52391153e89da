//! Forwards the core's progress events to the UI over a Tauri Channel, and keeps the run's
//! snapshot (the core's [`SnapshotReporter`]) for `run_snapshot`.

use std::sync::{Arc, Mutex};

use migrator_core::progress::{ProgressEvent, Reporter, RunSnapshot, SnapshotReporter};
use tauri::ipc::Channel;

/// The Channel a page gave, if any; shared so the page can change while events flow.
type Watcher = Arc<Mutex<Option<Channel<ProgressEvent>>>>;

/// Sends each event, in plain words, into the watching page's Channel.
struct ChannelSink(Watcher);

impl Reporter for ChannelSink {
    fn report(&self, event: ProgressEvent) {
        let channel = self.0.lock().unwrap_or_else(|p| p.into_inner());
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

/// A core [`Reporter`] that applies every event to the run's [`RunSnapshot`] and sends it, in
/// plain words ([`ProgressEvent::in_plain_words`]), into a Channel once a page gives one. The
/// Channel can be replaced while the run goes on: a reloaded page watches the run it did not
/// start, or reads [`ChannelReporter::snapshot`].
pub struct ChannelReporter {
    channel: Watcher,
    snapshots: SnapshotReporter<ChannelSink>,
}

impl ChannelReporter {
    pub fn new(channel: Channel<ProgressEvent>) -> Self {
        let reporter = ChannelReporter::unwatched();
        reporter.retarget(channel);
        reporter
    }

    /// A reporter with no page watching yet ([`ChannelReporter::retarget`] adds one).
    pub fn unwatched() -> Self {
        let channel: Watcher = Arc::new(Mutex::new(None));
        ChannelReporter {
            snapshots: SnapshotReporter::new(ChannelSink(channel.clone())),
            channel,
        }
    }

    /// Sends the following events into `channel` instead.
    pub fn retarget(&self, channel: Channel<ProgressEvent>) {
        *self.channel.lock().unwrap_or_else(|p| p.into_inner()) = Some(channel);
    }

    /// The run as its events so far tell it, rate and ETA as of now.
    pub fn snapshot(&self) -> RunSnapshot {
        self.snapshots.snapshot()
    }
}

impl Reporter for ChannelReporter {
    fn report(&self, event: ProgressEvent) {
        self.snapshots.report(event);
    }
}
