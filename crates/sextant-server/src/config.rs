//! The configuration of one server, with its defaults and validation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sextant_core::ConfigError;

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
    pub etcd: sextant_etcd::EtcdConfig,
    /// Health checking, check ownership, session TTLs.
    pub health: sextant_core::health::HealthConfig,
    /// The Consul DNS interface on `dns_addr`.
    pub dns: sextant_dns::DnsConfig,
    /// The Nacos naming API on `nacos_addr`.
    pub nacos: sextant_nacos::NacosConfig,
    /// TEST ONLY — a deliberately planted bug for the safety harness
    /// (`sextant-chaos --planted-bug stale-reads`): linearizable reads skip the
    /// read barrier and are served from local state, so a deposed leader or a
    /// lagging follower answers stale data. Never set it in production.
    pub unsafe_stale_reads: bool,
    /// TEST ONLY — storage faults for the safety harness (see
    /// [`sextant_storage::Failpoints`]); only a build with the `failpoints`
    /// feature accepts any.
    pub failpoints: sextant_storage::Failpoints,
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
            watch_backlog: sextant_core::watch_hub::KV_BACKLOG,
            etcd: sextant_etcd::EtcdConfig::default(),
            health: sextant_core::health::HealthConfig::default(),
            dns: sextant_dns::DnsConfig::default(),
            nacos: sextant_nacos::NacosConfig::default(),
            unsafe_stale_reads: false,
            failpoints: sextant_storage::Failpoints::default(),
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
}
