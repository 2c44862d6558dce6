//! dnstap query logs, read back with Debian's reference readers:
//! `dnstap-ldns` for the file and `fstrm_capture` as the Unix-socket
//! reader (every query and response is there, with its name and rcode);
//! and the decision log's JSON lines.

use dnspolicy_e2e::*;
use hickory_proto::rr::RecordType;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const POLICY: &str = "if {query.name} == \"a.test\" { then answer A 192.0.2.1 }\n\
                      if {query.name} == \"nx.test\" { then nxdomain }\n";

/// A reader process, killed when dropped.
struct Reader(std::process::Child);

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `path` ends with a Frame Streams STOP frame (the writer
/// finished after the server stopped).
fn wait_for_stop(path: &Path) {
    let stop = [0u8, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if std::fs::read(path).is_ok_and(|b| b.ends_with(&stop)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} has no STOP frame",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `dnstap-ldns -y` of a file: one YAML document per message.
fn read_back(path: &Path) -> String {
    let out = Command::new("dnstap-ldns")
        .arg("-y")
        .arg("-r")
        .arg(path)
        .output()
        .expect("dnstap-ldns runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn send_queries(s: &TestServer) {
    assert_eq!(
        answers(&udp(s.dns, &query("a.test.", RecordType::A)).await),
        ["192.0.2.1"]
    );
    udp(s.dns, &query("nx.test.", RecordType::A)).await;
    udp(s.dns, &query("refused.test.", RecordType::AAAA)).await;
    assert_eq!(
        answers(&tcp(s.dns, &query("a.test.", RecordType::A)).await),
        ["192.0.2.1"]
    );
}

fn assert_logged(yaml: &str) {
    let count = |needle: &str| yaml.matches(needle).count();
    assert_eq!(count("type: CLIENT_QUERY"), 4, "{yaml}");
    assert_eq!(count("type: CLIENT_RESPONSE"), 4, "{yaml}");
    assert_eq!(
        count("socket_protocol: TCP"),
        2,
        "one TCP query and its response: {yaml}"
    );
    assert!(yaml.contains("a.test.\tIN\tA"), "{yaml}");
    assert!(yaml.contains("rcode: NXDOMAIN"), "{yaml}");
    assert!(yaml.contains("rcode: REFUSED"), "{yaml}");
    assert!(yaml.contains("refused.test.\tIN\tAAAA"), "{yaml}");
    assert!(
        yaml.contains("192.0.2.1"),
        "the answer is in the response: {yaml}"
    );
    assert!(yaml.contains("query_address: \"127.0.0.1\""), "{yaml}");
}

#[tokio::test]
async fn queries_and_responses_to_a_file() {
    if !have_tool("dnstap-ldns", "dnstap-ldns") {
        return;
    }
    let dir = temp_dir("dnstap-file");
    let log = dir.join("dnstap.fstrm");
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("dnstap", &[("p.dsl", POLICY)]));
    c.dnstap = Some(format!("file:{}", log.display()));
    let s = start(c).await;
    send_queries(&s).await;
    let (_, m) = http_get(s.admin, "/metrics").await;
    assert!(
        m.contains("dnspolicy_dnstap_messages_total{result=\"queued\"} 8"),
        "{m}"
    );
    s.stop().await;
    wait_for_stop(&log);
    assert_logged(&read_back(&log));
}

#[tokio::test]
async fn queries_and_responses_to_a_frame_streams_reader() {
    if !have_tool("dnstap-ldns", "dnstap-ldns") || !have_tool("fstrm_capture", "fstrm-bin") {
        return;
    }
    let dir = temp_dir("dnstap-unix");
    let sock = dir.join("dnstap.sock");
    let out = dir.join("captured.fstrm");
    let capture = Command::new("fstrm_capture")
        .args(["-t", "protobuf:dnstap.Dnstap", "-u"])
        .arg(&sock)
        .arg("-w")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("fstrm_capture starts");
    // Stopped by its PID however the test ends.
    let mut capture = Reader(capture);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "fstrm_capture did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("dnstap_unix", &[("p.dsl", POLICY)]));
    c.dnstap = Some(format!("unix:{}", sock.display()));
    let s = start(c).await;
    send_queries(&s).await;
    // Stopped: our side sent everything and STOP. fstrm_capture writes its
    // file when it exits (SIGTERM).
    s.stop().await;
    // SIGTERM: fstrm_capture writes its file out and exits.
    let _ = Command::new("kill")
        .arg(capture.0.id().to_string())
        .status();
    let _ = capture.0.wait();
    assert_logged(&read_back(&out));
}

/// The decision log's JSON lines once there are `want` (or 10 s passed).
async fn decision_lines(file: std::path::PathBuf, want: usize) -> Vec<serde_json::Value> {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect();
            if lines.len() >= want || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("read")
}

#[tokio::test]
async fn sampled_decisions_are_logged_as_json_lines() {
    let dir = temp_dir("decisions");
    let file = dir.join("decisions.jsonl");
    let mut c = config();
    let policy = "rule geo priority 10 when {query.name} == \"www.example.com\" {\n  \
                  if {client.region} == \"CN-BJ\" { then rewrite \"cdn-bj.example.com\" }\n  \
                  else { then rewrite \"cdn-global.example.com\" }\n}\n";
    c.plugin_dir = Some(plugin_dir(
        "decisions",
        &[("geo.dsl", policy), ("geo.yaml", "version: \"2.1.0\"\n")],
    ));
    c.decisions.target = Some(file.display().to_string());
    c.decisions.sample = 1.0;
    let s = start(c).await;
    let bj = with_ecs(
        query("www.example.com.", RecordType::A),
        "198.51.100.0".parse().expect("ip"),
        24,
    );
    for _ in 0..4 {
        udp(s.dns, &bj).await;
        udp(s.dns, &query("other.test.", RecordType::A)).await;
    }
    let (_, m) = http_get(s.admin, "/metrics").await;
    assert_eq!(
        metric(&m, "dnspolicy_decision_log_lines_total{result=\"written\"}"),
        8
    );
    s.stop().await;
    let lines = decision_lines(file.clone(), 8).await;
    // Every query (the sampling itself has a unit test).
    assert_eq!(lines.len(), 8, "{lines:?}");
    let geo: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["qname"] == "www.example.com")
        .collect();
    let other: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["qname"] == "other.test")
        .collect();
    assert_eq!((geo.len(), other.len()), (4, 4));
    for l in &geo {
        assert_eq!(l["plugin"], "geo.dsl");
        assert_eq!(l["version"], "2.1.0");
        assert_eq!(l["rule"], "geo");
        assert_eq!(l["verdict"], "rewrite");
        assert_eq!(l["ecs_scope"], 24, "{l}");
        let fields = l["fields_read"].as_array().expect("list");
        assert!(fields.iter().any(|f| f == "client.region"), "{l}");
    }
    for l in &other {
        assert_eq!(l["verdict"], "default_refuse");
        assert!(l["plugin"].is_null());
    }
}

#[tokio::test]
async fn rules_marked_log_are_logged_unsampled() {
    let dir = temp_dir("decisions-log-rule");
    let file = dir.join("decisions.jsonl");
    let mut c = config();
    let policy = "rule block priority 100 log {\n  \
                  if {query.name} == \"ads.example.net\" { then nxdomain }\n}\n\
                  rule quiet priority 10 {\n  \
                  if {query.name} == \"www.example.com\" { then answer A 192.0.2.1 }\n}\n";
    c.plugin_dir = Some(plugin_dir("decisions-log-rule", &[("block.dsl", policy)]));
    c.decisions.target = Some(file.display().to_string());
    // One query in a million: nothing here is sampled.
    c.decisions.sample = 0.000_001;
    let s = start(c).await;
    for _ in 0..10 {
        udp(s.dns, &query("ads.example.net.", RecordType::A)).await;
        udp(s.dns, &query("www.example.com.", RecordType::A)).await;
    }
    s.stop().await;
    let lines = decision_lines(file, 10).await;
    assert_eq!(
        lines.len(),
        10,
        "the `log` rule's decisions only: {lines:?}"
    );
    for l in &lines {
        assert_eq!(l["rule"], "block");
        assert_eq!(l["verdict"], "nxdomain");
        assert_eq!(l["log_rule"], true);
        assert!(l["decide_us"].is_null(), "unsampled, so not timed: {l}");
    }
}
