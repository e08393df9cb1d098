//! The Rust `etcd-client` crate against a 3-server cluster: KV, Txn, a lock
//! built from leases and a Txn on `create_revision`, and one leader SIGKILL
//! in the middle of keep-alive streams and watches. Each client talks to one
//! endpoint, so which server answers is never left to chance.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, LeaseTimeToLiveOptions,
    PutOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use testkit::compat::{Report, Suite};
use testkit::{Cluster, ClusterOpts};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::BIN;

pub const SUITE: Suite = Suite {
    id: "rust-etcd-client",
    client: "Rust etcd-client",
    scope: "KV, Txn, a lock from leases + Txn on `create_revision`; across a leader SIGKILL: \
            keep-alives continue (through a follower, and reconnected to another server) and the \
            leases' keys survive; watches on a follower and resumed on another server from the \
            last revision + 1 see every write once, in order",
};

const P: &str = "/interop/rust";
const DEADLINE: Duration = Duration::from_secs(30);
/// Lease TTL across the failover: shorter than the failover would take if
/// keep-alives stopped, so a lost keep-alive shows.
const FAILOVER_TTL: i64 = 4;
const KEEP_ALIVE_EVERY: Duration = Duration::from_millis(500);

pub async fn run() -> Report {
    let mut report = Report::new(SUITE);
    report.version = locked_version("etcd-client").unwrap_or_else(|| String::from("unknown"));
    if let Err(err) = run_all(&mut report).await {
        report.aborted(&err);
    }
    report
}

/// The version Cargo.lock pins for `package`.
fn locked_version(package: &str) -> Option<String> {
    let lock = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    let text = std::fs::read_to_string(lock).ok()?;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{package}\"") {
            let version = lines.next()?.strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_owned());
        }
    }
    None
}

async fn connect(endpoint: &str) -> anyhow::Result<Client> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10));
    Client::connect([endpoint], Some(options))
        .await
        .with_context(|| format!("connecting to {endpoint}"))
}

async fn run_all(report: &mut Report) -> anyhow::Result<()> {
    let mut cluster = Cluster::start(BIN, 3, ClusterOpts::default()).await;
    let leader = cluster.leader_index().await;
    let followers = cluster.follower_indexes().await;
    let endpoint = |i: usize| cluster.server(i).grpc_addr().to_string();
    let ends = Endpoints {
        leader: endpoint(leader),
        follower: endpoint(followers[0]),
        other: endpoint(followers[1]),
    };
    let mut client = connect(&ends.follower).await?;
    let result = kv(&mut client).await;
    report.step("kv: put, get, prefix, delete with prev_kv", result)?;
    let result = txn(&mut client).await;
    report.step(
        "txn: value, version, create and mod compares, both branches",
        result,
    )?;
    let result = lock(&ends).await;
    report.step(
        "lock from lease + Txn on create_revision: exclusion, release, expiry of a dead holder",
        result,
    )?;
    failover(report, &mut cluster, leader, &ends).await
}

struct Endpoints {
    leader: String,
    follower: String,
    other: String,
}

async fn kv(c: &mut Client) -> anyhow::Result<()> {
    let first = c.put(format!("{P}/kv/a"), "1", None).await?;
    let rev = first.header().map_or(0, |h| h.revision());
    c.put(format!("{P}/kv/b"), "2", None).await?;
    let got = c
        .get(format!("{P}/kv/"), Some(GetOptions::new().with_prefix()))
        .await?;
    let listed: Vec<(&[u8], &[u8])> = got.kvs().iter().map(|kv| (kv.key(), kv.value())).collect();
    ensure!(
        listed
            == [
                (format!("{P}/kv/a").as_bytes(), &b"1"[..]),
                (format!("{P}/kv/b").as_bytes(), &b"2"[..])
            ],
        "prefix listing {listed:?}"
    );
    ensure!(
        got.kvs()[0].create_revision() == rev,
        "create revision of a"
    );
    let deleted = c
        .delete(
            format!("{P}/kv/a"),
            Some(etcd_client::DeleteOptions::new().with_prev_key()),
        )
        .await?;
    ensure!(deleted.deleted() == 1, "deleted {}", deleted.deleted());
    ensure!(
        deleted.prev_kvs().first().map(|kv| kv.value()) == Some(&b"1"[..]),
        "prev_kv of the delete"
    );
    let after = c.get(format!("{P}/kv/a"), None).await?;
    ensure!(after.kvs().is_empty(), "a is gone");
    Ok(())
}

async fn txn(c: &mut Client) -> anyhow::Result<()> {
    let k = format!("{P}/txn/k");
    c.put(k.as_str(), "v1", None).await?;
    let done = c
        .txn(
            Txn::new()
                .when([
                    Compare::value(k.as_str(), CompareOp::Equal, "v1"),
                    Compare::version(k.as_str(), CompareOp::Greater, 0),
                ])
                .and_then([
                    TxnOp::put(k.as_str(), "v2", None),
                    TxnOp::get(k.as_str(), None),
                ])
                .or_else([TxnOp::put(k.as_str(), "wrong", None)]),
        )
        .await?;
    ensure!(
        done.succeeded(),
        "matching compares take the success branch"
    );
    match done.op_responses().get(1) {
        Some(TxnOpResponse::Get(got)) => {
            ensure!(
                got.kvs().first().map(|kv| kv.value()) == Some(&b"v2"[..]),
                "get in txn"
            );
        }
        other => bail!("second txn response {other:?}"),
    }
    let refused = c
        .txn(
            Txn::new()
                .when([Compare::create_revision(k.as_str(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(k.as_str(), "wrong", None)])
                .or_else([TxnOp::get(k.as_str(), None)]),
        )
        .await?;
    ensure!(
        !refused.succeeded(),
        "create_revision == 0 fails on an existing key"
    );
    let current = c.get(k.as_str(), None).await?;
    let kv = current.kvs().first().context("k exists")?;
    ensure!(kv.value() == b"v2", "the failure branch wrote nothing");
    let deleted = c
        .txn(
            Txn::new()
                .when([Compare::mod_revision(
                    k.as_str(),
                    CompareOp::Equal,
                    kv.mod_revision(),
                )])
                .and_then([TxnOp::delete(k.as_str(), None)]),
        )
        .await?;
    ensure!(deleted.succeeded(), "mod_revision compare");
    ensure!(
        c.get(k.as_str(), None).await?.kvs().is_empty(),
        "txn delete applied"
    );
    Ok(())
}

/// A mutex as etcd's recipe builds it: each contender puts `name/<lease>`
/// with its lease (Txn: only if absent); the owner is the key with the
/// lowest create_revision; a waiter watches the key just before its own
/// until it is deleted (released, or its holder's lease ran out).
async fn lock_acquire(c: &mut Client, name: &str, lease: i64) -> anyhow::Result<String> {
    let mine = format!("{name}/{lease:016x}");
    c.txn(
        Txn::new()
            .when([Compare::create_revision(mine.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                mine.as_str(),
                "",
                Some(PutOptions::new().with_lease(lease)),
            )]),
    )
    .await?;
    loop {
        let queue = c
            .get(
                format!("{name}/"),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Create, SortOrder::Ascend),
                ),
            )
            .await?;
        let revision = queue.header().map_or(0, |h| h.revision());
        let position = queue
            .kvs()
            .iter()
            .position(|kv| kv.key() == mine.as_bytes())
            .context("our lock key vanished (lease expired?)")?;
        if position == 0 {
            return Ok(mine);
        }
        let before = queue.kvs()[position - 1].key().to_vec();
        let mut stream = c
            .watch(
                before,
                Some(WatchOptions::new().with_start_revision(revision + 1)),
            )
            .await?;
        'wait: loop {
            let response = stream.message().await?.context("watch ended")?;
            for event in response.events() {
                if event.event_type() == EventType::Delete {
                    break 'wait;
                }
            }
        }
    }
}

async fn lock_release(c: &mut Client, key: &str) -> anyhow::Result<()> {
    c.delete(key, None).await?;
    Ok(())
}

/// Keeps `lease` alive from a task until the returned sender is dropped.
fn keep_alive_until_dropped(mut c: Client, lease: i64) -> watch::Sender<()> {
    let (stop, mut stopped) = watch::channel(());
    tokio::spawn(async move {
        let Ok((mut keeper, mut answers)) = c.lease_keep_alive(lease).await else {
            return;
        };
        loop {
            if keeper.keep_alive().await.is_err() || answers.message().await.is_err() {
                return;
            }
            tokio::select! {
                _ = stopped.changed() => return,
                () = tokio::time::sleep(KEEP_ALIVE_EVERY) => {}
            }
        }
    });
    stop
}

async fn wait_registered(c: &mut Client, name: &str, count: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let got = c
            .get(
                format!("{name}/"),
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await?;
        if usize::try_from(got.count())? == count {
            return Ok(());
        }
        ensure!(
            start.elapsed() < DEADLINE,
            "{count} contenders never registered"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn finish<T>(task: JoinHandle<anyhow::Result<T>>, what: &str) -> anyhow::Result<T> {
    tokio::time::timeout(DEADLINE, task)
        .await
        .map_err(|_| anyhow!("{what} did not happen within {DEADLINE:?}"))??
}

async fn lock(ends: &Endpoints) -> anyhow::Result<()> {
    let name = format!("{P}/lock");
    let mut a = connect(&ends.follower).await?;
    let mut b = connect(&ends.other).await?;
    let mut c = connect(&ends.leader).await?;

    let lease_a = a.lease_grant(30, None).await?.id();
    let held_a = lock_acquire(&mut a, &name, lease_a).await?;

    // B queues behind A and stays blocked until A releases.
    let lease_b = b.lease_grant(2, None).await?.id();
    let b_alive = keep_alive_until_dropped(b.clone(), lease_b);
    let name_b = name.clone();
    let mut b_task = b.clone();
    let waiting_b = tokio::spawn(async move { lock_acquire(&mut b_task, &name_b, lease_b).await });
    wait_registered(&mut a, &name, 2).await?;
    ensure!(!waiting_b.is_finished(), "B acquired while A held the lock");
    lock_release(&mut a, &held_a).await?;
    let held_b = finish(waiting_b, "B acquiring after A released").await?;

    // C queues behind B; B's holder dies (its keep-alives stop), its lease
    // runs out, and C gets the lock without anyone releasing it.
    let lease_c = c.lease_grant(30, None).await?.id();
    let name_c = name.clone();
    let mut c_task = c.clone();
    let waiting_c = tokio::spawn(async move { lock_acquire(&mut c_task, &name_c, lease_c).await });
    wait_registered(&mut a, &name, 2).await?;
    ensure!(!waiting_c.is_finished(), "C acquired while B held the lock");
    drop(b_alive);
    let died = Instant::now();
    let held_c = finish(waiting_c, "C acquiring after B's lease ran out").await?;
    ensure!(
        died.elapsed() > Duration::from_millis(500),
        "C acquired {:?} after B died; B's lease should have held it",
        died.elapsed()
    );
    let left = a.get(held_b.as_str(), None).await?;
    ensure!(left.kvs().is_empty(), "B's key went with its lease");
    lock_release(&mut c, &held_c).await?;
    a.lease_revoke(lease_a).await?;
    c.lease_revoke(lease_c).await?;
    Ok(())
}

/// (key, mod_revision, is_put) of every event a watch delivered, and how it ended.
#[derive(Default)]
struct Seen {
    events: Vec<(String, i64, bool)>,
    ended: Option<String>,
}

fn collect(mut stream: etcd_client::WatchStream) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let out = Arc::clone(&seen);
    tokio::spawn(async move {
        let ended = loop {
            match stream.message().await {
                Ok(Some(response)) => {
                    let mut seen = out.lock().unwrap_or_else(|e| e.into_inner());
                    for event in response.events() {
                        if let Some(kv) = event.kv() {
                            seen.events.push((
                                String::from_utf8_lossy(kv.key()).into_owned(),
                                kv.mod_revision(),
                                event.event_type() == EventType::Put,
                            ));
                        }
                    }
                }
                Ok(None) => break String::from("stream closed"),
                Err(err) => break err.to_string(),
            }
        };
        out.lock().unwrap_or_else(|e| e.into_inner()).ended = Some(ended);
    });
    seen
}

fn snapshot(seen: &Mutex<Seen>) -> (Vec<(String, i64, bool)>, Option<String>) {
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    (seen.events.clone(), seen.ended.clone())
}

async fn wait_until<F: FnMut() -> Result<(), String>>(
    what: &str,
    mut probe: F,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(()) => return Ok(()),
            Err(why) if start.elapsed() > DEADLINE => {
                bail!("timed out waiting for {what}: {why}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

/// Creates `key` once, retrying through an election: the Txn puts only if
/// the key is absent, so a retry of a write that did happen changes nothing.
async fn put_once(c: &mut Client, key: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, "v", None)]);
        match c.txn(txn).await {
            Ok(_) => return Ok(()),
            Err(err) if start.elapsed() > DEADLINE => bail!("cannot write {key}: {err}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Exactly the expected puts, in order: no gap, no duplicate.
fn exactly(events: &[(String, i64, bool)], expected: &[(String, i64)]) -> Result<(), String> {
    let got: Vec<(String, i64)> = events.iter().map(|(k, r, _)| (k.clone(), *r)).collect();
    if events.iter().any(|(_, _, put)| !put) {
        return Err(format!("unexpected DELETE events: {events:?}"));
    }
    if got == expected {
        return Ok(());
    }
    let missing: Vec<_> = expected.iter().filter(|e| !got.contains(e)).collect();
    let twice: Vec<_> = got
        .iter()
        .filter(|e| got.iter().filter(|g| g == e).count() > 1)
        .collect();
    Err(format!(
        "{} events for {} writes; missing {missing:?}; duplicated {twice:?}; got {got:?}",
        got.len(),
        expected.len()
    ))
}

/// What a keep-alive loop saw: every TTL answered, and its reconnections.
#[derive(Debug, Default)]
struct Kept {
    ttls: Vec<i64>,
    reconnects: Vec<String>,
}

/// Renews `lease` every [`KEEP_ALIVE_EVERY`] until `stop` fires, starting on
/// `first` and, if that stream breaks, continuing on `fallback`.
async fn keep_alive_loop(
    first: String,
    fallback: Option<String>,
    lease: i64,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Kept> {
    let mut kept = Kept::default();
    let mut endpoint = first;
    let mut fallback = fallback;
    'connect: loop {
        let mut client = connect(&endpoint).await?;
        let (mut keeper, mut answers) = client.lease_keep_alive(lease).await?;
        loop {
            let renewed = async {
                keeper.keep_alive().await?;
                let answer = tokio::time::timeout(DEADLINE, answers.message())
                    .await
                    .map_err(|_| anyhow!("no keep-alive answer within {DEADLINE:?}"))??;
                answer.map(|a| a.ttl()).context("keep-alive stream closed")
            };
            match renewed.await {
                Ok(ttl) => kept.ttls.push(ttl),
                Err(err) => match fallback.take() {
                    Some(next) => {
                        kept.reconnects
                            .push(format!("{endpoint} failed ({err:#}), now {next}"));
                        endpoint = next;
                        continue 'connect;
                    }
                    None => return Err(err.context(format!("keep-alive through {endpoint}"))),
                },
            }
            if *stop.borrow() {
                return Ok(kept);
            }
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(KEEP_ALIVE_EVERY) => {}
            }
        }
    }
}

async fn failover(
    report: &mut Report,
    cluster: &mut Cluster,
    leader: usize,
    ends: &Endpoints,
) -> anyhow::Result<()> {
    let mut writer = connect(&ends.follower).await?;
    let mut on_leader = connect(&ends.leader).await?;
    let mut on_other = connect(&ends.other).await?;

    // Two leases, each with a key: one renewed through a follower, one
    // through the leader (then through another server once it is gone).
    let via_follower = writer.lease_grant(FAILOVER_TTL, None).await?.id();
    let via_leader = on_leader.lease_grant(FAILOVER_TTL, None).await?.id();
    let key_f = format!("{P}/lease/via-follower");
    let key_l = format!("{P}/lease/via-leader");
    writer
        .put(
            key_f.as_str(),
            "x",
            Some(PutOptions::new().with_lease(via_follower)),
        )
        .await?;
    writer
        .put(
            key_l.as_str(),
            "x",
            Some(PutOptions::new().with_lease(via_leader)),
        )
        .await?;
    let (stop_keeping, stop) = watch::channel(false);
    let keep_f = tokio::spawn(keep_alive_loop(
        ends.follower.clone(),
        None,
        via_follower,
        stop.clone(),
    ));
    let keep_l = tokio::spawn(keep_alive_loop(
        ends.leader.clone(),
        Some(ends.other.clone()),
        via_leader,
        stop,
    ));

    // Two watches from the same revision: one on the surviving follower, one
    // on the leader that is about to die.
    let prefix = format!("{P}/failover/");
    let start = writer.put(format!("{P}/failover-start"), "x", None).await?;
    let start_rev = start.header().map_or(0, |h| h.revision()) + 1;
    let options = || {
        WatchOptions::new()
            .with_prefix()
            .with_start_revision(start_rev)
    };
    let follower_watch = collect(on_other.watch(prefix.as_str(), Some(options())).await?);
    let leader_watch = collect(on_leader.watch(prefix.as_str(), Some(options())).await?);

    let (before, after) = (10, 20);
    let names: Vec<String> = (0..before + after)
        .map(|i| format!("{prefix}k{i:03}"))
        .chain([format!("{prefix}zz-end")])
        .collect();
    for name in &names[..before] {
        put_once(&mut writer, name).await?;
    }
    wait_until("both watches to see the first writes", || {
        let f = snapshot(&follower_watch).0.len();
        let l = snapshot(&leader_watch).0.len();
        if f >= before && l >= before {
            Ok(())
        } else {
            Err(format!("follower saw {f}, leader saw {l}"))
        }
    })
    .await?;

    println!(
        "[rust-etcd-client] SIGKILL leader {}",
        cluster.server(leader).name()
    );
    cluster.server_mut(leader).kill().await;
    let killed = Instant::now();

    for name in &names[before..] {
        put_once(&mut writer, name).await?;
    }
    wait_until(
        "the killed leader's watch stream to end",
        || match snapshot(&leader_watch).1 {
            Some(_) => Ok(()),
            None => Err(String::from("still open")),
        },
    )
    .await?;
    let (seen_before, _) = snapshot(&leader_watch);
    let last = seen_before.last().map_or(start_rev - 1, |e| e.1);
    let resumed = collect(
        on_other
            .watch(
                prefix.as_str(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(last + 1),
                ),
            )
            .await?,
    );

    let stored = writer
        .get(
            prefix.as_str(),
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_sort(SortTarget::Mod, SortOrder::Ascend),
            ),
        )
        .await?;
    let expected: Vec<(String, i64)> = stored
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                kv.mod_revision(),
            )
        })
        .collect();
    let keys: Vec<&String> = expected.iter().map(|(k, _)| k).collect();
    ensure!(
        keys == names.iter().collect::<Vec<_>>(),
        "stored keys in revision order {keys:?}"
    );
    // The last write is a sentinel: once a watch delivered it, everything
    // before it (duplicates included) has been delivered too.
    let end = names.last().cloned().unwrap_or_default();
    let has_end = |events: &[(String, i64, bool)]| events.iter().any(|(k, _, _)| *k == end);
    let on_follower = wait_until("the follower's watch to reach the last write", || {
        if has_end(&snapshot(&follower_watch).0) {
            Ok(())
        } else {
            Err(String::from("not yet"))
        }
    })
    .await
    .and_then(|()| exactly(&snapshot(&follower_watch).0, &expected).map_err(|e| anyhow!(e)));
    report.step(
        "watch on a surviving follower across a leader SIGKILL: every write once, in order",
        on_follower,
    )?;
    let on_resumed = wait_until("the resumed watch to reach the last write", || {
        if has_end(&snapshot(&resumed).0) {
            Ok(())
        } else {
            Err(String::from("not yet"))
        }
    })
    .await
    .and_then(|()| {
        let mut all = seen_before.clone();
        all.extend(snapshot(&resumed).0);
        exactly(&all, &expected).map_err(|e| anyhow!(e))
    });
    report.step(
        "watch resumed on another server from last revision + 1 after a leader SIGKILL: no loss, no duplicate",
        on_resumed,
    )?;

    // Keep renewing for three TTLs after the kill, then look at what the
    // keep-alives answered.
    let hold = Duration::from_secs(3 * u64::try_from(FAILOVER_TTL)?);
    while killed.elapsed() < hold {
        let left = hold.saturating_sub(killed.elapsed());
        tokio::time::sleep(left.min(Duration::from_millis(250))).await;
    }
    let alive = async {
        for (lease, key) in [(via_follower, &key_f), (via_leader, &key_l)] {
            let ttl = on_other
                .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
                .await?;
            ensure!(
                ttl.ttl() > 0 && ttl.keys() == [key.as_bytes().to_vec()],
                "lease {lease:x}: TTL {} keys {:?}",
                ttl.ttl(),
                ttl.keys()
            );
            ensure!(
                !on_other.get(key.as_str(), None).await?.kvs().is_empty(),
                "{key} is gone"
            );
        }
        anyhow::Ok(())
    }
    .await;
    let _ = stop_keeping.send(true);
    let kept_f = finish(keep_f, "the follower keep-alive loop to stop").await;
    let kept_l = finish(keep_l, "the leader keep-alive loop to stop").await;
    let positive = |kept: &Kept| -> anyhow::Result<()> {
        println!(
            "[rust-etcd-client] keep-alive TTLs {:?}, reconnects {:?}",
            kept.ttls, kept.reconnects
        );
        ensure!(
            kept.ttls.len() > 5,
            "only {} keep-alives answered",
            kept.ttls.len()
        );
        ensure!(
            kept.ttls.iter().all(|&t| t > 0),
            "a keep-alive answered TTL <= 0: {:?}",
            kept.ttls
        );
        Ok(())
    };
    let through_follower = kept_f.and_then(|kept| {
        positive(&kept)?;
        ensure!(
            kept.reconnects.is_empty(),
            "reconnected: {:?}",
            kept.reconnects
        );
        Ok(())
    });
    report.step(
        "keep-alive stream through a follower continues across a leader SIGKILL (TTL > 0 throughout)",
        through_follower,
    )?;
    let reconnected = kept_l.and_then(|kept| {
        positive(&kept)?;
        ensure!(
            kept.reconnects.len() == 1,
            "reconnects: {:?}",
            kept.reconnects
        );
        Ok(())
    });
    report.step(
        "keep-alive reconnected to another server after a leader SIGKILL (TTL > 0 throughout)",
        reconnected,
    )?;
    report.step(
        "after the failover both leases live (TimeToLive > 0) and keep their keys",
        alive,
    )?;

    // Without keep-alives the same leases do run out.
    let expired = async {
        let since = Instant::now();
        loop {
            let f = on_other.get(key_f.as_str(), None).await?.kvs().is_empty();
            let l = on_other.get(key_l.as_str(), None).await?.kvs().is_empty();
            if f && l {
                return anyhow::Ok(());
            }
            ensure!(
                since.elapsed() < DEADLINE,
                "keys still there {:?} after keep-alives stopped",
                since.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    .await;
    report.step(
        "once keep-alives stop, the leases expire and take their keys",
        expired,
    )?;
    Ok(())
}
