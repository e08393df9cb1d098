#!/usr/bin/env python3
"""Sextant's Consul interop tests, driven with the real py-consul client.

Usage: consul_interop.py --port HTTP_PORT
Covers registration, TCP and TTL checks, agent health codes, health queries
(?passing, ?tag, ?filter), catalog, KV, sessions with locks, and blocking
queries that wake only for their own service. Prints 'N passed, M failed'
last; exit code 0 iff nothing failed.
"""
import argparse
import socket
import sys
import threading
import time
import traceback
import uuid

import requests

import consul
from consul import Check

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def eventually(pred, timeout=10.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Ctx:
    def __init__(self, port):
        self.c = consul.Consul(host='127.0.0.1', port=port, connections_timeout=30)
        self.base = 'http://127.0.0.1:%d' % port
        self.run = uuid.uuid4().hex[:6]
        self.node = self.c.agent.self()['Config']['NodeName']

    def name(self, what):
        return '%s-%s' % (what, self.run)

    def status(self, check_id):
        chk = self.c.agent.checks().get(check_id)
        return chk and chk['Status']


@test
def registration_round_trips(ctx):
    sid = ctx.name('web')
    assert ctx.c.agent.service.register(
        'web', service_id=sid, address='10.0.0.5', port=8080, tags=['primary', 'v2'],
        meta={'version': '2'}, weights={'passing': 10, 'warning': 1}) is True
    s = ctx.c.agent.services()[sid]
    assert s['Service'] == 'web' and s['Tags'] == ['primary', 'v2'], s
    assert s['Meta'] == {'version': '2'} and s['Weights'] == {'Passing': 10, 'Warning': 1}, s
    d = ctx.c.agent.service_definition(sid)
    assert d['ID'] == sid and d['Port'] == 8080, d
    _, entries = ctx.c.catalog.service('web')
    assert any(e['ServiceID'] == sid and e['ServiceAddress'] == '10.0.0.5' for e in entries), entries
    assert ctx.c.agent.service.deregister(sid) is True
    assert sid not in ctx.c.agent.services()


@test
def tcp_check_follows_the_listener(ctx):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(('127.0.0.1', 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                conn.close()
            except OSError:
                pass
    th = threading.Thread(target=accept, daemon=True)
    th.start()
    sid = ctx.name('tcp')
    try:
        assert ctx.c.agent.service.register(sid, port=port, check=Check.tcp('127.0.0.1', port, '500ms', timeout='1s'))
        cid = 'service:' + sid
        assert eventually(lambda: ctx.status(cid) == 'passing'), ctx.status(cid)
        out = ctx.c.agent.checks()[cid]['Output']
        assert 'TCP' in out, out
        stop.set()
        th.join()
        listener.close()
        assert eventually(lambda: ctx.status(cid) == 'critical'), ctx.status(cid)
    finally:
        stop.set()
        ctx.c.agent.service.deregister(sid)


@test
def ttl_checks_and_agent_health_codes(ctx):
    sid = ctx.name('ttl')
    cid = 'service:' + sid
    assert ctx.c.agent.service.register(sid, port=1, check=Check.ttl('30s'))
    url = ctx.base + '/v1/agent/health/service/name/' + sid
    assert requests.get(url, timeout=10).status_code == 503
    assert ctx.c.agent.check.ttl_pass(cid, 'ok')
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.json()[0]['AggregatedStatus'] == 'passing', (r.status_code, r.text)
    assert ctx.c.agent.check.ttl_warn(cid, 'meh')
    assert requests.get(url, timeout=10).status_code == 429
    r = requests.put(ctx.base + '/v1/agent/check/update/' + cid, json={'Status': 'critical', 'Output': 'down'},
                     timeout=10)
    assert r.status_code == 200, r.text
    chk = ctx.c.agent.checks()[cid]
    assert chk['Status'] == 'critical' and chk['Output'] == 'down', chk
    assert requests.get(url, timeout=10).status_code == 503
    assert requests.get(ctx.base + '/v1/agent/health/service/name/nope-' + ctx.run, timeout=10).status_code == 404
    # A second check on the service, registered through the check API.
    assert ctx.c.agent.check.register('extra', check=Check.ttl('30s'), check_id=ctx.name('extra'),
                                      service_id=sid)
    _, checks = ctx.c.health.checks(sid)
    assert sorted(c['CheckID'] for c in checks) == sorted([cid, ctx.name('extra')]), checks
    assert ctx.c.agent.check.deregister(ctx.name('extra'))
    assert ctx.c.agent.service.deregister(sid)


@test
def health_queries_filter_by_passing_tag_and_expression(ctx):
    name = ctx.name('api')
    ids = []
    for i, (tags, version) in enumerate(((['primary'], '1'), (['secondary'], '2'), (['primary', 'canary'], '2'))):
        sid = '%s-%d' % (name, i)
        ids.append(sid)
        assert ctx.c.agent.service.register(name, service_id=sid, port=9000 + i, tags=tags,
                                            meta={'version': version}, check=Check.ttl('60s'))
    assert ctx.c.agent.check.ttl_pass('service:' + ids[0])
    assert ctx.c.agent.check.ttl_pass('service:' + ids[2])
    try:
        def ids_of(**kw):
            return sorted(e['Service']['ID'] for e in ctx.c.health.service(name, **kw)[1])
        assert ids_of() == ids
        assert ids_of(passing=True) == [ids[0], ids[2]]
        assert ids_of(tag='primary') == [ids[0], ids[2]]
        assert ids_of(filter_expr='Service.Tags contains "canary"') == [ids[2]]
        assert ids_of(filter_expr='Service.Meta.version == "2"') == [ids[1], ids[2]]
        assert ids_of(filter_expr='Checks.Status == critical') == [ids[1]]
        assert ids_of(filter_expr='Service.Meta.version == "2" and not Service.Tags contains canary') == [ids[1]]
        assert ids_of(filter_expr='Service.Port == 9000 or Service.Tags contains secondary') == [ids[0], ids[1]]
        r = requests.get(ctx.base + '/v1/health/service/' + name, params={'filter': 'Service.Port ==='}, timeout=10)
        assert r.status_code == 400, r.status_code
        _, crit = ctx.c.health.state('critical')
        assert 'service:' + ids[1] in [c['CheckID'] for c in crit]
        _, node_checks = ctx.c.health.node(ctx.node)
        assert 'service:' + ids[0] in [c['CheckID'] for c in node_checks]
    finally:
        for sid in ids:
            ctx.c.agent.service.deregister(sid)


@test
def catalog_lists_nodes_services_and_low_level_writes(ctx):
    _, nodes = ctx.c.catalog.nodes()
    assert ctx.node in [n['Node'] for n in nodes], nodes
    node = ctx.name('ext')
    assert ctx.c.catalog.register(node, '10.9.9.9', service={'service': node, 'port': 1, 'tags': ['x']},
                                  check={'CheckID': 'ext-check', 'Name': 'ext', 'Status': 'passing',
                                         'ServiceID': node})
    _, entries = ctx.c.health.service(node, passing=True)
    assert [e['Node']['Address'] for e in entries] == ['10.9.9.9'], entries
    _, services = ctx.c.catalog.services()
    assert services[node] == ['x']
    assert ctx.c.catalog.deregister(node, service_id=node)
    assert ctx.c.catalog.service(node)[1] == []
    assert ctx.c.catalog.deregister(node)
    assert node not in [n['Node'] for n in ctx.c.catalog.nodes()[1]]


@test
def sessions_lock_keys_and_release_or_delete_them(ctx):
    key = ctx.name('lock') + '/leader'
    s1 = ctx.c.session.create(name='a', behavior='release', lock_delay=0)
    s2 = ctx.c.session.create(name='b', behavior='delete', lock_delay=0)
    info = ctx.c.session.info(s1)[1]
    assert info['ID'] == s1 and info['Name'] == 'a' and info['Behavior'] == 'release', info
    assert s1 in [s['ID'] for s in ctx.c.session.list()[1]]
    assert ctx.c.kv.put(key, 'me', acquire=s1) is True
    assert ctx.c.kv.put(key, 'you', acquire=s2) is False
    assert ctx.c.kv.get(key)[1]['Session'] == s1
    assert ctx.c.kv.put(key, 'me', release=s1) is True
    assert 'Session' not in ctx.c.kv.get(key)[1] or ctx.c.kv.get(key)[1]['Session'] is None
    # Destroying a release-session releases; a delete-session deletes.
    assert ctx.c.kv.put(key, 'me', acquire=s1) is True
    assert ctx.c.session.destroy(s1) is True
    v = ctx.c.kv.get(key)[1]
    assert v is not None and v.get('Session') is None, v
    assert ctx.c.kv.put(key, 'you', acquire=s2) is True
    assert ctx.c.session.destroy(s2) is True
    assert ctx.c.kv.get(key)[1] is None
    assert ctx.c.session.info(s1)[1] is None


@test
def a_session_ends_when_its_check_fails(ctx):
    sid = ctx.name('guard')
    cid = 'service:' + sid
    assert ctx.c.agent.service.register(sid, port=1, check=Check.ttl('60s'))
    assert ctx.c.agent.check.ttl_pass(cid)
    # The leader registers every server's serfHealth shortly after it starts.
    assert eventually(lambda: 'serfHealth' in [c['CheckID'] for c in ctx.c.health.node(ctx.node)[1]])
    key = ctx.name('guarded')
    s = ctx.c.session.create(checks=['serfHealth', cid], lock_delay=0)
    assert ctx.c.kv.put(key, 'x', acquire=s) is True
    assert ctx.c.agent.check.ttl_fail(cid)
    assert eventually(lambda: ctx.c.session.info(s)[1] is None), 'session survived its failing check'
    assert ctx.c.kv.get(key)[1].get('Session') is None
    ctx.c.agent.service.deregister(sid)


@test
def session_ttl_renews_and_expires(ctx):
    s = ctx.c.session.create(ttl=10, lock_delay=0)
    assert ctx.c.session.info(s)[1]['TTL'] == '10s'
    time.sleep(6)
    renewed = ctx.c.session.renew(s)
    assert renewed['ID'] == s, renewed
    time.sleep(6)
    assert ctx.c.session.info(s)[1] is not None, 'expired although renewed 6s ago (TTL 10s)'
    assert eventually(lambda: ctx.c.session.info(s)[1] is None, timeout=8), 'never expired'
    try:
        ctx.c.session.renew(s)
        raise AssertionError('renewing an expired session succeeded')
    except consul.NotFound:
        pass


@test
def blocking_health_query_wakes_only_for_its_service(ctx):
    watched = ctx.name('watched')
    other = ctx.name('other')
    assert ctx.c.agent.service.register(watched, port=1, check=Check.ttl('60s'))
    idx, _ = ctx.c.health.service(watched)
    result = {}

    def block():
        t0 = time.monotonic()
        result['answer'] = ctx.c.health.service(watched, index=idx, wait='15s')
        result['took'] = time.monotonic() - t0
    th = threading.Thread(target=block, daemon=True)
    th.start()
    time.sleep(0.5)
    # Writes elsewhere do not wake it.
    assert ctx.c.agent.service.register(other, port=2)
    ctx.c.kv.put(ctx.name('noise'), 'x')
    time.sleep(1.0)
    assert 'answer' not in result, 'woken by a change to another service'
    assert ctx.c.agent.check.ttl_pass('service:' + watched)
    th.join(10)
    assert 'answer' in result, 'not woken by its own service'
    new_idx, entries = result['answer']
    assert int(new_idx) > int(idx) and entries[0]['Checks'][-1]['Status'] == 'passing', (idx, new_idx, entries)
    # Catalog queries block on the service's index too.
    cidx, _ = ctx.c.catalog.service(watched)
    t0 = time.monotonic()
    cidx2, _ = ctx.c.catalog.service(watched, index=cidx, wait='1s')
    assert time.monotonic() - t0 >= 0.9 and cidx2 == cidx, (cidx, cidx2)
    ctx.c.agent.service.deregister(watched)
    ctx.c.agent.service.deregister(other)
    ctx.c.kv.delete(ctx.name('noise'))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--only', default='')
    args = ap.parse_args()
    ctx = Ctx(args.port)
    passed = failed = 0
    for t in TESTS:
        if args.only and args.only not in t.__name__:
            continue
        t0 = time.monotonic()
        try:
            t(ctx)
            passed += 1
            print('PASS  %s (%.1fs)' % (t.__name__, time.monotonic() - t0), flush=True)
        except Exception as e:  # noqa: BLE001
            failed += 1
            tb = traceback.extract_tb(e.__traceback__)
            print('FAIL  %s (%.1fs) %s: %s line %s' % (t.__name__, time.monotonic() - t0, type(e).__name__,
                                                       str(e)[:400], tb[-1].lineno if tb else '?'), flush=True)
    print('%d passed, %d failed' % (passed, failed), flush=True)
    return 0 if failed == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
