//! The read view the facade hands to frontends: the applied state machine,
//! read-locked for as long as the view lives.
//!
//! Every frontend reads the replicated state through a [`StateView`], so
//! this is the one place where what a reader may see can be decided. A view
//! holds a lock: take what is needed and drop it before any `.await`.

use std::ops::Deref;
use std::sync::RwLockReadGuard;

use sextant_state::StateMachine;

use crate::raft::state_machine::Applied;

pub struct StateView<'a> {
    applied: RwLockReadGuard<'a, Applied>,
}

impl<'a> StateView<'a> {
    pub(crate) fn new(applied: RwLockReadGuard<'a, Applied>) -> Self {
        Self { applied }
    }
}

impl Deref for StateView<'_> {
    type Target = StateMachine;

    fn deref(&self) -> &StateMachine {
        &self.applied.machine
    }
}
