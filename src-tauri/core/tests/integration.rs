//! One test binary for the crate's integration tests: one link instead of one per file keeps
//! the build's disk use and link time down.

#[path = "golden/occurrences.rs"]
mod occurrences;
mod support;
// Test support that needs axum, which only this crate's tests have (the CLI's tests share
// `support/` too).
#[path = "support/dav_front.rs"]
mod dav_front;

mod convert_golden;
mod cutover_mx;
mod dav_guards;
mod dav_radicale;
mod engine_imap;
mod engine_pipeline;
mod exchange_client;
mod exchange_mail;
mod faults;
mod folder_e2e;
mod folder_names;
mod fuzz_corpus;
mod groupware_dav;
mod groupware_delta;
mod groupware_folder;
mod groupware_moves;
mod hostile_imap;
mod hostile_input;
mod icewarp_e2e;
mod icewarp_provision;
mod imap_dovecot;
mod imap_lookup;
mod journal_backends;
mod preflight_endpoints;
mod reliability;
mod report_html;
mod run_snapshot;
mod selection;
mod state_lock;
mod tenant_scale;
mod tenant_users;
