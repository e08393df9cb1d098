//! The sequential specification one key must behave like: a register that
//! holds a value or nothing, read, overwritten, compared-and-set and deleted.
//!
//! Values are interned to small integers so the search can hash states
//! cheaply; [`ABSENT`] is the empty register.

use std::collections::HashMap;

use crate::history::{Call, Output};

/// An interned value; [`ABSENT`] means the key does not exist.
pub type Value = u32;

/// The state of a key that was never written (or was deleted).
pub const ABSENT: Value = 0;

/// One operation as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A read that answered `Value`.
    Get(Value),
    /// Sets the value; acknowledged or not, its effect is the same.
    Put(Value),
    /// Compare-and-set; `succeeded` is `None` when the outcome is unknown.
    Cas {
        expected: Value,
        value: Value,
        succeeded: Option<bool>,
    },
    Delete,
}

/// Maps value strings to [`Value`]s.
#[derive(Debug, Default)]
pub struct Interner {
    ids: HashMap<String, Value>,
}

impl Interner {
    pub fn intern(&mut self, value: Option<&str>) -> Value {
        let Some(value) = value else {
            return ABSENT;
        };
        let next = Value::try_from(self.ids.len() + 1).unwrap_or(Value::MAX);
        *self.ids.entry(value.to_owned()).or_insert(next)
    }

    /// Builds the model's step for a call and its output (`None`: indeterminate).
    /// Returns `None` for an operation the model can ignore: a read without an
    /// answer has no effect.
    pub fn step(&mut self, call: &Call, output: Option<&Output>) -> Option<Step> {
        Some(match (call, output) {
            (Call::Get, Some(Output::Read { value })) => Step::Get(self.intern(value.as_deref())),
            (Call::Get | Call::ListInstances, _) => return None,
            (Call::Put { value } | Call::Register { id: value }, _) => {
                Step::Put(self.intern(Some(value)))
            }
            (Call::Delete | Call::Deregister { .. }, _) => Step::Delete,
            (Call::Cas { expected, value }, output) => Step::Cas {
                expected: self.intern(expected.as_deref()),
                value: self.intern(Some(value)),
                succeeded: match output {
                    Some(Output::Cas { succeeded }) => Some(*succeeded),
                    _ => None,
                },
            },
        })
    }
}

impl Step {
    /// The state after applying this step to `state`, or `None` if the step's
    /// answer is impossible in `state`.
    ///
    /// An indeterminate CAS is only ever applied as "it happened and
    /// succeeded": one that failed changed nothing, which the search already
    /// covers by never linearizing it.
    pub fn apply(&self, state: Value) -> Option<Value> {
        match *self {
            Step::Get(seen) => (seen == state).then_some(state),
            Step::Put(value) => Some(value),
            Step::Delete => Some(ABSENT),
            Step::Cas {
                expected,
                value,
                succeeded,
            } => match succeeded {
                Some(true) | None => (state == expected).then_some(value),
                Some(false) => (state != expected).then_some(state),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_succeeds_only_on_the_expected_value() {
        let ok = Step::Cas {
            expected: 1,
            value: 2,
            succeeded: Some(true),
        };
        assert_eq!(ok.apply(1), Some(2));
        assert_eq!(ok.apply(3), None);
        let failed = Step::Cas {
            expected: 1,
            value: 2,
            succeeded: Some(false),
        };
        assert_eq!(failed.apply(1), None);
        assert_eq!(failed.apply(3), Some(3));
    }

    #[test]
    fn absent_is_a_value_reads_and_cas_can_expect() {
        let mut interner = Interner::default();
        assert_eq!(interner.intern(None), ABSENT);
        let a = interner.intern(Some("a"));
        assert_ne!(a, ABSENT);
        assert_eq!(interner.intern(Some("a")), a);
        assert_eq!(Step::Get(ABSENT).apply(ABSENT), Some(ABSENT));
        assert_eq!(Step::Delete.apply(a), Some(ABSENT));
    }
}
