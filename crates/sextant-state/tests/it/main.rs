//! sextant-state's property and fuzz tests, in one test binary.

mod fuzz_state_machine;
mod properties;
mod txn_properties;
