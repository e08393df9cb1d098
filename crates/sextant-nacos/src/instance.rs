//! `/nacos/v1/ns/instance`: register (POST), deregister (DELETE), update
//! (PUT) and read (GET) one instance.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use sextant_state::catalog::CheckStatus;
use sextant_state::Op;

use super::error::NacosError;
use super::model::{InstanceKey, Registration};
use super::params::Params;
use super::{beat, store, NacosState};

/// Registers an instance, or registers it again: it is healthy from now on
/// (an ephemeral one for a whole beat timeout). Answers `ok` once the
/// registration is committed on a majority and applied here.
pub async fn register(
    State(nacos): State<NacosState>,
    params: Params,
) -> Result<&'static str, NacosError> {
    let registration = Registration::from_params(&params)?;
    let existed = store::instance(&nacos, &registration.key).is_some();
    let (service, check) = registration.to_catalog(&nacos.config)?;
    let op = Op::RegisterService {
        node: registration.key.node(),
        service,
        checks: vec![check],
        replace_checks: true,
    };
    store::write(&nacos, op).await?;
    if existed && registration.ephemeral {
        // A registration counts as a beat: its TTL clock (on the check's
        // owner) may be about to run out.
        beat::renew(&nacos, &registration.key).await?;
    }
    Ok("ok")
}

/// Removes an instance; `ok` also when there was none.
pub async fn deregister(
    State(nacos): State<NacosState>,
    params: Params,
) -> Result<&'static str, NacosError> {
    let key = InstanceKey::from_params(&params)?;
    // Always proposed, never decided on this server's state: it may not have
    // applied a registration made through another server yet. Removing an
    // instance that is not there changes nothing.
    let op = Op::DeregisterService {
        node: key.node(),
        service_id: key.id(),
    };
    store::write(&nacos, op).await?;
    Ok("ok")
}

/// Changes an existing instance's weight, metadata, `enabled`, or (for a
/// persistent instance) its health. An ephemeral instance keeps the health
/// its beats give it.
pub async fn update(
    State(nacos): State<NacosState>,
    params: Params,
) -> Result<&'static str, NacosError> {
    let mut registration = Registration::from_params(&params)?;
    // See the instance as the leader does: it may have been registered
    // through another server a moment ago.
    store::catch_up(&nacos).await?;
    let Some(current) = store::instance(&nacos, &registration.key) else {
        return Err(NacosError::bad_request(format!(
            "instance not exist: {}",
            registration.key.id()
        )));
    };
    if current.ephemeral != registration.ephemeral {
        return Err(NacosError::bad_request(format!(
            "instance {} is {}, it cannot become {} by an update",
            registration.key.id(),
            kind(current.ephemeral),
            kind(registration.ephemeral)
        )));
    }
    if params.text("healthy").is_none() {
        registration.healthy = current.healthy;
    }
    let (service, mut check) = registration.to_catalog(&nacos.config)?;
    if registration.ephemeral {
        check.status = if current.healthy {
            CheckStatus::Passing
        } else {
            CheckStatus::Critical
        };
    }
    let op = Op::RegisterService {
        node: registration.key.node(),
        service,
        checks: vec![check],
        replace_checks: true,
    };
    store::write(&nacos, op).await?;
    Ok("ok")
}

fn kind(ephemeral: bool) -> &'static str {
    if ephemeral {
        "ephemeral"
    } else {
        "persistent"
    }
}

/// One instance in Nacos's detail shape.
pub async fn detail(
    State(nacos): State<NacosState>,
    params: Params,
) -> Result<Json<Value>, NacosError> {
    let key = InstanceKey::from_params(&params)?;
    let instance = store::instance(&nacos, &key)
        .ok_or_else(|| NacosError::NotFound("no matched ip found!".into()))?;
    Ok(Json(json!({
        "service": instance.grouped_service,
        "ip": instance.ip,
        "port": instance.port,
        "clusterName": instance.cluster,
        "weight": instance.weight,
        "healthy": instance.healthy,
        "enabled": instance.enabled,
        "ephemeral": instance.ephemeral,
        "instanceId": instance.id,
        "metadata": instance.metadata,
    })))
}
