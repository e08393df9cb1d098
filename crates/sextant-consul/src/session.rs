//! Consul sessions: create, destroy, renew, read. What a session does to
//! its locks when it ends (release or delete) happens in the state machine;
//! its TTL is counted by the leader (`health::session_ttl`), so a renewal
//! goes to the leader and writes nothing.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::Rng;
use serde_json::{json, Value};
use sextant_state::session::{Session, SessionBehavior};
use sextant_state::{ApplyError, Op, Response as Applied};

use super::blocking::{self, Indexed};
use super::consul_json::{parse_object, DecodeError, Fields};
use super::error::HttpError;
use super::params::Params;
use super::{apply, go_duration, HttpState};
use sextant_core::health::node_health::SERF_CHECK_ID;
use sextant_core::registry::Consistency;

/// Consul's bounds for a session TTL, and its default lock delay.
const TTL_MIN: Duration = Duration::from_secs(10);
const TTL_MAX: Duration = Duration::from_secs(86_400);
const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);

fn render(session: &Session) -> Value {
    json!({
        "ID": session.id,
        "Name": session.name,
        "Node": session.node,
        "Checks": session.checks,
        "NodeChecks": session.node_checks,
        "ServiceChecks": session.service_checks.iter().map(|id| json!({"ID": id, "Namespace": ""})).collect::<Vec<_>>(),
        // Go's time.Duration: nanoseconds.
        "LockDelay": u128::from(session.lock_delay_ms) * 1_000_000,
        "Behavior": match session.behavior { SessionBehavior::Release => "release", SessionBehavior::Delete => "delete" },
        "TTL": session.ttl_ms.map(|ms| go_duration::format(Duration::from_millis(ms))).unwrap_or_default(),
        "CreateIndex": session.create_index,
        "ModifyIndex": session.modify_index,
    })
}

/// A random version-4 UUID, Consul's session id format.
fn new_id() -> String {
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub(crate) fn decode(
    body: &[u8],
    local_node: &str,
    serf_exists: impl Fn(&str) -> bool,
) -> Result<Session, DecodeError> {
    let value = parse_object(body)?;
    let fields = Fields::of(&value, "")?;
    let node = fields
        .non_empty("Node")?
        .unwrap_or_else(|| local_node.to_owned());
    let behavior = match fields.non_empty("Behavior")?.as_deref() {
        None | Some("release") => SessionBehavior::Release,
        Some("delete") => SessionBehavior::Delete,
        Some(other) => {
            return Err(DecodeError::new(format!(
                "Invalid Behavior setting '{other}': must be release or delete"
            )))
        }
    };
    let ttl = fields.duration("TTL")?.filter(|d| !d.is_zero());
    if let Some(ttl) = ttl {
        if !(TTL_MIN..=TTL_MAX).contains(&ttl) {
            return Err(DecodeError::new(format!(
                "Invalid Session TTL '{}', must be between [{}={}]",
                go_duration::format(ttl),
                go_duration::format(TTL_MIN),
                go_duration::format(TTL_MAX)
            )));
        }
    }
    let lock_delay = fields.duration("LockDelay")?.unwrap_or(DEFAULT_LOCK_DELAY);
    // Without `Checks`, Consul ties a session to its node's serfHealth.
    let checks = if fields.has("Checks") {
        fields.strings("Checks")?
    } else if serf_exists(&node) {
        vec![SERF_CHECK_ID.to_owned()]
    } else {
        Vec::new()
    };
    let service_checks = fields
        .objects("ServiceChecks")?
        .iter()
        .map(|c| c.non_empty("ID").map(|id| id.unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Session {
        id: new_id(),
        name: fields.string("Name")?.unwrap_or_default(),
        node,
        checks,
        node_checks: fields.strings("NodeChecks")?,
        service_checks,
        lock_delay_ms: u64::try_from(lock_delay.as_millis()).unwrap_or(u64::MAX),
        behavior,
        ttl_ms: ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        create_index: 0,
        modify_index: 0,
    })
}

pub async fn create(State(http): State<HttpState>, body: Bytes) -> Result<Json<Value>, HttpError> {
    let session = {
        let state = http.registry.view();
        let catalog = state.catalog();
        decode(&body, &http.registry.node().name, |node| {
            catalog.check(node, SERF_CHECK_ID).is_some()
        })
        .map_err(|e| HttpError::bad_request(e.0))?
    };
    let id = session.id.clone();
    let outcome = http.registry.write(Op::CreateSession { session }).await?;
    http.registry.applied_here(outcome.revision).await;
    match outcome.response {
        Applied::Rejected(
            e @ (ApplyError::UnknownNode { .. }
            | ApplyError::UnknownCheck { .. }
            | ApplyError::CheckFailing { .. }),
        ) => Err(HttpError::Internal(e.to_string())),
        Applied::Rejected(e) => Err(HttpError::bad_request(e.to_string())),
        _ => Ok(Json(json!({"ID": id}))),
    }
}

pub async fn destroy(
    State(http): State<HttpState>,
    Path(id): Path<String>,
) -> Result<Json<bool>, HttpError> {
    apply::write(&http, Op::DestroySession { id }).await?;
    Ok(Json(true))
}

/// Restarts the session's TTL on the leader; a follower passes the request
/// on to it over the internal API.
pub async fn renew(
    State(http): State<HttpState>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    // The session must exist as the leader sees it.
    let session = {
        let state = http.registry.read(Consistency::Default).await?;
        state.sessions().get(&id).cloned()
    };
    let Some(session) = session else {
        return Err(HttpError::NotFound(format!("Session id '{id}' not found")));
    };
    let ttl = Duration::from_millis(session.ttl_ms.unwrap_or(0));
    http.health.renew_session_routed(&id, ttl).await?;
    Ok(Json(vec![render(&session)]).into_response())
}

pub async fn info(
    State(http): State<HttpState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    let Indexed { value, headers } = blocking::query(&http.registry, &params, |machine| {
        match machine.sessions().get(&id) {
            Some(s) => (s.modify_index, vec![render(s)]),
            None => (machine.revision(), Vec::new()),
        }
    })
    .await?;
    Ok((headers, Json(value)).into_response())
}

pub async fn list(State(http): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    let Indexed { value, headers } = blocking::query(&http.registry, &params, |machine| {
        let sessions: Vec<Value> = machine.sessions().iter().map(render).collect();
        (machine.revision(), sessions)
    })
    .await?;
    Ok((headers, Json(value)).into_response())
}

pub async fn node(
    State(http): State<HttpState>,
    Path(node): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    let Indexed { value, headers } = blocking::query(&http.registry, &params, |machine| {
        let sessions: Vec<Value> = machine.sessions().of_node(&node).map(render).collect();
        (machine.revision(), sessions)
    })
    .await?;
    Ok((headers, Json(value)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py_consul_session_bodies_decode() {
        let s = decode(
            br#"{"name":"lock","lockdelay":"5s","behavior":"delete","ttl":"10s"}"#,
            "s1",
            |_| true,
        )
        .expect("valid");
        assert_eq!(s.node, "s1");
        assert_eq!(s.behavior, SessionBehavior::Delete);
        assert_eq!(s.ttl_ms, Some(10_000));
        assert_eq!(s.lock_delay_ms, 5_000);
        assert_eq!(s.checks, vec![SERF_CHECK_ID.to_owned()]);
        let empty = decode(b"", "s1", |_| false).expect("valid");
        assert!(empty.checks.is_empty());
        assert_eq!(empty.lock_delay_ms, 15_000);
    }

    #[test]
    fn bad_sessions_are_refused() {
        assert!(decode(br#"{"ttl":"5s"}"#, "s1", |_| true).is_err());
        assert!(decode(br#"{"behavior":"keep"}"#, "s1", |_| true).is_err());
    }

    #[test]
    fn ids_are_uuids() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
