//! Reading Consul's JSON request bodies, whose keys are case-insensitive:
//! the Go client sends `DeregisterCriticalServiceAfter`, py-consul sends
//! `name`, `serviceid` and `grpc_use_tls`. A key is matched after lowering
//! its case and dropping `_` and `-`, so all of those spellings meet.
//!
//! Every accessor says what was wrong in words a client can act on; the
//! caller turns that into a 400.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::go_duration;

/// A malformed body: the reason goes back to the client with a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl DecodeError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// Parses a request body as one JSON object.
pub fn parse_object(body: &[u8]) -> Result<Value, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| DecodeError::new(format!("Request decode failed: {e}")))?;
    if !value.is_object() {
        return Err(DecodeError::new(
            "Request decode failed: the body must be a JSON object",
        ));
    }
    Ok(value)
}

fn normalize(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The fields of one JSON object, found whatever the case of their keys.
pub struct Fields<'a> {
    /// Where this object sits in the body, for error messages (`Check`, `Checks[1]`).
    path: String,
    fields: BTreeMap<String, &'a Value>,
}

impl<'a> Fields<'a> {
    pub fn of(value: &'a Value, path: impl Into<String>) -> Result<Self, DecodeError> {
        let path = path.into();
        let Value::Object(map) = value else {
            return Err(DecodeError::new(format!("{path} must be a JSON object")));
        };
        Ok(Self {
            fields: map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (normalize(k), v))
                .collect(),
            path,
        })
    }

    fn name(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    /// The raw value of a field (any of its spellings); null counts as absent.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.fields.get(&normalize(field)).copied()
    }

    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    pub fn string(&self, field: &str) -> Result<Option<String>, DecodeError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(DecodeError::new(format!(
                "{} must be a string, not {other}",
                self.name(field)
            ))),
        }
    }

    /// A string field that is absent or empty counts as not given.
    pub fn non_empty(&self, field: &str) -> Result<Option<String>, DecodeError> {
        Ok(self.string(field)?.filter(|s| !s.is_empty()))
    }

    pub fn bool(&self, field: &str) -> Result<Option<bool>, DecodeError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(DecodeError::new(format!(
                "{} must be true or false, not {other}",
                self.name(field)
            ))),
        }
    }

    pub fn i64(&self, field: &str) -> Result<Option<i64>, DecodeError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                DecodeError::new(format!("{} must be an integer, not {n}", self.name(field)))
            }),
            Some(other) => Err(DecodeError::new(format!(
                "{} must be a number, not {other}",
                self.name(field)
            ))),
        }
    }

    /// A count such as `SuccessBeforePassing`: a non-negative integer.
    pub fn count(&self, field: &str) -> Result<u32, DecodeError> {
        match self.i64(field)? {
            None => Ok(0),
            Some(n) => u32::try_from(n).map_err(|_| {
                DecodeError::new(format!(
                    "{} must be between 0 and {}, not {n}",
                    self.name(field),
                    u32::MAX
                ))
            }),
        }
    }

    /// A Go duration string (`"10s"`); a bare number is nanoseconds, as Go's
    /// `time.Duration` marshals.
    pub fn duration(&self, field: &str) -> Result<Option<Duration>, DecodeError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => go_duration::parse(s).map(Some).map_err(|e| {
                DecodeError::new(format!("{}: invalid duration: {e}", self.name(field)))
            }),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(nanos) => Ok(Some(Duration::from_nanos(nanos))),
                None => Err(DecodeError::new(format!(
                    "{}: invalid duration {n}",
                    self.name(field)
                ))),
            },
            Some(other) => Err(DecodeError::new(format!(
                "{}: invalid duration {other}",
                self.name(field)
            ))),
        }
    }

    pub fn strings(&self, field: &str) -> Result<Vec<String>, DecodeError> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(DecodeError::new(format!(
                        "{} must hold strings, not {other}",
                        self.name(field)
                    ))),
                })
                .collect(),
            Some(other) => Err(DecodeError::new(format!(
                "{} must be a list of strings, not {other}",
                self.name(field)
            ))),
        }
    }

    /// A string → string map such as `Meta`.
    pub fn string_map(&self, field: &str) -> Result<BTreeMap<String, String>, DecodeError> {
        match self.get(field) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(DecodeError::new(format!(
                        "{}.{k} must be a string, not {other}",
                        self.name(field)
                    ))),
                })
                .collect(),
            Some(other) => Err(DecodeError::new(format!(
                "{} must be an object of strings, not {other}",
                self.name(field)
            ))),
        }
    }

    /// A string → list of strings map such as an HTTP check's `Header`; a
    /// single string is taken as a list of one.
    pub fn string_lists(&self, field: &str) -> Result<BTreeMap<String, Vec<String>>, DecodeError> {
        match self.get(field) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| {
                    let values = match v {
                        Value::String(s) => vec![s.clone()],
                        Value::Array(items) => items
                            .iter()
                            .map(|i| i.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| {
                                DecodeError::new(format!(
                                    "{}.{k} must be a list of strings",
                                    self.name(field)
                                ))
                            })?,
                        other => {
                            return Err(DecodeError::new(format!(
                                "{}.{k} must be a list of strings, not {other}",
                                self.name(field)
                            )))
                        }
                    };
                    Ok((k.clone(), values))
                })
                .collect(),
            Some(other) => Err(DecodeError::new(format!(
                "{} must be an object, not {other}",
                self.name(field)
            ))),
        }
    }

    /// A nested object.
    pub fn object(&self, field: &str) -> Result<Option<Fields<'a>>, DecodeError> {
        self.get(field)
            .map(|v| Fields::of(v, self.name(field)))
            .transpose()
    }

    /// A list of objects.
    pub fn objects(&self, field: &str) -> Result<Vec<Fields<'a>>, DecodeError> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| Fields::of(item, format!("{}[{i}]", self.name(field))))
                .collect(),
            Some(other) => Err(DecodeError::new(format!(
                "{} must be a list, not {other}",
                self.name(field)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_match_in_any_case_and_snake_case() {
        let body = json!({
            "name": "web",
            "ServiceID": "web-1",
            "grpc_use_tls": true,
            "DeregisterCriticalServiceAfter": "30s",
            "tls_skip_verify": false,
        });
        let fields = Fields::of(&body, "").expect("an object");
        assert_eq!(fields.string("Name"), Ok(Some("web".into())));
        assert_eq!(fields.string("service_id"), Ok(Some("web-1".into())));
        assert_eq!(fields.bool("GRPCUseTLS"), Ok(Some(true)));
        assert_eq!(fields.bool("TLSSkipVerify"), Ok(Some(false)));
        assert_eq!(
            fields.duration("deregister_critical_service_after"),
            Ok(Some(Duration::from_secs(30)))
        );
    }

    #[test]
    fn wrong_types_are_named_in_the_error() {
        let body = json!({"Check": {"Interval": "ten seconds"}, "Port": "80"});
        let fields = Fields::of(&body, "").expect("an object");
        let check = fields.object("Check").expect("ok").expect("present");
        let err = check.duration("Interval").expect_err("bad duration");
        assert!(
            err.0.starts_with("Check.Interval: invalid duration"),
            "{err}"
        );
        assert!(fields.i64("port").is_err());
    }

    #[test]
    fn nulls_count_as_absent_and_numbers_as_nanoseconds() {
        let body = json!({"Tags": null, "Timeout": 1_500_000_000u64});
        let fields = Fields::of(&body, "").expect("an object");
        assert_eq!(fields.strings("tags"), Ok(Vec::new()));
        assert_eq!(
            fields.duration("timeout"),
            Ok(Some(Duration::from_millis(1500)))
        );
    }

    #[test]
    fn bodies_must_be_objects() {
        assert!(parse_object(b"[1]").is_err());
        assert!(parse_object(b"{").is_err());
        assert!(parse_object(b"  ").is_ok());
    }
}
