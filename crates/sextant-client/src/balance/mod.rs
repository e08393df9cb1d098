//! Choosing one endpoint among the usable ones.

pub mod ewma;
pub mod hash_ring;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use hash_ring::HashRing;

/// How the balancer picks an endpoint.
///
/// ```
/// use sextant_client::Strategy;
/// let s = Strategy::ConsistentHash { virtual_nodes: 160 };
/// assert_ne!(s, Strategy::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Each endpoint in turn.
    RoundRobin,
    /// Uniformly at random.
    Random,
    /// At random, in proportion to the instances' weights.
    WeightedRandom,
    /// Power of two choices: two random endpoints, the one with the lower
    /// peak-EWMA latency × (requests in flight + 1).
    #[default]
    PeakEwma,
    /// Power of two choices by requests in flight alone.
    LeastRequest,
    /// The endpoint owning the request key on a hash ring with this many
    /// virtual nodes per endpoint; random when a call has no key.
    ConsistentHash {
        /// Points per endpoint on the ring (100–200 spreads keys evenly).
        virtual_nodes: u32,
    },
}

/// What the picker knows of one usable endpoint.
///
/// ```
/// let c = sextant_client::Candidate { key: "s1/a", weight: 1, in_flight: 0, cost: 0.01 };
/// assert_eq!(c.weight, 1);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    /// The endpoint's key (`node/id`), which places it on the hash ring.
    pub key: &'a str,
    /// Its weight (at least 1).
    pub weight: u32,
    /// Requests in flight to it.
    pub in_flight: u32,
    /// Its peak-EWMA cost (latency × (in flight + 1)), in seconds.
    pub cost: f64,
}

/// A strategy with its state: the round-robin position, the RNG and the
/// hash ring of the last candidate set.
///
/// ```
/// use sextant_client::{Candidate, Picker, Strategy};
///
/// let mut picker = Picker::new(Strategy::RoundRobin, 7);
/// let c = |key| Candidate { key, weight: 1, in_flight: 0, cost: 0.0 };
/// let set = [c("a"), c("b")];
/// assert_eq!(picker.pick(&set, None), Some(0));
/// assert_eq!(picker.pick(&set, None), Some(1));
/// ```
#[derive(Debug)]
pub struct Picker {
    strategy: Strategy,
    rng: StdRng,
    next: usize,
    /// The ring is rebuilt only when the candidate keys change.
    ring: Option<(Vec<String>, HashRing)>,
}

impl Picker {
    /// A picker whose random choices derive from `seed`.
    ///
    /// ```
    /// let p = sextant_client::Picker::new(sextant_client::Strategy::Random, 1);
    /// assert_eq!(p.strategy(), sextant_client::Strategy::Random);
    /// ```
    pub fn new(strategy: Strategy, seed: u64) -> Picker {
        Picker {
            strategy,
            rng: StdRng::seed_from_u64(seed),
            next: 0,
            ring: None,
        }
    }

    /// The strategy this picker follows.
    ///
    /// ```
    /// let p = sextant_client::Picker::new(sextant_client::Strategy::LeastRequest, 1);
    /// assert_eq!(p.strategy(), sextant_client::Strategy::LeastRequest);
    /// ```
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The index in `candidates` of the endpoint to call; `None` when empty.
    ///
    /// ```
    /// let mut p = sextant_client::Picker::new(sextant_client::Strategy::Random, 1);
    /// assert_eq!(p.pick(&[], None), None);
    /// ```
    pub fn pick(
        &mut self,
        candidates: &[Candidate<'_>],
        request_key: Option<&[u8]>,
    ) -> Option<usize> {
        let n = candidates.len();
        if n == 0 {
            return None;
        }
        if n == 1 {
            return Some(0);
        }
        let index = match self.strategy {
            Strategy::RoundRobin => {
                let i = self.next % n;
                self.next = self.next.wrapping_add(1);
                i
            }
            Strategy::Random => self.rng.random_range(0..n),
            Strategy::WeightedRandom => self.weighted(candidates),
            Strategy::PeakEwma => self.two_choices(candidates, |c| c.cost),
            Strategy::LeastRequest => self.two_choices(candidates, |c| f64::from(c.in_flight)),
            Strategy::ConsistentHash { virtual_nodes } => match request_key {
                Some(key) => self.ring_owner(candidates, key, virtual_nodes),
                None => self.rng.random_range(0..n),
            },
        };
        Some(index)
    }

    fn weighted(&mut self, candidates: &[Candidate<'_>]) -> usize {
        let total: u64 = candidates.iter().map(|c| u64::from(c.weight.max(1))).sum();
        let mut point = self.rng.random_range(0..total);
        for (i, c) in candidates.iter().enumerate() {
            let w = u64::from(c.weight.max(1));
            if point < w {
                return i;
            }
            point -= w;
        }
        candidates.len() - 1
    }

    fn two_choices(
        &mut self,
        candidates: &[Candidate<'_>],
        cost: impl Fn(&Candidate<'_>) -> f64,
    ) -> usize {
        let n = candidates.len();
        let a = self.rng.random_range(0..n);
        let b = (a + self.rng.random_range(1..n)) % n;
        if cost(&candidates[b]) < cost(&candidates[a]) {
            b
        } else {
            a
        }
    }

    fn ring_owner(
        &mut self,
        candidates: &[Candidate<'_>],
        key: &[u8],
        virtual_nodes: u32,
    ) -> usize {
        let same = self.ring.as_ref().is_some_and(|(keys, _)| {
            keys.len() == candidates.len() && keys.iter().zip(candidates).all(|(k, c)| k == c.key)
        });
        if !same {
            let keys: Vec<String> = candidates.iter().map(|c| c.key.to_owned()).collect();
            let ring = HashRing::new(keys.iter().map(String::as_str), virtual_nodes);
            self.ring = Some((keys, ring));
        }
        self.ring
            .as_ref()
            .and_then(|(_, ring)| ring.owner(key))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> u64 {
        let seed = rand::random::<u64>();
        println!("seed = {seed}");
        seed
    }

    fn set<'a>(keys: &[&'a str]) -> Vec<Candidate<'a>> {
        keys.iter()
            .map(|key| Candidate {
                key,
                weight: 1,
                in_flight: 0,
                cost: 0.01,
            })
            .collect()
    }

    fn counts(picker: &mut Picker, candidates: &[Candidate<'_>], picks: usize) -> Vec<usize> {
        let mut counts = vec![0; candidates.len()];
        for _ in 0..picks {
            let i = picker.pick(candidates, None).unwrap_or(usize::MAX);
            counts[i] += 1;
        }
        counts
    }

    #[test]
    fn round_robin_is_exactly_even() {
        let mut p = Picker::new(Strategy::RoundRobin, seed());
        assert_eq!(
            counts(&mut p, &set(&["a", "b", "c"]), 300),
            vec![100, 100, 100]
        );
    }

    #[test]
    fn random_is_roughly_even() {
        let mut p = Picker::new(Strategy::Random, seed());
        for c in counts(&mut p, &set(&["a", "b", "c", "d"]), 40_000) {
            assert!((9_000..11_000).contains(&c), "{c}");
        }
    }

    #[test]
    fn weighted_random_follows_weights() {
        let mut p = Picker::new(Strategy::WeightedRandom, seed());
        let mut candidates = set(&["a", "b", "c"]);
        candidates[0].weight = 1;
        candidates[1].weight = 3;
        candidates[2].weight = 6;
        let c = counts(&mut p, &candidates, 100_000);
        assert!((9_000..11_000).contains(&c[0]), "{c:?}");
        assert!((28_000..32_000).contains(&c[1]), "{c:?}");
        assert!((58_000..62_000).contains(&c[2]), "{c:?}");
    }

    #[test]
    fn peak_ewma_avoids_the_slow_endpoint() {
        let mut p = Picker::new(Strategy::PeakEwma, seed());
        let mut candidates = set(&["fast", "slow", "fast2"]);
        candidates[1].cost = 1.0;
        let c = counts(&mut p, &candidates, 30_000);
        // The slow one wins only when drawn against itself, which p2c never does.
        assert_eq!(c[1], 0, "{c:?}");
        assert!(c[0] > 12_000 && c[2] > 12_000, "{c:?}");
    }

    #[test]
    fn least_request_prefers_idle_endpoints() {
        let mut p = Picker::new(Strategy::LeastRequest, seed());
        let mut candidates = set(&["a", "b", "c", "d"]);
        candidates[0].in_flight = 10;
        candidates[1].in_flight = 5;
        let c = counts(&mut p, &candidates, 40_000);
        assert_eq!(c[0], 0, "the busiest never wins a pair: {c:?}");
        // "b" wins only against "a": 2 ordered pairs of 12.
        assert!((5_500..7_800).contains(&c[1]), "{c:?}");
    }

    #[test]
    fn consistent_hash_sticks_to_the_key_owner() {
        let mut p = Picker::new(Strategy::ConsistentHash { virtual_nodes: 100 }, seed());
        let candidates = set(&["a", "b", "c"]);
        let first = p.pick(&candidates, Some(b"user-7"));
        for _ in 0..100 {
            assert_eq!(p.pick(&candidates, Some(b"user-7")), first);
        }
        let mut seen = [0usize; 3];
        for i in 0..3_000 {
            let key = format!("user-{i}");
            seen[p.pick(&candidates, Some(key.as_bytes())).unwrap_or(0)] += 1;
        }
        for c in seen {
            assert!((700..1_300).contains(&c), "{seen:?}");
        }
    }
}
