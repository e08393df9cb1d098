//! `/metrics`: Prometheus text that parses, has every family Sextant
//! documents, and moves when the server is used.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use testkit::{wait_for, HttpClient, Server};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

const FAMILIES: &[&str] = &[
    "sextant_raft_term",
    "sextant_raft_is_leader",
    "sextant_raft_leader_changes_total",
    "sextant_raft_last_log_index",
    "sextant_raft_last_applied_index",
    "sextant_raft_snapshot_index",
    "sextant_raft_write_seconds",
    "sextant_storage_fsync_seconds",
    "sextant_storage_fsyncs_total",
    "sextant_storage_bytes_written_total",
    "sextant_http_requests_total",
    "sextant_http_request_duration_seconds",
    "sextant_blocking_queries_in_flight",
    "sextant_etcd_watchers_in_flight",
    "sextant_health_checks",
    "sextant_health_probe_duration_seconds",
    "sextant_leases",
    "sextant_sessions",
    "sextant_services",
    "sextant_service_instances",
    "sextant_process_resident_memory_bytes",
];

const HISTOGRAMS: &[&str] = &[
    "sextant_raft_write_seconds",
    "sextant_storage_fsync_seconds",
    "sextant_http_request_duration_seconds",
    "sextant_health_probe_duration_seconds",
];

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape, parsed strictly (the text exposition format, 0.0.4).
struct Metrics {
    /// Family name → its `# TYPE`.
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Metrics {
    fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The sum of a counter's or gauge's series whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let kind = self.types.get(name).map(String::as_str);
        assert!(
            matches!(kind, Some("counter" | "gauge")),
            "{name} is {kind:?}"
        );
        self.samples(name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Observations across all series of a histogram (its `+Inf` buckets).
    fn observations(&self, name: &str) -> f64 {
        assert_eq!(
            self.types.get(name).map(String::as_str),
            Some("histogram"),
            "{name} is not a histogram"
        );
        self.samples(&format!("{name}_bucket"))
            .filter(|s| s.labels.get("le").map(String::as_str) == Some("+Inf"))
            .map(|s| s.value)
            .sum()
    }

    /// The distinct finite bucket bounds of a histogram.
    fn bucket_bounds(&self, name: &str) -> BTreeSet<String> {
        self.samples(&format!("{name}_bucket"))
            .filter_map(|s| s.labels.get("le").cloned())
            .filter(|le| le != "+Inf")
            .collect()
    }
}

fn parse(text: &str) -> Metrics {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let name = parts.next().expect("TYPE without a name");
            let kind = parts.next().expect("TYPE without a kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type in {line:?}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{name} typed twice"
            );
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let sample = parse_sample(line);
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                sample
                    .name
                    .strip_suffix(suffix)
                    .filter(|base| types.get(*base).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(&sample.name);
        assert!(types.contains_key(family), "{line:?} has no # TYPE line");
        samples.push(sample);
    }
    Metrics { types, samples }
}

/// `name[{label="value",...}] value [timestamp]`, with `\\`, `\"` and `\n`
/// escapes in label values.
fn parse_sample(line: &str) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let name = &line[..name_end];
    assert!(
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name in {line:?}"
    );
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            let Some(&(start, c)) = chars.peek() else {
                panic!("unterminated labels in {line:?}")
            };
            if c == '}' {
                rest = &after[start + 1..];
                break;
            }
            let eq = after[start..]
                .find('=')
                .unwrap_or_else(|| panic!("label without = in {line:?}"))
                + start;
            let key = &after[start..eq];
            assert!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad label name {key:?} in {line:?}"
            );
            while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                chars.next();
            }
            assert_eq!(
                chars.next().map(|(_, c)| c),
                Some('"'),
                "unquoted value in {line:?}"
            );
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        other => panic!("bad escape {other:?} in {line:?}"),
                    },
                    Some((_, c)) => value.push(c),
                    None => panic!("unterminated value in {line:?}"),
                }
            }
            assert!(
                labels.insert(key.to_owned(), value).is_none(),
                "label {key} twice in {line:?}"
            );
            if chars.peek().is_some_and(|&(_, c)| c == ',') {
                chars.next();
            }
        }
    }
    let mut fields = rest.split_whitespace();
    let raw = fields
        .next()
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let value = match raw {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value {v:?} in {line:?}")),
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .unwrap_or_else(|_| panic!("bad timestamp in {line:?}"));
    }
    assert!(fields.next().is_none(), "trailing text in {line:?}");
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

#[test]
fn the_parser_is_strict() {
    let m = parse(
        "# TYPE a counter\na{route=\"/v1/kv/{*key}\",q=\"x\\\"y\"} 3\n\
         # TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.7\nh_count 2\n",
    );
    assert_eq!(
        m.value("a", &[("route", "/v1/kv/{*key}"), ("q", "x\"y")]),
        3.0
    );
    assert_eq!(m.observations("h"), 2.0);
    for bad in [
        "b 1\n",
        "# TYPE a counter\na{x=1} 1\n",
        "# TYPE a counter\na{x=\"1\"\n",
        "# TYPE a counter\na one\n",
    ] {
        let bad = bad.to_owned();
        assert!(
            std::panic::catch_unwind(move || parse(&bad)).is_err(),
            "accepted"
        );
    }
}

async fn scrape(http: &HttpClient) -> Metrics {
    let reply = http.get("/metrics").await.expect("GET /metrics");
    assert_eq!(reply.status, 200, "{}", reply.text());
    parse(&reply.text())
}

#[tokio::test]
async fn every_family_is_present_and_moves_under_load() {
    let dev = Server::start_dev(BIN).await;
    let http = dev.http();
    wait_for("a leader", Duration::from_secs(30), || async {
        match http.status_leader().await {
            Ok(leader) if !leader.is_empty() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    let before = scrape(http).await;
    for family in FAMILIES {
        assert!(before.types.contains_key(*family), "{family} is missing");
    }
    for family in HISTOGRAMS {
        // Real buckets, not a summary.
        assert_eq!(
            before.types.get(*family).map(String::as_str),
            Some("histogram")
        );
    }
    assert_eq!(before.value("sextant_raft_is_leader", &[]), 1.0);
    assert!(before.value("sextant_raft_term", &[]) >= 1.0);
    assert!(before.value("sextant_raft_leader_changes_total", &[]) >= 1.0);
    assert!(before.value("sextant_process_resident_memory_bytes", &[]) > 0.0);

    // Writes.
    for i in 0..5 {
        assert!(http
            .kv_put(&format!("metrics/k{i}"), "v")
            .await
            .expect("PUT"));
    }
    // A registration with a TCP check against the server itself.
    let registration = serde_json::json!({
        "Name": "metrics-web",
        "ID": "metrics-web-1",
        "Port": dev.http_addr().port(),
        "Check": {"TCP": dev.http_addr().to_string(), "Interval": "1s"},
    });
    let reply = http
        .put("/v1/agent/service/register", registration.to_string())
        .await
        .expect("register");
    assert_eq!(reply.status, 200, "{}", reply.text());

    // A blocking query, seen in flight, then woken by a write.
    let index = http
        .get("/v1/kv/metrics/k0")
        .await
        .expect("GET")
        .meta
        .index
        .expect("X-Consul-Index");
    let blocked = {
        let http = http.clone();
        tokio::spawn(async move {
            http.get(&format!("/v1/kv/metrics/k0?index={index}&wait=30s"))
                .await
        })
    };
    wait_for(
        "the blocking query in flight",
        Duration::from_secs(10),
        || async {
            let m = scrape(http).await;
            match m.value("sextant_blocking_queries_in_flight", &[]) {
                v if v >= 1.0 => Ok(()),
                v => Err(format!("{v} in flight")),
            }
        },
    )
    .await;
    assert!(http.kv_put("metrics/k0", "woken").await.expect("PUT"));
    let woken = blocked.await.expect("join").expect("blocking GET");
    assert_eq!(woken.status, 200);

    // An etcd watcher.
    let mut etcd = etcd_client::Client::connect([dev.grpc_addr().to_string()], None)
        .await
        .expect("etcd connect");
    let _watch = etcd.watch("metrics/", None).await.expect("watch");
    wait_for(
        "the etcd watcher in flight",
        Duration::from_secs(10),
        || async {
            let m = scrape(http).await;
            match m.value("sextant_etcd_watchers_in_flight", &[]) {
                v if v >= 1.0 => Ok(()),
                v => Err(format!("{v} watchers")),
            }
        },
    )
    .await;

    // The probe runs within a few intervals.
    let after = wait_for("a probe observation", Duration::from_secs(20), || async {
        let m = scrape(http).await;
        if m.observations("sextant_health_probe_duration_seconds") > 0.0 {
            Ok(m)
        } else {
            Err("no probe yet")
        }
    })
    .await;

    let grew = |name: &str| after.value(name, &[]) > before.value(name, &[]);
    assert!(grew("sextant_raft_last_applied_index"));
    assert!(grew("sextant_raft_last_log_index"));
    assert!(grew("sextant_storage_fsyncs_total"));
    assert!(grew("sextant_storage_bytes_written_total"));
    assert!(grew("sextant_services"));
    assert!(grew("sextant_service_instances"));
    assert!(
        after.observations("sextant_raft_write_seconds")
            >= before.observations("sextant_raft_write_seconds") + 7.0
    );
    assert!(
        after.observations("sextant_storage_fsync_seconds")
            > before.observations("sextant_storage_fsync_seconds")
    );
    let checks: f64 = ["passing", "warning", "critical", "maintenance"]
        .iter()
        .map(|status| after.value("sextant_health_checks", &[("status", status)]))
        .sum();
    assert!(checks >= 1.0, "no checks counted");

    // Requests by route template and status, never by raw path.
    let kv_puts = |m: &Metrics| {
        m.value(
            "sextant_http_requests_total",
            &[
                ("method", "PUT"),
                ("route", "/v1/kv/{*key}"),
                ("status", "200"),
            ],
        )
    };
    assert!(
        kv_puts(&after) >= kv_puts(&before) + 6.0,
        "{:?}",
        after
            .samples("sextant_http_requests_total")
            .collect::<Vec<_>>()
    );
    assert!(
        after.value(
            "sextant_http_requests_total",
            &[("route", "/v1/agent/service/register"), ("status", "200")],
        ) >= 1.0
    );
    assert!(after.observations("sextant_http_request_duration_seconds") > 0.0);
    for family in HISTOGRAMS {
        assert!(
            after.bucket_bounds(family).len() >= 10,
            "{family} has too few buckets: {:?}",
            after.bucket_bounds(family)
        );
    }
    assert!(
        !after.samples("sextant_http_requests_total").any(|s| s
            .labels
            .get("route")
            .is_some_and(|r| r.contains("metrics/"))),
        "a raw path became a label"
    );
}
