//! Progress on stderr: bars in a terminal, plain lines otherwise, nothing under `--quiet`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use migrator_core::config::show_duration;
use migrator_core::progress::{ProgressEvent, Reporter, RunSnapshot, RunSummary};

/// Draws the core's progress events.
pub struct CliReporter {
    mode: Mode,
    state: Mutex<State>,
}

enum Mode {
    Quiet,
    Lines,
    Bars {
        multi: MultiProgress,
        overall: ProgressBar,
    },
}

#[derive(Default)]
struct State {
    users: HashMap<String, ProgressBar>,
    /// The whole run, from which the overall bar and the tally lines are drawn.
    snapshot: RunSnapshot,
}

/// Steps of the overall bar, which shows [`RunSnapshot::fraction`].
const BAR_STEPS: u64 = 1000;

impl CliReporter {
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(BAR_STEPS));
            overall.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            overall.set_prefix("overall");
            Mode::Bars { multi, overall }
        } else {
            Mode::Lines
        };
        CliReporter {
            mode,
            state: Mutex::new(State::default()),
        }
    }

    /// Prints the closing summary (also under `--quiet`: it is the command's result).
    pub fn finish(&self, summary: &RunSummary, target: &str) {
        if let Mode::Bars { overall, .. } = &self.mode {
            overall.finish_and_clear();
        }
        let t = &summary.totals;
        println!(
            "{} {} users, {} folders, {} messages, {} events, {} contacts, {} tasks ({}) in {:.1} s; {} already present, {} left out by the date limits, {} failed. Output: {}",
            if summary.cancelled { "Stopped after" } else { "Migrated" },
            summary.users,
            t.folders,
            t.messages,
            t.events,
            t.contacts,
            t.tasks,
            HumanBytes(t.bytes),
            summary.seconds,
            t.skipped,
            t.out_of_range,
            t.failed,
            target
        );
    }
}

/// A failed item as people know it, in the report's words and units: `failed:
/// ann@contoso.com in Inbox: "Q3 budget" (2024-03-01T09:00:00Z, 5.0 MB): The destination
/// mailbox is full. ...`; the source id only for an item whose subject is not known.
fn failed_line(
    user: &str,
    folder: &str,
    (item, subject, date, size): (&str, Option<String>, Option<String>, Option<u64>),
    reason: &str,
) -> String {
    let name = match subject {
        Some(s) if !s.trim().is_empty() => format!("\"{s}\""),
        Some(_) => "(no subject)".to_string(),
        None => item.to_string(),
    };
    let about: Vec<String> = date
        .into_iter()
        .chain(size.map(migrator_core::engine::report::human_bytes))
        .collect();
    let about = if about.is_empty() {
        String::new()
    } else {
        format!(" ({})", about.join(", "))
    };
    let folder = if folder.is_empty() {
        String::new()
    } else {
        format!(" in {folder}")
    };
    format!("failed: {user}{folder}: {name}{about}: {reason}")
}

impl Reporter for CliReporter {
    fn report(&self, event: ProgressEvent) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(self.mode, Mode::Quiet) {
            state.snapshot.apply(&event);
        }
        if let Mode::Bars { overall, .. } = &self.mode {
            let snapshot = &state.snapshot;
            overall.set_position((snapshot.fraction * BAR_STEPS as f64).round() as u64);
            overall.set_message(format!(
                "{}; {}",
                tally(snapshot),
                HumanBytes(snapshot.bytes_done)
            ));
        }
        // The report's names and wording (one function in the core).
        match (&self.mode, event.in_plain_words()) {
            (Mode::Quiet, _) => {}
            (Mode::Lines, ProgressEvent::RunStarted { users }) => {
                eprintln!("signed in; migrating {users} mailboxes")
            }
            (Mode::Lines, ProgressEvent::UserFinished { user, stats }) => {
                eprintln!(
                    "{user}: {} messages ({}), {} already present, {} failed",
                    stats.messages,
                    HumanBytes(stats.bytes),
                    stats.skipped,
                    stats.failed
                );
                eprintln!("{}", tally(&state.snapshot));
            }
            (
                Mode::Lines | Mode::Bars { .. },
                ProgressEvent::ItemFailed {
                    user,
                    folder,
                    item,
                    subject,
                    date,
                    size,
                    reason,
                },
            ) => {
                let line = failed_line(&user, &folder, (&item, subject, date, size), &reason);
                match &self.mode {
                    Mode::Bars { multi, .. } => multi.suspend(|| eprintln!("{line}")),
                    _ => eprintln!("{line}"),
                }
            }
            (Mode::Lines | Mode::Bars { .. }, ProgressEvent::NotMigrated { user, reason }) => {
                let line = format!("{user}: {reason}");
                match &self.mode {
                    Mode::Bars { multi, .. } => multi.suspend(|| eprintln!("{line}")),
                    _ => eprintln!("{line}"),
                }
            }
            (Mode::Lines, ProgressEvent::Throttled { user, wait_ms }) => {
                eprintln!("{user}: throttled by Microsoft, waiting {wait_ms} ms")
            }
            (
                Mode::Lines,
                ProgressEvent::DestinationDown {
                    user,
                    destination,
                    down_ms,
                    limit_ms,
                },
            ) => {
                eprintln!(
                    "{}",
                    destination_down(&user, &destination, down_ms, limit_ms)
                )
            }
            (Mode::Lines, _) => {}
            (Mode::Bars { multi, .. }, event) => match event {
                ProgressEvent::UserStarted { user, messages, .. } => {
                    let bar = multi.add(ProgressBar::new(messages));
                    bar.set_style(
                        ProgressStyle::with_template("{prefix:>30} [{bar:30}] {pos}/{len} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    bar.set_prefix(user.clone());
                    state.users.insert(user, bar);
                }
                ProgressEvent::ItemsListed { user, items } => {
                    if let Some(bar) = state.users.get(&user) {
                        bar.inc_length(items);
                    }
                }
                ProgressEvent::ItemDone { user, .. } => {
                    if let Some(bar) = state.users.get(&user) {
                        bar.inc(1);
                        // Items move again: a wait shown before is over.
                        bar.set_message("");
                    }
                }
                ProgressEvent::Throttled { user, wait_ms } => {
                    if let Some(bar) = state.users.get(&user) {
                        bar.set_message(format!("throttled {wait_ms} ms"));
                    }
                }
                ProgressEvent::DestinationDown {
                    user,
                    destination,
                    down_ms,
                    limit_ms,
                } => match state.users.get(&user) {
                    Some(bar) => bar.set_message(format!(
                        "waiting for {destination} (down {})",
                        show_duration(Duration::from_millis(down_ms))
                    )),
                    None => multi.suspend(|| {
                        eprintln!(
                            "{}",
                            destination_down(&user, &destination, down_ms, limit_ms)
                        )
                    }),
                },
                ProgressEvent::UserFinished { user, .. } => {
                    if let Some(bar) = state.users.remove(&user) {
                        bar.finish_and_clear();
                        multi.remove(&bar);
                    }
                }
                _ => {}
            },
        }
    }
}

/// The run in one line: `37 of 200 mailboxes done, 8 running, 155 queued; 1234 of 5000
/// items; ETA 2 h 5 min` (failed and skipped mailboxes, failed items and the ETA when there
/// are any).
pub fn tally(s: &RunSnapshot) -> String {
    let mut line = format!(
        "{} of {} mailboxes done, {} running, {} queued",
        s.mailboxes_done, s.mailboxes_total, s.mailboxes_running, s.mailboxes_queued
    );
    if s.mailboxes_failed > 0 {
        line += &format!(", {} failed", s.mailboxes_failed);
    }
    if s.mailboxes_skipped > 0 {
        line += &format!(", {} without a mailbox", s.mailboxes_skipped);
    }
    if s.mailboxes_stopped > 0 {
        line += &format!(", {} stopped part-way", s.mailboxes_stopped);
    }
    line += &format!("; {} of {} items", s.items_done, s.items_total);
    if s.items_failed > 0 {
        line += &format!(" ({} failed)", s.items_failed);
    }
    if let Some(eta) = s
        .eta_seconds
        .and_then(|e| Duration::try_from_secs_f64(e).ok())
    {
        line += &format!("; ETA {}", show_duration(eta));
    }
    line
}

/// The line saying a mailbox waits for its destination.
fn destination_down(user: &str, destination: &str, down_ms: u64, limit_ms: u64) -> String {
    format!(
        "{user}: {destination} is unreachable (for {} now); waiting up to {} (outage_wait)",
        show_duration(Duration::from_millis(down_ms)),
        show_duration(Duration::from_millis(limit_ms))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrator_core::progress::PlannedMailbox;

    #[test]
    fn the_tally_counts_every_mailbox_from_the_start() {
        let planned: Vec<PlannedMailbox> = (0..200)
            .map(|i| PlannedMailbox {
                user: format!("u{i}@contoso.com"),
                items: Some(10),
            })
            .collect();
        let mut s = RunSnapshot::new(&planned, 1_000);
        for (i, m) in planned.iter().enumerate().take(45) {
            let user = m.user.clone();
            s.apply_at(
                &ProgressEvent::UserStarted {
                    user: user.clone(),
                    folders: 1,
                    messages: 10,
                },
                1_000 + i as u64,
            );
            if i < 37 {
                for k in 0..10 {
                    s.apply_at(
                        &ProgressEvent::ItemDone {
                            user: user.clone(),
                            bytes: 1,
                            skipped: false,
                        },
                        2_000 + 100 * (i * 10 + k) as u64,
                    );
                }
                s.apply_at(
                    &ProgressEvent::UserFinished {
                        user,
                        stats: Default::default(),
                    },
                    40_000,
                );
            }
        }
        let line = tally(&s);
        assert!(
            line.starts_with(
                "37 of 200 mailboxes done, 8 running, 155 queued; 370 of 2000 items; ETA "
            ),
            "{line}"
        );
    }

    /// Issue 15.4: the CLI named failed items by their Graph id only.
    #[test]
    fn failed_items_are_named_by_subject_folder_date_and_size() {
        let event = migrator_core::progress::ItemName::new(
            Some("Q3 budget"),
            Some("2024-03-01T09:00:00Z"),
            Some(5_000_000),
        )
        .failed(
            "ann@contoso.com",
            "P&AVkA7Q-lohy",
            "AAMk1",
            "message AAMk1: cannot append message to folder X: NO [OVERQUOTA] full".into(),
        );
        let ProgressEvent::ItemFailed {
            user,
            folder,
            item,
            subject,
            date,
            size,
            reason,
        } = event.in_plain_words()
        else {
            panic!("an item failure");
        };
        let line = failed_line(&user, &folder, (&item, subject, date, size), &reason);
        assert_eq!(
            line,
            "failed: ann@contoso.com in Přílohy: \"Q3 budget\" (2024-03-01T09:00:00Z, 5.0 MB): \
             The destination mailbox is full. Raise the user's quota at the destination, then \
             run again. (cannot append message to folder X: NO [OVERQUOTA] full)"
        );
        assert!(!line.contains("AAMk1"), "{line}");
    }
}
