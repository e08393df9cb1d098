//! The leader compacts the key history down to the configured retention.

use crate::common;

use std::time::{Duration, Instant};

use sextant_server::start;
use sextant_state::{KvCondition, LockAction, Op};

#[tokio::test(flavor = "multi_thread")]
async fn history_is_compacted_to_the_retention() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = common::single_server_config(dir.path());
    config.kv_history_retention = 5;
    config.compaction_interval = Duration::from_millis(20);
    let server = start(config).await.expect("server starts");
    let registry = server.registry.clone();

    let mut last = 0;
    for n in 0..30 {
        let put = Op::KvPut {
            key: b"busy".to_vec(),
            value: format!("v{n}").into_bytes(),
            flags: 0,
            lease: None,
            condition: KvCondition::None,
            lock: LockAction::None,
        };
        last = registry.write(put).await.expect("write").revision;
    }

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (compacted, oldest_readable) = {
            let state = registry.view();
            let kv = state.kv();
            (
                kv.compacted_revision(),
                kv.get_at(b"busy", last - 20).is_ok(),
            )
        };
        if compacted >= last - 5 {
            assert!(
                !oldest_readable,
                "a version older than the retention is still readable"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "history not compacted: compacted revision {compacted}, last write {last}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The newest version is untouched by compaction.
    let value = registry.view().kv().get(b"busy").map(|kv| kv.value.clone());
    assert_eq!(value, Some(b"v29".to_vec()));
    server.shutdown(false).await.expect("clean shutdown");
}
