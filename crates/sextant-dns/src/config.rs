//! The DNS interface's settings and their validation.

use std::time::Duration;

use sextant_core::ConfigError;

/// The Consul DNS interface (`NAME.service.consul`, `NODE.node.consul`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// The zone answered for, ending in a dot (Consul: `consul.`); names
    /// outside it are refused, never recursed.
    pub domain: String,
    /// Leave out instances whose health is warning, not only critical ones.
    pub only_passing: bool,
    /// Most answer records in one UDP response (Consul: 3); the rest are cut
    /// off with the TC bit set and a client retries over TCP for all of them.
    pub udp_answer_limit: usize,
    /// TTL of every record; 0 (the default) keeps resolvers from caching
    /// instances that have since gone critical.
    pub ttl: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            domain: "consul.".into(),
            only_passing: false,
            udp_answer_limit: 3,
            ttl: Duration::ZERO,
        }
    }
}

impl DnsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| ConfigError::Invalid {
            field,
            reason: reason.into(),
        };
        let domain = self.domain.trim_end_matches('.');
        if domain.is_empty()
            || domain.split('.').any(|label| {
                label.is_empty()
                    || label.len() > 63
                    || !label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        {
            return Err(invalid(
                "dns_domain",
                "must be a domain name such as `consul.`",
            ));
        }
        if self.udp_answer_limit == 0 {
            return Err(invalid("dns_udp_answer_limit", "must be at least 1"));
        }
        if self.ttl.as_secs() > u64::from(i32::MAX as u32) {
            return Err(invalid("dns_ttl", "must be below 2^31 seconds"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_config_is_validated() {
        assert!(DnsConfig::default().validate().is_ok());
        let with = |f: fn(&mut DnsConfig)| {
            let mut config = DnsConfig::default();
            f(&mut config);
            config.validate()
        };
        assert!(with(|c| c.domain = "sextant.internal".into()).is_ok());
        assert!(with(|c| c.domain = "".into()).is_err());
        assert!(with(|c| c.domain = "a..b".into()).is_err());
        assert!(with(|c| c.domain = "bad domain.".into()).is_err());
        assert!(with(|c| c.udp_answer_limit = 0).is_err());
    }
}
