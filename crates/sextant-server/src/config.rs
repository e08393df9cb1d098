//! The configuration of one server, with its defaults and validation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a server needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The server's name in the cluster (Consul's node name).
    pub name: String,
    /// Where the Raft log, the vote, snapshots and the server's identity live.
    pub data_dir: PathBuf,
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub raft_addr: SocketAddr,
    pub dns_addr: SocketAddr,
    /// Nacos's v1 naming HTTP API.
    pub nacos_addr: SocketAddr,
    /// Form a cluster once this many servers know of each other (0: never form, only join).
    pub bootstrap_expect: usize,
    /// Raft addresses of other servers to contact.
    pub join: Vec<String>,
    /// The longest time without a leader's heartbeat before a follower stands
    /// for election (each waits a random time between 3/4 of it and all of it).
    /// Half of it is the leader's lease: a follower that heard from the leader
    /// less than that long ago refuses to vote for anyone else.
    pub election_timeout: Duration,
    /// Take a snapshot (and purge the log) after this many entries since the last one.
    pub snapshot_threshold: u64,
    /// Leave the Raft membership on SIGTERM/SIGINT instead of just stopping.
    pub leave_on_terminate: bool,
    /// Largest value accepted for one key (Consul: 512 KiB).
    pub max_value_bytes: usize,
    /// Revisions of key history kept for reads at a past revision and watches
    /// from the past; older versions are compacted away. 0 keeps everything.
    pub kv_history_retention: u64,
    /// How often the leader checks whether the history needs compacting.
    pub compaction_interval: Duration,
    /// How many applied batches a watcher may fall behind before it is
    /// resynced from the history instead of fed batch by batch.
    pub watch_backlog: usize,
    /// The etcd v3 API on `grpc_addr`.
    pub etcd: crate::etcd::EtcdConfig,
    /// Health checking, check ownership, session TTLs.
    pub health: crate::health::HealthConfig,
    /// The Consul DNS interface on `dns_addr`.
    pub dns: DnsConfig,
    /// The Nacos naming API on `nacos_addr`.
    pub nacos: crate::nacos::NacosConfig,
    /// TEST ONLY — a deliberately planted bug for the safety harness
    /// (`sextant-chaos --planted-bug stale-reads`): linearizable reads skip the
    /// read barrier and are served from local state, so a deposed leader or a
    /// lagging follower answers stale data. Never set it in production.
    pub unsafe_stale_reads: bool,
    /// TEST ONLY — storage faults for the safety harness (see
    /// [`crate::storage::Failpoints`]); only a build with the `failpoints`
    /// feature accepts any.
    pub failpoints: crate::storage::Failpoints,
}

impl ServerConfig {
    /// The defaults of a server at `data_dir` named `name`.
    pub fn new(name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            data_dir: data_dir.into(),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8500)),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 2379)),
            raft_addr: SocketAddr::from(([127, 0, 0, 1], 8300)),
            dns_addr: SocketAddr::from(([127, 0, 0, 1], 8600)),
            nacos_addr: SocketAddr::from(([127, 0, 0, 1], 8848)),
            bootstrap_expect: 0,
            join: Vec::new(),
            election_timeout: Duration::from_millis(1000),
            snapshot_threshold: 10_000,
            leave_on_terminate: false,
            max_value_bytes: 512 * 1024,
            kv_history_retention: 100_000,
            compaction_interval: Duration::from_secs(60),
            watch_backlog: crate::watch_hub::KV_BACKLOG,
            etcd: crate::etcd::EtcdConfig::default(),
            health: crate::health::HealthConfig::default(),
            dns: DnsConfig::default(),
            nacos: crate::nacos::NacosConfig::default(),
            unsafe_stale_reads: false,
            failpoints: crate::storage::Failpoints::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::Invalid {
                field: "name",
                reason: "must not be empty".into(),
            });
        }
        if self.election_timeout < Duration::from_millis(50) {
            return Err(ConfigError::Invalid {
                field: "election_timeout",
                reason: format!("{:?} is below the 50ms minimum", self.election_timeout),
            });
        }
        if self.snapshot_threshold == 0 {
            return Err(ConfigError::Invalid {
                field: "snapshot_threshold",
                reason: "must be at least 1".into(),
            });
        }
        self.dns.validate()?;
        self.nacos.validate()?;
        Ok(())
    }

    /// openraft's configuration derived from ours.
    pub fn raft_config(&self) -> openraft::Config {
        let election_ms = self.election_timeout.as_millis() as u64;
        openraft::Config {
            cluster_name: "sextant".into(),
            // An openraft follower stands for election only after the
            // leader's lease (its `election_timeout_max`) and then a random
            // `election_timeout_min..max` have passed since the last
            // heartbeat. Half and a quarter of ours make that 3/4 to all of
            // `election_timeout`: what the setting promises.
            election_timeout_min: (election_ms / 4).max(1),
            election_timeout_max: (election_ms / 2).max(2),
            heartbeat_interval: (election_ms / 10).max(10),
            install_snapshot_timeout: (election_ms * 4).max(2000),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_threshold),
            // Keep as many entries after a snapshot as trigger one, so a briefly
            // lagging follower catches up from the log, not a whole snapshot.
            max_in_snapshot_log_to_keep: self.snapshot_threshold,
            purge_batch_size: 64,
            // Entries per AppendEntries. A batched entry holds up to 128 KiB
            // of commands (`raft::batcher`), a snapshot restore up to 32 MiB:
            // 64 of the one and one of the other stay under the 64 MiB
            // message limit (`raft::network::MAX_MESSAGE_BYTES`).
            max_payload_entries: 64,
            snapshot_max_chunk_size: 4 * 1024 * 1024,
            ..Default::default()
        }
    }
}

/// The Consul DNS interface (`NAME.service.consul`, `NODE.node.consul`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// The zone answered for, ending in a dot (Consul: `consul.`); names
    /// outside it are refused, never recursed.
    pub domain: String,
    /// Leave out instances whose health is warning, not only critical ones.
    pub only_passing: bool,
    /// Most answer records in one UDP response (Consul: 3); the rest are cut
    /// off with the TC bit set and a client retries over TCP for all of them.
    pub udp_answer_limit: usize,
    /// TTL of every record; 0 (the default) keeps resolvers from caching
    /// instances that have since gone critical.
    pub ttl: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            domain: "consul.".into(),
            only_passing: false,
            udp_answer_limit: 3,
            ttl: Duration::ZERO,
        }
    }
}

impl DnsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| ConfigError::Invalid {
            field,
            reason: reason.into(),
        };
        let domain = self.domain.trim_end_matches('.');
        if domain.is_empty()
            || domain.split('.').any(|label| {
                label.is_empty()
                    || label.len() > 63
                    || !label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        {
            return Err(invalid(
                "dns_domain",
                "must be a domain name such as `consul.`",
            ));
        }
        if self.udp_answer_limit == 0 {
            return Err(invalid("dns_udp_answer_limit", "must be at least 1"));
        }
        if self.ttl.as_secs() > u64::from(i32::MAX as u32) {
            return Err(invalid("dns_ttl", "must be below 2^31 seconds"));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_config_is_validated() {
        assert!(DnsConfig::default().validate().is_ok());
        let with = |f: fn(&mut DnsConfig)| {
            let mut config = DnsConfig::default();
            f(&mut config);
            config.validate()
        };
        assert!(with(|c| c.domain = "sextant.internal".into()).is_ok());
        assert!(with(|c| c.domain = "".into()).is_err());
        assert!(with(|c| c.domain = "a..b".into()).is_err());
        assert!(with(|c| c.domain = "bad domain.".into()).is_err());
        assert!(with(|c| c.udp_answer_limit = 0).is_err());
    }
}
