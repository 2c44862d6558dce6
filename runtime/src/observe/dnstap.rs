//! dnstap: the DNS ecosystem's query log (protobuf messages in Frame
//! Streams), readable by `dnstap-ldns -r`, `dnstap-read` and
//! `fstrm_capture`.
//!
//! Workers hand copies of the wire messages to a bounded queue and never
//! wait: when the writer falls behind, messages are dropped and counted. A
//! thread of its own encodes and writes them, to a file (`file:PATH`,
//! unidirectional Frame Streams) or to a Unix socket (`unix:PATH`,
//! bidirectional: READY/ACCEPT handshake, reconnecting with backoff).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The Frame Streams content type of dnstap.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";
/// Messages the queue holds before new ones are dropped.
pub const QUEUE: usize = 16 * 1024;
/// How long the writer sleeps when the queue is empty (the queue holds
/// tens of milliseconds of a busy server's messages).
const IDLE: Duration = Duration::from_millis(10);

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

/// One message's place in a [`TapBatch`].
#[derive(Clone, Copy, Debug)]
struct Record {
    kind: Kind,
    tcp: bool,
    /// The querying side (client, or this server towards an upstream).
    query: SocketAddr,
    /// The responding side (this server, or the upstream).
    response: SocketAddr,
    secs: u64,
    nanos: u32,
    /// `bytes[start..mid]` is the message; for an exchange `bytes[mid..end]`
    /// is its response, written as a second message.
    start: usize,
    mid: usize,
    end: usize,
}

/// Messages logged between two hand-offs to the writer. A UDP worker keeps
/// one and sends it once per receive batch: one clock read, one queue slot
/// and no allocation for the whole batch (the writer hands the emptied
/// buffers back for reuse).
#[derive(Debug, Default)]
pub struct TapBatch {
    records: Vec<Record>,
    bytes: Vec<u8>,
    messages: u64,
    secs: u64,
    nanos: u32,
}

impl TapBatch {
    /// Reads the clock: what is logged until the next call carries this time.
    pub fn stamp(&mut self) {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (self.secs, self.nanos) = (t.as_secs(), t.subsec_nanos());
    }

    /// A client's query and the response sent to it (two messages, one
    /// record).
    pub fn exchange(
        &mut self,
        tcp: bool,
        client: SocketAddr,
        server: SocketAddr,
        query: &[u8],
        response: &[u8],
    ) {
        self.message(Kind::ClientQuery, tcp, client, server, query);
        self.bytes.extend_from_slice(response);
        if let Some(r) = self.records.last_mut() {
            r.end = self.bytes.len();
        }
        self.messages += u64::from(!response.is_empty());
    }

    /// One message.
    pub fn message(
        &mut self,
        kind: Kind,
        tcp: bool,
        query: SocketAddr,
        response: SocketAddr,
        wire: &[u8],
    ) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(wire);
        let mid = self.bytes.len();
        self.records.push(Record {
            kind,
            tcp,
            query,
            response,
            secs: self.secs,
            nanos: self.nanos,
            start,
            mid,
            end: mid,
        });
        self.messages += 1;
    }

    fn clear(&mut self) {
        self.records.clear();
        self.bytes.clear();
        self.messages = 0;
    }
}

/// What the workers and the writer share besides the queue.
#[derive(Debug, Default)]
struct Pool {
    /// Messages queued and not yet written: the queue's bound is in
    /// messages, whatever the batches.
    pending: AtomicU64,
    /// Emptied batches, for reuse.
    free: Mutex<Vec<TapBatch>>,
    /// Messages taken off the queue with nowhere to write them.
    unwritten: AtomicU64,
}

/// Emptied batches kept for reuse at most, and the largest buffer kept.
const FREE_BATCHES: usize = 64;
const FREE_BYTES: usize = 1 << 20;

impl Pool {
    fn take(&self) -> TapBatch {
        self.free
            .lock()
            .ok()
            .and_then(|mut f| f.pop())
            .unwrap_or_default()
    }

    fn give_back(&self, mut b: TapBatch) {
        b.clear();
        if b.bytes.capacity() > FREE_BYTES {
            return;
        }
        if let Ok(mut f) = self.free.lock() {
            if f.len() < FREE_BATCHES {
                f.push(b);
            }
        }
    }
}

/// The sending side, shared by every worker (`SyncSender` is `Sync`: the
/// query path takes no lock but the free list's, once per batch).
#[derive(Debug)]
pub struct Dnstap {
    /// Batches; `None` ends the log.
    tx: SyncSender<Option<TapBatch>>,
    pool: Arc<Pool>,
    /// Messages queued.
    pub queued: AtomicU64,
    /// Messages dropped because the queue was full.
    pub dropped: AtomicU64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Dnstap {
    /// Starts the writer thread. A file that cannot be created is an error
    /// now; a socket that is not there yet is retried by the writer.
    pub fn start(target: Target, identity: &str) -> std::io::Result<Dnstap> {
        let (tx, rx) = sync_channel(QUEUE);
        let sink = match &target {
            Target::File(p) => Some(Sink::File(super::tapfile::TapFile::create(p, WRITE_BUF)?)),
            Target::Unix(_) => None,
        };
        let identity = identity.as_bytes().to_vec();
        let pool = Arc::new(Pool::default());
        let p = pool.clone();
        let writer = std::thread::Builder::new()
            .name("dnspolicy-dnstap".into())
            .spawn(move || write_loop(rx, &p, target, sink, &identity))?;
        Ok(Dnstap {
            tx,
            pool,
            queued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Messages queued while no reader was connected, or after the file
    /// failed: not in the log.
    pub fn unwritten(&self) -> u64 {
        self.pool.unwritten.load(Relaxed)
    }

    /// An empty batch (reused when one is free), for a worker to keep.
    pub fn batch(&self) -> TapBatch {
        self.pool.take()
    }

    /// Queues what `b` holds and leaves it empty; never waits. The
    /// counters count dnstap messages (two for an exchange).
    pub fn send_batch(&self, b: &mut TapBatch) {
        let n = b.messages;
        if n == 0 {
            return;
        }
        if self.pool.pending.fetch_add(n, Relaxed) + n > QUEUE as u64 {
            self.pool.pending.fetch_sub(n, Relaxed);
            self.dropped.fetch_add(n, Relaxed);
            b.clear();
            return;
        }
        let full = std::mem::replace(b, self.pool.take());
        match self.tx.try_send(Some(full)) {
            Ok(()) => {
                self.queued.fetch_add(n, Relaxed);
            }
            Err(TrySendError::Full(Some(back))) | Err(TrySendError::Disconnected(Some(back))) => {
                self.pool.pending.fetch_sub(n, Relaxed);
                self.dropped.fetch_add(n, Relaxed);
                self.pool.give_back(back);
            }
            Err(_) => {}
        }
    }

    /// Logs one message now; never waits.
    pub fn log(&self, kind: Kind, tcp: bool, query: SocketAddr, response: SocketAddr, wire: &[u8]) {
        self.log_now(|b| b.message(kind, tcp, query, response, wire));
    }

    /// Logs a client's query and the response sent to it now; never waits.
    pub fn log_exchange(
        &self,
        tcp: bool,
        client: SocketAddr,
        server: SocketAddr,
        query: &[u8],
        response: &[u8],
    ) {
        self.log_now(|b| b.exchange(tcp, client, server, query, response));
    }

    /// A one-off batch (TCP, upstream): stamped, filled, sent.
    fn log_now(&self, fill: impl FnOnce(&mut TapBatch)) {
        let mut b = self.batch();
        b.stamp();
        fill(&mut b);
        self.send_batch(&mut b);
        self.pool.give_back(b);
    }

    /// Ends the log: what is queued is written, then the STOP frame, and
    /// the writer thread is joined (at most `wait`).
    pub fn close(&self, wait: Duration) {
        super::end_writer(&self.tx, None, &self.writer, wait);
    }
}

enum Sink {
    File(super::tapfile::TapFile),
    Unix(std::os::unix::net::UnixStream),
}

impl Sink {
    /// Writes what `out` holds and removes it (a file keeps back a partial
    /// block until `end`).
    fn put(&mut self, out: &mut Vec<u8>, end: bool) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.write(out, end),
            Sink::Unix(s) => {
                let r = s.write_all(out);
                out.clear();
                r
            }
        }
    }
}

/// Bytes gathered before a write (one system call for thousands of
/// messages).
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
    Ok(Sink::Unix(s))
}

fn write_loop(
    rx: Receiver<Option<TapBatch>>,
    pool: &Pool,
    target: Target,
    mut sink: Option<Sink>,
    identity: &[u8],
) {
    let mut out = Vec::with_capacity(WRITE_BUF + 64 * 1024);
    let head = head(identity);
    let mut started = false;
    let mut backoff = Duration::from_millis(100);
    let mut next_try = std::time::Instant::now();
    loop {
        // Drain what is queued; when empty, write out (a reader sees
        // everything logged) and sleep rather than block in `recv`: a
        // blocked receiver makes every `try_send` on the query path wake it
        // with a system call, which costs the workers more than the logging.
        let b = match rx.try_recv() {
            Ok(Some(b)) => b,
            Ok(None) | Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                if !out.is_empty() {
                    put(&mut sink, &mut started, &mut out);
                }
                std::thread::sleep(IDLE);
                continue;
            }
        };
        pool.pending.fetch_sub(b.messages, Relaxed);
        if sink.is_none() {
            if let Target::Unix(p) = &target {
                if std::time::Instant::now() >= next_try {
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
                        }
                    }
                }
            }
        }
        if sink.is_none() {
            pool.unwritten.fetch_add(b.messages, Relaxed);
            pool.give_back(b);
            continue;
        }
        if !started {
            out.extend_from_slice(&control(CONTROL_START, true));
            started = true;
        }
        for r in &b.records {
            let p = peers(r);
            if r.mid > r.start {
                frame(&mut out, &head, &p, r.kind, r, &b.bytes[r.start..r.mid]);
            }
            if r.end > r.mid {
                frame(
                    &mut out,
                    &head,
                    &p,
                    Kind::ClientResponse,
                    r,
                    &b.bytes[r.mid..r.end],
                );
            }
        }
        pool.give_back(b);
        if out.len() >= WRITE_BUF {
            put(&mut sink, &mut started, &mut out);
        }
    }
    if let Some(mut s) = sink {
        out.extend_from_slice(&control(CONTROL_STOP, false));
        if let Err(e) = s.put(&mut out, true) {
            tracing::warn!(error = %e, "dnstap: the log's end was not written");
        }
        if let Sink::Unix(w) = &mut s {
            // A bidirectional reader answers STOP with FINISH.
            let _ = read_control(w).map(|t| t == CONTROL_FINISH);
        }
    }
}

/// Hands `out` to the sink. A socket whose reader went away is dropped (to
/// reconnect); a file that cannot be written is closed and the log stops
/// there (what is in it stays readable up to the failed write).
fn put(sink: &mut Option<Sink>, started: &mut bool, out: &mut Vec<u8>) {
    let Some(s) = sink.as_mut() else {
        out.clear();
        return;
    };
    if let Err(e) = s.put(out, false) {
        match s {
            Sink::Unix(_) => tracing::warn!("dnstap: the reader went away; reconnecting"),
            Sink::File(_) => {
                tracing::error!(error = %e, "dnstap: cannot write the file; the log stops here")
            }
        }
        (*sink, *started) = (None, false);
        out.clear();
    }
}

/// One data frame: its length, then the `Dnstap` message (dnstap.proto)
/// as `head` starts it (type MESSAGE, identity, version, the key of field
/// 14: the same in every frame, protobuf fields may come in any order),
/// then field 14's length and the `Message`. Its small fields are written
/// on the stack first, so the lengths are known and `out` takes three
/// copies: the head, the fields, the DNS bytes.
fn frame(out: &mut Vec<u8>, head: &[u8], peers: &Fields, kind: Kind, r: &Record, wire: &[u8]) {
    let mut m = message_fields(peers, kind, r, wire.len());
    let inner = m.len - LEN_ROOM + wire.len();
    let fields = m.prepend_len(inner);
    let total = head.len() - 4 + fields.len() + wire.len();
    out.reserve(head.len() + fields.len() + wire.len());
    let at = out.len();
    out.extend_from_slice(head);
    out[at..at + 4].copy_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(fields);
    out.extend_from_slice(wire);
}

/// What starts every frame: room for the frame's length, `type = MESSAGE`
/// (field 15), identity and version (fields 1 and 2), the key of the
/// `Message` (field 14).
fn head(identity: &[u8]) -> Vec<u8> {
    let mut h = vec![0, 0, 0, 0, 15 << 3, 1];
    bytes_field(&mut h, 1, identity);
    bytes_field(
        &mut h,
        2,
        concat!("dnspolicy ", env!("CARGO_PKG_VERSION")).as_bytes(),
    );
    key(&mut h, 14, 2);
    h
}

/// Bytes kept free in front of a `Message`'s fields for its length (a
/// varint of a frame's size: at most 5 bytes).
const LEN_ROOM: usize = 5;

/// Protobuf fields written on the stack: a `Message` without its DNS
/// bytes is at most 80 bytes, after `LEN_ROOM` for its length.
#[derive(Clone, Copy)]
struct Fields {
    buf: [u8; 96],
    len: usize,
}

impl Fields {
    fn new() -> Self {
        Fields {
            buf: [0; 96],
            len: LEN_ROOM,
        }
    }
    fn byte(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }
    fn push(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }
    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field << 3 | u32::from(wire_type)));
    }
    fn varint_field(&mut self, field: u32, v: u64) {
        self.key(field, 0);
        self.varint(v);
    }
    fn bytes_field(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.push(b);
    }
    /// The fields with `len` as a varint in front of them.
    fn prepend_len(&mut self, len: usize) -> &[u8] {
        let mut v = [0u8; LEN_ROOM];
        let (mut n, mut x) = (0, len as u64);
        while x >= 0x80 {
            v[n] = (x as u8) | 0x80;
            x >>= 7;
            n += 1;
        }
        v[n] = x as u8;
        n += 1;
        self.buf[LEN_ROOM - n..LEN_ROOM].copy_from_slice(&v[..n]);
        &self.buf[LEN_ROOM - n..self.len]
    }
}

/// The fields of a `Message` that both messages of an exchange share:
/// family, protocol, addresses and ports (written once per record).
fn peers(r: &Record) -> Fields {
    let mut m = Fields::new();
    let family = if r.query.is_ipv4() { 1 } else { 2 };
    m.varint_field(2, family);
    m.varint_field(3, if r.tcp { 2 } else { 1 });
    let (q, a) = (addr_bytes(r.query.ip()), addr_bytes(r.response.ip()));
    m.bytes_field(4, &q.0[..q.1]);
    m.bytes_field(5, &a.0[..a.1]);
    m.varint_field(6, u64::from(r.query.port()));
    m.varint_field(7, u64::from(r.response.port()));
    m
}

/// The whole `Message` up to its DNS bytes (their key and length
/// included): `peers`, then the type and the time.
fn message_fields(peers: &Fields, kind: Kind, r: &Record, wire_len: usize) -> Fields {
    let mut m = *peers;
    m.varint_field(1, kind as u64);
    let is_query = matches!(kind, Kind::ClientQuery | Kind::ForwarderQuery);
    let (sec, nsec, msg) = if is_query { (8, 9, 10) } else { (12, 13, 14) };
    m.varint_field(sec, r.secs);
    m.key(nsec, 5);
    m.push(&r.nanos.to_le_bytes());
    m.key(msg, 2);
    m.varint(wire_len as u64);
    m
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_reference() {
        // The field layout of dnstap.proto: Message.type 5, family INET,
        // protocol UDP, addresses, ports, time, the wire message.
        let wire = [0xAB; 3];
        let r = Record {
            kind: Kind::ClientQuery,
            tcp: false,
            query: "10.0.0.210:55142".parse().expect("addr"),
            response: "10.0.0.210:53".parse().expect("addr"),
            secs: 1_609_664_398,
            nanos: 355_231_260,
            start: 0,
            mid: 3,
            end: 3,
        };
        let mut framed = Vec::new();
        frame(
            &mut framed,
            &head(b"dnstappb"),
            &peers(&r),
            r.kind,
            &r,
            &wire,
        );
        let out = &framed[4..];
        assert_eq!(
            u32::from_be_bytes([framed[0], framed[1], framed[2], framed[3]]) as usize,
            out.len()
        );
        assert_eq!(&out[..2], &[120, 1], "type MESSAGE");
        assert_eq!(
            &out[2..12],
            &[10, 8, b'd', b'n', b's', b't', b'a', b'p', b'p', b'b']
        );
        let m_at = out.iter().position(|&b| b == 114).expect("field 14");
        assert_eq!(out[m_at + 1] as usize, out.len() - m_at - 2, "its length");
        let m = &out[m_at + 2..];
        // The fields both messages of an exchange share come first (any
        // order is valid protobuf).
        assert_eq!(&m[..4], &[16, 1, 24, 1], "family INET, protocol UDP");
        assert_eq!(&m[4..10], &[34, 4, 10, 0, 0, 210]);
        assert_eq!(&m[16..20], &[48, 230, 174, 3], "query port 55142");
        assert_eq!(&m[20..22], &[56, 53]);
        assert_eq!(&m[22..24], &[8, 5], "type CLIENT_QUERY");
        assert_eq!(&m[24..30], &[64, 142, 143, 198, 255, 5], "query_time_sec");
        assert_eq!(
            &m[30..35],
            &[77, 28, 102, 44, 21],
            "query_time_nsec fixed32"
        );
        assert_eq!(m[35..], [82, 3, 0xAB, 0xAB, 0xAB]);
        // Lengths are computed before writing: IPv6, long messages, big ports.
        for (q, wire_len) in [("[2001:db8::1]:65535", 300), ("[::1]:1", 70_000)] {
            let r = Record {
                query: q.parse().expect("addr"),
                secs: u64::MAX,
                end: wire_len,
                mid: wire_len,
                ..r
            };
            let wire = vec![7u8; wire_len];
            let mut framed = Vec::new();
            let p = peers(&r);
            frame(
                &mut framed,
                &head(b"x"),
                &p,
                Kind::ClientResponse,
                &r,
                &wire,
            );
            let len = u32::from_be_bytes([framed[0], framed[1], framed[2], framed[3]]) as usize;
            assert_eq!(len, framed.len() - 4);
            let h = head(b"x").len();
            assert_eq!(framed[h - 1], 114, "field 14 ends the head");
            let (mut inner, mut at) = (0usize, h);
            for shift in (0..).step_by(7) {
                inner |= usize::from(framed[at] & 0x7f) << shift;
                at += 1;
                if framed[at - 1] < 0x80 {
                    break;
                }
            }
            assert_eq!(at + inner, framed.len(), "field 14's length");
            assert!(framed.ends_with(&wire));
        }
        assert_eq!(
            Target::parse("file:/tmp/x"),
            Ok(Target::File("/tmp/x".into()))
        );
        assert!(Target::parse("tcp:1.2.3.4").is_err());
    }

    /// Messages that reach the writer while no reader is there are
    /// counted as unwritten, not lost silently.
    #[test]
    fn messages_without_a_reader_are_counted() {
        let sock = std::env::temp_dir().join(format!("dnstap-none-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&sock);
        let tap = Dnstap::start(Target::Unix(sock), "t").expect("start");
        let a: SocketAddr = "127.0.0.1:5353".parse().expect("addr");
        for _ in 0..10 {
            tap.log(Kind::ClientQuery, false, a, a, &[1, 2, 3]);
        }
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while tap.unwritten() < 10 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!((tap.queued.load(Relaxed), tap.unwritten()), (10, 10));
        tap.close(Duration::from_millis(100));
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
