//! Keeps the computer awake while a pass runs, and says whether it could. On Linux this takes
//! systemd-logind's `idle` and `sleep` inhibitor locks over the system bus
//! (<https://systemd.io/INHIBITOR_LOCKS/>), released when the lock's file descriptor closes;
//! Windows and macOS have their own power requests (the `keepawake` crate). Without them (no
//! system bus, a policy that refuses) the pass still runs and the page says why the computer
//! may sleep.

use std::sync::Arc;

use serde::Serialize;
use ts_rs::TS;

/// Takes the lock: a guard that holds it until dropped, or why it could not be taken. Tests
/// give their own.
pub type Inhibitor = Arc<dyn Fn() -> Result<Box<dyn Send>, String> + Send + Sync>;

/// Whether the computer is kept awake during the pass going on (or the last one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct KeptAwake {
    pub kept: bool,
    /// Why it is not (the system's own words).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub reason: Option<String>,
}

impl KeptAwake {
    /// What taking the lock gave, and the guard to hold for the pass.
    pub fn take(inhibitor: &Inhibitor) -> (KeptAwake, Option<Box<dyn Send>>) {
        match inhibitor() {
            Ok(guard) => (
                KeptAwake {
                    kept: true,
                    reason: None,
                },
                Some(guard),
            ),
            Err(reason) => {
                tracing::info!("the computer may sleep during the pass: {reason}");
                (
                    KeptAwake {
                        kept: false,
                        reason: Some(reason),
                    },
                    None,
                )
            }
        }
    }
}

/// The operating system's own lock: idle and sleep (not the display: the screen may turn off).
pub fn system_inhibitor() -> Inhibitor {
    Arc::new(|| {
        keepawake::Builder::default()
            .idle(true)
            .sleep(true)
            .reason("A migration pass is running")
            .app_name("M365 Migrator")
            .app_reverse_domain("com.m365migrator.app")
            .create()
            .map(|guard| Box::new(guard) as Box<dyn Send>)
            .map_err(|e| e.to_string())
    })
}
