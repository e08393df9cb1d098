//! `PUT /nacos/v1/ns/instance/beat`: an ephemeral instance's heartbeat.
//!
//! A beat renews the instance's TTL check on the server that owns it (any
//! server passes it on, see [`sextant_core::health::Health::ttl_update_routed`]);
//! it is a Raft write only when the instance was unhealthy and becomes
//! healthy again. A beat for an instance that is not registered answers
//! code 20404, on which Nacos clients register again.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use sextant_state::catalog::CheckStatus;

use super::error::NacosError;
use super::model::{InstanceKey, ServiceKey, DEFAULT_CLUSTER};
use super::params::Params;
use super::{store, NacosState};
use sextant_core::health::TtlUpdateError;
use sextant_core::registry::RegistryError;

/// Nacos's codes in a beat's answer.
const CODE_OK: u32 = 10200;
const CODE_UNKNOWN_INSTANCE: u32 = 20404;

pub async fn beat(
    State(nacos): State<NacosState>,
    params: Params,
) -> Result<Json<Value>, NacosError> {
    let key = beat_target(&params)?;
    let interval_ms = nacos.config.beat_interval.as_millis() as u64;
    let answer = |code: u32, interval_ms: u64| {
        Json(json!({
            "clientBeatInterval": interval_ms,
            "code": code,
            "lightBeatEnabled": true,
        }))
    };
    let Some(instance) = store::instance(&nacos, &key) else {
        return Ok(answer(CODE_UNKNOWN_INSTANCE, interval_ms));
    };
    if instance.ephemeral && !renew(&nacos, &key).await? {
        return Ok(answer(CODE_UNKNOWN_INSTANCE, interval_ms));
    }
    Ok(answer(
        CODE_OK,
        instance.timers.beat_interval.as_millis() as u64,
    ))
}

/// Renews the instance's TTL check; `false` if the check is gone.
pub async fn renew(nacos: &NacosState, key: &InstanceKey) -> Result<bool, NacosError> {
    let renewed = nacos
        .health
        .ttl_update_routed(&key.node(), &key.check_id(), CheckStatus::Passing, "")
        .await;
    match renewed {
        Ok(Some(revision)) => {
            nacos.registry.applied_here(revision).await;
            Ok(true)
        }
        Ok(None) => Ok(true),
        Err(TtlUpdateError::UnknownCheck(_)) => Ok(false),
        Err(TtlUpdateError::Registry(e)) => Err(e.into()),
        // Retryable, like a write without a leader: the leader, which keeps
        // the clock, could not be reached or was deposed.
        Err(TtlUpdateError::LeaderUnreachable { .. } | TtlUpdateError::LeaderRefused { .. }) => {
            Err(RegistryError::Timeout {
                what: "the server that runs the instance's health check",
            }
            .into())
        }
        Err(e @ TtlUpdateError::NotTtl(_)) => Err(NacosError::Internal(e.to_string())),
    }
}

/// The instance a beat is for: from the parameters, or from the `beat`
/// JSON the Java client sends (`serviceName`, `ip`, `port`, `cluster`).
fn beat_target(params: &Params) -> Result<InstanceKey, NacosError> {
    let beat: Option<Value> = params
        .text("beat")
        .map(|text| {
            serde_json::from_str(text)
                .map_err(|_| NacosError::bad_request(format!("Param 'beat' is illegal: {text}")))
        })
        .transpose()?;
    let from_beat = |field: &str| {
        beat.as_ref()
            .and_then(|b| b.get(field))
            .and_then(|v| match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    };
    let service = match (params.text("serviceName"), from_beat("serviceName")) {
        (None, Some(name)) => {
            let mut with_name = Params::from_pairs([("serviceName", name.as_str())]);
            for field in ["groupName", "namespaceId"] {
                if let Some(value) = params.text(field) {
                    with_name = with_name.with(field, value);
                }
            }
            ServiceKey::from_params(&with_name)?
        }
        _ => ServiceKey::from_params(params)?,
    };
    let ip = params
        .text("ip")
        .map(str::to_owned)
        .or_else(|| from_beat("ip"))
        .ok_or_else(|| NacosError::required("ip"))?;
    let port_text = params
        .text("port")
        .map(str::to_owned)
        .or_else(|| from_beat("port"))
        .ok_or_else(|| NacosError::required("port"))?;
    let port = port_text.parse::<u16>().map_err(|_| {
        NacosError::bad_request(format!(
            "Param 'port' is not a valid number: {port_text:?}."
        ))
    })?;
    let cluster = params
        .text("clusterName")
        .map(str::to_owned)
        .or_else(|| from_beat("cluster"))
        .unwrap_or_else(|| DEFAULT_CLUSTER.to_owned());
    InstanceKey::new(service, &cluster, &ip, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beat_names_its_instance_by_parameters_or_json() {
        let by_params = beat_target(&Params::from_pairs([
            ("serviceName", "svc"),
            ("ip", "10.0.0.1"),
            ("port", "80"),
        ]))
        .expect("valid");
        let by_json = beat_target(&Params::from_pairs([(
            "beat",
            r#"{"serviceName":"DEFAULT_GROUP@@svc","ip":"10.0.0.1","port":80,"cluster":"DEFAULT"}"#,
        )]))
        .expect("valid");
        assert_eq!(by_params, by_json);
        assert!(beat_target(&Params::from_pairs([("beat", "{")])).is_err());
        assert!(beat_target(&Params::from_pairs([("serviceName", "svc")])).is_err());
    }
}
