//! `Discover`: the matching instances of a service now, read after a read
//! barrier so that a follower answers what the leader has.

use sextant_proto::v1::{DiscoverRequest, DiscoverResponse};

use super::error::NativeError;
use super::selection::Selection;
use super::NativeContext;
use sextant_core::registry::Consistency;

pub async fn discover(
    ctx: &NativeContext,
    request: DiscoverRequest,
) -> Result<DiscoverResponse, NativeError> {
    let selection = Selection::new(
        request.service,
        request.tags,
        request.meta,
        request.include_unhealthy,
    )?;
    ctx.registry.read_barrier(Consistency::Default).await?;
    let state = ctx.registry.view();
    let (revision, matching) = selection.evaluate(state.catalog());
    Ok(DiscoverResponse {
        instances: matching.into_values().collect(),
        revision,
    })
}
