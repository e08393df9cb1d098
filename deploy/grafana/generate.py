#!/usr/bin/env python3
"""Writes sextant-dashboard.json, the Grafana dashboard of Sextant's /metrics.

Run it after changing a panel here: python3 deploy/grafana/generate.py
(an argument writes elsewhere). The JSON is committed;
crates/sextant/tests/dashboard.rs checks that it is what this script writes,
that every metric it queries is one a running server exposes, and that every
family a server exposes has a panel.
"""

import json
import pathlib
import sys

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Every query is restricted to the servers picked in the `instance` variable.
SEL = 'instance=~"$instance"'
RATE = "$__rate_interval"


def quantiles(metric, by, qs=(0.5, 0.9, 0.99)):
    """histogram_quantile targets of a histogram, one per quantile."""
    by_labels = ", ".join(["le", *by])
    legend = " ".join("{{%s}}" % label for label in by)
    return [
        (
            f"histogram_quantile({q}, sum by ({by_labels}) "
            f"(rate({metric}_bucket{{{SEL}}}[{RATE}])))",
            f"p{int(q * 100)} {legend}".strip(),
        )
        for q in qs
    ]


class Dashboard:
    def __init__(self):
        self.panels = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_height = 0

    def _place(self, w, h):
        if self.x + w > 24:
            self.x = 0
            self.y += self.row_height
            self.row_height = 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_height = max(self.row_height, h)
        return pos

    def row(self, title):
        if self.x:
            self.y += self.row_height
        self.x, self.row_height = 0, 0
        self.panels.append(
            {
                "type": "row",
                "id": self._id(),
                "title": title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1},
                "panels": [],
            }
        )
        self.y += 1

    def _id(self):
        self.next_id += 1
        return self.next_id - 1

    def panel(self, kind, title, targets, unit="short", w=8, h=8, description="", text_mode="auto"):
        panel = {
            "type": kind,
            "id": self._id(),
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": self._place(w, h),
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": [
                {
                    "refId": chr(ord("A") + i),
                    "datasource": DATASOURCE,
                    "expr": expr,
                    "legendFormat": legend,
                }
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        if kind == "stat":
            panel["options"] = {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value",
                "graphMode": "area",
                "textMode": text_mode,
            }
        self.panels.append(panel)

    def series(self, title, targets, **kw):
        self.panel("timeseries", title, targets, **kw)

    def stat(self, title, targets, **kw):
        self.panel("stat", title, targets, w=kw.pop("w", 4), h=kw.pop("h", 4), **kw)


def build():
    d = Dashboard()

    d.row("Overview")
    d.stat("Leader", [(f"max by (instance) (sextant_raft_is_leader{{{SEL}}}) == 1", "{{instance}}")],
           description="The server that currently leads.", w=6, text_mode="name")
    d.stat("Raft term", [(f"max(sextant_raft_term{{{SEL}}})", "term")])
    d.stat("Services", [(f"max(sextant_services{{{SEL}}})", "services")])
    d.stat("Instances", [(f"max(sextant_service_instances{{{SEL}}})", "instances")])
    d.stat("Critical checks", [(f'max(sextant_health_checks{{{SEL}, status="critical"}})', "critical")], w=6)

    d.row("Raft")
    d.series("Term and leader changes", [
        (f"max by (instance) (sextant_raft_term{{{SEL}}})", "term {{instance}}"),
        (f"sum by (instance) (increase(sextant_raft_leader_changes_total{{{SEL}}}[{RATE}]))",
         "leader changes {{instance}}"),
    ], description="A term that keeps rising means repeated elections.")
    d.series("Write latency (commit + apply)", quantiles("sextant_raft_write_seconds", ["instance"]),
             unit="s", description="From a write's proposal to its entry applied on the server that took it.")
    d.series("Writes per second", [
        (f"sum by (instance) (rate(sextant_raft_write_seconds_count{{{SEL}}}[{RATE}]))", "{{instance}}"),
    ], unit="ops")
    d.series("Log size (entries since the snapshot)", [
        (f"sextant_raft_last_log_index{{{SEL}}} - sextant_raft_snapshot_index{{{SEL}}}", "{{instance}}"),
    ], description="Entries kept in the log; a snapshot purges the older ones.")
    d.series("Apply lag (entries)", [
        (f"sextant_raft_last_log_index{{{SEL}}} - sextant_raft_last_applied_index{{{SEL}}}", "{{instance}}"),
    ])
    d.series("Last log, applied and snapshot index", [
        (f"sextant_raft_last_log_index{{{SEL}}}", "log {{instance}}"),
        (f"sextant_raft_last_applied_index{{{SEL}}}", "applied {{instance}}"),
        (f"sextant_raft_snapshot_index{{{SEL}}}", "snapshot {{instance}}"),
    ])

    d.row("Storage")
    d.series("fsync latency", quantiles("sextant_storage_fsync_seconds", ["instance"]), unit="s",
             description="One fdatasync of the Raft log per group of writes.")
    d.series("fsyncs per second", [
        (f"sum by (instance) (rate(sextant_storage_fsyncs_total{{{SEL}}}[{RATE}]))", "{{instance}}"),
    ], unit="ops")
    d.series("Raft log bytes written", [
        (f"sum by (instance) (rate(sextant_storage_bytes_written_total{{{SEL}}}[{RATE}]))", "{{instance}}"),
    ], unit="Bps")

    d.row("Requests")
    d.series("HTTP requests by route", [
        (f"sum by (method, route) (rate(sextant_http_requests_total{{{SEL}}}[{RATE}]))", "{{method}} {{route}}"),
    ], unit="reqps", w=12)
    d.series("HTTP errors by route and status", [
        (f'sum by (route, status) (rate(sextant_http_requests_total{{{SEL}, status=~"[45].."}}[{RATE}]))',
         "{{status}} {{route}}"),
    ], unit="reqps", w=12)
    d.series("HTTP latency p99 by route", quantiles("sextant_http_request_duration_seconds", ["route"], qs=(0.99,)),
             unit="s", w=12, description="Blocking queries last until their index moves or their wait ends.")
    d.series("gRPC calls by method", [
        (f"sum by (method) (rate(sextant_grpc_requests_total{{{SEL}}}[{RATE}]))", "{{method}}"),
    ], unit="reqps", w=12)
    d.series("gRPC errors by method and code", [
        (f'sum by (method, code) (rate(sextant_grpc_requests_total{{{SEL}, code!="OK"}}[{RATE}]))',
         "{{code}} {{method}}"),
    ], unit="reqps", w=12)
    d.series("gRPC latency p99 by method (unary)", [
        (f"histogram_quantile(0.99, sum by (le, method) (rate(sextant_grpc_request_duration_seconds_bucket"
         f'{{{SEL}, method!~".*/(Watch|LeaseKeepAlive)"}}[{RATE}])))', "{{method}}"),
    ], unit="s", w=12, description="Streams are left out: their duration is their whole life.")
    d.series("Blocking queries and watchers in flight", [
        (f"sum by (instance) (sextant_blocking_queries_in_flight{{{SEL}}})", "blocking queries {{instance}}"),
        (f"sum by (instance) (sextant_etcd_watchers_in_flight{{{SEL}}})", "etcd watchers {{instance}}"),
    ], w=12)

    d.row("Health checks")
    d.series("Checks by status", [
        (f"max by (status) (sextant_health_checks{{{SEL}}})", "{{status}}"),
    ], description="From the replicated catalog: every server reports the same numbers.")
    d.series("Probe latency", quantiles("sextant_health_probe_duration_seconds", ["instance"]), unit="s",
             description="HTTP, TCP and gRPC probes, on the server that owns each check.")
    d.series("Probes per second", [
        (f"sum by (instance) (rate(sextant_health_probe_duration_seconds_count{{{SEL}}}[{RATE}]))",
         "{{instance}}"),
    ], unit="ops")

    d.row("Registry")
    d.series("Services and instances", [
        (f"max(sextant_services{{{SEL}}})", "services"),
        (f"max(sextant_service_instances{{{SEL}}})", "instances"),
    ])
    d.series("Leases and sessions", [
        (f"max(sextant_leases{{{SEL}}})", "etcd leases"),
        (f"max(sextant_sessions{{{SEL}}})", "Consul sessions"),
    ])
    d.series("Resident memory", [
        (f"sextant_process_resident_memory_bytes{{{SEL}}}", "{{instance}}"),
    ], unit="bytes")

    return {
        "__inputs": [],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
            {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
        ],
        "title": "Sextant",
        "uid": "sextant-overview",
        "description": "Raft, storage, requests, health checks and the registry of a Sextant cluster.",
        "tags": ["sextant", "service-registry", "raft"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                },
                {
                    "name": "instance",
                    "label": "Server",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {"query": "label_values(sextant_raft_term, instance)", "refId": "instance"},
                    "definition": "label_values(sextant_raft_term, instance)",
                    "refresh": 2,
                    "multi": True,
                    "includeAll": True,
                    "current": {"text": "All", "value": "$__all"},
                    "sort": 1,
                    "hide": 0,
                },
            ]
        },
        "panels": d.panels,
    }


if __name__ == "__main__":
    default = pathlib.Path(__file__).with_name("sextant-dashboard.json")
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else default
    out.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {out}")
