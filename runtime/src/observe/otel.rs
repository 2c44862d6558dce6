//! OpenTelemetry traces over OTLP/HTTP (protobuf): `--otlp-endpoint URL`.
//!
//! Two kinds of spans go to one tracer provider:
//! - the plugin lifecycle: the runtime's `tracing` spans `plugin.reload`,
//!   `plugin.load`, `plugin.init`, `plugin.swap`, `plugin.destroy`, bridged
//!   by [`layer`] (tracing-opentelemetry), with their nesting as parent
//!   links;
//! - sampled queries: `dns.query` (kind server) with a child
//!   `plugin.decide` naming the plugin, rule and policy version, made after
//!   the decision with its measured start and end ([`query`]), so the query
//!   path creates nothing for unsampled queries.
//!
//! Spans are batched and exported by the SDK's batch processor on its own
//! thread with a blocking HTTP client: the query path only queues (a full
//! queue drops). [`shutdown`] flushes; call it outside the async runtime.

use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

struct Otel {
    provider: SdkTracerProvider,
    tracer: Tracer,
    /// Every N-th query is traced.
    every: u64,
}

static OTEL: OnceLock<Otel> = OnceLock::new();

/// `http://HOST:PORT` or a full URL: the traces path (`/v1/traces`) is
/// added when the URL has no path.
pub fn traces_url(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    let after_scheme = e.split_once("://").map_or(e, |(_, rest)| rest);
    if after_scheme.contains('/') {
        e.to_string()
    } else {
        format!("{e}/v1/traces")
    }
}

/// Starts the exporter to `endpoint`, tracing a `sample` share of queries
/// (in (0, 1]); `node` names this server in the resource. Call before the
/// async runtime starts (the exporter's HTTP client is a blocking one).
pub fn start(endpoint: &str, sample: f64, node: &str) -> Result<(), String> {
    if !(sample > 0.0 && sample <= 1.0) {
        return Err(format!(
            "OTLP query sample {sample}: expected a rate in (0, 1], e.g. 0.01"
        ));
    }
    if !endpoint.starts_with("http://") {
        return Err(format!(
            "--otlp-endpoint {endpoint}: an http:// URL (OTLP/HTTP, no TLS)"
        ));
    }
    // reqwest builds its TLS config even for http://: ring's provider, the
    // one TLS stack of the binary, installed once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("OTLP exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("dnspolicy")
        .with_attributes([
            KeyValue::new("service.instance.id", node.to_string()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("dnspolicy");
    let every = (1.0 / sample).round().max(1.0) as u64;
    OTEL.set(Otel {
        provider,
        tracer,
        every,
    })
    .map_err(|_| "OpenTelemetry already started".to_string())
}

/// Whether traces are exported.
pub fn enabled() -> bool {
    OTEL.get().is_some()
}

/// The `tracing` layer that turns the runtime's spans into OTel spans
/// (`None` without an exporter).
pub fn layer<S>() -> Option<tracing_opentelemetry::OpenTelemetryLayer<S, Tracer>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    OTEL.get()
        .map(|o| tracing_opentelemetry::layer().with_tracer(o.tracer.clone()))
}

/// Whether this query is traced: every N-th on a worker's `counter`.
pub fn sampled(counter: &mut u64) -> bool {
    let Some(o) = OTEL.get() else { return false };
    *counter = counter.wrapping_add(1);
    counter.is_multiple_of(o.every)
}

/// Records a traced query, after its decision (the decision log's entry
/// of it, started at `start`, taking `took`): `dns.query` and its child
/// `plugin.decide`.
pub fn query(start: SystemTime, took: Duration, q: &super::decisions::Entry<'_>) {
    let Some(o) = OTEL.get() else { return };
    let end = start + took;
    let t = &o.tracer;
    let root = t
        .span_builder("dns.query")
        .with_kind(SpanKind::Server)
        .with_start_time(start)
        .with_attributes([
            KeyValue::new("dns.question.name", q.qname.to_string()),
            KeyValue::new(
                "dns.question.type",
                hickory_proto::rr::RecordType::from(q.qtype).to_string(),
            ),
            KeyValue::new("client.address", q.client.to_string()),
            KeyValue::new("network.transport", q.transport.to_string()),
            KeyValue::new("dnspolicy.verdict", q.verdict.to_string()),
            KeyValue::new("dnspolicy.chain.generation", q.generation as i64),
        ])
        .start(t);
    // A root of its own, whatever context the worker thread has.
    let cx = Context::new().with_span(root);
    if let Some(p) = q.plugin {
        let mut attrs = vec![
            KeyValue::new("dnspolicy.plugin", p.to_string()),
            KeyValue::new("dnspolicy.policy.version", q.version.to_string()),
        ];
        if let Some(r) = q.rule {
            attrs.push(KeyValue::new("dnspolicy.rule", r.to_string()));
        }
        let mut child = t
            .span_builder("plugin.decide")
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes(attrs)
            .start_with_context(t, &cx);
        child.end_with_timestamp(end);
    }
    cx.span().end_with_timestamp(end);
}

/// Exports what is queued and stops the exporter (at most a few seconds).
pub fn shutdown() {
    if let Some(o) = OTEL.get() {
        let _ = o.provider.force_flush();
        let _ = o.provider.shutdown();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn traces_path() {
        assert_eq!(
            super::traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            super::traces_url("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            super::traces_url("http://h:1/custom/path"),
            "http://h:1/custom/path"
        );
    }
}
