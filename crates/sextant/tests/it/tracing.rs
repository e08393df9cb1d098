//! Traces and structured logs of a real agent: spans exported over OTLP to a
//! collector run by the test, and JSON log lines on stderr.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use testkit::{wait_for, Server, ServerOpts};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

const BIN: &str = env!("CARGO_BIN_EXE_sextant");

/// One exported span, flattened with its resource.
#[derive(Clone, Debug)]
struct ExportedSpan {
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: BTreeMap<String, String>,
    resource: BTreeMap<String, String>,
}

/// An OTLP/gRPC trace collector that keeps every span it receives.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| flatten(&r.attributes))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.push(ExportedSpan {
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        attributes: flatten(&span.attributes),
                        resource: resource.clone(),
                    });
                }
            }
        }
        self.spans.lock().expect("spans").extend(received);
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    /// Serves on an ephemeral loopback port until the test ends.
    async fn start() -> (Collector, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let collector = Collector::default();
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
        });
        (collector, addr)
    }

    fn spans(&self) -> Vec<ExportedSpan> {
        self.spans.lock().expect("spans").clone()
    }
}

fn flatten(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::DoubleValue(d)) => d.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn attr<'a>(span: &'a ExportedSpan, key: &str) -> Option<&'a str> {
    span.attributes.get(key).map(String::as_str)
}

fn is_kv_put(span: &ExportedSpan) -> bool {
    span.name == "http.request"
        && attr(span, "http.request.method") == Some("PUT")
        && attr(span, "http.route") == Some("/v1/kv/{*key}")
}

/// A dev agent started with extra flags (the harness's `start_dev` takes none).
async fn start_dev_with(name: &str, flags: &[String]) -> Server {
    let mut extra_args = vec!["--dev".to_owned()];
    extra_args.extend_from_slice(flags);
    let opts = ServerOpts {
        extra_args,
        ..ServerOpts::default()
    };
    let server = Server::start(BIN, name, &opts, None, &[]).await;
    wait_for("the dev agent to lead", Duration::from_secs(30), || async {
        match server.http().status_leader().await {
            Ok(leader) if !leader.is_empty() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    server
}

#[tokio::test]
async fn spans_of_requests_and_proposals_reach_the_otlp_collector() {
    let (collector, collector_addr) = Collector::start().await;
    let endpoint = format!("http://{collector_addr}");
    let mut dev = start_dev_with("traced", &["--otlp-endpoint".to_owned(), endpoint]).await;

    assert!(dev.http().kv_put("tracing/first", "v").await.expect("PUT"));
    let mut etcd = etcd_client::Client::connect([dev.grpc_addr().to_string()], None)
        .await
        .expect("etcd connect");
    etcd.put("tracing/etcd", "v", None).await.expect("etcd put");

    // The batch exporter sends every few seconds.
    let spans = wait_for(
        "the HTTP, gRPC and proposal spans",
        Duration::from_secs(30),
        || async {
            let spans = collector.spans();
            let http = spans.iter().any(is_kv_put);
            let grpc = spans
                .iter()
                .any(|s| s.name == "grpc.request" && attr(s, "rpc.method") == Some("Put"));
            let proposals = spans.iter().filter(|s| s.name == "raft.propose").count();
            if http && grpc && proposals >= 2 {
                Ok(spans)
            } else {
                Err(format!(
                    "http={http} grpc={grpc} proposals={proposals} of {} spans: {:?}",
                    spans.len(),
                    spans.iter().map(|s| &s.name).collect::<Vec<_>>()
                ))
            }
        },
    )
    .await;

    let put = spans.iter().find(|s| is_kv_put(s)).expect("the PUT span");
    assert_eq!(attr(put, "http.response.status_code"), Some("200"));
    assert_eq!(
        put.resource.get("service.name").map(String::as_str),
        Some("sextant")
    );
    assert_eq!(
        put.resource.get("sextant.node.name").map(String::as_str),
        Some("traced")
    );

    // The Consul PUT's proposal is a descendant of its HTTP span, in one trace.
    let in_put_trace: Vec<&ExportedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == put.trace_id)
        .collect();
    let proposal = in_put_trace
        .iter()
        .find(|s| s.name == "raft.propose")
        .unwrap_or_else(|| panic!("no proposal in the PUT's trace: {in_put_trace:#?}"));
    assert_eq!(attr(proposal, "op"), Some("kv_put"));
    let revision: u64 = attr(proposal, "revision")
        .expect("revision")
        .parse()
        .expect("a revision");
    assert!(revision > 0);
    assert!(attr(proposal, "duration_ms").is_some(), "{proposal:?}");
    let mut ancestor = proposal.parent_span_id.clone();
    while ancestor != put.span_id {
        let parent = in_put_trace
            .iter()
            .find(|s| s.span_id == ancestor)
            .unwrap_or_else(|| panic!("the proposal is not under the PUT: {in_put_trace:#?}"));
        ancestor = parent.parent_span_id.clone();
    }

    let grpc = spans
        .iter()
        .find(|s| s.name == "grpc.request" && attr(s, "rpc.method") == Some("Put"))
        .expect("the etcd Put span");
    assert_eq!(attr(grpc, "rpc.service"), Some("etcdserverpb.KV"));
    assert_eq!(attr(grpc, "rpc.grpc.status_code"), Some("0"));
    assert!(
        spans.iter().any(|s| s.trace_id == grpc.trace_id
            && s.name == "raft.propose"
            && attr(s, "op") == Some("txn")),
        "no proposal in the etcd Put's trace"
    );

    // Spans still buffered when the agent stops are flushed before it exits.
    let puts_before = collector.spans().iter().filter(|s| is_kv_put(s)).count();
    assert!(dev.http().kv_put("tracing/last", "v").await.expect("PUT"));
    let status = dev.stop().await;
    assert!(status.success(), "{status:?}\n{}", dev.log_tail(40));
    let puts_after = collector.spans().iter().filter(|s| is_kv_put(s)).count();
    assert_eq!(
        puts_after,
        puts_before + 1,
        "the last PUT's span was not flushed at shutdown"
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("sextant.toml");
    std::fs::write(&config, "log_format = \"json\"\n").expect("config file");
    let mut dev = start_dev_with(
        "json-logs",
        &["--config".to_owned(), config.display().to_string()],
    )
    .await;
    assert!(dev.http().kv_put("logs/k", "v").await.expect("PUT"));
    let status = dev.stop().await;
    assert!(status.success(), "{status:?}");

    let stderr = std::fs::read_to_string(dev.data_dir().join("stderr.log")).expect("stderr.log");
    // The harness writes a banner line before each start.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("=====") && !l.trim().is_empty())
        .collect();
    assert!(lines.len() >= 2, "too few log lines:\n{stderr}");
    let mut messages = Vec::new();
    for line in &lines {
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{stderr}"));
        let object = object
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line:?}"));
        for key in ["timestamp", "level", "target"] {
            assert!(
                object.get(key).is_some_and(serde_json::Value::is_string),
                "no {key} in {line:?}"
            );
        }
        let fields = object
            .get("fields")
            .and_then(serde_json::Value::as_object)
            .unwrap_or_else(|| panic!("no fields in {line:?}"));
        if let Some(message) = fields.get("message").and_then(serde_json::Value::as_str) {
            messages.push(message.to_owned());
        }
    }
    assert!(
        messages.iter().any(|m| m == "shutting down"),
        "no shutdown line among {messages:?}"
    );
}
