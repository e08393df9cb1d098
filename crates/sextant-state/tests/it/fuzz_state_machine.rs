//! The `state_machine` fuzz target's body on stable Rust: seeded random
//! command sequences and the checked-in corpus (see `fuzz/README.md`).

use std::path::Path;
use std::time::Duration;

use sextant_state::fuzzing::{seeded, state_machine};

#[test]
fn arbitrary_command_sequences_keep_the_invariants() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/state_machine");
    let runs = seeded::run(
        "state_machine",
        state_machine,
        &corpus,
        seeded::seed(),
        1024,
        Duration::from_secs(4),
    );
    assert!(runs > 0, "no random input ran");
}
