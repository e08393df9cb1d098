//! `PUT /nacos/v1/ns/health/instance`: sets the health of a persistent
//! instance by hand (its health is whatever it is told). An ephemeral
//! instance's health follows its beats and is refused here, as in Nacos.

use axum::extract::State;
use sextant_state::catalog::CheckStatus;
use sextant_state::Op;

use super::error::NacosError;
use super::model::InstanceKey;
use super::params::Params;
use super::{store, NacosState};

pub async fn update(
    State(nacos): State<NacosState>,
    params: Params,
) -> Result<&'static str, NacosError> {
    let key = InstanceKey::from_params(&params)?;
    if params.text("healthy").is_none() {
        return Err(NacosError::required("healthy"));
    }
    let healthy = params.flag("healthy", true)?;
    store::catch_up(&nacos).await?;
    let instance = store::instance(&nacos, &key)
        .ok_or_else(|| NacosError::bad_request(format!("instance not exist: {}", key.id())))?;
    if instance.ephemeral {
        return Err(NacosError::bad_request(format!(
            "health check is still working, service: {}",
            key.service.grouped()
        )));
    }
    if instance.healthy != healthy {
        let op = Op::UpdateCheck {
            node: key.node(),
            check_id: key.check_id(),
            status: if healthy {
                CheckStatus::Passing
            } else {
                CheckStatus::Critical
            },
            output: String::new(),
        };
        store::write(&nacos, op).await?;
    }
    Ok("ok")
}
