//! A tonic `Channel` balancing over a discovery view.

use futures::StreamExt;
use tonic::transport::channel::Change as ChannelChange;
use tonic::transport::{Channel, Endpoint as TonicEndpoint};
use tower::discover::Change;

use crate::Discovery;

/// Capacity of the change queue between the view and tonic's balancer.
const CHANGE_QUEUE: usize = 64;

impl Discovery {
    /// A tonic [`Channel`] that balances (power of two choices) over the
    /// endpoints of this view and follows it as it changes. Plaintext HTTP/2
    /// to `http://address:port`. Must be called inside a tokio runtime.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use sextant_client::{Discovery, Endpoint};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (_tx, rx) = tokio::sync::watch::channel(Arc::new(vec![Endpoint::new("a", "greeter", "127.0.0.1", 50051)]));
    /// let channel = Discovery::from_receiver("greeter", rx).balanced_channel();
    /// // let client = GreeterClient::new(channel);
    /// # }
    /// ```
    pub fn balanced_channel(&self) -> Channel {
        let (channel, tx) = Channel::balance_channel::<String>(CHANGE_QUEUE);
        let mut changes = self.changes();
        let service = self.service().to_owned();
        tokio::spawn(async move {
            loop {
                let change = tokio::select! {
                    change = changes.next() => change,
                    // Every clone of the channel is gone.
                    () = tx.closed() => return,
                };
                let change = match change {
                    Some(Ok(Change::Insert(key, endpoint))) => {
                        match TonicEndpoint::from_shared(endpoint.http_uri()) {
                            Ok(target) => ChannelChange::Insert(key, target),
                            Err(err) => {
                                tracing::warn!(%service, endpoint = %endpoint.authority(), error = %err, "endpoint is not a valid URI; skipped");
                                continue;
                            }
                        }
                    }
                    Some(Ok(Change::Remove(key))) => ChannelChange::Remove(key),
                    Some(Err(never)) => match never {},
                    None => return,
                };
                if tx.send(change).await.is_err() {
                    return;
                }
            }
        });
        channel
    }
}
