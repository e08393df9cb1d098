//! One printed seed per test, from which everything random derives.

use rand::distr::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Environment variable that replays a test with a given seed.
pub const TEST_SEED_ENV: &str = "SEXTANT_TEST_SEED";

/// Returns the random generator of one test, seeded from `SEXTANT_TEST_SEED`
/// when it is set, otherwise from the OS; prints the seed either way so a
/// failure can be replayed.
///
/// Derive further generators (one per load task, say) with
/// `StdRng::seed_from_u64(rng.random())`, never from the OS.
pub fn test_rng(test_name: &str) -> StdRng {
    let seed = match std::env::var(TEST_SEED_ENV) {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(seed) => seed,
            Err(err) => panic!("{TEST_SEED_ENV}={text:?} is not a u64: {err}"),
        },
        Err(_) => rand::rng().random(),
    };
    println!("[{test_name}] seed = {seed} (replay with {TEST_SEED_ENV}={seed})");
    StdRng::seed_from_u64(seed)
}

/// A random alphanumeric string of `len` characters, handy for keys and values.
pub fn random_value(rng: &mut impl Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(rng.sample(Alphanumeric)))
        .collect()
}
