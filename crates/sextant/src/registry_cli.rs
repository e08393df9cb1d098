//! The CLI commands for services and health: `services`, `catalog nodes`,
//! `health`, `register`, `deregister` and `watch service`, all through the
//! agent's Consul-compatible HTTP API.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::client::{expect_ok, print_table, Target};

#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
    /// List every node (each server is one).
    Nodes,
    /// List every service with its tags.
    Services,
}

#[derive(Subcommand, Debug)]
pub enum WatchCommand {
    /// Print the instances of a service, then again at every change.
    Service(WatchServiceArgs),
}

#[derive(Args, Debug)]
pub struct WatchServiceArgs {
    name: String,
    /// Only instances whose every check passes.
    #[arg(long)]
    passing: bool,
    /// Stop after printing this many answers (the first one included).
    #[arg(long, hide = true)]
    max_changes: Option<u64>,
}

async fn get_json(target: &Target, path: &str) -> anyhow::Result<(Value, Option<u64>)> {
    let response = reqwest::get(target.url(path))
        .await
        .context("cannot reach the agent")?;
    let response = expect_ok(response).await?;
    let index = response
        .headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Ok((response.json().await?, index))
}

fn text(value: &Value) -> String {
    value.as_str().map(str::to_owned).unwrap_or_default()
}

pub async fn services(target: &Target) -> anyhow::Result<()> {
    let (names, _) = get_json(target, "/v1/catalog/services").await?;
    let rows: Vec<[String; 2]> = names
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, tags)| {
            let tags: Vec<String> = tags.as_array().into_iter().flatten().map(text).collect();
            [name.clone(), tags.join(",")]
        })
        .collect();
    print_table(["Service", "Tags"], &rows);
    Ok(())
}

pub async fn catalog(target: &Target, command: CatalogCommand) -> anyhow::Result<()> {
    match command {
        CatalogCommand::Services => services(target).await,
        CatalogCommand::Nodes => {
            let (nodes, _) = get_json(target, "/v1/catalog/nodes").await?;
            let rows: Vec<[String; 2]> = nodes
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| [text(&n["Node"]), text(&n["Address"])])
                .collect();
            print_table(["Node", "Address"], &rows);
            Ok(())
        }
    }
}

/// One line per instance: node, id, address, aggregated status, checks.
fn instance_rows(entries: &Value) -> Vec<[String; 5]> {
    entries
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let checks: Vec<&Value> = e["Checks"].as_array().into_iter().flatten().collect();
            let rank = |s: &str| match s {
                "passing" => 0,
                "warning" => 1,
                "critical" => 2,
                _ => 3,
            };
            let status = checks
                .iter()
                .map(|c| c["Status"].as_str().unwrap_or(""))
                .max_by_key(|s| rank(s))
                .unwrap_or("passing")
                .to_owned();
            let detail: Vec<String> = checks
                .iter()
                .map(|c| format!("{}={}", text(&c["CheckID"]), text(&c["Status"])))
                .collect();
            let address = match text(&e["Service"]["Address"]) {
                a if a.is_empty() => text(&e["Node"]["Address"]),
                a => a,
            };
            [
                text(&e["Node"]["Node"]),
                text(&e["Service"]["ID"]),
                format!("{address}:{}", e["Service"]["Port"]),
                status,
                detail.join(" "),
            ]
        })
        .collect()
}

fn health_path(name: &str, passing: bool) -> String {
    let name = escape(name);
    if passing {
        format!("/v1/health/service/{name}?passing=1")
    } else {
        format!("/v1/health/service/{name}")
    }
}

pub async fn health(target: &Target, name: &str, passing: bool) -> anyhow::Result<()> {
    let (entries, _) = get_json(target, &health_path(name, passing)).await?;
    print_table(
        ["Node", "ServiceID", "Address", "Status", "Checks"],
        &instance_rows(&entries),
    );
    Ok(())
}

/// Registers the service in a JSON file: a registration body as the HTTP
/// API takes it, or Consul's service definition file (`{"service": {…}}`).
pub async fn register(target: &Target, file: &PathBuf) -> anyhow::Result<()> {
    let contents =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let value: Value = serde_json::from_str(&contents)
        .with_context(|| format!("{} is not JSON", file.display()))?;
    let definition = value
        .as_object()
        .and_then(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("service"))
                .map(|(_, v)| v.clone())
        })
        .filter(Value::is_object)
        .unwrap_or(value);
    let name = definition
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("name")))
        .map(|(_, v)| text(v))
        .unwrap_or_default();
    let response = reqwest::Client::new()
        .put(target.url("/v1/agent/service/register"))
        .json(&definition)
        .send()
        .await
        .context("cannot reach the agent")?;
    expect_ok(response).await?;
    println!("Registered service: {name}");
    Ok(())
}

pub async fn deregister(target: &Target, id: &str) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .put(target.url(&format!("/v1/agent/service/deregister/{}", escape(id))))
        .send()
        .await
        .context("cannot reach the agent")?;
    expect_ok(response).await?;
    println!("Deregistered service: {id}");
    Ok(())
}

/// Prints the service's instances, then blocks on the next change (Consul
/// blocking queries) and prints them again, until interrupted.
pub async fn watch(target: &Target, command: WatchCommand) -> anyhow::Result<()> {
    let WatchCommand::Service(args) = command;
    let path = health_path(&args.name, args.passing);
    let separator = if path.contains('?') { '&' } else { '?' };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(6 * 60))
        .build()?;
    let mut index = 0u64;
    let mut last: Option<Value> = None;
    let mut printed = 0u64;
    let mut failures = 0u32;
    loop {
        let url = target.url(&format!("{path}{separator}index={index}&wait=5m"));
        let answer = match client.get(url).send().await {
            Ok(response) => expect_ok(response).await,
            Err(e) => Err(e.into()),
        };
        let response = match answer {
            Ok(response) => {
                failures = 0;
                response
            }
            Err(e) => {
                failures += 1;
                if failures >= 5 {
                    bail!("giving up after {failures} failed queries: {e:#}");
                }
                eprintln!("query failed ({e:#}); retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let new_index: u64 = response
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let entries: Value = response.json().await?;
        // An index that went back (a restore) means start over from it.
        index = if new_index < index { 0 } else { new_index };
        if last.as_ref() == Some(&entries) {
            continue;
        }
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        println!("{stamp} {} (index {new_index}):", args.name);
        let rows = instance_rows(&entries);
        if rows.is_empty() {
            println!("(no instances)");
        } else {
            print_table(["Node", "ServiceID", "Address", "Status", "Checks"], &rows);
        }
        last = Some(entries);
        printed += 1;
        if args.max_changes.is_some_and(|max| printed >= max) {
            return Ok(());
        }
    }
}

fn escape(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
