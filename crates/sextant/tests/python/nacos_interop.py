#!/usr/bin/env python3
"""Sextant's Nacos naming API driven with the real nacos-sdk-python v1 client.

Usage: nacos_interop.py --port NACOS_PORT --service NAME
Registers instances (one persistent and unhealthy), lists them (all, healthy
only, by cluster), beats, modifies, reads one back, removes them, and beats an
instance that is gone. Prints 'PASS name' / 'FAIL name' per check and
'N passed, M failed' last; exit code 0 iff nothing failed.
"""
import argparse
import sys
import traceback

import nacos

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


class Ctx:
    def __init__(self, client, service):
        self.client = client
        self.service = service

    def hosts(self, **kwargs):
        return self.client.list_naming_instance(self.service, **kwargs)["hosts"]

    def ports(self, **kwargs):
        return sorted(h["port"] for h in self.hosts(**kwargs))


def expect(what, actual, wanted):
    if actual != wanted:
        raise AssertionError("%s: got %r, wanted %r" % (what, actual, wanted))


@check
def register(ctx):
    c = ctx.client
    expect("register a", c.add_naming_instance(ctx.service, "127.0.0.1", 9001, cluster_name="a",
                                               metadata={"zone": "z1"}), True)
    expect("register b", c.add_naming_instance(ctx.service, "127.0.0.1", 9002, cluster_name="b",
                                               weight=2.5), True)
    expect("register persistent", c.add_naming_instance(ctx.service, "127.0.0.2", 9003,
                                                        cluster_name="a", ephemeral=False,
                                                        healthy=False), True)


@check
def list_all(ctx):
    answer = ctx.client.list_naming_instance(ctx.service)
    expect("name", answer["name"], "DEFAULT_GROUP@@" + ctx.service)
    hosts = {h["port"]: h for h in answer["hosts"]}
    expect("ports", sorted(hosts), [9001, 9002, 9003])
    expect("metadata", hosts[9001]["metadata"], {"zone": "z1"})
    expect("weight", hosts[9002]["weight"], 2.5)
    expect("cluster", hosts[9002]["clusterName"], "b")
    expect("persistent", hosts[9003]["ephemeral"], False)
    expect("unhealthy", hosts[9003]["healthy"], False)
    expect("instance id", hosts[9001]["instanceId"],
           "127.0.0.1#9001#a#DEFAULT_GROUP@@" + ctx.service)


@check
def healthy_only(ctx):
    expect("healthy ports", ctx.ports(healthy_only=True), [9001, 9002])


@check
def clusters(ctx):
    expect("cluster a", ctx.ports(clusters="a"), [9001, 9003])
    expect("clusters a,b", ctx.ports(clusters="a,b"), [9001, 9002, 9003])


@check
def heartbeat(ctx):
    answer = ctx.client.send_heartbeat(ctx.service, "127.0.0.1", 9001, cluster_name="a")
    expect("code", answer["code"], 10200)
    expect("interval", answer["clientBeatInterval"] > 0, True)


@check
def modify_and_read(ctx):
    c = ctx.client
    expect("modify", c.modify_naming_instance(ctx.service, "127.0.0.1", 9002, cluster_name="b",
                                              weight=7.0, metadata={"v": "2"}), True)
    one = c.get_naming_instance(ctx.service, "127.0.0.1", 9002, cluster_name="b")
    expect("weight", one["weight"], 7.0)
    expect("metadata", one["metadata"], {"v": "2"})


@check
def remove(ctx):
    c = ctx.client
    for ip, port, cluster in [("127.0.0.1", 9001, "a"), ("127.0.0.1", 9002, "b"),
                              ("127.0.0.2", 9003, "a")]:
        expect("remove %d" % port, c.remove_naming_instance(ctx.service, ip, port,
                                                            cluster_name=cluster,
                                                            ephemeral=(port != 9003)), True)
    expect("empty", ctx.hosts(), [])


@check
def beat_after_removal(ctx):
    answer = ctx.client.send_heartbeat(ctx.service, "127.0.0.1", 9001, cluster_name="a")
    expect("code", answer["code"], 20404)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--service", required=True)
    args = parser.parse_args()
    client = nacos.NacosClient("127.0.0.1:%d" % args.port)
    ctx = Ctx(client, args.service)
    passed = failed = 0
    for fn in CHECKS:
        try:
            fn(ctx)
            print("PASS  %s" % fn.__name__, flush=True)
            passed += 1
        except Exception:
            print("FAIL  %s" % fn.__name__, flush=True)
            traceback.print_exc()
            failed += 1
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
