//! Logs and traces of the agent: log lines on stderr (text or JSON), and,
//! when an OTLP endpoint is configured, the request and proposal spans
//! exported to it.
//!
//! The two outputs are filtered separately. Logs follow `--log-level` (or
//! `RUST_LOG`), so the default `info` prints state changes, not a line per
//! request. The exporter takes Sextant's spans from `debug` up — the spans of
//! every HTTP and gRPC request and every Raft proposal are `debug` — and its
//! events from `info` up, which become events of the span they happen in.
//! With no endpoint, those spans are disabled at their call sites and cost
//! nothing.

use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::{Level, Metadata};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter, EnvFilter, Layer, Registry};

/// How log lines are written on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, fields, spans.
    Json,
}

/// What the agent's configuration says about logs and traces.
pub struct Settings<'a> {
    /// A tracing filter directive, e.g. `info` or `sextant_core=debug`.
    pub log_level: &'a str,
    pub log_format: LogFormat,
    /// An OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`.
    pub otlp_endpoint: Option<&'a str>,
    /// This server's name, recorded on every exported span's resource.
    pub node_name: &'a str,
}

/// How long one export to the collector may take, and how long shutdown
/// waits for the last spans to leave.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps the span exporter running; [`Observability::shutdown`] flushes it.
pub struct Observability {
    provider: Option<SdkTracerProvider>,
}

/// Installs the process's subscriber. Must run inside the Tokio runtime: the
/// OTLP exporter's gRPC channel lives on it.
pub fn init(settings: &Settings<'_>) -> anyhow::Result<Observability> {
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![log_layer(settings)];
    let provider = match settings.otlp_endpoint {
        Some(endpoint) => {
            let provider = tracer_provider(endpoint, settings.node_name)?;
            let tracer = provider.tracer("sextant");
            layers.push(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(filter::filter_fn(exported))
                    .boxed(),
            );
            Some(provider)
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .context("a tracing subscriber is already installed")?;
    if let Some(endpoint) = settings.otlp_endpoint {
        tracing::info!(endpoint, "exporting spans over OTLP");
    }
    Ok(Observability { provider })
}

impl Observability {
    /// Exports the spans still buffered and stops the exporter. The SDK's
    /// shutdown blocks its caller until the export ends, so it runs off the
    /// async workers, which keep driving the export's connection meanwhile.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(EXPORT_TIMEOUT))
                .await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the last spans were not exported"),
            Err(e) => tracing::warn!(error = %e, "the span exporter did not stop"),
        }
    }
}

/// openraft warns about an unreachable peer on every retry; its errors are
/// what an operator needs, Sextant logs the state changes itself.
fn log_layer(settings: &Settings<'_>) -> Box<dyn Layer<Registry> + Send + Sync> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},openraft=error", settings.log_level)));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Text => layer.with_filter(filter).boxed(),
        LogFormat::Json => layer
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    }
}

/// What goes to the collector: Sextant's own spans from `debug` up, and its
/// events from `info` up (other crates' spans would only add noise).
fn exported(metadata: &Metadata<'_>) -> bool {
    if !metadata.target().starts_with("sextant") {
        return false;
    }
    let floor = if metadata.is_span() {
        Level::DEBUG
    } else {
        Level::INFO
    };
    *metadata.level() <= floor
}

fn tracer_provider(endpoint: &str, node_name: &str) -> anyhow::Result<SdkTracerProvider> {
    if !endpoint.starts_with("http://") {
        anyhow::bail!(
            "invalid OTLP endpoint {endpoint:?}: expected http://HOST:PORT (OTLP over gRPC, without TLS)"
        );
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .with_context(|| format!("cannot export spans to {endpoint}"))?;
    let resource = Resource::builder()
        .with_service_name("sextant")
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", node_name.to_owned()),
            KeyValue::new("sextant.node.name", node_name.to_owned()),
        ])
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_parse_from_the_config_file() {
        #[derive(serde::Deserialize)]
        struct File {
            log_format: LogFormat,
        }
        let parsed: File = toml::from_str("log_format = \"json\"").expect("json");
        assert_eq!(parsed.log_format, LogFormat::Json);
        assert!(toml::from_str::<File>("log_format = \"yaml\"").is_err());
    }

    #[test]
    fn only_http_endpoints_are_accepted() {
        for bad in ["127.0.0.1:4317", "https://collector:4317", "grpc://x"] {
            assert!(tracer_provider(bad, "n").is_err(), "{bad} accepted");
        }
    }
}
