//! Runs a fuzz target body on stable Rust: random byte buffers from a seeded
//! generator, for a bounded time, plus the checked-in corpus. CI cannot run
//! libFuzzer for long; this keeps every target exercised on every test run,
//! and a failure names the seed and input that reproduce it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

/// The variable that fixes the seed of a run (otherwise taken from the clock).
pub const SEED_VAR: &str = "SEXTANT_FUZZ_SEED";

/// SplitMix64: small, fast, and with a full period; quality enough to
/// produce test inputs, and no dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// The seed for this run: `SEXTANT_FUZZ_SEED` if set, else the clock.
pub fn seed() -> u64 {
    if let Some(seed) = std::env::var(SEED_VAR)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return seed;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Runs `target` on every file of `corpus` (if the directory exists), then
/// on random inputs of up to `max_len` bytes, some of them mutated corpus
/// files, until `budget` has passed. Returns how many inputs ran; a panic in
/// `target` becomes a panic naming `name`, the seed and the input.
pub fn run(
    name: &str,
    target: fn(&[u8]),
    corpus: &Path,
    seed: u64,
    max_len: usize,
    budget: Duration,
) -> u64 {
    eprintln!("fuzz target {name}: seed {seed} (set {SEED_VAR}={seed} to replay)");
    let seeds = read_corpus(corpus);
    for (path, input) in &seeds {
        exercise(name, target, input, &format!("corpus file {path}"));
    }
    let mut rng = SplitMix64(seed);
    let deadline = Instant::now() + budget;
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let input = if !seeds.is_empty() && rng.below(2) == 0 {
            let base = &seeds[rng.below(seeds.len() as u64) as usize].1;
            mutate(base, &mut rng)
        } else {
            let len = rng.below(max_len as u64 + 1) as usize;
            (0..len).map(|_| rng.next() as u8).collect()
        };
        exercise(name, target, &input, &format!("seed {seed}, input {runs}"));
        runs += 1;
    }
    eprintln!(
        "fuzz target {name}: {runs} random inputs and {} corpus files passed",
        seeds.len()
    );
    runs
}

fn exercise(name: &str, target: fn(&[u8]), input: &[u8], origin: &str) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(input))) {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        panic!("fuzz target {name} failed on {origin}: {message}\ninput: {input:02x?}");
    }
}

/// A few random byte edits: overwrite, insert, remove, truncate.
fn mutate(base: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    let mut out = base.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() as u64 + 1) as usize;
        match rng.below(4) {
            0 if at < out.len() => out[at] = rng.next() as u8,
            1 => out.insert(at, rng.next() as u8),
            2 if at < out.len() => {
                out.remove(at);
            }
            _ => out.truncate(at),
        }
    }
    out
}

fn read_corpus(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            let bytes = std::fs::read(e.path()).ok()?;
            Some((e.path().display().to_string(), bytes))
        })
        .collect();
    files.sort();
    files
}
