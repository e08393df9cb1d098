//! The server's fuzz target bodies on stable Rust: seeded random inputs and
//! the checked-in corpus of each target (see `fuzz/README.md`). Each runs for
//! a few seconds; `SEXTANT_FUZZ_SEED` replays a reported seed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sextant_consul::fuzzing::{consul_filter, consul_json};
use sextant_etcd::fuzzing::etcd_requests;
use sextant_state::fuzzing::seeded;

const BUDGET: Duration = Duration::from_secs(3);

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target)
}

fn run(name: &str, target: fn(&[u8]), max_len: usize) {
    let runs = seeded::run(name, target, &corpus(name), seeded::seed(), max_len, BUDGET);
    assert!(runs > 0, "no random input ran");
}

#[test]
fn consul_json_decoders_never_panic() {
    run("consul_json", consul_json, 512);
}

#[test]
fn consul_filter_parser_never_panics() {
    run("consul_filter", consul_filter, 256);
}

#[test]
fn etcd_request_checks_never_panic() {
    run("etcd_requests", etcd_requests, 512);
}
