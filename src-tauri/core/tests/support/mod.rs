//! Real servers for the integration tests, each started in a throwaway directory and stopped
//! when dropped. Every test binary that needs one declares `mod support;`.
#![allow(dead_code)]

pub mod dovecot;
