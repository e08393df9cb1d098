//! The `consul_json` target: every Consul request-body decoder answers
//! arbitrary bytes with a value or a `DecodeError` (a 400), never a panic.

use sextant_state::fuzzing::ByteSource;

use crate::{registration, session};

/// The first byte picks the decoder; the rest is the request body.
pub fn consul_json(data: &[u8]) {
    let mut source = ByteSource::new(data);
    let which = source.byte();
    let body = source.rest();
    match which % 4 {
        // PUT /v1/agent/service/register
        0 => {
            let _ = registration::agent_service(body);
        }
        // PUT /v1/agent/check/register
        1 => {
            let _ = registration::agent_check(body);
        }
        // PUT /v1/catalog/register
        2 => {
            let _ = registration::catalog(body);
        }
        // PUT /v1/session/create
        _ => {
            let _ = session::decode(body, "n1", |node| node == "n1");
        }
    }
}
