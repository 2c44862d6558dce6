//! The fast path's upstream exchange: the request head written straight
//! from the client's parsed fields (hop-by-hop fields out, `Host`,
//! `X-Forwarded-For`, `Forwarded`, `X-Forwarded-Proto` and the policy's
//! edits in), the response head parsed with `httparse` and checked like a
//! request's, then relayed with its body as it comes — by length, chunked
//! (passed through as sent, its end found by [`Chunks`]) or until the
//! upstream closes — on this thread's own kept-alive connections.

use super::chunked::Chunks;
use super::h1::trim;
use super::pool::Picked;
use super::route::{self, Peer};
use super::HttpState;
use dnspolicy_compiler::check::is_hop_by_hop;
use dnspolicy_compiler::ir::value::HeaderOp;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Write as _;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A local answer instead of an upstream's.
pub(super) struct Local {
    /// The status.
    pub status: u16,
    /// A text/plain body.
    pub body: Cow<'static, str>,
    /// `Location`, for redirects.
    pub location: Option<String>,
}

impl Local {
    pub(super) fn new(status: u16, body: impl Into<Cow<'static, str>>) -> Local {
        Local {
            status,
            body: body.into(),
            location: None,
        }
    }
}

/// A connection's reusable buffers: what is written next, and what the
/// upstream sent.
#[derive(Default)]
pub(super) struct Scratch {
    /// The next bytes to send (a request head upstream, a response head
    /// and body to the client).
    pub out: Vec<u8>,
    resp: Vec<u8>,
}

impl Scratch {
    /// Lets go of buffers a large answer grew (a kept-alive connection
    /// holds its scratch between requests).
    pub(super) fn trim(&mut self) {
        for b in [&mut self.out, &mut self.resp] {
            if b.capacity() > 64 * 1024 {
                *b = Vec::new();
            }
        }
    }
}

/// The client's request, as parsed.
pub(super) struct Req<'r> {
    pub method: &'r str,
    pub target: &'r str,
    pub headers: &'r [httparse::Header<'r>],
    /// The `Host` the policy saw.
    pub host: Option<&'r str>,
    /// The `Connection` field values.
    pub connection: &'r [&'r [u8]],
    /// A `HEAD` request (its answer has no body).
    pub head: bool,
    /// The client asked to close after this answer.
    pub close: bool,
}

/// Whether field `name` stays on this hop: a hop-by-hop field or one a
/// `Connection` value names — but never `Content-Length`, which frames the
/// message relayed as it is (`Connection: content-length` must not leave
/// a body without its length).
fn hop_by_hop(name: &str, connection: &[&[u8]]) -> bool {
    is_hop_by_hop(name)
        || !connection.is_empty()
            && !name.eq_ignore_ascii_case("content-length")
            && connection.iter().any(|v| {
                v.split(|&c| c == b',')
                    .any(|t| trim(t).eq_ignore_ascii_case(name.as_bytes()))
            })
}

/// A field name as RFC 9110 §5.1 allows (a token).
fn token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// The largest response head taken from an upstream; more is a 502.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Response header fields taken at most (hyper's client default).
const RESPONSE_FIELDS: usize = 100;

/// How a relayed answer left the client's connection.
pub(super) enum Relayed {
    /// Sent whole; the connection may carry another request.
    KeepAlive,
    /// Sent whole; the connection ends (the client or the framing says so).
    Close,
    /// Cut short (the upstream stalled or broke, or the client did not
    /// read): the connection is reset, never closed as if complete.
    Abort,
}

/// Relays the request to a member of `pool_name` and its answer to
/// `client`; `Err`: no upstream answer began, answer this locally.
pub(super) async fn forward(
    client: &mut TcpStream,
    req: &Req<'_>,
    peer: &Peer,
    http: &HttpState,
    pool_name: &str,
    edits: &[HeaderOp],
    s: &mut Scratch,
) -> Result<Relayed, Local> {
    let Some(pool) = http.pools.get(pool_name) else {
        http.stats.unknown_pool.fetch_add(1, Relaxed);
        tracing::warn!(pool = %pool_name, "a policy routed to a pool that is not configured");
        return Err(Local::new(502, format!("no pool `{pool_name}`\n")));
    };
    let Some(picked) = pool.pick() else {
        return Err(Local::new(
            503,
            format!("pool `{pool_name}` has no healthy member\n"),
        ));
    };
    let addr = picked.member.addr;
    write_request(
        &mut s.out,
        req,
        peer,
        picked.member.authority.as_str(),
        edits,
    );
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(http.config.upstream_timeout_ms);
    let idempotent = matches!(
        req.method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    );
    let (mut up, head) = loop {
        let (mut up, reused) = match take(addr) {
            Some(up) => (up, true),
            None => match tokio::time::timeout_at(deadline, connect(addr)).await {
                Ok(Ok(up)) => (up, false),
                Ok(Err(e)) => return Err(failed(http, &picked, pool_name, &e.to_string())),
                Err(_) => return Err(timed_out(http, &picked)),
            },
        };
        let exchange = exchange_head(&mut up, &mut s.out, &mut s.resp, req);
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(head)) => break (up, head),
            // A kept connection the upstream had closed, noticed only now:
            // nothing was answered; the next one (at worst a new one) gets it.
            Ok(Err(UpErr::Closed)) if reused && idempotent => continue,
            Ok(Err(UpErr::Closed)) => {
                return Err(failed(http, &picked, pool_name, "closed without an answer"))
            }
            Ok(Err(UpErr::Bad(why))) => return Err(failed(http, &picked, pool_name, &why)),
            Err(_) => return Err(timed_out(http, &picked)),
        }
    };
    // The body: what came with the head, then as it comes; each read from
    // the upstream and each write to the client within body_timeout_ms.
    let body_time = Duration::from_millis(http.config.body_timeout_ms);
    let mut body = head.framing;
    let after = &s.resp[head.len..];
    let Ok((done, used)) = body.feed(after) else {
        return Err(failed(http, &picked, pool_name, "a malformed chunked body"));
    };
    if head.code >= 500 {
        picked.failed();
    } else {
        picked.ok();
    }
    drop(picked);
    let class = (head.code / 100).clamp(1, 5) as usize - 1;
    http.stats.relayed[class].fetch_add(1, Relaxed);
    pool.responses[class].fetch_add(1, Relaxed);
    let whole = if head.close_client {
        Relayed::Close
    } else {
        Relayed::KeepAlive
    };
    let mut reusable = head.keep && !(done && used < after.len());
    s.out.extend_from_slice(&after[..used]);
    let wrote = matches!(
        tokio::time::timeout(body_time, client.write_all(&s.out)).await,
        Ok(Ok(()))
    );
    if done {
        if reusable {
            put_back(addr, up);
        }
        return Ok(if wrote { whole } else { Relayed::Abort });
    }
    if !wrote {
        return Ok(Relayed::Abort);
    }
    loop {
        s.resp.clear();
        s.resp.reserve(16 * 1024);
        let n = match tokio::time::timeout(body_time, up.read_buf(&mut s.resp)).await {
            Ok(Ok(n)) => n,
            // Stalled or broken: the client's connection is reset with what
            // came, never closed as if the body were complete.
            _ => return Ok(Relayed::Abort),
        };
        if n == 0 {
            if matches!(body, Framing::Close) {
                return Ok(whole);
            }
            return Ok(Relayed::Abort);
        }
        let Ok((d, used)) = body.feed(&s.resp) else {
            return Ok(Relayed::Abort);
        };
        reusable &= !(d && used < n);
        if !matches!(
            tokio::time::timeout(body_time, client.write_all(&s.resp[..used])).await,
            Ok(Ok(()))
        ) {
            return Ok(Relayed::Abort);
        }
        if d {
            if reusable {
                put_back(addr, up);
            }
            return Ok(whole);
        }
    }
}

/// A failed exchange: counted against the member, answered 502.
fn failed(http: &HttpState, picked: &Picked<'_>, pool: &str, why: &str) -> Local {
    picked.failed();
    http.stats.upstream_errors.fetch_add(1, Relaxed);
    tracing::debug!(pool = %pool, member = %picked.member.addr, error = %why, "upstream exchange failed");
    Local::new(502, format!("upstream {} failed\n", picked.member.addr))
}

/// No answer within upstream_timeout_ms: counted, answered 504.
fn timed_out(http: &HttpState, picked: &Picked<'_>) -> Local {
    picked.failed();
    http.stats.upstream_timeouts.fetch_add(1, Relaxed);
    Local::new(504, format!("upstream {} timed out\n", picked.member.addr))
}

/// The request head for the upstream into `out`.
fn write_request(
    out: &mut Vec<u8>,
    req: &Req<'_>,
    peer: &Peer,
    authority: &str,
    edits: &[HeaderOp],
) {
    out.clear();
    let edited = |name: &str| edits.iter().any(|e| e.name.eq_ignore_ascii_case(name));
    let line = |out: &mut Vec<u8>, name: &str, value: &[u8]| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    let _ = write!(out, "{} {} HTTP/1.1\r\n", req.method, req.target);
    let mut host: Option<&[u8]> = None;
    let mut xff = false;
    let mut xfp = false;
    for h in req.headers {
        let n = h.name;
        if hop_by_hop(n, req.connection) || edited(n) {
            continue;
        }
        if n.eq_ignore_ascii_case("host") {
            host = host.or(Some(h.value));
            continue;
        }
        if n.eq_ignore_ascii_case("x-forwarded-for") {
            xff = true;
            continue;
        }
        if n.eq_ignore_ascii_case("x-forwarded-proto") {
            // A trusted proxy in front (TLS ended there) says which scheme.
            if !peer.trusted {
                continue;
            }
            xfp = true;
        }
        line(out, n, h.value);
    }
    if !edited("host") {
        // The host the policy saw; without one (HTTP/1.1 requires it) the member's.
        line(out, "Host", host.unwrap_or(authority.as_bytes()));
    }
    if !edited("x-forwarded-for") {
        out.extend_from_slice(b"X-Forwarded-For: ");
        if xff {
            let valid = req
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
                .filter(|h| route::visible(h.value));
            for h in valid {
                out.extend_from_slice(h.value);
                out.extend_from_slice(b", ");
            }
        }
        out.extend_from_slice(peer.ip.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !edited("forwarded") {
        let _ = write!(out, "Forwarded: for={};proto=http", peer.for_);
        // Only a host that cannot break out of its quotes (RFC 7239 §4).
        let plain = |c: char| c.is_ascii_alphanumeric() || ".-:[]_".contains(c);
        if let Some(h) = req.host.filter(|h| h.chars().all(plain)) {
            let _ = write!(out, ";host=\"{h}\"");
        }
        out.extend_from_slice(b"\r\n");
    }
    if !edited("x-forwarded-proto") && !xfp {
        out.extend_from_slice(b"X-Forwarded-Proto: http\r\n");
    }
    // Edits in order: the last one for a name decides it.
    for (i, e) in edits.iter().enumerate() {
        let later = edits[i + 1..]
            .iter()
            .any(|l| l.name.eq_ignore_ascii_case(&e.name));
        if let (Some(v), false) = (&e.value, later) {
            if token(&e.name) && route::visible(v.as_bytes()) {
                line(out, &e.name, v.as_bytes());
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// How an upstream answer's body ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    /// No body (`HEAD`, 204, 304).
    Empty,
    /// This many bytes more.
    Length(u64),
    /// Chunked, passed through as sent.
    Chunked(Chunks),
    /// At the upstream's close.
    Close,
}

impl Framing {
    /// Takes `b`, the body's next bytes: whether the body ended, and how
    /// many of `b` are the body's; `Err` for a malformed chunked body.
    fn feed(&mut self, b: &[u8]) -> Result<(bool, usize), ()> {
        match self {
            Framing::Empty => Ok((true, 0)),
            Framing::Length(left) => {
                let n = (*left).min(b.len() as u64);
                *left -= n;
                Ok((*left == 0, n as usize))
            }
            Framing::Chunked(c) => match c.feed(b)? {
                Some(n) => Ok((true, n)),
                None => Ok((false, b.len())),
            },
            Framing::Close => Ok((false, b.len())),
        }
    }
}

/// A parsed upstream response head.
struct Head {
    /// Its length in the buffer.
    len: usize,
    code: u16,
    framing: Framing,
    /// The upstream connection may be reused after the body.
    keep: bool,
    /// The client's connection ends after this answer.
    close_client: bool,
}

/// Why no response head came.
enum UpErr {
    /// The connection ended (or broke) before any byte of an answer.
    Closed,
    /// A broken or malformed answer.
    Bad(String),
}

/// Writes the request (in `out`) and reads the response head into `resp`;
/// on success `out` holds the head for the client instead.
async fn exchange_head(
    up: &mut TcpStream,
    out: &mut Vec<u8>,
    resp: &mut Vec<u8>,
    req: &Req<'_>,
) -> Result<Head, UpErr> {
    up.write_all(out).await.map_err(|_| UpErr::Closed)?;
    resp.clear();
    loop {
        resp.reserve(8 * 1024);
        match up.read_buf(resp).await {
            Ok(0) | Err(_) if resp.is_empty() => return Err(UpErr::Closed),
            Ok(0) => {
                return Err(UpErr::Bad(
                    "the upstream closed in the middle of a head".into(),
                ))
            }
            Err(e) => return Err(UpErr::Bad(e.to_string())),
            Ok(_) => {}
        }
        loop {
            match parse_head(resp, out, req) {
                Parsed::Head(h) => return Ok(h),
                Parsed::Interim(n) => {
                    resp.drain(..n);
                    if resp.is_empty() {
                        break;
                    }
                }
                Parsed::Partial if resp.len() > MAX_RESPONSE_HEAD => {
                    return Err(UpErr::Bad("response head too large".into()))
                }
                Parsed::Partial => break,
                Parsed::Bad(why) => return Err(UpErr::Bad(why)),
            }
        }
    }
}

/// What the bytes so far hold.
enum Parsed {
    Head(Head),
    /// A 1xx answer of this length (dropped: the request asked for none).
    Interim(usize),
    Partial,
    Bad(String),
}

/// Parses a response head; when complete, writes the client's head into `out`.
fn parse_head(resp: &[u8], out: &mut Vec<u8>, req: &Req<'_>) -> Parsed {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; RESPONSE_FIELDS];
    let mut r = httparse::Response::new(&mut []);
    let n = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut r,
        resp,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(e) => return Parsed::Bad(format!("malformed response head: {e}")),
    };
    let code = r.code.unwrap_or(0);
    match code {
        0..=99 => return Parsed::Bad(format!("status {code} is not a status")),
        101 => return Parsed::Bad("101 to a request that asked no upgrade".into()),
        100..=199 => return Parsed::Interim(n),
        _ => {}
    }
    let mut length: Option<&[u8]> = None;
    let mut te: smallvec::SmallVec<[&[u8]; 1]> = smallvec::SmallVec::new();
    let mut connection: smallvec::SmallVec<[&[u8]; 2]> = smallvec::SmallVec::new();
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = trim(h.value);
            let number = !v.is_empty() && v.len() <= 18 && v.iter().all(u8::is_ascii_digit);
            if !number || length.is_some_and(|l| l != v) {
                return Parsed::Bad("conflicting or malformed Content-Length".into());
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te.push(h.value);
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection.push(h.value);
        }
    }
    if length.is_some() && !te.is_empty() {
        return Parsed::Bad("both Content-Length and Transfer-Encoding".into());
    }
    let chunked = te.last().is_some_and(|v| {
        v.rsplit(|&c| c == b',')
            .next()
            .is_some_and(|t| trim(t).eq_ignore_ascii_case(b"chunked"))
    });
    let framing = if req.head || code == 204 || code == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked(Chunks::default())
    } else if !te.is_empty() {
        Framing::Close
    } else if let Some(l) = length {
        Framing::Length(
            std::str::from_utf8(l)
                .ok()
                .and_then(|l| l.parse().ok())
                .unwrap_or(0),
        )
    } else {
        Framing::Close
    };
    let upstream_close = connection.iter().any(|v| {
        v.split(|&c| c == b',')
            .any(|t| trim(t).eq_ignore_ascii_case(b"close"))
    });
    let keep = r.version == Some(1) && !upstream_close && framing != Framing::Close;
    let close_client = req.close || framing == Framing::Close;
    out.clear();
    let reason = r
        .reason
        .filter(|r| !r.is_empty() && route::visible(r.as_bytes()))
        .or_else(|| hyper::StatusCode::from_u16(code).ok()?.canonical_reason())
        .unwrap_or("");
    let _ = write!(out, "HTTP/1.1 {code} {reason}\r\n");
    let mut dated = false;
    for h in r.headers.iter() {
        if hop_by_hop(h.name, &connection) {
            continue;
        }
        dated |= h.name.eq_ignore_ascii_case("date");
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    if matches!(framing, Framing::Chunked(_)) {
        for v in &te {
            out.extend_from_slice(b"transfer-encoding: ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
    }
    if close_client {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !dated {
        super::h1::push_date(out);
    }
    out.extend_from_slice(b"\r\n");
    Parsed::Head(Head {
        len: n,
        code,
        framing,
        keep,
        close_client,
    })
}

/// Idle connections kept per member at most, and for how long.
const MAX_IDLE: usize = 256;
const IDLE_FOR: Duration = Duration::from_secs(60);

thread_local! {
    /// This proxy thread's idle upstream connections by member, newest
    /// last (its runtime's I/O driver owns the sockets).
    static IDLE: RefCell<FxHashMap<SocketAddr, Vec<(TcpStream, std::time::Instant)>>> =
        RefCell::new(FxHashMap::default());
}

async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// An idle connection to `addr` that is still open, newest first.
fn take(addr: SocketAddr) -> Option<TcpStream> {
    loop {
        let (s, since) = IDLE.with(|idle| idle.borrow_mut().get_mut(&addr)?.pop())?;
        if since.elapsed() < IDLE_FOR && quiet(&s) {
            return Some(s);
        }
    }
}

/// Whether an idle connection has nothing to say: the upstream neither
/// closed it nor sent anything unasked. Its readiness is the I/O driver's
/// record, so this is a syscall only when something did come.
fn quiet(s: &TcpStream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match s.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => matches!(
            s.try_read(&mut [0u8; 1]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        ),
    }
}

/// Keeps a connection whose exchange is complete for the next request.
fn put_back(addr: SocketAddr, s: TcpStream) {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE {
            list.push((s, std::time::Instant::now()));
        }
    });
}

/// Drops this thread's idle connections that the upstream closed or that
/// rested past their time.
pub(super) fn sweep() {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        for list in idle.values_mut() {
            list.retain(|(s, since)| since.elapsed() < IDLE_FOR && quiet(s));
        }
        idle.retain(|_, list| !list.is_empty());
    });
}

/// Closes this thread's idle connections (before its runtime goes).
pub(super) fn close_idle() {
    IDLE.with(|idle| idle.borrow_mut().clear());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_names_fields_but_never_the_length() {
        let conn: &[&[u8]] = &[b"close, X-Secret", b" keep-alive "];
        assert!(hop_by_hop("x-secret", conn));
        assert!(hop_by_hop("Keep-Alive", conn));
        assert!(hop_by_hop("Transfer-Encoding", &[]));
        assert!(!hop_by_hop("x-other", conn));
        assert!(!hop_by_hop("Content-Length", &[b"content-length"]));
    }
}
