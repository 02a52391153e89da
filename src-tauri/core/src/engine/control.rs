//! Pause, resume and stop, passed from a front end down to every worker.

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The run was stopped; the next run resumes where this one stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the run was stopped")]
pub struct Cancelled;

/// Shared handle to control a running migration. Clones control the same run.
#[derive(Debug, Clone)]
pub struct RunControl {
    cancel: CancellationToken,
    paused: std::sync::Arc<watch::Sender<bool>>,
}

impl Default for RunControl {
    fn default() -> Self {
        Self::new()
    }
}

impl RunControl {
    pub fn new() -> Self {
        RunControl {
            cancel: CancellationToken::new(),
            paused: std::sync::Arc::new(watch::channel(false).0),
        }
    }

    /// Stops at the next item boundary. Items already being written finish first.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Holds every worker at its next item boundary until [`RunControl::resume`].
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Called by workers between items: waits while paused; `Err` once cancelled.
    pub async fn checkpoint(&self) -> Result<(), Cancelled> {
        let mut rx = self.paused.subscribe();
        loop {
            if self.cancel.is_cancelled() {
                return Err(Cancelled);
            }
            if !*rx.borrow_and_update() {
                return Ok(());
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(Cancelled),
                changed = rx.changed() => if changed.is_err() { return Ok(()) },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn pause_holds_until_resume_and_cancel_wins() {
        let control = RunControl::new();
        assert_eq!(control.checkpoint().await, Ok(()));
        control.pause();
        let waiter = tokio::spawn({
            let c = control.clone();
            async move { c.checkpoint().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        control.resume();
        assert_eq!(waiter.await.unwrap(), Ok(()));

        control.pause();
        let waiter = tokio::spawn({
            let c = control.clone();
            async move { c.checkpoint().await }
        });
        control.cancel();
        assert_eq!(waiter.await.unwrap(), Err(Cancelled));
    }
}
