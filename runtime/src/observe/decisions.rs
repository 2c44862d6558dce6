//! The decision log: for a sample of queries, one JSON line saying which
//! plugin and rule decided, the verdict, the policy version, the context
//! fields the decision read, the ECS scope sent back and the time the
//! decision took — the trace `eval --explain` prints, as data, from live
//! traffic.
//!
//! Sampling is a per-worker count (every N-th query, N = 1 / rate), so
//! unsampled queries cost one increment. Lines go through a bounded queue
//! to a writer thread (stdout or a file); a full queue drops lines and
//! counts them.

use dnspolicy_compiler::ir::context::FIELDS;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines the queue holds before new ones are dropped.
pub const QUEUE: usize = 4096;
/// How long the writer sleeps when the queue is empty.
const IDLE: Duration = Duration::from_millis(10);
/// How long a written line may wait in the writer's buffer.
const FLUSH: Duration = Duration::from_millis(200);

/// One decision, as logged.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Source address.
    pub client: std::net::IpAddr,
    /// Question name (canonical).
    pub qname: &'a str,
    /// Question type.
    pub qtype: u16,
    /// `udp` or `tcp`.
    pub transport: &'a str,
    /// The deciding plugin's file, if one decided.
    pub plugin: Option<&'a str>,
    /// Its version (metadata).
    pub version: &'a str,
    /// The deciding rule, if the plugin names it.
    pub rule: Option<&'a str>,
    /// The verdict's kind (`answer`, `rewrite`, ..., `default_refuse`).
    pub verdict: &'a str,
    /// Bits of the context fields the chain read.
    pub fields: u32,
    /// The ECS scope the answer carries (`None` without ECS).
    pub ecs_scope: Option<u8>,
    /// Microseconds from the start of the decision to its end (`None`
    /// for an unsampled decision of a `log` rule: not measured).
    pub micros: Option<u64>,
    /// Logged because the deciding rule is marked `log`.
    pub marked: bool,
    /// The chain's generation (changes with every reload).
    pub generation: u64,
}

impl Entry<'_> {
    /// The JSON line, written straight into one buffer (a `json!` value
    /// made a map and a dozen strings per line: most of the log's cost on
    /// the query path).
    pub fn to_json(&self) -> String {
        use std::fmt::Write as _;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut o = String::with_capacity(320);
        let _ = write!(
            o,
            "{{\"time\":{}.{:06},\"client\":\"{}\",\"qname\":",
            now.as_secs(),
            now.subsec_micros(),
            self.client
        );
        string(&mut o, self.qname);
        o.push_str(",\"qtype\":");
        let qtype = hickory_proto::rr::RecordType::from(self.qtype);
        let _ = write!(o, "\"{qtype}\"");
        o.push_str(",\"transport\":");
        string(&mut o, self.transport);
        o.push_str(",\"plugin\":");
        optional(&mut o, self.plugin);
        o.push_str(",\"version\":");
        string(&mut o, self.version);
        o.push_str(",\"rule\":");
        optional(&mut o, self.rule);
        o.push_str(",\"verdict\":");
        string(&mut o, self.verdict);
        o.push_str(",\"fields_read\":[");
        let read = FIELDS
            .iter()
            .filter(|f| self.fields & (1 << f.field as u32) != 0);
        for (i, f) in read.enumerate() {
            if i > 0 {
                o.push(',');
            }
            string(&mut o, f.path);
        }
        o.push_str("],\"ecs_scope\":");
        number(&mut o, self.ecs_scope.map(u64::from));
        o.push_str(",\"decide_us\":");
        number(&mut o, self.micros);
        let _ = write!(
            o,
            ",\"log_rule\":{},\"chain\":{}}}",
            self.marked, self.generation
        );
        o
    }
}

/// A JSON string (escaped as serde_json escapes it).
fn string(o: &mut String, s: &str) {
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        o.push('"');
        o.push_str(s);
        o.push('"');
    } else {
        o.push_str(&serde_json::Value::from(s).to_string());
    }
}

fn optional(o: &mut String, s: Option<&str>) {
    match s {
        Some(s) => string(o, s),
        None => o.push_str("null"),
    }
}

fn number(o: &mut String, n: Option<u64>) {
    use std::fmt::Write as _;
    match n {
        Some(n) => {
            let _ = write!(o, "{n}");
        }
        None => o.push_str("null"),
    }
}

/// The log's sending side, shared by every worker.
#[derive(Debug)]
pub struct DecisionLog {
    every: u64,
    tx: SyncSender<Option<String>>,
    /// Lines queued.
    pub written: AtomicU64,
    /// Lines dropped because the queue was full.
    pub dropped: AtomicU64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl DecisionLog {
    /// Logs one query in `1 / sample` (`sample` in (0, 1]) to `target`:
    /// `stdout` or a file path (appended to).
    pub fn start(target: &str, sample: f64) -> std::io::Result<DecisionLog> {
        if !(sample > 0.0 && sample <= 1.0) {
            return Err(std::io::Error::other(format!(
                "decision log sample {sample}: expected a rate in (0, 1], e.g. 0.01"
            )));
        }
        let mut out: Box<dyn Write + Send> = if target == "stdout" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(target)?,
            )
        };
        let (tx, rx) = sync_channel::<Option<String>>(QUEUE);
        let writer = std::thread::Builder::new()
            .name("dnspolicy-decisions".into())
            .spawn(move || {
                let mut buf = std::io::BufWriter::with_capacity(64 * 1024, &mut out);
                let mut flushed = Instant::now();
                loop {
                    // Sleep when idle instead of blocking in `recv`, so the
                    // query path never wakes this thread (see dnstap); a
                    // reader sees a line within FLUSH, with one write per
                    // FLUSH rather than per wakeup.
                    let line = match rx.try_recv() {
                        Ok(l) => l,
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => None,
                        Err(std::sync::mpsc::TryRecvError::Empty) => {
                            if flushed.elapsed() >= FLUSH {
                                let _ = buf.flush();
                                flushed = Instant::now();
                            }
                            std::thread::sleep(IDLE);
                            continue;
                        }
                    };
                    let Some(line) = line else { break };
                    let _ = buf.write_all(line.as_bytes());
                    let _ = buf.write_all(b"\n");
                }
                let _ = buf.flush();
            })?;
        Ok(DecisionLog {
            every: (1.0 / sample).round().max(1.0) as u64,
            tx,
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Whether this query is sampled; `counter` is the worker's own.
    #[inline]
    pub fn sampled(&self, counter: &mut u64) -> bool {
        *counter = counter.wrapping_add(1);
        counter.is_multiple_of(self.every)
    }

    /// Queues one entry; never waits.
    pub fn record(&self, e: &Entry<'_>) {
        match self.tx.try_send(Some(e.to_json())) {
            Ok(()) => {
                self.written.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Writes what is queued and stops the writer (at most `wait`).
    pub fn close(&self, wait: Duration) {
        super::end_writer(&self.tx, None, &self.writer, wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_json_names_fields_and_rule() {
        let e = Entry {
            client: "192.0.2.7".parse().expect("ip"),
            qname: "www.example.com",
            qtype: 1,
            transport: "udp",
            plugin: Some("geo.dsl"),
            version: "1.2.0",
            rule: Some("geo_redirect"),
            verdict: "rewrite",
            fields: (1 << dnspolicy_compiler::Field::ClientRegion as u32)
                | (1 << dnspolicy_compiler::Field::QueryName as u32),
            ecs_scope: Some(24),
            micros: Some(3),
            marked: false,
            generation: 1,
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
        assert_eq!(v["rule"], "geo_redirect");
        assert_eq!(v["qtype"], "A");
        assert_eq!(
            v["fields_read"],
            serde_json::json!(["client.region", "query.name"])
        );
        assert_eq!(v["ecs_scope"], 24);
        assert_eq!(v["decide_us"], 3);
        assert_eq!(v["chain"], 1);
        // Names with quotes, backslashes, control bytes and non-ASCII text
        // come back unchanged; absent values are null.
        let odd = "a\"b\\c\u{1}d.\u{e9}t\u{e9}.example";
        let e = Entry {
            qname: odd,
            plugin: None,
            rule: None,
            ecs_scope: None,
            micros: None,
            marked: true,
            fields: 0,
            ..e
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
        assert_eq!(v["qname"], odd);
        assert_eq!(v["plugin"], serde_json::Value::Null);
        assert_eq!(v["decide_us"], serde_json::Value::Null);
        assert_eq!(v["log_rule"], true);
        assert_eq!(v["fields_read"], serde_json::json!([]));
        assert!(v["time"].as_f64().is_some_and(|t| t > 1.7e9));
        let log = DecisionLog::start("stdout", 0.25).expect("log");
        let mut n = 0;
        let sampled = (0..8).filter(|_| log.sampled(&mut n)).count();
        assert_eq!(sampled, 2, "one in four");
        assert!(DecisionLog::start("stdout", 0.0).is_err());
        log.close(Duration::from_secs(1));
    }
}
