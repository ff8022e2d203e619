//! Fuzz target: `hutch::fuzzing::reference` on UTF-8 input (see src/fuzzing.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        hutch::fuzzing::reference(text);
    }
});
