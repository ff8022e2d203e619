//! Fuzz target: a layer (raw, or a `#` script of tar members, see
//! src/fuzzing/unpack.rs) unpacked into a temporary root; panics if any
//! file outside the root changes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hutch::fuzzing::unpack(data);
});
