//! One test binary for the crate's integration tests: one link instead of one per file keeps
//! the build's disk use and link time down.

#[path = "golden/occurrences.rs"]
mod occurrences;
mod support;

mod convert_golden;
mod dav_radicale;
mod engine_imap;
mod folder_e2e;
mod groupware_dav;
mod groupware_delta;
mod groupware_folder;
mod icewarp_e2e;
mod icewarp_provision;
mod imap_dovecot;
mod reliability;
mod selection;
