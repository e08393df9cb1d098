//! Which server runs which check: rendezvous (highest-random-weight) hashing
//! of the check's key over the voters that currently answer.
//!
//! Every server computes the owner of every check from its own view of who
//! is alive; no assignment is replicated. When a server dies, only its
//! checks move (each to the server with the next-highest weight), and when
//! it comes back they move back. Views may briefly differ between servers:
//! a check is then probed twice or not at all for a moment, which is
//! harmless because only status changes are written and they are idempotent.

use sextant_state::catalog::{Check, CheckKind};

use crate::node::NodeId;

/// A check's identity across the cluster: (node, check id).
pub type CheckKey = (String, String);

/// One server's view of the voters that answer, itself included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    pub me: NodeId,
    /// Sorted, without duplicates; always contains `me`.
    pub alive: Vec<NodeId>,
}

impl Ownership {
    pub fn new(me: NodeId, alive: impl IntoIterator<Item = NodeId>) -> Self {
        let mut alive: Vec<NodeId> = alive.into_iter().chain([me]).collect();
        alive.sort_unstable();
        alive.dedup();
        Self { me, alive }
    }

    /// The server that runs the check on `node` with id `check_id`.
    pub fn owner_of(&self, node: &str, check_id: &str) -> NodeId {
        self.alive
            .iter()
            .copied()
            .max_by_key(|server| (weight(*server, node, check_id), *server))
            .unwrap_or(self.me)
    }

    pub fn owns(&self, node: &str, check_id: &str) -> bool {
        self.owner_of(node, check_id) == self.me
    }
}

/// The server whose decisions about `check` are written: the leader for a
/// TTL check (it keeps every TTL clock), the owner in `ownership` for a
/// probed one; nobody for an external check (its status is written by
/// whoever registers it). `None` also when there is no leader to name.
pub fn decider(check: &Check, ownership: &Ownership, leader: Option<NodeId>) -> Option<NodeId> {
    match check.definition.kind {
        CheckKind::External => None,
        CheckKind::Ttl { .. } => leader,
        CheckKind::Http(_) | CheckKind::Tcp { .. } | CheckKind::Grpc { .. } => {
            Some(ownership.owner_of(&check.node, &check.id))
        }
    }
}

/// A stable 64-bit weight of (server, check): FNV-1a over the bytes, then a
/// finalizer so that nearby server ids spread well. Written out here rather
/// than taken from `std` because every server (and every version of the
/// binary in a rolling upgrade) must compute the same value.
fn weight(server: NodeId, node: &str, check_id: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    feed(&server.to_le_bytes());
    feed(node.as_bytes());
    // A separator so ("ab", "c") and ("a", "bc") differ.
    feed(&[0]);
    feed(check_id.as_bytes());
    mix(hash)
}

/// The splitmix64 finalizer.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A check on `node` with id `check_id` of `kind`, for the tests of who
/// runs and decides checks.
#[cfg(test)]
pub(super) fn check_of_kind(node: &str, check_id: &str, kind: CheckKind) -> Check {
    let mut check = Check {
        node: node.into(),
        id: check_id.into(),
        ..Check::default()
    };
    check.definition.kind = kind;
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, kind: CheckKind) -> Check {
        check_of_kind("n1", id, kind)
    }

    #[test]
    fn the_leader_decides_ttl_checks_and_the_owner_probed_ones() {
        // The leader's view: servers 1, 2 and 3 answer; 1 leads.
        let leaders_view = Ownership::new(1, [2, 3]);
        let ttl = check("service:a", CheckKind::Ttl { ttl_ms: 1_000 });
        assert_eq!(decider(&ttl, &leaders_view, Some(1)), Some(1));
        assert_eq!(decider(&ttl, &leaders_view, None), None);
        // A probed check another server than the leader owns.
        let id = (0..)
            .map(|i| format!("service:b{i}"))
            .find(|id| leaders_view.owner_of("n1", id) != 1)
            .expect("some check is owned by server 2 or 3");
        let probed = check(
            &id,
            CheckKind::Tcp {
                address: "127.0.0.1:1".into(),
            },
        );
        let owner = leaders_view.owner_of("n1", &id);
        assert_eq!(decider(&probed, &leaders_view, Some(1)), Some(owner));
        // A server the leader's view leaves out (it does not answer the
        // leader) decides nothing, whatever its own view says.
        let without_owner = Ownership::new(
            1,
            [1, 2, 3].into_iter().filter(|id| *id != owner && *id != 1),
        );
        assert_ne!(decider(&probed, &without_owner, Some(1)), Some(owner));
        assert_eq!(
            decider(
                &check("service:c", CheckKind::External),
                &leaders_view,
                Some(1)
            ),
            None
        );
    }

    #[test]
    fn a_lone_server_owns_everything() {
        let view = Ownership::new(7, []);
        assert!(view.owns("n", "c"));
        assert_eq!(view.alive, vec![7]);
    }

    #[test]
    fn every_view_agrees_on_the_owner() {
        let a = Ownership::new(1, [2, 3]);
        let b = Ownership::new(2, [3, 1]);
        for i in 0..100 {
            let id = format!("check-{i}");
            assert_eq!(a.owner_of("node", &id), b.owner_of("node", &id));
        }
    }

    #[test]
    fn checks_spread_and_only_the_dead_servers_checks_move() {
        let all = Ownership::new(1, [2, 3]);
        let without_3 = Ownership::new(1, [2]);
        let mut counts = [0usize; 4];
        for i in 0..3000 {
            let id = format!("service:web-{i}");
            let before = all.owner_of("n1", &id);
            counts[before as usize] += 1;
            let after = without_3.owner_of("n1", &id);
            if before != 3 {
                assert_eq!(before, after, "{id} moved although its owner lives");
            } else {
                assert_ne!(after, 3);
            }
        }
        for server in 1..=3 {
            assert!(
                (800..1200).contains(&counts[server]),
                "uneven spread: {counts:?}"
            );
        }
    }

    #[test]
    fn the_weight_is_stable() {
        // A change here would move every check on upgrade.
        assert_eq!(weight(1, "n", "c"), weight(1, "n", "c"));
        assert_ne!(weight(1, "ab", "c"), weight(1, "a", "bc"));
    }
}
