//! Fuzz target: an image config blob (see src/fuzzing.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hutch::fuzzing::image_config(data);
});
