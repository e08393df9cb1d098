"""Interop checks of the Python etcd3 client (Debian's python3-etcd3) against
a 3-server Sextant cluster: KV, Txn, leases, a lock built from a lease and a
Txn, watches, and a watch that survives a leader kill without gap or
duplicate.

Driven by crates/sextant/tests/it/etcd_compat/python_etcd3.rs; run with /usr/bin/python3.

    etcd3_interop.py --leader HOST:PORT --follower HOST:PORT --follower HOST:PORT

Line protocol on stdout (one line each, flushed):
    client python-etcd3 <version>
    check <name> ok
    check <name> fail <reason>
    kill-leader            then waits for one line on stdin ("killed")
The exit code is 0 iff every check passed. Every wait polls under a deadline.
"""

import argparse
import sys
import threading
import time
import traceback

import etcd3
import etcd3.exceptions

RPC_TIMEOUT = 10
DEADLINE = 30.0
POLL = 0.025
PREFIX = "/interop/python"

RESULTS = []


def say(line):
    print(line, flush=True)


class CheckFailed(Exception):
    pass


def expect(condition, what):
    if not condition:
        raise CheckFailed(what)


def expect_eq(actual, expected, what):
    if actual != expected:
        raise CheckFailed("%s: expected %r, got %r" % (what, expected, actual))


def wait_until(what, probe, timeout=DEADLINE):
    """Polls probe() until it returns a true value, which is returned."""
    start = time.monotonic()
    last = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except etcd3.exceptions.Etcd3Exception as err:
            last = "%s: %s" % (type(err).__name__, err)
        if time.monotonic() - start > timeout:
            raise CheckFailed("timed out after %.0fs waiting for %s (last: %r)" % (timeout, what, last))
        time.sleep(POLL)


def check(name):
    def register(function):
        def run(*args):
            try:
                function(*args)
            except Exception as err:  # every failure is reported, none aborts the run
                reason = "%s: %s" % (type(err).__name__, err)
                sys.stderr.write("check %s:\n%s\n" % (name, traceback.format_exc()))
                RESULTS.append((name, False))
                say("check %s fail %s" % (name, reason.replace("\n", " ")))
                return
            RESULTS.append((name, True))
            say("check %s ok" % name)

        return run

    return register


def connect(endpoint):
    host, port = endpoint.rsplit(":", 1)
    return etcd3.client(host=host, port=int(port), timeout=RPC_TIMEOUT)


def value_of(client, key):
    value, _ = client.get(key)
    return value


@check("kv put, get, prefix, delete")
def check_kv(client):
    p = PREFIX + "/kv/"
    client.put(p + "a", "1")
    value, meta = client.get(p + "a")
    expect_eq(value, b"1", "value of a")
    expect_eq(meta.version, 1, "version of a new key")
    expect_eq(meta.create_revision, meta.mod_revision, "create == mod revision of a new key")
    prev = client.put(p + "a", "2", prev_kv=True)
    expect_eq(prev.prev_kv.value, b"1", "prev_kv of the overwrite")
    value, meta2 = client.get(p + "a")
    expect_eq((value, meta2.version), (b"2", 2), "value and version after overwrite")
    expect(meta2.mod_revision > meta.mod_revision, "mod revision grows")
    expect_eq(meta2.create_revision, meta.create_revision, "create revision is kept")
    client.put(p + "b", "3")
    client.put(p + "c", "4")
    listed = [(m.key, v) for v, m in client.get_prefix(p)]
    expect_eq(listed, [(p.encode() + b"a", b"2"), (p.encode() + b"b", b"3"), (p.encode() + b"c", b"4")], "prefix listing")
    keys = [m.key for _, m in client.get_prefix(p, keys_only=True)]
    expect_eq(len(keys), 3, "keys_only listing length")
    ranged = [m.key for _, m in client.get_range(p + "a", p + "c")]
    expect_eq(ranged, [p.encode() + b"a", p.encode() + b"b"], "range [a, c)")
    expect_eq(client.delete(p + "a"), True, "delete of an existing key")
    expect_eq(client.delete(p + "a"), False, "delete of a missing key")
    expect_eq(client.get(p + "a"), (None, None), "get after delete")
    client.delete_prefix(p)
    expect_eq(list(client.get_prefix(p)), [], "prefix after delete_prefix")


@check("txn compares, branches, put_if_not_exists, replace")
def check_txn(client):
    p = PREFIX + "/txn/"
    t = client.transactions
    client.put(p + "k", "v1")
    ok, responses = client.transaction(
        compare=[t.value(p + "k") == "v1", t.version(p + "k") > 0],
        success=[t.put(p + "k", "v2"), t.get(p + "k")],
        failure=[t.put(p + "k", "wrong")],
    )
    expect_eq(ok, True, "txn on matching compares succeeds")
    expect_eq(responses[1][0][0], b"v2", "a get inside the txn sees the put before it")
    ok, responses = client.transaction(
        compare=[t.value(p + "k") == "v1"],
        success=[t.put(p + "k", "wrong")],
        failure=[t.get(p + "k")],
    )
    expect_eq(ok, False, "txn on a stale value fails")
    expect_eq(responses[0][0][0], b"v2", "failure branch reads the current value")
    _, meta = client.get(p + "k")
    ok, _ = client.transaction(
        compare=[t.mod(p + "k") == meta.mod_revision, t.create(p + "k") == meta.create_revision],
        success=[t.delete(p + "k")],
        failure=[],
    )
    expect_eq(ok, True, "txn on mod and create revision")
    expect_eq(value_of(client, p + "k"), None, "txn delete applied")
    expect_eq(client.put_if_not_exists(p + "once", "1"), True, "first put_if_not_exists")
    expect_eq(client.put_if_not_exists(p + "once", "2"), False, "second put_if_not_exists")
    expect_eq(value_of(client, p + "once"), b"1", "put_if_not_exists kept the first value")
    expect_eq(client.replace(p + "once", "1", "3"), True, "replace of the current value")
    expect_eq(client.replace(p + "once", "1", "4"), False, "replace of a stale value")
    expect_eq(value_of(client, p + "once"), b"3", "value after replace")
    client.delete_prefix(p)


@check("lease grant, attach, refresh, time-to-live, revoke, expiry")
def check_leases(client):
    p = PREFIX + "/lease/"
    lease = client.lease(20)
    expect_eq(lease.ttl, 20, "granted TTL")
    client.put(p + "held", "x", lease=lease)
    _, meta = client.get(p + "held")
    expect_eq(meta.lease_id, lease.id, "the key names its lease")
    info = client.get_lease_info(lease.id)
    expect(0 < info.TTL <= 20, "remaining TTL in (0, 20], got %d" % info.TTL)
    expect_eq(info.grantedTTL, 20, "grantedTTL")
    expect_eq(list(info.keys), [(p + "held").encode()], "keys of the lease")
    refreshed = lease.refresh()
    expect_eq([r.TTL for r in refreshed], [20], "keep-alive answer")
    lease.revoke()
    expect_eq(value_of(client, p + "held"), None, "revoking deletes the attached key")
    expect_eq(client.get_lease_info(lease.id).TTL, -1, "TTL of a revoked lease")
    refused = None
    try:
        client.put(p + "orphan", "x", lease=lease)
    except Exception as err:  # NOT_FOUND is a raw grpc error: python-etcd3 does not map it
        refused = str(err)
    expect(refused is not None and "requested lease not found" in refused,
           "a put with a revoked lease is refused with 'requested lease not found': %r" % refused)
    # A lease nobody refreshes runs out by itself (the minimum TTL is 2 s).
    short = client.lease(2)
    client.put(p + "short", "x", lease=short)
    started = time.monotonic()
    wait_until("the key of an unrefreshed 2 s lease to go", lambda: value_of(client, p + "short") is None, 15)
    expect(time.monotonic() - started > 0.5, "the key lived until its lease ran out")


def txn_lock_acquire(client, key, ttl, timeout):
    """A lock from a lease and a Txn, as python-etcd3's own Lock builds it:
    put key (with a fresh lease) only if it does not exist; otherwise wait
    for a change of the key and try again, until the timeout. Returns the
    (lease, token) held, or None."""
    token = ("holder-%f" % time.monotonic()).encode()
    t = client.transactions
    deadline = time.monotonic() + timeout
    while True:
        lease = client.lease(ttl)
        won, _ = client.transaction(
            compare=[t.create(key) == 0],
            success=[t.put(key, token, lease=lease)],
            failure=[],
        )
        if won:
            return lease, token
        lease.revoke()
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            client.watch_once(key, timeout=left)
        except etcd3.exceptions.WatchTimedOut:
            pass


def txn_lock_release(client, key, token):
    t = client.transactions
    released, _ = client.transaction(compare=[t.value(key) == token], success=[t.delete(key)], failure=[])
    return released


@check("lock from lease + txn: client.lock, exclusion, release, expiry of a dead holder")
def check_lock(client, other):
    # python-etcd3 0.12.0's Lock.acquire cannot retry with Debian's tenacity
    # (its wait callback has the old signature), so a contended acquire is
    # done by txn_lock_acquire on the same key; client.lock takes it uncontended.
    name = "interop-python"
    key = "/locks/" + name
    first = client.lock(name, ttl=10)
    expect_eq(first.acquire(timeout=5), True, "client.lock acquires a free lock")
    expect_eq(first.is_acquired(), True, "the holder sees the lock held")
    _, meta = client.get(key)
    expect(meta is not None and meta.lease_id == first.lease.id, "the lock key is attached to the holder's lease")
    expect_eq(txn_lock_acquire(other, key, 10, 1.0), None, "a second holder is refused while the lock is held")
    first.release()
    expect_eq(first.is_acquired(), False, "released")
    held = txn_lock_acquire(other, key, 10, 5.0)
    expect(held is not None, "the second holder acquires after release")
    expect_eq(client.lock(name, ttl=10).is_acquired(), False, "another client does not hold it")
    expect_eq(txn_lock_release(other, key, held[1]), True, "the second holder releases")
    held[0].revoke()
    # A holder that dies never releases; its lease running out frees the lock.
    dead = client.lock(name, ttl=2)
    expect_eq(dead.acquire(timeout=5), True, "a short-lived holder acquires")
    started = time.monotonic()
    third = txn_lock_acquire(other, key, 10, 20.0)
    expect(third is not None, "a new holder acquires once the dead holder's lease ran out")
    expect(time.monotonic() - started > 0.5, "the lock was held until the lease ran out")
    expect_eq(txn_lock_release(other, key, third[1]), True, "the new holder releases")
    third[0].revoke()


class Collector(object):
    """A watch callback that keeps every event (key, mod_revision, type) and error."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []
        self.errors = []

    def __call__(self, response):
        with self.lock:
            if isinstance(response, Exception):
                self.errors.append(response)
            else:
                for event in response.events:
                    self.events.append((event.key.decode(), event.mod_revision, type(event).__name__))

    def snapshot(self):
        with self.lock:
            return list(self.events), list(self.errors)


@check("watch prefix: history replay, puts and deletes in order, cancel")
def check_watch(client):
    p = PREFIX + "/watch/"
    first = client.put(p + "a", "1").header.revision
    client.put(p + "b", "2")
    client.delete(p + "a")
    collector = Collector()
    watch_id = client.add_watch_prefix_callback(p, collector, start_revision=first)
    client.put(p + "c", "3")
    wait_until("4 events", lambda: len(collector.snapshot()[0]) >= 4)
    events, errors = collector.snapshot()
    expect_eq(errors, [], "watch errors")
    expect_eq([(k, t) for k, _, t in events],
              [(p + "a", "PutEvent"), (p + "b", "PutEvent"), (p + "a", "DeleteEvent"), (p + "c", "PutEvent")],
              "events replayed from history, then live")
    revisions = [r for _, r, _ in events]
    expect_eq(revisions[0], first, "the replay starts at start_revision")
    expect(revisions == sorted(set(revisions)), "strictly increasing revisions %r" % revisions)
    client.cancel_watch(watch_id)
    marker_rev = client.put(p + "d", "4").header.revision
    marker = Collector()
    client.add_watch_prefix_callback(p + "d", marker, start_revision=marker_rev)
    wait_until("the marker watch to see d", lambda: marker.snapshot()[0])
    expect_eq(len(collector.snapshot()[0]), 4, "a canceled watch gets nothing more")
    client.delete_prefix(p)


def put_once(client, key, value, deadline):
    """Creates key exactly once, retrying through an election: the Txn only
    puts if the key is absent, so a retried write that did happen is a no-op."""
    t = client.transactions
    start = time.monotonic()
    while True:
        try:
            client.transaction(compare=[t.create(key) == 0], success=[t.put(key, value)], failure=[])
            return
        except Exception as err:  # Unavailable or timed out while there is no leader
            if time.monotonic() - start > deadline:
                raise CheckFailed("cannot write %s within %.0fs: %s" % (key, deadline, err))
            time.sleep(0.1)


def expect_exactly(events, expected, what):
    """events must be the expected (key, revision) puts: in order, no gap, no duplicate."""
    got = [(k, r) for k, r, t in events if t == "PutEvent"]
    expect_eq(len(got), len(events), "%s: only PUT events" % what)
    if got != expected:
        missing = [e for e in expected if e not in got]
        duplicated = sorted({e for e in got if got.count(e) > 1})
        raise CheckFailed("%s: %d events, %d expected; missing %r; duplicated %r; got %r"
                          % (what, len(got), len(expected), missing, duplicated, got))


@check("watch across a leader kill: no gap, no duplicate")
def check_watch_failover(leader_ep, followers):
    p = PREFIX + "/failover/"
    before, after = 10, 20
    # The last write is a sentinel: once a watch delivered it, everything
    # before it (duplicates included) has been delivered too.
    names = ["%sk%03d" % (p, i) for i in range(before + after)] + [p + "zz-end"]
    writer = connect(followers[0])
    on_follower = connect(followers[0])
    on_leader = connect(leader_ep)
    start_rev = writer.put(PREFIX + "/failover-start", "x").header.revision + 1
    follower_watch = Collector()
    leader_watch = Collector()
    on_follower.add_watch_prefix_callback(p, follower_watch, start_revision=start_rev)
    on_leader.add_watch_prefix_callback(p, leader_watch, start_revision=start_rev)
    for name in names[:before]:
        put_once(writer, name, "v", DEADLINE)
    wait_until("both watches to see the first %d writes" % before,
               lambda: len(follower_watch.snapshot()[0]) >= before and len(leader_watch.snapshot()[0]) >= before)

    say("kill-leader")
    answer = sys.stdin.readline().strip()
    expect_eq(answer, "killed", "the driver's answer")

    # Writes during the election and after it, through a surviving follower.
    for name in names[before:]:
        put_once(writer, name, "v", DEADLINE)

    # The leader's stream broke: resume on another server after the last
    # revision seen, as a client with several endpoints would.
    wait_until("the watch on the killed leader to report an error", lambda: leader_watch.snapshot()[1])
    on_leader.close()
    seen, _ = leader_watch.snapshot()
    last = seen[-1][1] if seen else start_rev - 1
    resumed = Collector()
    on_other = connect(followers[1])
    on_other.add_watch_prefix_callback(p, resumed, start_revision=last + 1)

    expected = sorted(((m.key.decode(), m.mod_revision) for _, m in writer.get_prefix(p)), key=lambda e: e[1])
    expect_eq([k for k, _ in expected], names, "the keys written, in write order")
    def reached_end(collector):
        return any(k == names[-1] for k, _, _ in collector.snapshot()[0])

    wait_until("the follower's watch to reach the last write", lambda: reached_end(follower_watch))
    wait_until("the resumed watch to reach the last write", lambda: reached_end(resumed))
    expect_exactly(follower_watch.snapshot()[0], expected, "watch on a surviving follower")
    expect_eq(follower_watch.snapshot()[1], [], "errors on the surviving follower's watch")
    expect_exactly(seen + resumed.snapshot()[0], expected, "watch resumed on another server")
    for c in (writer, on_follower, on_other):
        c.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leader", required=True)
    parser.add_argument("--follower", action="append", required=True)
    args = parser.parse_args()
    if len(args.follower) < 2:
        parser.error("two --follower endpoints are needed")

    say("client python-etcd3 %s" % etcd3.__version__)
    client = connect(args.follower[0])
    other = connect(args.follower[1])
    check_kv(client)
    check_txn(client)
    check_leases(client)
    check_lock(client, other)
    check_watch(client)
    check_watch_failover(args.leader, args.follower)
    failed = [name for name, ok in RESULTS if not ok]
    say("%d passed, %d failed" % (len(RESULTS) - len(failed), len(failed)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
