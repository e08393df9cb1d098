//! The client: a connection to the Sextant servers shared by registrations
//! and discoveries.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use crate::connection::{ConnectConfig, Servers};
use crate::discovery::{self, Discovery, Query};
use crate::registration::{KeepAlive, Registration};
use crate::{Backoff, Error, Instance};

/// Options for [`Client`]; [`Client::connect`] uses the defaults.
///
/// ```no_run
/// # async fn run() -> Result<(), sextant_client::Error> {
/// use std::time::Duration;
/// use sextant_client::ClientBuilder;
///
/// let client = ClientBuilder::new(["10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"])
///     .request_timeout(Duration::from_secs(2))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    servers: Vec<String>,
    config: ConnectConfig,
    keepalive_interval: Option<Duration>,
    seed: Option<u64>,
}

impl ClientBuilder {
    /// The gRPC addresses (`host:port` or `http://host:port`) of the servers.
    ///
    /// ```
    /// let builder = sextant_client::ClientBuilder::new(["127.0.0.1:2379"]);
    /// ```
    pub fn new<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> ClientBuilder {
        ClientBuilder {
            servers: servers.into_iter().map(Into::into).collect(),
            config: ConnectConfig {
                connect_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(5),
                retry_deadline: Duration::from_secs(30),
                backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(2)),
            },
            keepalive_interval: None,
            seed: None,
        }
    }

    /// How long dialling one server may take (default 2 s).
    ///
    /// ```
    /// let b = sextant_client::ClientBuilder::new(["h:1"]).connect_timeout(std::time::Duration::from_secs(1));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long one request to one server may take (default 5 s).
    ///
    /// ```
    /// let b = sextant_client::ClientBuilder::new(["h:1"]).request_timeout(std::time::Duration::from_secs(1));
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.config.request_timeout = timeout;
        self
    }

    /// How long a request keeps failing over between servers before it
    /// returns [`Error::Unavailable`] (default 30 s: longer than an election).
    ///
    /// ```
    /// let b = sextant_client::ClientBuilder::new(["h:1"]).retry_deadline(std::time::Duration::from_secs(10));
    /// ```
    pub fn retry_deadline(mut self, deadline: Duration) -> ClientBuilder {
        self.config.retry_deadline = deadline;
        self
    }

    /// Backoff between rounds of failover and between stream reconnects
    /// (default 50 ms doubling to 2 s, 20 % jitter).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = sextant_client::ClientBuilder::new(["h:1"])
    ///     .backoff(sextant_client::Backoff::new(Duration::from_millis(10), Duration::from_secs(1)));
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> ClientBuilder {
        self.config.backoff = backoff;
        self
    }

    /// How often the keep-alive stream renews; by default a third of the
    /// shortest TTL registered (5 s when no instance has a TTL).
    ///
    /// ```
    /// let b = sextant_client::ClientBuilder::new(["h:1"]).keepalive_interval(std::time::Duration::from_secs(1));
    /// ```
    pub fn keepalive_interval(mut self, interval: Duration) -> ClientBuilder {
        self.keepalive_interval = Some(interval);
        self
    }

    /// Seeds the client's jitter so a run can be replayed.
    ///
    /// ```
    /// let b = sextant_client::ClientBuilder::new(["h:1"]).seed(42);
    /// ```
    pub fn seed(mut self, seed: u64) -> ClientBuilder {
        self.seed = Some(seed);
        self
    }

    /// Checks the addresses and dials until one server accepts a connection
    /// (within the retry deadline). Must run inside a tokio runtime.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sextant_client::Error> {
    /// let client = sextant_client::ClientBuilder::new(["127.0.0.1:2379"]).connect().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(self) -> Result<Client, Error> {
        let seed = self.seed.unwrap_or_else(|| rand::rng().random());
        let servers = Arc::new(Servers::new(&self.servers, self.config, seed)?);
        servers.dial_any().await?;
        let keepalive = KeepAlive::new(Arc::clone(&servers), self.keepalive_interval);
        Ok(Client {
            inner: Arc::new(ClientInner { servers, keepalive }),
        })
    }
}

/// A connection to a Sextant cluster. Cheap to clone; all clones share one
/// keep-alive stream for every instance they register.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use sextant_client::{Client, Instance};
///
/// let client = Client::connect(["127.0.0.1:2379"]).await?;
/// let registration = client
///     .register(Instance::new("user-service", "127.0.0.1", 8080).ttl(std::time::Duration::from_secs(10)))
///     .await?;
/// let users = client.discover("user-service").await?;
/// println!("{} instances", users.endpoints().len());
/// registration.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    servers: Arc<Servers>,
    keepalive: KeepAlive,
}

impl Client {
    /// Connects with the default options; see [`ClientBuilder`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sextant_client::Error> {
    /// let client = sextant_client::Client::connect(["10.0.0.1:2379", "10.0.0.2:2379"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect<S: Into<String>>(
        servers: impl IntoIterator<Item = S>,
    ) -> Result<Client, Error> {
        ClientBuilder::new(servers).connect().await
    }

    /// Registers `instance` and keeps it registered until the returned
    /// handle is shut down or dropped: renewed over the client's keep-alive
    /// stream, registered again whenever a server reports it unknown.
    ///
    /// ```no_run
    /// # async fn run(client: sextant_client::Client) -> Result<(), sextant_client::Error> {
    /// use std::time::Duration;
    /// let registration = client
    ///     .register(sextant_client::Instance::new("api", "10.0.0.5", 80).ttl(Duration::from_secs(5)))
    ///     .await?;
    /// registration.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub async fn register(&self, instance: Instance) -> Result<Registration, Error> {
        let request = instance.to_request()?;
        let id = instance.instance_id();
        let sent = request.clone();
        let response = self
            .inner
            .servers
            .unary("Register", move |mut c| {
                let request = sent.clone();
                async move { c.register(request).await }
            })
            .await?;
        tracing::info!(instance = %id, node = %response.node, revision = response.revision, "registered");
        self.inner
            .keepalive
            .add(id.clone(), request, instance.ttl_duration(), response.node);
        Ok(Registration::new(self.clone(), id))
    }

    /// A live view of the healthy instances of a service (or of a [`Query`]
    /// with tag and metadata filters), fed by a watch stream. Returns once
    /// the first full set has arrived.
    ///
    /// ```no_run
    /// # async fn run(client: sextant_client::Client) -> Result<(), sextant_client::Error> {
    /// use sextant_client::Query;
    /// let mut users = client.discover(Query::new("user-service").tag("v2")).await?;
    /// loop {
    ///     println!("{:?}", users.endpoints());
    ///     if users.changed().await.is_err() { break }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn discover(&self, query: impl Into<Query>) -> Result<Discovery, Error> {
        discovery::start(Arc::clone(&self.inner.servers), query.into()).await
    }

    /// A tonic [`Channel`](tonic::transport::Channel) balancing over the
    /// healthy instances of `service`, following the watch stream.
    ///
    /// ```no_run
    /// # async fn run(client: sextant_client::Client) -> Result<(), sextant_client::Error> {
    /// let channel = client.channel("greeter").await?;
    /// // let mut greeter = GreeterClient::new(channel);
    /// # Ok(()) }
    /// ```
    pub async fn channel(
        &self,
        query: impl Into<Query>,
    ) -> Result<tonic::transport::Channel, Error> {
        Ok(self.discover(query).await?.balanced_channel())
    }

    pub(crate) fn servers(&self) -> &Arc<Servers> {
        &self.inner.servers
    }

    pub(crate) fn keepalive(&self) -> &KeepAlive {
        &self.inner.keepalive
    }
}
