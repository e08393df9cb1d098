//! A setting that cannot be used, named by its configuration key.

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}
