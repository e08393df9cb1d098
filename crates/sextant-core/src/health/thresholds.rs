//! Flap damping: turning a stream of probe results into status changes.
//!
//! `SuccessBeforePassing` consecutive good results are needed to turn
//! passing, `FailuresBeforeWarning` / `FailuresBeforeCritical` consecutive
//! failures to turn warning / critical. Until a threshold is reached the
//! check keeps the status it has. A threshold of 0 acts as 1 (the first
//! result counts), and an unset warning threshold follows the critical one,
//! so a check without thresholds follows every result at once.

use sextant_state::catalog::{CheckDefinition, CheckStatus};

/// The consecutive-result counters of one check, kept by its owner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    successes: u32,
    failures: u32,
}

impl Counter {
    /// Records one probe result; returns the status the check should now
    /// have, or `None` to keep whatever it has.
    pub fn observe(
        &mut self,
        definition: &CheckDefinition,
        result: CheckStatus,
    ) -> Option<CheckStatus> {
        match result {
            CheckStatus::Passing | CheckStatus::Warning => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                (self.successes >= definition.success_before_passing.max(1)).then_some(result)
            }
            CheckStatus::Critical | CheckStatus::Maintenance => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                let critical = definition.failures_before_critical.max(1);
                let warning = match definition.failures_before_warning {
                    0 => critical,
                    n => n,
                };
                if self.failures >= critical {
                    Some(CheckStatus::Critical)
                } else if self.failures >= warning {
                    Some(CheckStatus::Warning)
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckStatus::*;

    fn definition(success: u32, warning: u32, critical: u32) -> CheckDefinition {
        CheckDefinition {
            success_before_passing: success,
            failures_before_warning: warning,
            failures_before_critical: critical,
            ..CheckDefinition::default()
        }
    }

    fn run(definition: &CheckDefinition, results: &[CheckStatus]) -> Vec<Option<CheckStatus>> {
        let mut counter = Counter::default();
        results
            .iter()
            .map(|r| counter.observe(definition, *r))
            .collect()
    }

    #[test]
    fn without_thresholds_every_result_counts() {
        let d = definition(0, 0, 0);
        assert_eq!(
            run(&d, &[Passing, Critical, Warning, Passing]),
            vec![Some(Passing), Some(Critical), Some(Warning), Some(Passing)]
        );
    }

    #[test]
    fn success_before_passing_needs_consecutive_successes() {
        let d = definition(3, 0, 0);
        assert_eq!(
            run(&d, &[Passing, Passing, Critical, Passing, Passing, Passing]),
            vec![None, None, Some(Critical), None, None, Some(Passing)]
        );
    }

    #[test]
    fn failures_go_warning_then_critical() {
        let d = definition(0, 2, 4);
        assert_eq!(
            run(&d, &[Critical, Critical, Critical, Critical, Passing]),
            vec![
                None,
                Some(Warning),
                Some(Warning),
                Some(Critical),
                Some(Passing)
            ]
        );
    }

    #[test]
    fn the_warning_threshold_follows_the_critical_one_when_unset() {
        let d = definition(0, 0, 3);
        assert_eq!(
            run(&d, &[Critical, Critical, Critical]),
            vec![None, None, Some(Critical)]
        );
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let d = definition(0, 0, 2);
        assert_eq!(
            run(&d, &[Critical, Passing, Critical, Critical]),
            vec![None, Some(Passing), None, Some(Critical)]
        );
    }
}
