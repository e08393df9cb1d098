//! HTTP checks: 2xx is passing, 429 (Too Many Requests) warning, anything
//! else — another status, a refused connection, a timeout — critical.

use std::collections::BTreeMap;
use std::time::Duration;

use sextant_state::catalog::CheckStatus;

use super::{ProbeResult, OUTPUT_LIMIT};

const USER_AGENT: &str = concat!("Sextant Health Check/", env!("CARGO_PKG_VERSION"));

#[derive(Clone)]
pub struct HttpProber {
    verifying: reqwest::Client,
    /// For checks with `TLSSkipVerify`: accepts any certificate.
    trusting: reqwest::Client,
}

impl HttpProber {
    pub fn new() -> Result<Self, String> {
        let build = |skip_verify: bool| {
            reqwest::Client::builder()
                .user_agent(USER_AGENT)
                .danger_accept_invalid_certs(skip_verify)
                // A check follows no redirect: the status it gets is the answer.
                .redirect(reqwest::redirect::Policy::none())
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| format!("cannot build the HTTP check client: {e}"))
        };
        Ok(Self {
            verifying: build(false)?,
            trusting: build(true)?,
        })
    }

    pub async fn probe(
        &self,
        url: &str,
        method: &str,
        headers: &BTreeMap<String, Vec<String>>,
        body: &str,
        tls_skip_verify: bool,
        timeout: Duration,
    ) -> ProbeResult {
        let method_name = if method.is_empty() { "GET" } else { method };
        let prefix = format!("HTTP {method_name} {url}");
        let method = match reqwest::Method::from_bytes(method_name.as_bytes()) {
            Ok(m) => m,
            Err(_) => {
                return ProbeResult::new(
                    CheckStatus::Critical,
                    format!("{prefix}: invalid method {method_name:?}"),
                )
            }
        };
        let client = if tls_skip_verify {
            &self.trusting
        } else {
            &self.verifying
        };
        let mut request = client.request(method, url).timeout(timeout);
        for (name, values) in headers {
            for value in values {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        if !body.is_empty() {
            request = request.body(body.to_owned());
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return ProbeResult::new(
                    CheckStatus::Critical,
                    format!("{prefix}: {}", error_chain(&e)),
                )
            }
        };
        let code = response.status();
        // Read at most the output limit; the rest of the body is dropped.
        let mut quoted = Vec::new();
        while quoted.len() < OUTPUT_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => quoted.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        quoted.truncate(OUTPUT_LIMIT);
        let status = if code.is_success() {
            CheckStatus::Passing
        } else if code == reqwest::StatusCode::TOO_MANY_REQUESTS {
            CheckStatus::Warning
        } else {
            CheckStatus::Critical
        };
        ProbeResult::new(
            status,
            format!(
                "{prefix}: {code} Output: {}",
                String::from_utf8_lossy(&quoted)
            ),
        )
    }
}

/// reqwest's top-level error says little ("error sending request"); the
/// causes say what happened (connection refused, timed out).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
