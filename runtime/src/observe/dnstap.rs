//! dnstap: the DNS ecosystem's query log (protobuf messages in Frame
//! Streams), readable by `dnstap-ldns -r`, `dnstap-read` and
//! `fstrm_capture`.
//!
//! Workers hand copies of the wire messages to a bounded queue and never
//! wait: when the writer falls behind, messages are dropped and counted. A
//! thread of its own encodes and writes them, to a file (`file:PATH`,
//! unidirectional Frame Streams) or to a Unix socket (`unix:PATH`,
//! bidirectional: READY/ACCEPT handshake, reconnecting with backoff).

use std::io::{BufWriter, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The Frame Streams content type of dnstap.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";
/// Messages the queue holds before new ones are dropped.
pub const QUEUE: usize = 16 * 1024;
/// How long the writer sleeps when the queue is empty (the queue holds
/// tens of milliseconds of a busy server's messages).
const IDLE: Duration = Duration::from_millis(2);

/// dnstap `Message.Type` values this server writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A query from a client.
    ClientQuery = 5,
    /// The response sent to it.
    ClientResponse = 6,
    /// A query forwarded upstream.
    ForwarderQuery = 7,
    /// The upstream's response.
    ForwarderResponse = 8,
}

/// Where the log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A Frame Streams file (unidirectional).
    File(PathBuf),
    /// A Frame Streams reader on a Unix socket (bidirectional).
    Unix(PathBuf),
}

impl Target {
    /// `file:PATH` or `unix:PATH`.
    pub fn parse(s: &str) -> Result<Target, String> {
        match s.split_once(':') {
            Some(("file", p)) if !p.is_empty() => Ok(Target::File(p.into())),
            Some(("unix", p)) if !p.is_empty() => Ok(Target::Unix(p.into())),
            _ => Err(format!("--dnstap `{s}`: expected file:PATH or unix:PATH")),
        }
    }
}

/// One message to log.
struct Event {
    kind: Kind,
    tcp: bool,
    /// The querying side (client, or this server towards an upstream).
    query: SocketAddr,
    /// The responding side (this server, or the upstream).
    response: SocketAddr,
    time: SystemTime,
    wire: Vec<u8>,
    /// `wire[..at]` is the query and `wire[at..]` its response, written as
    /// two messages: one copy and one queue slot for both.
    response_at: Option<usize>,
}

/// The sending side, shared by every worker (`SyncSender` is `Sync`: no
/// lock on the query path).
#[derive(Debug)]
pub struct Dnstap {
    tx: SyncSender<Event>,
    /// Messages queued.
    pub queued: AtomicU64,
    /// Messages dropped because the queue was full.
    pub dropped: AtomicU64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Event({:?}, {} bytes)", self.kind, self.wire.len())
    }
}

impl Dnstap {
    /// Starts the writer thread. A file that cannot be created is an error
    /// now; a socket that is not there yet is retried by the writer.
    pub fn start(target: Target, identity: &str) -> std::io::Result<Dnstap> {
        let (tx, rx) = sync_channel(QUEUE);
        let sink = match &target {
            Target::File(p) => Some(Sink::File(BufWriter::with_capacity(
                WRITE_BUF,
                std::fs::File::create(p)?,
            ))),
            Target::Unix(_) => None,
        };
        let identity = identity.as_bytes().to_vec();
        let writer = std::thread::Builder::new()
            .name("dnspolicy-dnstap".into())
            .spawn(move || write_loop(rx, target, sink, &identity))?;
        Ok(Dnstap {
            tx,
            queued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Logs one message; never waits.
    pub fn log(&self, kind: Kind, tcp: bool, query: SocketAddr, response: SocketAddr, wire: &[u8]) {
        let e = Event {
            kind,
            tcp,
            query,
            response,
            time: SystemTime::now(),
            wire: wire.to_vec(),
            response_at: None,
        };
        self.send(e);
    }

    /// Logs a client's query and the response sent to it; never waits.
    pub fn log_exchange(
        &self,
        tcp: bool,
        client: SocketAddr,
        server: SocketAddr,
        query: &[u8],
        response: &[u8],
    ) {
        let mut wire = Vec::with_capacity(query.len() + response.len());
        wire.extend_from_slice(query);
        wire.extend_from_slice(response);
        self.send(Event {
            kind: Kind::ClientQuery,
            tcp,
            query: client,
            response: server,
            time: SystemTime::now(),
            wire,
            response_at: Some(query.len()),
        });
    }

    /// Queues an event; the counters count dnstap messages (two for an
    /// exchange).
    fn send(&self, e: Event) {
        let messages = if e.response_at.is_some() { 2 } else { 1 };
        match self.tx.try_send(e) {
            Ok(()) => {
                self.queued.fetch_add(messages, Relaxed);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(messages, Relaxed);
            }
        }
    }

    /// Ends the log: what is queued is written, then the STOP frame, and
    /// the writer thread is joined (at most `wait`).
    pub fn close(&self, wait: Duration) {
        // The end marker (no DNS message is empty).
        let end = Event {
            kind: Kind::ClientQuery,
            tcp: false,
            query: SocketAddr::from(([0, 0, 0, 0], 0)),
            response: SocketAddr::from(([0, 0, 0, 0], 0)),
            time: UNIX_EPOCH,
            wire: Vec::new(),
            response_at: None,
        };
        super::end_writer(&self.tx, end, &self.writer, wait);
    }
}

enum Sink {
    File(BufWriter<std::fs::File>),
    Unix(BufWriter<std::os::unix::net::UnixStream>),
}

impl Sink {
    fn out(&mut self) -> &mut dyn Write {
        match self {
            Sink::File(w) => w,
            Sink::Unix(w) => w,
        }
    }
}

/// Bytes written per system call at most.
const WRITE_BUF: usize = 256 * 1024;

const CONTROL_ACCEPT: u32 = 1;
const CONTROL_START: u32 = 2;
const CONTROL_STOP: u32 = 3;
const CONTROL_READY: u32 = 4;
const CONTROL_FINISH: u32 = 5;
const FIELD_CONTENT_TYPE: u32 = 1;

/// A control frame: escape, length, type, and the content type field.
fn control(kind: u32, with_type: bool) -> Vec<u8> {
    let mut body = kind.to_be_bytes().to_vec();
    if with_type {
        body.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        body.extend_from_slice(&(CONTENT_TYPE.len() as u32).to_be_bytes());
        body.extend_from_slice(CONTENT_TYPE);
    }
    let mut f = 0u32.to_be_bytes().to_vec();
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(&body);
    f
}

/// Reads one control frame from a reader; its type.
fn read_control(r: &mut impl Read) -> std::io::Result<u32> {
    let mut h = [0u8; 8];
    r.read_exact(&mut h)?;
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    if h[..4] != [0; 4] || !(4..=512).contains(&len) {
        return Err(std::io::Error::other("not a Frame Streams control frame"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(u32::from_be_bytes([body[0], body[1], body[2], body[3]]))
}

/// Connects to a Frame Streams reader: READY, ACCEPT, START.
fn connect(path: &PathBuf) -> std::io::Result<Sink> {
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(&control(CONTROL_READY, true))?;
    if read_control(&mut s)? != CONTROL_ACCEPT {
        return Err(std::io::Error::other("the reader did not ACCEPT"));
    }
    s.write_all(&control(CONTROL_START, true))?;
    Ok(Sink::Unix(BufWriter::with_capacity(WRITE_BUF, s)))
}

fn write_loop(rx: Receiver<Event>, target: Target, mut sink: Option<Sink>, identity: &[u8]) {
    let mut frame = Vec::with_capacity(1024);
    let mut started = false;
    let mut backoff = Duration::from_millis(100);
    let mut next_try = std::time::Instant::now();
    loop {
        // Drain what is queued; when empty, flush (a reader sees everything
        // written) and sleep rather than block in `recv`: a blocked receiver
        // makes every `try_send` on the query path wake it with a system
        // call, which costs the workers more than the logging itself.
        let e = match rx.try_recv() {
            Ok(e) => e,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                if let Some(s) = sink.as_mut() {
                    let _ = s.out().flush();
                }
                std::thread::sleep(IDLE);
                continue;
            }
        };
        if e.wire.is_empty() {
            break;
        }
        if sink.is_none() {
            if let Target::Unix(p) = &target {
                if std::time::Instant::now() < next_try {
                    continue;
                }
                match connect(p) {
                    Ok(s) => {
                        sink = Some(s);
                        started = true;
                        backoff = Duration::from_millis(100);
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, path = %p.display(), "dnstap reader not there");
                        next_try = std::time::Instant::now() + backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        continue;
                    }
                }
            }
        }
        let Some(s) = sink.as_mut() else { continue };
        if !started {
            if s.out().write_all(&control(CONTROL_START, true)).is_err() {
                sink = None;
                continue;
            }
            started = true;
        }
        let mut ok = true;
        let parts: [(Kind, &[u8]); 2] = match e.response_at {
            Some(at) if at <= e.wire.len() => [
                (Kind::ClientQuery, &e.wire[..at]),
                (Kind::ClientResponse, &e.wire[at..]),
            ],
            _ => [(e.kind, &e.wire[..]), (e.kind, &[])],
        };
        for (kind, wire) in parts {
            if wire.is_empty() {
                continue;
            }
            frame.clear();
            encode(kind, &e, wire, identity, &mut frame);
            ok = ok
                && s.out()
                    .write_all(&(frame.len() as u32).to_be_bytes())
                    .is_ok()
                && s.out().write_all(&frame).is_ok();
        }
        if !ok {
            tracing::warn!("dnstap: the reader went away; reconnecting");
            sink = None;
            started = false;
        }
    }
    if let Some(mut s) = sink {
        let _ = s.out().write_all(&control(CONTROL_STOP, false));
        let _ = s.out().flush();
        if let Sink::Unix(w) = &mut s {
            // A bidirectional reader answers STOP with FINISH.
            let _ = read_control(w.get_mut()).map(|t| t == CONTROL_FINISH);
        }
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, u64::from(field << 3 | u32::from(wire_type)));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, 0);
    varint(out, v);
}

/// An address's bytes (4 or 16) without allocating.
fn addr_bytes(ip: IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(a) => {
            b[..4].copy_from_slice(&a.octets());
            (b, 4)
        }
        IpAddr::V6(a) => (a.octets(), 16),
    }
}

/// One `Dnstap` protobuf message (dnstap.proto): identity, version, type
/// MESSAGE, and the `Message`.
fn encode(kind: Kind, e: &Event, wire: &[u8], identity: &[u8], out: &mut Vec<u8>) {
    // The inner message is reused across calls: the writer allocates
    // nothing per message once it has grown.
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|m| {
        let mut m = m.borrow_mut();
        m.clear();
        encode_message(kind, e, wire, &mut m);
        bytes_field(out, 1, identity);
        bytes_field(
            out,
            2,
            concat!("dnspolicy ", env!("CARGO_PKG_VERSION")).as_bytes(),
        );
        bytes_field(out, 14, &m);
        // type = MESSAGE
        varint_field(out, 15, 1);
    });
}

/// The `Message` inside a `Dnstap`.
fn encode_message(kind: Kind, e: &Event, wire: &[u8], m: &mut Vec<u8>) {
    varint_field(m, 1, kind as u64);
    let family = if e.query.is_ipv4() { 1 } else { 2 };
    varint_field(m, 2, family);
    varint_field(m, 3, if e.tcp { 2 } else { 1 });
    let (q, r) = (addr_bytes(e.query.ip()), addr_bytes(e.response.ip()));
    bytes_field(m, 4, &q.0[..q.1]);
    bytes_field(m, 5, &r.0[..r.1]);
    varint_field(m, 6, u64::from(e.query.port()));
    varint_field(m, 7, u64::from(e.response.port()));
    let t = e.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let is_query = matches!(kind, Kind::ClientQuery | Kind::ForwarderQuery);
    let (sec, nsec, msg) = if is_query { (8, 9, 10) } else { (12, 13, 14) };
    varint_field(m, sec, t.as_secs());
    key(m, nsec, 5);
    m.extend_from_slice(&t.subsec_nanos().to_le_bytes());
    bytes_field(m, msg, wire);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_reference() {
        // The field layout of dnstap.proto: Message.type 5, family INET,
        // protocol UDP, addresses, ports, time, the wire message.
        let e = Event {
            kind: Kind::ClientQuery,
            tcp: false,
            query: "10.0.0.210:55142".parse().expect("addr"),
            response: "10.0.0.210:53".parse().expect("addr"),
            time: UNIX_EPOCH + Duration::new(1_609_664_398, 355_231_260),
            wire: vec![0xAB; 3],
            response_at: None,
        };
        let mut out = Vec::new();
        encode(e.kind, &e, &e.wire, b"dnstappb", &mut out);
        assert_eq!(
            &out[..10],
            &[10, 8, b'd', b'n', b's', b't', b'a', b'p', b'p', b'b']
        );
        let m_at = out.iter().position(|&b| b == 114).expect("field 14");
        let m = &out[m_at + 2..];
        assert_eq!(&m[..6], &[8, 5, 16, 1, 24, 1]);
        assert_eq!(&m[6..12], &[34, 4, 10, 0, 0, 210]);
        assert_eq!(&m[18..22], &[48, 230, 174, 3], "query port 55142");
        assert_eq!(&m[22..24], &[56, 53]);
        assert_eq!(&m[24..30], &[64, 142, 143, 198, 255, 5], "query_time_sec");
        assert_eq!(
            &m[30..35],
            &[77, 28, 102, 44, 21],
            "query_time_nsec fixed32"
        );
        assert_eq!(&m[35..40], &[82, 3, 0xAB, 0xAB, 0xAB]);
        assert_eq!(&out[out.len() - 2..], &[120, 1], "type MESSAGE");
        assert_eq!(
            Target::parse("file:/tmp/x"),
            Ok(Target::File("/tmp/x".into()))
        );
        assert!(Target::parse("tcp:1.2.3.4").is_err());
    }

    /// A reader that never answers READY holds the writer: the queue fills,
    /// further messages are dropped and counted, and logging never waits.
    #[test]
    fn a_full_queue_drops_and_counts() {
        let dir = std::env::temp_dir().join(format!("dnstap-full-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let sock = dir.join("silent.sock");
        let _ = std::fs::remove_file(&sock);
        let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let tap = Dnstap::start(Target::Unix(sock), "t").expect("start");
        let a: SocketAddr = "127.0.0.1:5353".parse().expect("addr");
        let started = std::time::Instant::now();
        for _ in 0..20_000 {
            tap.log(Kind::ClientQuery, false, a, a, &[1, 2, 3]);
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "logging never waits"
        );
        let (queued, dropped) = (tap.queued.load(Relaxed), tap.dropped.load(Relaxed));
        assert_eq!(queued + dropped, 20_000);
        assert!(
            dropped >= 20_000 - QUEUE as u64 - 1,
            "{queued} queued, {dropped} dropped"
        );
        tap.close(Duration::from_millis(100));
    }
}
