//! The `consul_filter` target: the `?filter=` expression parser answers any
//! text with a filter or an error (a 400), and a parsed filter evaluates
//! against a catalog record without panicking.

use serde_json::{json, Value};

use crate::filter::Filter;

/// A record shaped like the catalog's answers, with nested maps and lists
/// so that selectors of every kind find something.
fn record() -> Value {
    json!({
        "Node": "n1",
        "ServiceName": "web",
        "ServiceTags": ["v1", "primary"],
        "ServiceMeta": {"version": "1.2", "": "empty key"},
        "ServicePort": 8080,
        "Checks": [{"Status": "passing", "CheckID": "serfHealth"}],
        "Weights": {"Passing": 1, "Warning": 1},
        "Empty": "",
        "Null": null
    })
}

/// The input, read as the URL-decoded query value it would arrive as
/// (which is always UTF-8), is parsed and, if valid, evaluated.
pub fn consul_filter(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(filter) = Filter::parse(&text) {
        let _ = filter.matches(&record());
        let _ = filter.matches(&Value::Null);
    }
}
