//! Fuzz target: `hutch::fuzzing::registries_conf` on UTF-8 input (see src/fuzzing.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        hutch::fuzzing::registries_conf(text);
    }
});
