//! The errors of the SDK: one enum for talking to the registry, one for calls
//! made through the balancer.

use std::time::Duration;

/// Why a request to the Sextant servers failed.
///
/// ```no_run
/// # async fn f() {
/// match sextant_client::Client::connect(["127.0.0.1:2379"]).await {
///     Ok(_) => {}
///     Err(sextant_client::Error::Unavailable { attempts, last }) => eprintln!("down ({attempts} tries): {last}"),
///     Err(other) => eprintln!("{other}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// [`crate::ClientBuilder`] got no server address.
    #[error("no Sextant server address was given")]
    NoServers,
    /// A server address could not be parsed as a URI.
    #[error("invalid Sextant server address {address:?}: {reason}")]
    InvalidServer {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No server answered: every one was tried, with backoff, `attempts` times in all.
    #[error("no Sextant server answered after {attempts} attempts: {last}")]
    Unavailable {
        /// Attempts made across all servers.
        attempts: u32,
        /// The last server's error.
        last: tonic::Status,
    },
    /// A server answered with an error that trying elsewhere would not change
    /// (an invalid instance, say).
    #[error("the Sextant server refused the request: {0}")]
    Rejected(tonic::Status),
    /// The instance given to [`crate::Client::register`] is not valid.
    #[error("invalid instance: {0}")]
    InvalidInstance(&'static str),
}

/// Why a call made through a [`crate::LoadBalancer`] failed. `E` is the
/// error of the caller's own request.
///
/// ```
/// use sextant_client::CallError;
/// let e: CallError<std::io::Error> = CallError::NoEndpoints { service: "users".into() };
/// assert_eq!(e.to_string(), "service \"users\" has no instances");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The service has no instance in the discovery view.
    #[error("service {service:?} has no instances")]
    NoEndpoints {
        /// The service called.
        service: String,
    },
    /// Every instance's circuit breaker is open (and the panic threshold did
    /// not apply because the breakers were the only reason).
    #[error("every instance of {service:?} is broken (circuit open)")]
    AllBroken {
        /// The service called.
        service: String,
    },
    /// The client-side rate limiter refused the call.
    #[error("rate limit reached for {service:?}")]
    RateLimited {
        /// The service called.
        service: String,
    },
    /// The last attempt took longer than the per-try timeout.
    #[error("call to {endpoint} timed out after {timeout:?}")]
    Timeout {
        /// `address:port` of the instance.
        endpoint: String,
        /// The per-try timeout.
        timeout: Duration,
    },
    /// The last attempt failed with the caller's own error.
    #[error("call to {endpoint} failed: {source}")]
    Failed {
        /// `address:port` of the instance.
        endpoint: String,
        /// The caller's error.
        source: E,
    },
}
