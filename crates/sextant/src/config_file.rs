//! The agent's TOML configuration file: the same settings as the flags, with
//! underscores (`data_dir`, `bootstrap_expect`). Flags override the file.
//! `sextant.example.toml` at the repository root documents every key and default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub dev: Option<bool>,
    pub server: Option<bool>,
    pub name: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub bootstrap_expect: Option<usize>,
    pub join: Option<Vec<String>>,
    pub http_addr: Option<SocketAddr>,
    pub grpc_addr: Option<SocketAddr>,
    pub raft_addr: Option<SocketAddr>,
    pub dns_addr: Option<SocketAddr>,
    pub dns_domain: Option<String>,
    pub dns_only_passing: Option<bool>,
    pub dns_udp_answer_limit: Option<usize>,
    pub dns_ttl: Option<String>,
    pub nacos_addr: Option<SocketAddr>,
    pub nacos_beat_timeout: Option<String>,
    pub nacos_delete_timeout: Option<String>,
    pub election_timeout: Option<String>,
    pub snapshot_threshold: Option<u64>,
    pub kv_history_retention: Option<u64>,
    pub leave_on_terminate: Option<bool>,
    pub log_level: Option<String>,
    pub log_format: Option<crate::observability::LogFormat>,
    pub otlp_endpoint: Option<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("invalid configuration in {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_parses() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sextant.example.toml");
        let config = FileConfig::load(&example).expect("example config");
        assert_eq!(config.bootstrap_expect, Some(3));
        assert_eq!(config.election_timeout.as_deref(), Some("1s"));
        assert_eq!(config.dns_domain.as_deref(), Some("consul."));
        assert_eq!(config.dns_udp_answer_limit, Some(3));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<FileConfig>("bootstrap_expected = 3").is_err());
    }
}
