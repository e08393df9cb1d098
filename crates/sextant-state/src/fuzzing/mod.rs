//! The body of the `state_machine` fuzz target, kept in the crate so that the
//! same code runs under libFuzzer (`fuzz/`) and, on stable Rust, in the
//! ordinary test suite with seeded random inputs.
//!
//! Not part of the crate's API: it is exported (hidden) only because the fuzz
//! crate lives outside the workspace and can call nothing private.

mod byte_source;
mod ops;
pub mod seeded;

pub use byte_source::ByteSource;

use crate::command::{Command, Op, Response};
use crate::machine::StateMachine;
use crate::txn::MAX_TXN_OPS;

/// Most commands one input drives, so that one input stays fast.
const MAX_STEPS: usize = 64;

/// One entry of the log the driver wrote, to replay it: its index, and its
/// command (`None` for a blank or membership entry).
type Entry = (u64, Option<Command>);

/// Applies the command sequence described by `data` to a fresh state machine
/// and panics if any step breaks an invariant:
///
/// - applying never panics, and the state's own invariant check passes after
///   every entry (every check, service and session stands on an existing
///   node, indexes match what they index, no key was written in the future);
/// - the revision is the last entry's index, and moves only forwards;
/// - a rejected command, or a failed Consul CAS, changes nothing but the
///   revision; an entry at or below the revision changes nothing at all;
/// - a snapshot decodes to the same state and encodes to the same bytes;
/// - replaying the same log on a fresh machine reaches the same state.
pub fn state_machine(data: &[u8]) {
    let mut source = ByteSource::new(data);
    let mut machine = StateMachine::new();
    let mut log = Vec::new();
    // Earlier states, as restore commands would carry them.
    let mut snapshots: Vec<Vec<u8>> = Vec::new();
    let mut now_ms = 1_700_000_000_000u64;
    let mut index = 0u64;
    for _ in 0..MAX_STEPS {
        if source.is_empty() {
            break;
        }
        now_ms += u64::from(source.byte()) * 250;
        let op = match source.below(16) {
            0 => {
                let snapshot = if !snapshots.is_empty() && source.flag() {
                    snapshots[source.below(snapshots.len())].clone()
                } else {
                    source.bytes(48).to_vec()
                };
                Op::RestoreSnapshot { snapshot }
            }
            1 => {
                // A blank or membership entry: it moves the revision only.
                index += 1;
                machine.advance(index);
                assert_eq!(
                    machine.revision(),
                    index,
                    "a blank entry did not move the revision"
                );
                log.push((index, None));
                continue;
            }
            2 => {
                replay_stale(&mut machine, &log, &mut source);
                continue;
            }
            _ => ops::op(&mut source, machine.revision()),
        };
        if let Op::Txn { txn } = &op {
            // The server refuses such a Txn before proposing it.
            if txn.validate(MAX_TXN_OPS).is_err() {
                continue;
            }
        }
        index += 1;
        let command = Command::new(now_ms, op);
        let before = machine.clone();
        let response = machine.apply(index, &command);
        check_step(&before, &machine, index, &command, &response);
        log.push((index, Some(command)));
        if source.below(4) == 0 {
            snapshots.push(encode(&machine));
        }
    }
    check_snapshot_round_trip(&machine);
    check_replay(&machine, &log);
}

/// Re-applies an entry already applied: it must be ignored.
fn replay_stale(machine: &mut StateMachine, log: &[Entry], source: &mut ByteSource<'_>) {
    let commands: Vec<_> = log
        .iter()
        .filter_map(|(i, c)| c.as_ref().map(|c| (*i, c)))
        .collect();
    if commands.is_empty() {
        return;
    }
    let (stale, command) = commands[source.below(commands.len())];
    let before = machine.clone();
    let response = machine.apply(stale, command);
    assert_eq!(response, Response::Done, "a stale entry was not ignored");
    assert_eq!(*machine, before, "a stale entry changed the state");
}

fn check_step(
    before: &StateMachine,
    after: &StateMachine,
    index: u64,
    command: &Command,
    response: &Response,
) {
    assert_eq!(
        after.revision(),
        index,
        "the revision is not the entry's index"
    );
    assert_eq!(
        after.kv().revision(),
        index,
        "the key space lags the machine"
    );
    if let Err(broken) = after.check_invariants() {
        panic!("invariant broken after {command:?} -> {response:?}: {broken}");
    }
    let unchanged = matches!(
        (response, &command.op),
        (Response::Rejected(_), _)
            | (
                Response::Applied(false),
                Op::KvPut { .. } | Op::KvDelete { .. }
            )
    );
    if unchanged {
        let mut expected = before.clone();
        expected.advance(index);
        assert_eq!(
            *after, expected,
            "{command:?} answered {response:?} yet changed the state"
        );
    }
}

fn encode(machine: &StateMachine) -> Vec<u8> {
    match machine.encode_snapshot() {
        Ok(bytes) => bytes,
        Err(e) => panic!("a reachable state does not encode: {e}"),
    }
}

fn check_snapshot_round_trip(machine: &StateMachine) {
    let bytes = encode(machine);
    let decoded = match StateMachine::decode_snapshot(&bytes) {
        Ok(decoded) => decoded,
        Err(e) => panic!("a reachable state's snapshot does not decode: {e}"),
    };
    assert_eq!(decoded, *machine, "a snapshot decoded to another state");
    assert_eq!(encode(&decoded), bytes, "a snapshot re-encoded differently");
}

fn check_replay(machine: &StateMachine, log: &[Entry]) {
    let mut replica = StateMachine::new();
    for (index, command) in log {
        match command {
            Some(command) => {
                replica.apply(*index, command);
            }
            None => replica.advance(*index),
        }
    }
    assert_eq!(
        encode(&replica),
        encode(machine),
        "replaying the log reached another state"
    );
}
