//! The fault schedule: one fault at a time, each healed before the next, so
//! a majority can always make progress once it is healed — only faults the
//! system must survive. What, whom and how long all come from the seeded
//! generator; the leader is a favourite target.

use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use testkit::Cluster;

use crate::network::Network;

/// While this file exists in a server's data directory, its log fsyncs fail
/// (the server's `fsync-error` failpoint: `FAIL_FSYNC_FILE` in the log
/// directory, `raft-log`).
const FAIL_FSYNC: &str = "raft-log/fail-fsync";

/// A kind of fault, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL a server, keep it down a while, start it again.
    Kill,
    /// SIGKILL a server and start it again at once.
    Restart,
    /// SIGSTOP a server for longer than the election timeout, then SIGCONT.
    Pause,
    /// Cut the network: isolate one server, split majority/minority, or leave
    /// one server as a bridge that sees both halves.
    Partition,
    /// Isolate the current leader from every peer (clients still reach it).
    PartitionLeader,
    /// Make a server's log fsyncs fail (the `fsync-error` failpoint): it must
    /// stop without acknowledging what it could not sync; then start it again.
    Disk,
}

impl FaultKind {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Restart => "restart",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::PartitionLeader => "partition-leader",
            FaultKind::Disk => "disk",
        }
    }

    pub fn needs_network(self) -> bool {
        matches!(self, FaultKind::Partition | FaultKind::PartitionLeader)
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(text: &str) -> Result<FaultKind, String> {
        Ok(match text {
            "kill" => FaultKind::Kill,
            "restart" => FaultKind::Restart,
            "pause" => FaultKind::Pause,
            "partition" => FaultKind::Partition,
            "partition-leader" => FaultKind::PartitionLeader,
            "disk" => FaultKind::Disk,
            other => {
                return Err(format!(
                "unknown fault {other:?} (kill, restart, pause, partition, partition-leader, disk)"
            ))
            }
        })
    }
}

/// Drives faults against a cluster until a deadline.
pub struct Injector<'a> {
    pub cluster: &'a mut Cluster,
    pub network: Option<&'a mut Network>,
    pub kinds: Vec<FaultKind>,
    pub rng: StdRng,
    pub election_timeout: Duration,
    /// Seconds since the run started, for the log lines.
    pub started: Instant,
}

impl Injector<'_> {
    /// Injects faults until `until`; every fault is healed before returning.
    /// Returns how many were injected.
    pub async fn run(&mut self, until: Instant) -> anyhow::Result<u64> {
        let mut injected = 0;
        if self.kinds.is_empty() {
            tokio::time::sleep_until(until.into()).await;
            return Ok(0);
        }
        loop {
            let quiet = self
                .election_timeout
                .mul_f64(self.rng.random_range(1.0..3.0));
            tokio::time::sleep(quiet).await;
            let hold = self
                .election_timeout
                .mul_f64(self.rng.random_range(2.0..5.0));
            if Instant::now() + hold >= until {
                tokio::time::sleep_until(until.into()).await;
                return Ok(injected);
            }
            let kind = *self.kinds.choose(&mut self.rng).unwrap_or(&FaultKind::Kill);
            self.inject(kind, hold).await?;
            injected += 1;
        }
    }

    async fn inject(&mut self, kind: FaultKind, hold: Duration) -> anyhow::Result<()> {
        let n = self.cluster.len();
        let leader = self.cluster.current_leader().await.ok();
        let target = match leader {
            Some(leader) if kind == FaultKind::PartitionLeader || self.rng.random_bool(0.6) => {
                leader
            }
            _ => self.rng.random_range(0..n),
        };
        let name = self.cluster.server(target).name().to_owned();
        let role = if leader == Some(target) {
            "leader"
        } else {
            "server"
        };
        match kind {
            FaultKind::Kill => {
                log(self.started, format!("kill {role} {name} for {hold:?}"));
                self.cluster.server_mut(target).kill().await;
                tokio::time::sleep(hold).await;
                self.cluster.server_mut(target).restart().await;
                log(self.started, format!("restarted {name}"));
            }
            FaultKind::Restart => {
                log(self.started, format!("crash-restart {role} {name}"));
                self.cluster.server_mut(target).restart().await;
            }
            FaultKind::Disk => {
                log(self.started, format!("failing disk under {role} {name}"));
                let trigger = self.cluster.server(target).data_dir().join(FAIL_FSYNC);
                std::fs::write(&trigger, b"")?;
                // Writes keep coming, so the next group commit fails; the
                // server must then stop rather than go on without its log.
                let exited = self.cluster.server_mut(target).wait_exit(hold).await;
                std::fs::remove_file(&trigger)?;
                match exited {
                    Some(status) => log(
                        self.started,
                        format!("{name} stopped on the fsync error ({status})"),
                    ),
                    // No write reached it in time (the stop itself is
                    // checked by the sextant crate's storage_faults test).
                    None => log(
                        self.started,
                        format!("{name} was not written to within {hold:?}; killing it"),
                    ),
                }
                self.cluster.server_mut(target).restart().await;
                log(self.started, format!("restarted {name}"));
            }
            FaultKind::Pause => {
                log(self.started, format!("pause {role} {name} for {hold:?}"));
                self.cluster.server_mut(target).pause();
                tokio::time::sleep(hold).await;
                self.cluster.server_mut(target).resume();
                log(self.started, format!("resumed {name}"));
            }
            FaultKind::Partition | FaultKind::PartitionLeader => {
                let (a, b) = if kind == FaultKind::PartitionLeader {
                    (vec![target], others(n, &[target]))
                } else {
                    self.partition_shape(n, target)
                };
                let Some(network) = self.network.as_deref_mut() else {
                    anyhow::bail!("partitions need the network namespaces");
                };
                let shape = if kind == FaultKind::Partition && self.rng.random_bool(0.25) {
                    // A bridge: `target` keeps talking to both sides, which
                    // cannot talk to each other.
                    let rest = others(n, &[target]);
                    let (left, right) = rest.split_at(rest.len() / 2);
                    network.split(left, right)?;
                    format!("{role} {name} as the bridge")
                } else {
                    network.split(&a, &b)?;
                    format!("{} of {n} cut off, {role} {name} among them", a.len())
                };
                let cuts = network.describe();
                log(
                    self.started,
                    format!("partition, {shape}, for {hold:?}: {cuts}"),
                );
                tokio::time::sleep(hold).await;
                network.heal()?;
                log(self.started, "healed the network".to_owned());
            }
        }
        Ok(())
    }

    /// Two sides: `target` alone, or `target` in a random minority.
    fn partition_shape(&mut self, n: usize, target: usize) -> (Vec<usize>, Vec<usize>) {
        let minority = if n >= 5 && self.rng.random_bool(0.5) {
            2
        } else {
            1
        };
        let mut side = vec![target];
        while side.len() < minority {
            let other = self.rng.random_range(0..n);
            if !side.contains(&other) {
                side.push(other);
            }
        }
        let rest = others(n, &side);
        (side, rest)
    }
}

fn log(started: Instant, what: String) {
    println!("[{:>6.1}s] fault: {what}", started.elapsed().as_secs_f64());
}

fn others(n: usize, excluded: &[usize]) -> Vec<usize> {
    (0..n).filter(|i| !excluded.contains(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_names_parse() {
        assert_eq!("kill".parse(), Ok(FaultKind::Kill));
        assert_eq!("partition-leader".parse(), Ok(FaultKind::PartitionLeader));
        assert_eq!("disk".parse(), Ok(FaultKind::Disk));
        assert!("flood".parse::<FaultKind>().is_err());
    }
}
