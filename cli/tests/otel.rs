//! OpenTelemetry traces from a real `dnspolicy serve` to an OTLP/HTTP
//! receiver on loopback (a small HTTP/1.1 server here, decoding each export
//! with `opentelemetry-proto`): span names, attributes and parent links for
//! the plugin lifecycle (start, reload, load, init, swap, destroy) and for
//! sampled queries; and the per-plugin and per-rule decision histograms.

mod common;

use common::{ask, get, serve, temp};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Spans = Arc<Mutex<Vec<(Span, Vec<(String, String)>)>>>;

/// Accepts OTLP/HTTP exports (keep-alive connections, one request after
/// another) and keeps every span with its resource's attributes.
fn receiver() -> (u16, Spans) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let spans: Spans = Arc::default();
    let keep = spans.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let keep = keep.clone();
            std::thread::spawn(move || {
                let mut w = conn.try_clone().expect("clone");
                let mut r = BufReader::new(conn);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    assert!(line.starts_with("POST /v1/traces "), "{line}");
                    loop {
                        line.clear();
                        r.read_line(&mut line).expect("header");
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().expect("length");
                        }
                        if lower.starts_with("content-type:") {
                            assert!(lower.contains("application/x-protobuf"), "{line}");
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).expect("body");
                    let req = ExportTraceServiceRequest::decode(&body[..]).expect("OTLP protobuf");
                    for rs in req.resource_spans {
                        let res: Vec<(String, String)> = rs
                            .resource
                            .iter()
                            .flat_map(|r| r.attributes.iter())
                            .map(|kv| {
                                (
                                    kv.key.clone(),
                                    text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                                )
                            })
                            .collect();
                        for ss in rs.scope_spans {
                            for s in ss.spans {
                                keep.lock().expect("lock").push((s, res.clone()));
                            }
                        }
                    }
                    w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")
                        .expect("reply");
                }
            });
        }
    });
    (port, spans)
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn attr(s: &Span, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
}

fn policy(text: &str) -> String {
    format!(
        "rule steer when {{query.name}} == \"www.example.com\" {{ then answer A {text} ttl 5 }}\n"
    )
}

#[test]
fn spans_for_the_plugin_lifecycle_and_sampled_queries() {
    let (port, spans) = receiver();
    let dir = temp("otel", "plugins");
    std::fs::write(dir.join("steer.dsl"), policy("192.0.2.1")).expect("policy");
    std::fs::write(dir.join("steer.yaml"), "version: \"1.0\"\n").expect("metadata");
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut s = serve(
        &[
            "--plugin-dir",
            dir.to_str().expect("utf-8"),
            "--admin",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--otlp-endpoint",
            &endpoint,
            "--otlp-sample",
            "1",
            "--node",
            "edge-otel",
        ],
        None,
    );
    for _ in 0..5 {
        assert_eq!(
            ask(s.dns, "www.example.com", 1).expect("answer"),
            ["192.0.2.1"]
        );
    }
    // A reload: the old version is swapped out and destroyed.
    std::fs::write(dir.join("steer.dsl"), policy("192.0.2.2")).expect("policy");
    std::fs::write(dir.join("steer.yaml"), "version: \"2.0\"\n").expect("metadata");
    let pid = s.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill")
        .success());
    let t0 = Instant::now();
    while ask(s.dns, "www.example.com", 1).expect("answer") != ["192.0.2.2"] {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the reload did not happen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The decision histograms count sampled decisions per plugin and rule.
    for _ in 0..200 {
        ask(s.dns, "www.example.com", 1).expect("answer");
    }
    let (_, m) = get(s.admin.expect("admin"), "/metrics");
    let count = |series: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{series} not in /metrics:\n{m}"))
    };
    assert!(count("dnspolicy_plugin_decide_seconds_count{plugin=\"steer.dsl\"}") >= 3);
    assert!(count("dnspolicy_rule_decide_seconds_count{plugin=\"steer.dsl\",rule=\"steer\"}") >= 3);
    // SIGTERM: a clean shutdown flushes the exporter.
    common::stop_cleanly(&mut s);
    let got = spans.lock().expect("lock").clone();
    let named =
        |n: &str| -> Vec<&Span> { got.iter().map(|(s, _)| s).filter(|s| s.name == n).collect() };
    let names: Vec<&str> = got.iter().map(|(s, _)| s.name.as_str()).collect();
    for n in [
        "plugin.start",
        "plugin.reload",
        "plugin.load",
        "plugin.init",
        "plugin.swap",
        "plugin.destroy",
        "dns.query",
        "plugin.decide",
    ] {
        assert!(!named(n).is_empty(), "no {n} span in {names:?}");
    }
    let (_, resource) = &got[0];
    assert!(
        resource.contains(&("service.name".into(), "dnspolicy".into())),
        "{resource:?}"
    );
    assert!(
        resource.contains(&("service.instance.id".into(), "edge-otel".into())),
        "{resource:?}"
    );

    // Lifecycle nesting: the first load under plugin.start, the second
    // (and the swap) under plugin.reload.
    let start = named("plugin.start")[0];
    let reload = named("plugin.reload")[0];
    let loads = named("plugin.load");
    assert!(
        loads
            .iter()
            .any(|l| l.parent_span_id == start.span_id && l.trace_id == start.trace_id),
        "a load under start"
    );
    assert!(
        loads.iter().any(|l| l.parent_span_id == reload.span_id),
        "a load under reload"
    );
    assert!(
        named("plugin.swap")
            .iter()
            .any(|s| s.parent_span_id == reload.span_id),
        "the swap under reload"
    );
    let inits = named("plugin.init");
    assert!(
        inits
            .iter()
            .any(|i| loads.iter().any(|l| i.parent_span_id == l.span_id)),
        "init under load"
    );
    assert!(
        named("plugin.destroy")
            .iter()
            .any(|d| attr(d, "version").as_deref() == Some("1.0")),
        "version 1.0 destroyed: {:?}",
        named("plugin.destroy")
    );

    // Queries: every one traced at sample 1, the decision a child of it.
    let queries = named("dns.query");
    assert!(queries.len() >= 5, "{} query spans", queries.len());
    for q in &queries {
        assert_eq!(
            attr(q, "dns.question.name").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(attr(q, "dns.question.type").as_deref(), Some("A"));
        assert_eq!(attr(q, "dnspolicy.verdict").as_deref(), Some("answer"));
        assert!(q.parent_span_id.is_empty(), "a query is a root span");
        assert!(q.end_time_unix_nano >= q.start_time_unix_nano);
    }
    let decides = named("plugin.decide");
    for d in &decides {
        let parent = queries
            .iter()
            .find(|q| q.span_id == d.parent_span_id)
            .expect("a decision's parent is its query");
        assert_eq!(parent.trace_id, d.trace_id);
        assert_eq!(attr(d, "dnspolicy.plugin").as_deref(), Some("steer.dsl"));
        assert_eq!(attr(d, "dnspolicy.rule").as_deref(), Some("steer"));
    }
    let versions: Vec<String> = decides
        .iter()
        .filter_map(|d| attr(d, "dnspolicy.policy.version"))
        .collect();
    assert!(
        versions.iter().any(|v| v == "1.0") && versions.iter().any(|v| v == "2.0"),
        "{versions:?}"
    );
}

#[test]
fn a_bad_endpoint_is_refused_at_start() {
    let o = std::process::Command::new(common::bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-admin",
            "--otlp-endpoint",
            "https://collector:4318",
        ])
        .output()
        .expect("serve");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("http:// URL"));
}
