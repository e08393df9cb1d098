//! libFuzzer entry for `sextant_consul::fuzzing::consul_filter`; the body lives in the
//! crate so that the seeded stable tests run the very same code.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sextant_consul::fuzzing::consul_filter(data));
