//! A small client for the HTTP API the tests drive: Consul KV and status,
//! operator and agent endpoints, and the native `/v1/sextant/raft`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use reqwest::Method;
use serde::Deserialize;

/// Timeout of one ordinary request. Blocking queries add their wait to it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The consistency a read asks for, as Consul spells it in the query string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// `?stale`: any server answers from its local data.
    Stale,
    /// No flag: the leader answers from its data.
    Default,
    /// `?consistent`: the leader confirms its leadership with a quorum first.
    Consistent,
}

impl Consistency {
    pub const ALL: [Consistency; 3] = [
        Consistency::Stale,
        Consistency::Default,
        Consistency::Consistent,
    ];

    /// The query flag, without separator (empty for the default).
    pub fn flag(self) -> &'static str {
        match self {
            Consistency::Stale => "stale",
            Consistency::Default => "",
            Consistency::Consistent => "consistent",
        }
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Consistency::Stale => "stale",
            Consistency::Default => "default",
            Consistency::Consistent => "consistent",
        };
        f.write_str(name)
    }
}

/// The consistency headers every read returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyMeta {
    /// `X-Consul-Index`, if present and a number.
    pub index: Option<u64>,
    /// `X-Consul-KnownLeader`.
    pub known_leader: Option<bool>,
    /// `X-Consul-LastContact` in milliseconds.
    pub last_contact: Option<u64>,
}

/// A raw response: status, consistency headers and body.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub meta: ReplyMeta,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("decoding JSON body {:?}", truncate(&self.text(), 500)))
    }

    fn expect_status(self, what: &str, status: u16) -> Result<Reply> {
        if self.status != status {
            bail!(
                "{what}: HTTP {} (expected {status}): {}",
                self.status,
                truncate(&self.text(), 500)
            );
        }
        Ok(self)
    }
}

/// One entry of a KV read, with `Value` already decoded from base64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEntry {
    pub key: String,
    pub value: Option<Vec<u8>>,
    pub flags: u64,
    pub create_index: u64,
    pub modify_index: u64,
    pub lock_index: u64,
    pub session: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireKvEntry {
    key: String,
    value: Option<String>,
    flags: u64,
    create_index: u64,
    modify_index: u64,
    lock_index: u64,
    session: Option<String>,
}

impl TryFrom<WireKvEntry> for KvEntry {
    type Error = anyhow::Error;

    fn try_from(wire: WireKvEntry) -> Result<KvEntry> {
        let value = match wire.value {
            Some(text) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(text.as_bytes())
                    .with_context(|| format!("Value of {:?} is not base64", wire.key))?,
            ),
            None => None,
        };
        Ok(KvEntry {
            key: wire.key,
            value,
            flags: wire.flags,
            create_index: wire.create_index,
            modify_index: wire.modify_index,
            lock_index: wire.lock_index,
            session: wire.session,
        })
    }
}

/// The Raft role a server reports in `/v1/sextant/raft`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum RaftRole {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

/// `GET /v1/sextant/raft`.
#[derive(Clone, Debug, Deserialize)]
pub struct RaftState {
    pub node_id: u64,
    pub name: String,
    pub state: RaftRole,
    pub term: u64,
    pub leader_id: Option<u64>,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

impl RaftState {
    /// Voters, sorted.
    pub fn sorted_voters(&self) -> Vec<u64> {
        let mut voters = self.voters.clone();
        voters.sort_unstable();
        voters
    }
}

/// One server of `GET /v1/operator/raft/configuration`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RaftServer {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub leader: bool,
    pub voter: bool,
    pub protocol_version: String,
}

/// `GET /v1/operator/raft/configuration`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RaftConfiguration {
    pub servers: Vec<RaftServer>,
    pub index: u64,
}

/// One entry of `GET /v1/agent/members` (the fields the tests look at).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Member {
    pub name: String,
    pub addr: String,
    pub port: u16,
    pub status: i64,
}

/// An HTTP client bound to one server. Cheap to clone.
///
/// Connections are not pooled: servers are killed and restarted on the same
/// port, and a pooled connection to a dead process would fail the next request
/// for a reason that has nothing to do with the server under test.
#[derive(Clone, Debug)]
pub struct HttpClient {
    base: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl HttpClient {
    pub fn new(addr: SocketAddr) -> HttpClient {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("building a reqwest client without TLS cannot fail");
        HttpClient {
            base: format!("http://{addr}"),
            client,
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// The same client with another timeout for each request (5 s by default).
    pub fn with_timeout(&self, timeout: Duration) -> HttpClient {
        HttpClient {
            timeout,
            ..self.clone()
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends a request to `path_and_query` (starting with `/`), with the
    /// client's timeout unless `timeout` is given. Any HTTP status is `Ok`;
    /// only transport failures (and timeouts) are errors.
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<Reply> {
        let url = format!("{}{}", self.base, path_and_query);
        let mut request = self.client.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.body(body);
        }
        request = request.timeout(timeout.unwrap_or(self.timeout));
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let headers = response.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let meta = ReplyMeta {
            index: header("X-Consul-Index").and_then(|v| v.parse().ok()),
            known_leader: header("X-Consul-KnownLeader").and_then(|v| v.parse().ok()),
            last_contact: header("X-Consul-LastContact").and_then(|v| v.parse().ok()),
        };
        let body = response
            .bytes()
            .await
            .with_context(|| format!("reading the body of {method} {url}"))?
            .to_vec();
        Ok(Reply { status, meta, body })
    }

    pub async fn get(&self, path_and_query: &str) -> Result<Reply> {
        self.request(Method::GET, path_and_query, None, None).await
    }

    pub async fn put(&self, path_and_query: &str, body: impl Into<Vec<u8>>) -> Result<Reply> {
        self.request(Method::PUT, path_and_query, Some(body.into()), None)
            .await
    }

    pub async fn delete(&self, path_and_query: &str) -> Result<Reply> {
        self.request(Method::DELETE, path_and_query, None, None)
            .await
    }

    /// `PUT /v1/kv/KEY`; the server's `true`/`false`. Any status but 200 is an error.
    pub async fn kv_put(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<bool> {
        self.kv_put_with(key, value, "").await
    }

    /// `PUT /v1/kv/KEY?QUERY` (`query` without `?`, e.g. `"cas=0&flags=7"`).
    pub async fn kv_put_with(
        &self,
        key: &str,
        value: impl Into<Vec<u8>>,
        query: &str,
    ) -> Result<bool> {
        let path = kv_path(key, query);
        let reply = self
            .put(&path, value)
            .await?
            .expect_status(&format!("PUT {path}"), 200)?;
        parse_bool(&reply).with_context(|| format!("PUT {path}"))
    }

    /// `GET /v1/kv/KEY` at `consistency`: the entry, or `None` on 404.
    pub async fn kv_get(&self, key: &str, consistency: Consistency) -> Result<Option<KvEntry>> {
        Ok(self.kv_get_meta(key, consistency).await?.0)
    }

    /// Like [`HttpClient::kv_get`], also returning the consistency headers.
    pub async fn kv_get_meta(
        &self,
        key: &str,
        consistency: Consistency,
    ) -> Result<(Option<KvEntry>, ReplyMeta)> {
        let path = kv_path(key, consistency.flag());
        let reply = self.get(&path).await?;
        single_entry(&path, reply)
    }

    /// A blocking `GET /v1/kv/KEY?index=INDEX&wait=WAIT` (default consistency).
    pub async fn kv_block(
        &self,
        key: &str,
        index: u64,
        wait: Duration,
    ) -> Result<(Option<KvEntry>, ReplyMeta)> {
        let path = kv_path(key, &format!("index={index}&wait={}ms", wait.as_millis()));
        let reply = self
            .request(Method::GET, &path, None, Some(wait * 2 + self.timeout))
            .await?;
        single_entry(&path, reply)
    }

    /// `GET /v1/kv/PREFIX?recurse`: every entry under `prefix` (empty if none).
    pub async fn kv_list(&self, prefix: &str, consistency: Consistency) -> Result<Vec<KvEntry>> {
        Ok(self.kv_list_meta(prefix, consistency).await?.0)
    }

    /// Like [`HttpClient::kv_list`], also returning the consistency headers.
    pub async fn kv_list_meta(
        &self,
        prefix: &str,
        consistency: Consistency,
    ) -> Result<(Vec<KvEntry>, ReplyMeta)> {
        let path = kv_path(prefix, &join_query("recurse", consistency.flag()));
        let reply = self.get(&path).await?;
        entry_list(&path, reply)
    }

    /// A blocking `GET /v1/kv/PREFIX?recurse&index=INDEX&wait=WAIT`.
    pub async fn kv_list_block(
        &self,
        prefix: &str,
        index: u64,
        wait: Duration,
    ) -> Result<(Vec<KvEntry>, ReplyMeta)> {
        let query = format!("recurse&index={index}&wait={}ms", wait.as_millis());
        let path = kv_path(prefix, &query);
        let reply = self
            .request(Method::GET, &path, None, Some(wait * 2 + self.timeout))
            .await?;
        entry_list(&path, reply)
    }

    /// Every key under `prefix` with its value (`null` values as empty).
    pub async fn kv_map(
        &self,
        prefix: &str,
        consistency: Consistency,
    ) -> Result<BTreeMap<String, Vec<u8>>> {
        let entries = self.kv_list(prefix, consistency).await?;
        Ok(entries
            .into_iter()
            .map(|e| (e.key, e.value.unwrap_or_default()))
            .collect())
    }

    /// `GET /v1/kv/PREFIX?keys`: the key names under `prefix` (empty if none).
    pub async fn kv_keys(&self, prefix: &str, consistency: Consistency) -> Result<Vec<String>> {
        let path = kv_path(prefix, &join_query("keys", consistency.flag()));
        let reply = self.get(&path).await?;
        if reply.status == 404 {
            return Ok(Vec::new());
        }
        reply.expect_status(&format!("GET {path}"), 200)?.json()
    }

    /// `DELETE /v1/kv/KEY`; the server's `true`/`false`.
    pub async fn kv_delete(&self, key: &str) -> Result<bool> {
        let path = kv_path(key, "");
        let reply = self
            .delete(&path)
            .await?
            .expect_status(&format!("DELETE {path}"), 200)?;
        parse_bool(&reply).with_context(|| format!("DELETE {path}"))
    }

    /// `GET /v1/sextant/raft`.
    pub async fn raft_state(&self) -> Result<RaftState> {
        self.get_json("/v1/sextant/raft").await
    }

    /// `GET /v1/status/leader`: the leader's raft address, `""` if none.
    pub async fn status_leader(&self) -> Result<String> {
        self.get_json("/v1/status/leader").await
    }

    /// `GET /v1/status/peers`, sorted.
    pub async fn status_peers(&self) -> Result<Vec<String>> {
        let mut peers: Vec<String> = self.get_json("/v1/status/peers").await?;
        peers.sort();
        Ok(peers)
    }

    /// `GET /v1/operator/raft/configuration`.
    pub async fn raft_configuration(&self) -> Result<RaftConfiguration> {
        self.get_json("/v1/operator/raft/configuration").await
    }

    /// `GET /v1/agent/members`.
    pub async fn members(&self) -> Result<Vec<Member>> {
        self.get_json("/v1/agent/members").await
    }

    /// `GET PATH` expecting 200 and a JSON body.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.get(path)
            .await?
            .expect_status(&format!("GET {path}"), 200)?
            .json()
            .with_context(|| format!("GET {path}"))
    }
}

/// `/v1/kv/KEY` plus `?query` when `query` is not empty. The key is
/// percent-encoded except for `/` and unreserved characters.
pub(crate) fn kv_path(key: &str, query: &str) -> String {
    let mut path = String::from("/v1/kv/");
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    if !query.is_empty() {
        path.push('?');
        path.push_str(query);
    }
    path
}

fn join_query(first: &str, second: &str) -> String {
    match (first.is_empty(), second.is_empty()) {
        (true, _) => second.to_owned(),
        (_, true) => first.to_owned(),
        _ => format!("{first}&{second}"),
    }
}

fn single_entry(path: &str, reply: Reply) -> Result<(Option<KvEntry>, ReplyMeta)> {
    if reply.status == 404 {
        return Ok((None, reply.meta));
    }
    let meta = reply.meta.clone();
    let reply = reply.expect_status(&format!("GET {path}"), 200)?;
    let mut wire: Vec<WireKvEntry> = reply.json().with_context(|| format!("GET {path}"))?;
    if wire.len() != 1 {
        bail!("GET {path}: expected one entry, got {}", wire.len());
    }
    let entry = KvEntry::try_from(wire.remove(0))?;
    Ok((Some(entry), meta))
}

fn entry_list(path: &str, reply: Reply) -> Result<(Vec<KvEntry>, ReplyMeta)> {
    if reply.status == 404 {
        return Ok((Vec::new(), reply.meta));
    }
    let meta = reply.meta.clone();
    let reply = reply.expect_status(&format!("GET {path}"), 200)?;
    let wire: Vec<WireKvEntry> = reply.json().with_context(|| format!("GET {path}"))?;
    let entries = wire
        .into_iter()
        .map(KvEntry::try_from)
        .collect::<Result<Vec<_>>>()?;
    Ok((entries, meta))
}

fn parse_bool(reply: &Reply) -> Result<bool> {
    match reply.text().trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => bail!("expected `true` or `false`, got {:?}", truncate(other, 200)),
    }
}

/// `Ok` if `actual` holds exactly the keys and values of `expected`; else
/// says how many keys are missing, wrong or unexpected, with a few examples.
pub fn compare_kv(
    expected: &BTreeMap<String, Vec<u8>>,
    actual: &BTreeMap<String, Vec<u8>>,
) -> Result<(), String> {
    const EXAMPLES: usize = 5;
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let wrong: Vec<&String> = expected
        .iter()
        .filter(|(k, v)| actual.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k)
        .collect();
    let unexpected: Vec<&String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    if missing.is_empty() && wrong.is_empty() && unexpected.is_empty() {
        return Ok(());
    }
    let first = |keys: &[&String]| -> Vec<String> {
        keys.iter().take(EXAMPLES).map(|k| (*k).clone()).collect()
    };
    Err(format!(
        "{} of {} expected keys present; missing {} (e.g. {:?}), wrong value {} (e.g. {:?}), unexpected {} (e.g. {:?})",
        actual.len() - unexpected.len(),
        expected.len(),
        missing.len(),
        first(&missing),
        wrong.len(),
        first(&wrong),
        unexpected.len(),
        first(&unexpected),
    ))
}

pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let head: String = text.chars().take(max_chars).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_path_encodes_all_but_unreserved_and_slash() {
        assert_eq!(kv_path("a/b-c_d.e~f", ""), "/v1/kv/a/b-c_d.e~f");
        assert_eq!(kv_path("a b?", "stale"), "/v1/kv/a%20b%3F?stale");
    }

    #[test]
    fn join_query_skips_empty_parts() {
        assert_eq!(join_query("recurse", ""), "recurse");
        assert_eq!(join_query("recurse", "stale"), "recurse&stale");
    }

    #[test]
    fn wire_entry_decodes_base64_and_null() {
        let json = r#"[{"CreateIndex":3,"ModifyIndex":4,"LockIndex":0,"Key":"k","Flags":7,"Value":"aGk="},
                       {"CreateIndex":5,"ModifyIndex":5,"LockIndex":0,"Key":"n","Flags":0,"Value":null}]"#;
        let wire: Vec<WireKvEntry> = serde_json::from_str(json).expect("valid json");
        let entries: Vec<KvEntry> = wire
            .into_iter()
            .map(KvEntry::try_from)
            .collect::<Result<_>>()
            .expect("valid entries");
        assert_eq!(entries[0].value.as_deref(), Some(&b"hi"[..]));
        assert_eq!(entries[0].flags, 7);
        assert_eq!(entries[1].value, None);
    }
}
