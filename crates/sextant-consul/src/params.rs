//! Consul's query parameters: flags that count by their presence (`?recurse`),
//! numbers, durations, the consistency mode and blocking-query options.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::HttpError;
use super::go_duration;
use sextant_core::registry::Consistency;

/// Consul's default and largest blocking-query wait.
const DEFAULT_WAIT: Duration = Duration::from_secs(5 * 60);
const MAX_WAIT: Duration = Duration::from_secs(10 * 60);

/// The decoded query string. Flags count by their presence, as in Consul.
#[derive(Debug, Default)]
pub struct Params {
    /// Every value given for each name, in order (`?tag=a&tag=b`).
    values: BTreeMap<String, Vec<String>>,
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, HttpError> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(query)?;
        Ok(Self {
            values: pairs
                .into_iter()
                .fold(BTreeMap::new(), |mut values, (name, value)| {
                    values.entry(name).or_insert_with(Vec::new).push(value);
                    values
                }),
        })
    }
}

fn serde_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, HttpError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(text: &str) -> Result<String, HttpError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        HttpError::bad_request(format!("invalid escape in query string: {text:?}"))
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| HttpError::bad_request("query string is not UTF-8"))
}

impl Params {
    pub fn flag(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// Every value given for `name`, in order.
    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// An unsigned number; `reason` is the error text Consul gives for a bad one.
    pub fn u64(&self, name: &str, reason: &str) -> Result<Option<u64>, HttpError> {
        match self.text(name) {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| HttpError::bad_request(format!("{reason}: {text:?}"))),
        }
    }

    pub fn consistency(&self) -> Result<Consistency, HttpError> {
        match (self.flag("stale"), self.flag("consistent")) {
            (true, true) => Err(HttpError::bad_request(
                "Cannot specify ?stale with ?consistent, conflicting semantics.",
            )),
            (true, false) => Ok(Consistency::Stale),
            (false, true) => Ok(Consistency::Consistent),
            (false, false) => Ok(Consistency::Default),
        }
    }

    /// The blocking-query options: the index the client has seen, and how long to wait.
    pub fn blocking(&self) -> Result<Option<Blocking>, HttpError> {
        let wait = match self.text("wait") {
            None => DEFAULT_WAIT,
            Some(text) => go_duration::parse(text)
                .map_err(|e| HttpError::bad_request(format!("Invalid wait time: {e}")))?
                .min(MAX_WAIT),
        };
        let index = self.u64("index", "Invalid index")?.unwrap_or(0);
        Ok((index > 0).then_some(Blocking { index, wait }))
    }
}

/// A blocking query: answer once the result's index passes `index`, or after `wait`.
#[derive(Clone, Copy, Debug)]
pub struct Blocking {
    pub index: u64,
    pub wait: Duration,
}
