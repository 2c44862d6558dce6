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
            Target::File(p) => Some(Sink::File(BufWriter::new(std::fs::File::create(p)?))),
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
        };
        match self.tx.try_send(e) {
            Ok(()) => {
                self.queued.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Ends the log: what is queued is written, then the STOP frame, and
    /// the writer thread is joined (at most `wait`).
    pub fn close(&self, wait: Duration) {
        let Some(h) = self.writer.lock().ok().and_then(|mut w| w.take()) else {
            return;
        };
        let deadline = std::time::Instant::now() + wait;
        // The end marker (no DNS message is empty), queued behind the rest.
        let mut end = Event {
            kind: Kind::ClientQuery,
            tcp: false,
            query: SocketAddr::from(([0, 0, 0, 0], 0)),
            response: SocketAddr::from(([0, 0, 0, 0], 0)),
            time: UNIX_EPOCH,
            wire: Vec::new(),
        };
        while std::time::Instant::now() < deadline {
            match self.tx.try_send(end) {
                Err(TrySendError::Full(e)) => {
                    end = e;
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => break,
            }
        }
        while !h.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            let _ = h.join();
        }
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
    Ok(Sink::Unix(BufWriter::new(s)))
}

fn write_loop(rx: Receiver<Event>, target: Target, mut sink: Option<Sink>, identity: &[u8]) {
    let mut frame = Vec::with_capacity(1024);
    let mut started = false;
    let mut backoff = Duration::from_millis(100);
    let mut next_try = std::time::Instant::now();
    loop {
        // Flush before waiting, so a reader sees everything written.
        let e = match rx.try_recv() {
            Ok(e) => e,
            Err(_) => {
                if let Some(s) = sink.as_mut() {
                    let _ = s.out().flush();
                }
                match rx.recv() {
                    Ok(e) => e,
                    Err(_) => break,
                }
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
        frame.clear();
        encode(&e, identity, &mut frame);
        let ok = s
            .out()
            .write_all(&(frame.len() as u32).to_be_bytes())
            .is_ok()
            && s.out().write_all(&frame).is_ok();
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

fn addr_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// One `Dnstap` protobuf message (dnstap.proto): identity, version, type
/// MESSAGE, and the `Message`.
fn encode(e: &Event, identity: &[u8], out: &mut Vec<u8>) {
    let mut m = Vec::with_capacity(64 + e.wire.len());
    varint_field(&mut m, 1, e.kind as u64);
    let family = if e.query.is_ipv4() { 1 } else { 2 };
    varint_field(&mut m, 2, family);
    varint_field(&mut m, 3, if e.tcp { 2 } else { 1 });
    bytes_field(&mut m, 4, &addr_bytes(e.query.ip()));
    bytes_field(&mut m, 5, &addr_bytes(e.response.ip()));
    varint_field(&mut m, 6, u64::from(e.query.port()));
    varint_field(&mut m, 7, u64::from(e.response.port()));
    let t = e.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let is_query = matches!(e.kind, Kind::ClientQuery | Kind::ForwarderQuery);
    let (sec, nsec, msg) = if is_query { (8, 9, 10) } else { (12, 13, 14) };
    varint_field(&mut m, sec, t.as_secs());
    key(&mut m, nsec, 5);
    m.extend_from_slice(&t.subsec_nanos().to_le_bytes());
    bytes_field(&mut m, msg, &e.wire);
    bytes_field(out, 1, identity);
    bytes_field(
        out,
        2,
        concat!("dnspolicy ", env!("CARGO_PKG_VERSION")).as_bytes(),
    );
    bytes_field(out, 14, &m);
    // type = MESSAGE
    varint_field(out, 15, 1);
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
        };
        let mut out = Vec::new();
        encode(&e, b"dnstappb", &mut out);
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
}
