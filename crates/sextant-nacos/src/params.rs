//! The parameters of a Nacos request. Nacos clients send them form-encoded,
//! in the query string (GET, DELETE, and PUT from some clients) or in the
//! body (POST and PUT from the Java client); both are read, the body's
//! values winning.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};

use super::error::NacosError;

/// The decoded parameters: the last value given for each name.
#[derive(Debug, Default)]
pub struct Params {
    values: HashMap<String, String>,
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = NacosError;

    async fn from_request(request: Request, state: &S) -> Result<Self, NacosError> {
        let mut params = Params::default();
        if let Some(query) = request.uri().query() {
            params.extend(query.as_bytes())?;
        }
        let is_json = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|e| NacosError::bad_request(e.body_text()))?;
        if !body.is_empty() && !is_json {
            params.extend(&body)?;
        }
        Ok(params)
    }
}

impl Params {
    /// Parameters from `name=value` pairs, for tests and other callers.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// These parameters with `name` set to `value`.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.values.insert(name.to_owned(), value.to_owned());
        self
    }

    fn extend(&mut self, encoded: &[u8]) -> Result<(), NacosError> {
        for pair in encoded.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &b""[..]),
            };
            self.values.insert(decode(name)?, decode(value)?);
        }
        Ok(())
    }

    /// The value of `name`, if given and not blank (Nacos treats a blank
    /// parameter as absent).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value of a parameter Nacos requires.
    pub fn required(&self, name: &str) -> Result<&str, NacosError> {
        self.text(name).ok_or_else(|| NacosError::required(name))
    }

    /// A boolean parameter (`true`/`false`, any case), `default` when absent.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, NacosError> {
        match self.text(name) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(NacosError::bad_request(format!(
                "Param '{name}' must be true or false, not {v:?}."
            ))),
        }
    }

    /// A number parameter, `None` when absent.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, NacosError> {
        self.text(name)
            .map(|v| {
                v.parse::<T>().map_err(|_| {
                    NacosError::bad_request(format!("Param '{name}' is not a valid number: {v:?}."))
                })
            })
            .transpose()
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn decode(text: &[u8]) -> Result<String, NacosError> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = text
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| NacosError::bad_request("invalid %-escape in the parameters"))?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| NacosError::bad_request("parameters are not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_form_pairs() {
        let mut params = Params::default();
        params
            .extend(b"serviceName=a%40%40b&metadata=%7B%22k%22%3A%22v+w%22%7D&empty=&flag")
            .expect("valid");
        assert_eq!(params.text("serviceName"), Some("a@@b"));
        assert_eq!(params.text("metadata"), Some(r#"{"k":"v w"}"#));
        assert_eq!(params.text("empty"), None);
        assert!(params.required("empty").is_err());
        assert!(Params::default().extend(b"bad=%zz").is_err());
    }

    #[test]
    fn typed_values_are_checked() {
        let params = Params::from_pairs([("port", "80"), ("healthy", "TRUE"), ("bad", "x")]);
        assert_eq!(params.number::<u16>("port").expect("number"), Some(80));
        assert!(params.number::<u16>("bad").is_err());
        assert!(params.flag("healthy", false).expect("flag"));
        assert!(params.flag("bad", false).is_err());
        assert!(!params.flag("absent", false).expect("default"));
    }
}
