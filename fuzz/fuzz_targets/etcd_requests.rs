//! libFuzzer entry for `sextant_etcd::fuzzing::etcd_requests`; the body lives in the
//! crate so that the seeded stable tests run the very same code.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sextant_etcd::fuzzing::etcd_requests(data));
