#![no_main]

mod harness {
    include!("../harness.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::contact(data));
