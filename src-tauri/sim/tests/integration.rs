//! One test binary for the crate's integration tests: one link instead of one per file keeps
//! the build's disk use and link time down.

mod common;

mod delta;
mod graph;
mod groups;
mod groupware;
mod tenant_users;
mod throttle;
mod token;
