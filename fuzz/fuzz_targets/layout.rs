//! Fuzz target: an OCI image layout built from the input and opened
//! (format in src/fuzzing/layout.rs), in a fresh directory each time.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("hutch-fuzz-layout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::create_dir_all(&dir).is_ok() {
        hutch::fuzzing::layout(data, &dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
});
