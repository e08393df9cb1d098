//! Consul's KV endpoints: `GET/PUT/DELETE /v1/kv/<key>`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::Serialize;
use sextant_state::kv::KeyValue;
use sextant_state::{ApplyError, KvCondition, LockAction, Op, Response as Applied};

use super::blocking::{self, Indexed};
use super::error::HttpError;
use super::params::Params;
use super::HttpState;

/// One key as Consul's API shows it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KvEntry {
    lock_index: u64,
    key: String,
    flags: u64,
    /// Base64 of the value; null for an empty value, as Consul shows it.
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<String>,
    create_index: u64,
    modify_index: u64,
}

impl From<&KeyValue> for KvEntry {
    fn from(kv: &KeyValue) -> Self {
        Self {
            lock_index: kv.lock_index,
            key: String::from_utf8_lossy(&kv.key).into_owned(),
            flags: kv.flags,
            value: (!kv.value.is_empty())
                .then(|| base64::engine::general_purpose::STANDARD.encode(&kv.value)),
            session: kv.session.clone(),
            create_index: kv.create_revision,
            modify_index: kv.mod_revision,
        }
    }
}

/// What a KV read found.
enum Found {
    Entries(Vec<KvEntry>),
    Keys(Vec<String>),
    Raw(Vec<u8>),
    Nothing,
}

pub async fn get(
    state: State<HttpState>,
    Path(key): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    read(state, key, params).await
}

pub async fn get_root(state: State<HttpState>, params: Params) -> Result<Response, HttpError> {
    read(state, String::new(), params).await
}

async fn read(
    State(http): State<HttpState>,
    key: String,
    params: Params,
) -> Result<Response, HttpError> {
    let list_keys = params.flag("keys");
    let recurse = params.flag("recurse");
    let raw = params.flag("raw");
    let separator = params
        .text("separator")
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let key_bytes = key.as_bytes();
    let Indexed { value, headers } = blocking::query(&http.registry, &params, |machine| {
        let kv = machine.kv();
        if list_keys {
            let keys = kv.keys(key_bytes, separator.as_deref().map(str::as_bytes));
            let keys: Vec<String> = keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            let found = if keys.is_empty() {
                Found::Nothing
            } else {
                Found::Keys(keys)
            };
            (kv.index_of(key_bytes, true), found)
        } else if recurse {
            let entries: Vec<KvEntry> = kv
                .list_prefix(key_bytes)
                .into_iter()
                .map(KvEntry::from)
                .collect();
            let found = if entries.is_empty() {
                Found::Nothing
            } else {
                Found::Entries(entries)
            };
            (kv.index_of(key_bytes, true), found)
        } else {
            let found = match kv.get(key_bytes) {
                None => Found::Nothing,
                Some(entry) if raw => Found::Raw(entry.value.clone()),
                Some(entry) => Found::Entries(vec![KvEntry::from(entry)]),
            };
            (kv.index_of(key_bytes, false), found)
        }
    })
    .await?;
    let response = match value {
        Found::Nothing => (StatusCode::NOT_FOUND, headers).into_response(),
        Found::Entries(entries) => (headers, Json(entries)).into_response(),
        Found::Keys(keys) => (headers, Json(keys)).into_response(),
        Found::Raw(bytes) => (headers, Body::from(bytes)).into_response(),
    };
    Ok(response)
}

pub async fn put(
    state: State<HttpState>,
    Path(key): Path<String>,
    params: Params,
    body: Bytes,
) -> Result<Response, HttpError> {
    write(state, key, params, body).await
}

pub async fn put_root(
    state: State<HttpState>,
    params: Params,
    body: Bytes,
) -> Result<Response, HttpError> {
    write(state, String::new(), params, body).await
}

async fn write(
    State(http): State<HttpState>,
    key: String,
    params: Params,
    body: Bytes,
) -> Result<Response, HttpError> {
    if key.is_empty() {
        return Err(HttpError::bad_request("Missing key name"));
    }
    if body.len() > http.max_value_bytes {
        return Err(HttpError::TooLarge {
            size: body.len(),
            max: http.max_value_bytes,
        });
    }
    let flags = params.u64("flags", "Invalid flags")?.unwrap_or(0);
    let condition = cas_condition(&params)?;
    let lock = match (params.text("acquire"), params.text("release")) {
        (Some(_), Some(_)) => {
            return Err(HttpError::bad_request(
                "Conflicting flags: cannot specify both ?acquire and ?release",
            ))
        }
        (Some(session), None) => LockAction::Acquire(session.to_string()),
        (None, Some(session)) => LockAction::Release(session.to_string()),
        (None, None) => LockAction::None,
    };
    let op = Op::KvPut {
        key: key.into_bytes(),
        value: body.to_vec(),
        flags,
        lease: None,
        condition,
        lock,
    };
    let outcome = http.registry.write(op).await?;
    answer_bool(outcome.response)
}

pub async fn delete(
    state: State<HttpState>,
    Path(key): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    remove(state, key, params).await
}

pub async fn delete_root(state: State<HttpState>, params: Params) -> Result<Response, HttpError> {
    remove(state, String::new(), params).await
}

async fn remove(
    State(http): State<HttpState>,
    key: String,
    params: Params,
) -> Result<Response, HttpError> {
    let prefix = params.flag("recurse");
    if key.is_empty() && !prefix {
        return Err(HttpError::bad_request("Missing key name"));
    }
    let condition = cas_condition(&params)?;
    if prefix && condition != KvCondition::None {
        return Err(HttpError::bad_request(
            "Conflicting flags: cannot specify both ?cas and ?recurse",
        ));
    }
    let op = Op::KvDelete {
        key: key.into_bytes(),
        prefix,
        condition,
    };
    let outcome = http.registry.write(op).await?;
    answer_bool(outcome.response)
}

fn cas_condition(params: &Params) -> Result<KvCondition, HttpError> {
    Ok(match params.u64("cas", "Invalid CAS index")? {
        Some(index) => KvCondition::ModifyIndex(index),
        None => KvCondition::None,
    })
}

/// Consul answers KV writes with a bare JSON `true` or `false`.
fn answer_bool(applied: Applied) -> Result<Response, HttpError> {
    match applied {
        Applied::Applied(ok) => Ok(Json(ok).into_response()),
        // `Txn` answers only etcd's Txn ops, which Consul never sends.
        Applied::Done | Applied::Deleted(_) | Applied::Txn(_) => Ok(Json(true).into_response()),
        Applied::Rejected(ApplyError::UnknownSession { id }) => {
            Err(HttpError::Internal(format!("invalid session {id:?}")))
        }
        Applied::Rejected(e) => Err(HttpError::bad_request(e.to_string())),
    }
}
