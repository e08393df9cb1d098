//! Linearizability of a recorded KV history.
//!
//! Keys are independent registers, so the history is split per key and each
//! part is checked on its own ([`wgl::check`]) — the same result as checking
//! the whole, in a fraction of the time. Every written value is unique to
//! the run, which is what lets a CAS on a revision (etcd `mod_revision`,
//! Consul `?cas=`) be modelled as a CAS on the value its client had read.

pub mod model;
pub mod wgl;

use std::collections::{BTreeMap, HashSet};

use crate::history::{Call, Operation, Outcome, Output};
use model::Interner;
use wgl::{KeyOp, Verdict};

/// The verdict on one key.
#[derive(Clone, Debug)]
pub struct KeyReport {
    pub key: String,
    /// Operations the search considered (failed reads and pruned writes left out).
    pub operations: usize,
    pub verdict: Verdict,
    /// For an anomaly: the acknowledged operation that found no place.
    pub culprit: Option<Operation>,
}

/// Checks every key of `history` with at most `budget` search steps per key.
/// Instance listings are first turned into one read per instance ([`expand_listings`]).
pub fn check_history(history: &[Operation], budget: u64) -> Vec<KeyReport> {
    let expanded = expand_listings(history);
    let history = expanded.as_slice();
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, operation) in history.iter().enumerate() {
        by_key.entry(&operation.key).or_default().push(index);
    }
    by_key
        .into_iter()
        .map(|(key, indexes)| {
            let ops = key_ops(history, &indexes);
            let verdict = wgl::check(&ops, budget);
            let culprit = match verdict {
                Verdict::NotLinearizable { stuck_at, .. } => history.get(stuck_at).cloned(),
                _ => None,
            };
            KeyReport {
                key: key.to_owned(),
                operations: ops.len(),
                verdict,
                culprit,
            }
        })
        .collect()
}

/// Replaces every acknowledged instance listing by one read per instance:
/// "present" for each id it returned, "absent" for each instance whose
/// registration had been invoked before the listing returned but which it
/// did not return. An instance deregistered for good that shows up again is
/// then a read no linearization explains. Failed listings observe nothing.
pub fn expand_listings(history: &[Operation]) -> Vec<Operation> {
    let mut registered: BTreeMap<&str, u64> = BTreeMap::new();
    for operation in history {
        if let Call::Register { id } = &operation.call {
            let first = registered.entry(id).or_insert(operation.invoke_ns);
            *first = (*first).min(operation.invoke_ns);
        }
    }
    let mut expanded = Vec::with_capacity(history.len());
    for operation in history {
        let Call::ListInstances = operation.call else {
            expanded.push(operation.clone());
            continue;
        };
        let Outcome::Ok(Output::Instances { ids }) = &operation.outcome else {
            continue;
        };
        let seen: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let candidates = registered
            .iter()
            .filter(|(_, &invoked)| invoked <= operation.complete_ns)
            .map(|(id, _)| *id)
            .chain(seen.iter().copied())
            .collect::<std::collections::BTreeSet<&str>>();
        for id in candidates {
            expanded.push(Operation {
                key: crate::workload::instance_key(id),
                call: Call::Get,
                outcome: Outcome::Ok(Output::Read {
                    value: seen.contains(id).then(|| id.to_owned()),
                }),
                ..operation.clone()
            });
        }
    }
    expanded
}

/// The model's view of one key's operations.
///
/// An indeterminate write of a value no read ever returned and no CAS ever
/// expected is left out when no CAS of the key failed after it was invoked:
/// taking effect could then only make later reads wrong, never explain one,
/// so leaving it out changes no verdict — and it spares the search a branch
/// for every timed-out write.
fn key_ops(history: &[Operation], indexes: &[usize]) -> Vec<KeyOp> {
    let mut observed: HashSet<&str> = HashSet::new();
    let mut failed_cas_completions: Vec<u64> = Vec::new();
    for &i in indexes {
        let operation = &history[i];
        match (&operation.call, &operation.outcome) {
            (Call::Get, Outcome::Ok(Output::Read { value: Some(value) })) => {
                observed.insert(value);
            }
            (Call::Cas { expected, .. }, outcome) => {
                if let Some(expected) = expected {
                    observed.insert(expected);
                }
                if *outcome == Outcome::Ok(Output::Cas { succeeded: false }) {
                    failed_cas_completions.push(operation.complete_ns);
                }
            }
            _ => {}
        }
    }
    let mut interner = Interner::default();
    let mut ops = Vec::with_capacity(indexes.len());
    for &i in indexes {
        let operation = &history[i];
        let output = match &operation.outcome {
            Outcome::Ok(output) => Some(output),
            Outcome::Indeterminate { .. } => None,
        };
        if output.is_none() {
            let written = match &operation.call {
                Call::Put { value } | Call::Cas { value, .. } | Call::Register { id: value } => {
                    Some(value.as_str())
                }
                Call::Get | Call::Delete | Call::Deregister { .. } | Call::ListInstances => None,
            };
            let may_explain_a_failed_cas = failed_cas_completions
                .iter()
                .any(|&complete| complete >= operation.invoke_ns);
            if written.is_some_and(|v| !observed.contains(v)) && !may_explain_a_failed_cas {
                continue;
            }
        }
        let Some(step) = interner.step(&operation.call, output) else {
            continue;
        };
        ops.push(KeyOp {
            step,
            invoke_ns: operation.invoke_ns,
            complete_ns: output.map(|_| operation.complete_ns),
            history_index: i,
        });
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Api;

    /// A tiny DSL: `(process, call, invoke, complete, outcome)` on key "k".
    fn op(
        process: u32,
        call: Call,
        invoke_ns: u64,
        complete_ns: u64,
        outcome: Outcome,
    ) -> Operation {
        Operation {
            process,
            key: "k".to_owned(),
            api: Api::Etcd,
            server: 0,
            call,
            invoke_ns,
            complete_ns,
            outcome,
        }
    }
    fn put(v: &str) -> Call {
        Call::Put {
            value: v.to_owned(),
        }
    }
    fn cas(expected: Option<&str>, v: &str) -> Call {
        Call::Cas {
            expected: expected.map(str::to_owned),
            value: v.to_owned(),
        }
    }
    fn done() -> Outcome {
        Outcome::Ok(Output::Done)
    }
    fn read(v: Option<&str>) -> Outcome {
        Outcome::Ok(Output::Read {
            value: v.map(str::to_owned),
        })
    }
    fn cas_result(succeeded: bool) -> Outcome {
        Outcome::Ok(Output::Cas { succeeded })
    }
    fn timed_out() -> Outcome {
        Outcome::Indeterminate {
            error: "timeout".to_owned(),
        }
    }
    fn verdict(history: &[Operation]) -> Verdict {
        let reports = check_history(history, 1_000_000);
        assert_eq!(reports.len(), 1);
        reports[0].verdict.clone()
    }
    fn is_anomaly(history: &[Operation]) -> bool {
        matches!(verdict(history), Verdict::NotLinearizable { .. })
    }

    #[test]
    fn sequential_put_get_cas_delete_is_linearizable() {
        let history = [
            op(0, Call::Get, 0, 1, read(None)),
            op(0, put("a"), 2, 3, done()),
            op(0, Call::Get, 4, 5, read(Some("a"))),
            op(0, cas(Some("a"), "b"), 6, 7, cas_result(true)),
            op(0, cas(Some("a"), "c"), 8, 9, cas_result(false)),
            op(0, Call::Get, 10, 11, read(Some("b"))),
            op(0, Call::Delete, 12, 13, done()),
            op(0, Call::Get, 14, 15, read(None)),
            op(0, cas(None, "d"), 16, 17, cas_result(true)),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn overlapping_operations_may_take_effect_in_either_order() {
        let history = [
            op(0, put("a"), 0, 100, done()),
            op(1, put("b"), 10, 90, done()),
            op(2, Call::Get, 95, 99, read(Some("a"))),
            op(3, Call::Get, 101, 110, read(Some("a"))),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_is_an_anomaly() {
        // "b" was acknowledged before the read began, yet the read saw "a":
        // what a deposed leader answering locally would do.
        let history = [
            op(0, put("a"), 0, 10, done()),
            op(1, put("b"), 20, 30, done()),
            op(2, Call::Get, 40, 50, read(Some("a"))),
        ];
        assert!(is_anomaly(&history));
    }

    #[test]
    fn a_lost_acknowledged_write_is_an_anomaly() {
        let history = [
            op(0, put("a"), 0, 10, done()),
            op(1, Call::Get, 20, 30, read(Some("a"))),
            op(0, put("b"), 40, 50, done()),
            // After a crash and restart the acknowledged "b" is gone.
            op(1, Call::Get, 60, 70, read(Some("a"))),
        ];
        assert!(is_anomaly(&history));
    }

    #[test]
    fn a_read_of_a_value_never_written_is_an_anomaly() {
        let history = [
            op(0, put("a"), 0, 10, done()),
            op(1, Call::Get, 20, 30, read(Some("ghost"))),
        ];
        assert!(is_anomaly(&history));
    }

    #[test]
    fn two_cas_from_the_same_value_cannot_both_succeed() {
        let history = [
            op(0, put("a"), 0, 10, done()),
            op(1, cas(Some("a"), "b"), 20, 40, cas_result(true)),
            op(2, cas(Some("a"), "c"), 21, 41, cas_result(true)),
        ];
        assert!(is_anomaly(&history));
    }

    #[test]
    fn a_cas_that_failed_on_the_current_value_is_an_anomaly() {
        let history = [
            op(0, put("a"), 0, 10, done()),
            op(1, cas(Some("a"), "b"), 20, 30, cas_result(false)),
        ];
        assert!(is_anomaly(&history));
    }

    #[test]
    fn an_indeterminate_write_may_have_happened_late() {
        // The timed-out put of "b" is seen long after its client gave up.
        let history = [
            op(0, put("a"), 0, 10, done()),
            op(1, put("b"), 20, 30, timed_out()),
            op(2, Call::Get, 40, 50, read(Some("a"))),
            op(2, Call::Get, 60, 70, read(Some("b"))),
            op(2, Call::Get, 80, 90, read(Some("b"))),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn an_indeterminate_write_may_never_have_happened() {
        let history = [
            op(0, put("a"), 0, 10, done()),
            op(1, put("b"), 20, 30, timed_out()),
            op(2, Call::Get, 40, 50, read(Some("a"))),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn an_indeterminate_write_takes_effect_once() {
        // "b" seen, then "a" again (no one rewrote "a"), then "b" again: a
        // write cannot take effect twice.
        let history = [
            op(0, put("a"), 0, 10, done()),
            op(1, put("b"), 20, 30, timed_out()),
            op(2, Call::Get, 40, 50, read(Some("b"))),
            op(2, Call::Get, 60, 70, read(Some("a"))),
        ];
        assert!(is_anomaly(&history));
    }

    #[test]
    fn an_unobserved_indeterminate_write_can_explain_a_failed_cas() {
        let history = [
            op(0, put("a"), 0, 10, done()),
            op(1, put("x"), 20, 30, timed_out()),
            op(2, cas(Some("a"), "c"), 40, 50, cas_result(false)),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    fn on(key: &str, mut operation: Operation) -> Operation {
        operation.key = key.to_owned();
        operation
    }
    fn listing(ids: &[&str]) -> Outcome {
        Outcome::Ok(Output::Instances {
            ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    #[test]
    fn an_instance_is_listed_between_registration_and_deregistration() {
        let history = [
            on(
                "instance/a",
                op(0, Call::Register { id: "a".to_owned() }, 0, 10, done()),
            ),
            on(
                "instances",
                op(1, Call::ListInstances, 20, 30, listing(&["a"])),
            ),
            on(
                "instance/a",
                op(0, Call::Deregister { id: "a".to_owned() }, 40, 50, done()),
            ),
            on(
                "instances",
                op(1, Call::ListInstances, 60, 70, listing(&[])),
            ),
        ];
        let reports = check_history(&history, 10_000);
        assert!(reports.iter().all(|r| r.verdict == Verdict::Linearizable));
    }

    #[test]
    fn a_deregistered_instance_that_reappears_is_an_anomaly() {
        let history = [
            on(
                "instance/a",
                op(0, Call::Register { id: "a".to_owned() }, 0, 10, done()),
            ),
            on(
                "instance/a",
                op(0, Call::Deregister { id: "a".to_owned() }, 20, 30, done()),
            ),
            on(
                "instances",
                op(1, Call::ListInstances, 40, 50, listing(&[])),
            ),
            on(
                "instances",
                op(1, Call::ListInstances, 60, 70, listing(&["a"])),
            ),
        ];
        let reports = check_history(&history, 10_000);
        let instance = reports.iter().find(|r| r.key == "instance/a");
        assert!(matches!(
            instance.map(|r| &r.verdict),
            Some(Verdict::NotLinearizable { .. })
        ));
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut other = op(1, Call::Get, 40, 50, read(Some("a")));
        other.key = "other".to_owned();
        let history = [op(0, put("a"), 0, 10, done()), other];
        let reports = check_history(&history, 1000);
        assert_eq!(reports.len(), 2);
        let other = reports.iter().find(|r| r.key == "other");
        assert!(matches!(
            other.map(|r| &r.verdict),
            Some(Verdict::NotLinearizable { .. })
        ));
    }
}
