//! Fuzz target: a registry manifest or index. The first byte picks the
//! `Content-Type` it is served with, the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((kind, body)) = data.split_first() {
        hutch::fuzzing::manifest(*kind, body);
    }
});
