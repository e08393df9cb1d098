//! The log's fsyncs, checked with the storage failpoints (building the tests
//! builds the sextant binary with the `failpoints` feature): a write is
//! acknowledged only once it is fsynced, so it survives a power cut, and a
//! server whose fsync fails stops instead of acknowledging what it could not
//! sync. The planted `unsynced-acks` bug shows that the power-cut check can
//! fail: acknowledged writes are lost with it.

use std::time::Duration;

use testkit::{wait_for, Consistency, Server};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

/// Writes to make before the fault.
const KEYS: usize = 20;

async fn dev_with(failpoints: &str) -> Server {
    Server::start_dev_with(BIN, &["--failpoints".to_owned(), failpoints.to_owned()]).await
}

async fn put_keys(server: &Server, prefix: &str) {
    for i in 0..KEYS {
        let key = format!("{prefix}/{i:02}");
        let acked = server
            .http()
            .kv_put(&key, format!("v{i}"))
            .await
            .unwrap_or_else(|e| panic!("PUT {key}: {e:#}"));
        assert!(acked, "PUT {key} returned false");
    }
}

/// The keys under `prefix` once the restarted agent leads again.
async fn keys_after_restart(server: &Server, prefix: &str) -> Vec<String> {
    wait_for(
        "the restarted agent to answer reads",
        Duration::from_secs(30),
        || async {
            server
                .http()
                .kv_keys(&format!("{prefix}/"), Consistency::Default)
                .await
                .map_err(|e| format!("{e:#}"))
        },
    )
    .await
}

#[tokio::test]
async fn acknowledged_writes_survive_a_power_cut() {
    let mut server = dev_with("power-loss").await;
    put_keys(&server, "durable").await;
    // SIGKILL; on the way up the failpoint discards every byte never fsynced.
    server.restart().await;
    let keys = keys_after_restart(&server, "durable").await;
    assert_eq!(keys.len(), KEYS, "acknowledged writes lost: {keys:?}");
}

#[tokio::test]
async fn a_power_cut_loses_writes_acknowledged_before_their_fsync() {
    let mut server = dev_with("power-loss,unsynced-acks").await;
    put_keys(&server, "planted").await;
    server.restart().await;
    let keys = keys_after_restart(&server, "planted").await;
    assert!(
        keys.len() < KEYS,
        "the power cut kept writes that were never fsynced: {keys:?}"
    );
    assert!(
        server.output_contains("discarded log bytes that were never fsynced"),
        "{}",
        server.log_tail(30)
    );
}

#[tokio::test]
async fn a_failing_fsync_stops_the_server_without_acknowledging() {
    let mut server = dev_with("fsync-error").await;
    put_keys(&server, "before").await;
    let trigger = server.data_dir().join("raft-log").join("fail-fsync");
    std::fs::write(&trigger, b"").expect("arming the failpoint");

    let answer = server.http().kv_put("after/key", "never synced").await;
    assert!(
        !matches!(answer, Ok(true)),
        "a write whose fsync failed was acknowledged"
    );
    let status = server
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| {
            panic!(
                "still running after a failed fsync\n{}",
                server.log_tail(30)
            )
        });
    assert!(
        !status.success(),
        "exited with {status} after a failed fsync"
    );
    assert!(
        server.output_contains("injected fsync failure"),
        "{}",
        server.log_tail(30)
    );

    std::fs::remove_file(&trigger).expect("disarming the failpoint");
    server.restart().await;
    let keys = keys_after_restart(&server, "before").await;
    assert_eq!(keys.len(), KEYS, "acknowledged writes lost: {keys:?}");
}
