//! The CLI commands that talk to a running agent over its HTTP API.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct Target {
    /// The agent's HTTP address.
    #[arg(
        long,
        env = "SEXTANT_HTTP_ADDR",
        default_value = "127.0.0.1:8500",
        global = true
    )]
    http_addr: String,
}

impl Target {
    pub(crate) fn url(&self, path: &str) -> String {
        let base = self.http_addr.trim_end_matches('/');
        if base.starts_with("http://") || base.starts_with("https://") {
            format!("{base}{path}")
        } else {
            format!("http://{base}{path}")
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum KvCommand {
    /// Print a key's value.
    Get { key: String },
    /// Write a key.
    Put { key: String, value: String },
    /// Delete a key, or every key under a prefix with --recurse.
    Delete {
        key: String,
        #[arg(long)]
        recurse: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Raft operations.
    Raft {
        #[command(subcommand)]
        command: RaftCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum RaftCommand {
    /// List the Raft peers with their role.
    ListPeers,
    /// Remove a server (by name) from the Raft configuration.
    RemovePeer { name: String },
}

/// Keys go into the URL path: escape what would change its meaning.
fn escape_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) async fn expect_ok(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    bail!(
        "Unexpected response code: {} ({})",
        status.as_u16(),
        body.trim()
    )
}

pub async fn kv(target: &Target, command: KvCommand) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    match command {
        KvCommand::Get { key } => {
            let url = target.url(&format!("/v1/kv/{}?raw", escape_key(&key)));
            let response = http
                .get(url)
                .send()
                .await
                .context("cannot reach the agent")?;
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                bail!("No key exists at: {key}");
            }
            let value = expect_ok(response).await?.bytes().await?;
            println!("{}", String::from_utf8_lossy(&value));
        }
        KvCommand::Put { key, value } => {
            let url = target.url(&format!("/v1/kv/{}", escape_key(&key)));
            let response = http
                .put(url)
                .body(value)
                .send()
                .await
                .context("cannot reach the agent")?;
            let written: bool = expect_ok(response).await?.json().await?;
            if !written {
                bail!("Failed writing data to: {key}");
            }
            println!("Success! Data written to: {key}");
        }
        KvCommand::Delete { key, recurse } => {
            let query = if recurse { "?recurse" } else { "" };
            let url = target.url(&format!("/v1/kv/{}{query}", escape_key(&key)));
            let response = http
                .delete(url)
                .send()
                .await
                .context("cannot reach the agent")?;
            expect_ok(response).await?;
            println!(
                "Success! Deleted key{}: {key}",
                if recurse { "s under" } else { "" }
            );
        }
    }
    Ok(())
}

pub async fn members(target: &Target) -> anyhow::Result<()> {
    let response = reqwest::get(target.url("/v1/agent/members"))
        .await
        .context("cannot reach the agent")?;
    let members: Vec<Value> = expect_ok(response).await?.json().await?;
    let rows: Vec<[String; 3]> = members
        .iter()
        .map(|m| {
            let status = match m["Status"].as_u64() {
                Some(1) => "alive",
                Some(3) => "left",
                _ => "failed",
            };
            [
                m["Name"].as_str().unwrap_or("").to_string(),
                format!("{}:{}", m["Addr"].as_str().unwrap_or(""), m["Port"]),
                status.to_string(),
            ]
        })
        .collect();
    print_table(["Node", "Address", "Status"], &rows);
    Ok(())
}

pub async fn operator(target: &Target, command: OperatorCommand) -> anyhow::Result<()> {
    let OperatorCommand::Raft { command } = command;
    let response = reqwest::get(target.url("/v1/operator/raft/configuration"))
        .await
        .context("cannot reach the agent")?;
    let configuration: Value = expect_ok(response).await?.json().await?;
    let servers = configuration["Servers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match command {
        RaftCommand::ListPeers => {
            let rows: Vec<[String; 4]> = servers
                .iter()
                .map(|s| {
                    let state = if s["Leader"].as_bool() == Some(true) {
                        "leader"
                    } else {
                        "follower"
                    };
                    [
                        s["Node"].as_str().unwrap_or("").to_string(),
                        s["ID"].as_str().unwrap_or("").to_string(),
                        s["Address"].as_str().unwrap_or("").to_string(),
                        format!("{state:<8}  {}", s["Voter"].as_bool().unwrap_or(false)),
                    ]
                })
                .collect();
            print_table(["Node", "ID", "Address", "State     Voter"], &rows);
        }
        RaftCommand::RemovePeer { name } => {
            let Some(server) = servers
                .iter()
                .find(|s| s["Node"].as_str() == Some(name.as_str()))
            else {
                bail!("no server named {name:?} in the Raft configuration");
            };
            let id = server["ID"].as_str().unwrap_or("");
            let response = reqwest::Client::new()
                .delete(target.url(&format!("/v1/operator/raft/peer?id={id}")))
                .send()
                .await
                .context("cannot reach the agent")?;
            expect_ok(response).await?;
            println!("Removed peer with name {name:?} (id {id})");
        }
    }
    Ok(())
}

pub(crate) fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
