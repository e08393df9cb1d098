//! The Grafana dashboard (`deploy/grafana/sextant-dashboard.json`) cannot
//! drift from the server: every metric its panels query is one a running
//! server exposes, every family a server exposes has a panel, and the
//! committed JSON is what its generator writes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use testkit::{wait_for, Server};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

fn grafana_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana")
}

fn dashboard() -> Value {
    let path = grafana_dir().join("sextant-dashboard.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The panels that draw something (rows only group them).
fn panels(dashboard: &Value) -> Vec<&Value> {
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

/// Every PromQL expression of every panel.
fn expressions(dashboard: &Value) -> Vec<String> {
    panels(dashboard)
        .iter()
        .flat_map(|p| p["targets"].as_array().expect("targets").iter())
        .map(|t| t["expr"].as_str().expect("expr").to_owned())
        .collect()
}

/// The metric names an expression reads: Sextant's metrics all start with
/// `sextant_`, and no label, function or keyword does.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("sextant_") {
        let preceded_by_word = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        if !preceded_by_word {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// Family name → type, from a scrape's `# TYPE` lines.
fn families(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let mut parts = rest.split_whitespace();
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

/// The family a queried series belongs to: itself, or the histogram (or
/// summary) whose `_bucket`, `_sum` or `_count` it is.
fn family_of<'a>(name: &'a str, families: &BTreeMap<String, String>) -> Option<&'a str> {
    if families.contains_key(name) {
        return Some(name);
    }
    [
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram", "summary"][..]),
        ("_count", &["histogram", "summary"][..]),
    ]
    .iter()
    .find_map(|(suffix, kinds)| {
        let base = name.strip_suffix(suffix)?;
        let kind = families.get(base)?;
        kinds.contains(&kind.as_str()).then_some(base)
    })
}

#[test]
fn metric_names_are_found_in_expressions() {
    let names = metric_names(
        r#"histogram_quantile(0.9, sum by (le) (rate(sextant_a_seconds_bucket{instance=~"$instance"}[5m]))) / x_sextant_b + sextant_c:d"#,
    );
    assert_eq!(
        names,
        BTreeSet::from([
            "sextant_a_seconds_bucket".to_owned(),
            "sextant_c:d".to_owned()
        ])
    );
    let families = BTreeMap::from([
        ("h".to_owned(), "histogram".to_owned()),
        ("g".to_owned(), "gauge".to_owned()),
    ]);
    assert_eq!(family_of("h_bucket", &families), Some("h"));
    assert_eq!(family_of("g", &families), Some("g"));
    assert_eq!(family_of("g_bucket", &families), None);
    assert_eq!(family_of("nope", &families), None);
}

#[test]
fn the_dashboard_is_a_grafana_dashboard_with_its_variables() {
    let dashboard = dashboard();
    assert!(dashboard["title"].is_string());
    assert!(dashboard["uid"].is_string());
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no {name} variable"))
    };
    assert_eq!(variable("datasource")["type"], "datasource");
    assert_eq!(variable("datasource")["query"], "prometheus");
    assert_eq!(variable("instance")["type"], "query");

    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let id = panel["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64(), grid["w"].as_u64());
        assert!(
            matches!((x, w), (Some(x), Some(w)) if w > 0 && x + w <= 24),
            "panel {id} does not fit the 24-column grid: {grid}"
        );
    }
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().expect("title");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            assert!(
                !metric_names(expr).is_empty(),
                "{title}: {expr} reads no Sextant metric"
            );
            assert!(
                expr.contains(r#"instance=~"$instance""#),
                "{title}: {expr} ignores the instance variable"
            );
        }
    }
}

#[test]
fn the_committed_json_is_what_the_generator_writes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("dashboard.json");
    let status = std::process::Command::new("python3")
        .arg(grafana_dir().join("generate.py"))
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 runs deploy/grafana/generate.py");
    assert!(status.success(), "generate.py failed: {status:?}");
    let generated: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("generated")).expect("JSON");
    assert!(
        generated == dashboard(),
        "deploy/grafana/sextant-dashboard.json differs from what generate.py writes: \
         run python3 deploy/grafana/generate.py"
    );
}

#[tokio::test]
async fn every_queried_metric_is_exposed_and_every_family_has_a_panel() {
    let dev = Server::start_dev(BIN).await;
    let http = dev.http();
    // Labelled families appear once something was counted under a label.
    assert!(http.kv_put("dashboard/k", "v").await.expect("PUT"));
    let mut etcd = etcd_client::Client::connect([dev.grpc_addr().to_string()], None)
        .await
        .expect("etcd connect");
    etcd.put("dashboard/etcd", "v", None)
        .await
        .expect("etcd put");

    let exposed = wait_for("a scrape", Duration::from_secs(10), || async {
        match http.get("/metrics").await {
            Ok(reply) if reply.status == 200 => Ok(families(&reply.text())),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    let dashboard = dashboard();
    let mut used = BTreeSet::new();
    for expr in expressions(&dashboard) {
        for name in metric_names(&expr) {
            let family = family_of(&name, &exposed).unwrap_or_else(|| {
                panic!("the dashboard queries {name} ({expr}), which /metrics does not expose")
            });
            used.insert(family.to_owned());
        }
    }
    let missing: Vec<&String> = exposed
        .keys()
        .filter(|f| f.starts_with("sextant_") && !used.contains(*f))
        .collect();
    assert!(
        missing.is_empty(),
        "families without a panel (add one in deploy/grafana/generate.py): {missing:?}"
    );
}
