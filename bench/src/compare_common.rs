//! What every `compare` subcommand shares: rows of medians with Sextant's
//! advantage over a baseline, running a workload alternately on both
//! systems, and reading a process's resident memory.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::etcd_load::{quantile, Rate};

/// Which way a row's figure is better.
#[derive(Clone, Copy)]
pub enum Better {
    Higher,
    Lower,
}

/// One workload's runs on Sextant and on the baseline.
pub struct Row {
    pub workload: String,
    pub unit: &'static str,
    pub better: Better,
    pub sextant: Vec<f64>,
    pub baseline: Vec<f64>,
}

impl Row {
    pub fn new(workload: String, unit: &'static str, better: Better) -> Self {
        Self {
            workload,
            unit,
            better,
            sextant: Vec::new(),
            baseline: Vec::new(),
        }
    }

    /// Records one run of system `system` (0 is Sextant, 1 the baseline).
    pub fn push(&mut self, system: usize, value: f64) {
        if system == 0 {
            self.sextant.push(value);
        } else {
            self.baseline.push(value);
        }
    }

    /// `workload  sextant  baseline  ratio`, the ratio being Sextant's
    /// advantage: above 1 is better for Sextant whichever way the unit goes.
    pub fn cells(&self) -> Vec<String> {
        let s = median(&self.sextant);
        let b = median(&self.baseline);
        let advantage = match self.better {
            Better::Higher => s / b,
            Better::Lower => b / s,
        };
        vec![
            self.workload.clone(),
            format!("{} {}", figure(s), self.unit),
            format!("{} {}", figure(b), self.unit),
            format!("{advantage:.2}×"),
        ]
    }
}

/// Whole numbers for large figures, two decimals for small ones.
pub fn figure(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// The middle value (the upper one of an even count); NaN when empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `workload` `repeats` times on each system, alternating so that both
/// see the same machine noise, and records the throughput of each run in
/// `row`. `targets[i]` is what the workload needs to reach system `i`, and
/// `names[i]` names it in the progress lines.
pub async fn alternate<T, F, Fut>(
    row: &mut Row,
    targets: &[T],
    names: &[&str],
    repeats: usize,
    workload: F,
) -> anyhow::Result<()>
where
    T: Clone,
    F: Fn(T) -> Fut,
    Fut: Future<Output = anyhow::Result<Rate>>,
{
    for repeat in 0..repeats {
        for (i, target) in targets.iter().enumerate() {
            let rate = workload(target.clone()).await?;
            eprintln!(
                "  {} {} run {}/{}: {:.0} ops/s, p50 {:?}, p99 {:?}, {} errors",
                names[i],
                row.workload,
                repeat + 1,
                repeats,
                rate.ops_per_sec,
                rate.p50,
                rate.p99,
                rate.errors
            );
            row.push(i, rate.ops_per_sec);
        }
    }
    Ok(())
}

/// Resident memory of a process in KiB (`VmRSS`), 0 if it is gone.
pub fn rss_kib_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// `clients` concurrent loops, each awaiting `op(client, n)` for its `n`th
/// request until `duration` has passed; `op` answers whether the request
/// succeeded.
pub async fn closed_loop<F, Fut>(clients: usize, duration: Duration, op: F) -> Rate
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let tasks = (0..clients).map(|client| {
        let op = op.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                if op(client, n).await {
                    latencies.push(t.elapsed());
                } else {
                    errors += 1;
                }
                n += 1;
            }
            (latencies, errors)
        })
    });
    let mut latencies = Vec::new();
    let mut errors = 0;
    for (l, e) in futures::future::join_all(tasks).await.into_iter().flatten() {
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Rate {
        ops_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: quantile(&latencies, 0.50),
        p99: quantile(&latencies, 0.99),
        errors,
    }
}
