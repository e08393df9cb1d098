//! openraft's configuration, derived from the server's own settings.

use std::time::Duration;

/// openraft's configuration for an election timeout and snapshot threshold.
pub fn raft_config(election_timeout: Duration, snapshot_threshold: u64) -> openraft::Config {
    let election_ms = election_timeout.as_millis() as u64;
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
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_threshold),
        // Keep as many entries after a snapshot as trigger one, so a briefly
        // lagging follower catches up from the log, not a whole snapshot.
        max_in_snapshot_log_to_keep: snapshot_threshold,
        purge_batch_size: 64,
        // Entries per AppendEntries. A batched entry holds up to 128 KiB
        // of commands (`raft::batcher`), a snapshot restore up to 32 MiB:
        // 64 of the one and one of the other stay under the 64 MiB
        // message limit (`peer::MAX_MESSAGE_BYTES`).
        max_payload_entries: 64,
        snapshot_max_chunk_size: 4 * 1024 * 1024,
        ..Default::default()
    }
}
