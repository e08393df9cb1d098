//! The Wing–Gong–Lowe search for a linearization of one key's history, with
//! the memoization Lowe added (a set of already explored "which operations are
//! linearized, what is the state" pairs), as porcupine and Knossos use it.
//!
//! Calls and returns are kept in one time-ordered doubly linked list. The
//! search walks it from the front: a call whose step the model accepts is
//! linearized and lifted out of the list (with its return), and the walk
//! starts over; reaching the return of an operation that is not linearized
//! yet means the current choices cannot work, so the last one is undone.
//!
//! An indeterminate operation returns "at infinity": it may be linearized at
//! any point after its call, or never. Once the walk reaches the first such
//! return, every acknowledged operation has been placed and the history is
//! linearizable.

use std::collections::HashSet;

use super::model::{Step, Value, ABSENT};

/// One operation of one key, as the search needs it.
#[derive(Clone, Debug)]
pub struct KeyOp {
    pub step: Step,
    pub invoke_ns: u64,
    /// `None` when the operation is indeterminate.
    pub complete_ns: Option<u64>,
    /// Where the operation is in the whole history, for reports.
    pub history_index: usize,
}

/// What the search concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order explains the answers. `stuck_at` is the history index of an
    /// acknowledged operation that could not be placed after the longest
    /// linearizable prefix found (`linearized` operations long).
    NotLinearizable {
        stuck_at: usize,
        linearized: usize,
    },
    /// The search gave up after its step budget.
    Unknown {
        steps: u64,
    },
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// One call or return in the linked list (node 0 is the head sentinel).
struct Node {
    op: usize,
    is_return: bool,
    /// The call's return node (for calls only).
    partner: usize,
}

struct List {
    nodes: Vec<Node>,
    prev: Vec<usize>,
    next: Vec<usize>,
}

impl List {
    /// Builds the time-ordered list. At equal times calls come first, so
    /// operations that touch in time count as concurrent (the lenient
    /// reading: no anomaly is reported from a clock tie).
    fn new(ops: &[KeyOp]) -> List {
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.invoke_ns, false, i));
            events.push((op.complete_ns.unwrap_or(u64::MAX), true, i));
        }
        events.sort_unstable();
        let mut nodes = vec![Node {
            op: NIL,
            is_return: false,
            partner: NIL,
        }];
        let mut return_node = vec![NIL; ops.len()];
        for (position, &(_, is_return, op)) in events.iter().enumerate() {
            nodes.push(Node {
                op,
                is_return,
                partner: NIL,
            });
            if is_return {
                return_node[op] = position + 1;
            }
        }
        for node in nodes.iter_mut().skip(1) {
            if !node.is_return {
                node.partner = return_node[node.op];
            }
        }
        let count = nodes.len();
        let prev = (0..count).map(|i| i.wrapping_sub(1)).collect();
        let next = (0..count)
            .map(|i| if i + 1 < count { i + 1 } else { NIL })
            .collect();
        List { nodes, prev, next }
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        if next != NIL {
            self.prev[next] = node;
        }
    }

    /// Takes a call and its return out of the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.nodes[call].partner);
    }

    /// Undoes [`List::lift`]; lifts must be undone in reverse order.
    fn unlift(&mut self, call: usize) {
        self.relink(self.nodes[call].partner);
        self.relink(call);
    }
}

/// A set of operation indexes, hashable for the memo.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Box<[u64]>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)].into_boxed_slice())
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Searches for a linearization of `ops`, starting from an absent key, for at
/// most `budget` steps.
pub fn check(ops: &[KeyOp], budget: u64) -> Verdict {
    let mut list = List::new(ops);
    let mut state: Value = ABSENT;
    let mut linearized = Bits::new(ops.len());
    let mut memo: HashSet<(Bits, Value)> = HashSet::new();
    // (call node, state before it) for every linearized operation, in order.
    let mut stack: Vec<(usize, Value)> = Vec::new();
    let mut deepest = (0usize, NIL);
    let mut entry = list.next[HEAD];
    let mut steps = 0u64;
    loop {
        steps += 1;
        if steps > budget {
            return Verdict::Unknown { steps };
        }
        if entry == NIL {
            return Verdict::Linearizable;
        }
        let node = &list.nodes[entry];
        let op = node.op;
        if node.is_return && ops[op].complete_ns.is_none() {
            // Only returns at infinity are left: every acknowledged operation is placed.
            return Verdict::Linearizable;
        }
        if !node.is_return {
            if let Some(next_state) = ops[op].step.apply(state) {
                linearized.set(op);
                if memo.insert((linearized.clone(), next_state)) {
                    stack.push((entry, state));
                    state = next_state;
                    list.lift(entry);
                    entry = list.next[HEAD];
                    continue;
                }
                linearized.clear(op);
            }
            entry = list.next[entry];
            continue;
        }
        // An acknowledged operation returned before it could be placed.
        if stack.len() >= deepest.0 || deepest.1 == NIL {
            deepest = (stack.len(), op);
        }
        let Some((call, before)) = stack.pop() else {
            return Verdict::NotLinearizable {
                stuck_at: ops[deepest.1].history_index,
                linearized: deepest.0,
            };
        };
        let undone = list.nodes[call].op;
        linearized.clear(undone);
        state = before;
        list.unlift(call);
        entry = list.next[call];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(step: Step, invoke_ns: u64, complete_ns: Option<u64>) -> KeyOp {
        KeyOp {
            step,
            invoke_ns,
            complete_ns,
            history_index: 0,
        }
    }

    #[test]
    fn an_empty_history_is_linearizable() {
        assert_eq!(check(&[], 100), Verdict::Linearizable);
    }

    #[test]
    fn a_concurrent_read_may_see_either_value() {
        let ops = [
            op(Step::Put(1), 0, Some(10)),
            op(Step::Put(2), 20, Some(40)),
            op(Step::Get(1), 25, Some(30)),
            op(Step::Get(2), 26, Some(35)),
        ];
        assert_eq!(check(&ops, 10_000), Verdict::Linearizable);
    }

    #[test]
    fn reading_an_old_value_after_a_newer_one_is_not() {
        let ops = [
            op(Step::Put(1), 0, Some(10)),
            op(Step::Put(2), 20, Some(40)),
            op(Step::Get(2), 25, Some(30)),
            op(Step::Get(1), 31, Some(35)),
        ];
        assert!(matches!(
            check(&ops, 10_000),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn the_budget_bounds_the_search() {
        let ops = [
            op(Step::Put(1), 0, Some(10)),
            op(Step::Get(1), 20, Some(30)),
        ];
        assert!(matches!(check(&ops, 1), Verdict::Unknown { .. }));
    }
}
