//! One test binary for the crate's integration tests: one link instead of one per file keeps
//! the build's disk use and link time down.

#[path = "../../core/tests/support/mod.rs"]
mod support;

mod crash;
mod demo;
mod open_files;
mod packaging;
mod pg_journal;
mod pg_workers;
mod preflight;
mod run_imap;
mod state_lock;
