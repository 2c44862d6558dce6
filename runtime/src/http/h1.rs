//! The HTTP/1.1 fast path: a connection's requests read with `httparse`
//! straight from its buffer, decided by the policies, answered locally or
//! relayed to a pool member on a raw kept-alive connection (`h1_upstream`)
//! — no `Request`/`HeaderMap` built, no task or channel per exchange.
//!
//! Why: measured under the same `wrk` load, nginx spent ~4.4 µs of user
//! time per proxied request and dnspolicy on hyper's server and client
//! ~11 µs, spread thin over their general machinery. The common request
//! (HTTP/1.1, no body, origin-form target) is what a CDN router mostly
//! sees; everything else — HTTP/2 with prior knowledge, request bodies,
//! `Expect`, upgrades, HTTP/1.0, absolute-form targets — is handed to hyper
//! (`proxy::serve_hyper`) with the bytes read so far, and that connection
//! stays with hyper. Both paths refuse the same malformed input.

use super::h1_upstream::{self, Local, Scratch};
use super::route::{self, Peer};
use super::HttpState;
use crate::server::Shared;
use dnspolicy_compiler::ir::http::RequestParts;
use dnspolicy_compiler::Verdict;
use std::borrow::Cow;
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Header fields the fast path parses at most; a configured `max_headers`
/// above it hands such requests to hyper.
const FAST_HEADERS: usize = 128;

/// What comes after one request.
enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close the connection.
    Close,
    /// Reset the connection: an answer was cut short, and a clean close
    /// could pass for its end (a body delimited by the close).
    Abort,
    /// Give the connection, with every byte not yet handled, to hyper.
    Handover,
}

/// Serves one accepted connection until it closes, `stop` fires between
/// requests, or it is handed to hyper.
pub(super) async fn serve_conn(
    mut stream: TcpStream,
    peer: Arc<Peer>,
    shared: Arc<Shared>,
    http: Arc<HttpState>,
    stop: CancellationToken,
) {
    let cfg = &http.config;
    let head_time = Duration::from_millis(cfg.header_timeout_ms);
    let max_head = cfg.max_header_bytes;
    let max_fields = cfg.max_headers.min(FAST_HEADERS);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut scratch = Scratch::default();
    let mut first = true;
    loop {
        // A request's head must be complete within header_timeout_ms of
        // waiting for it (an idle kept-alive connection included).
        let deadline = Instant::now() + head_time;
        let next = loop {
            // HTTP/2 with prior knowledge is hyper's.
            const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
            let seen = &buf[..buf.len().min(PREFACE.len())];
            if first && !buf.is_empty() && PREFACE.starts_with(seen) {
                if buf.len() >= PREFACE.len() {
                    break Next::Handover;
                }
            } else if !buf.is_empty() {
                let mut fields =
                    [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; FAST_HEADERS];
                let mut req = httparse::Request::new(&mut []);
                let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
                    &mut req,
                    &buf,
                    &mut fields[..max_fields],
                );
                match parsed {
                    Ok(httparse::Status::Complete(n)) if n <= max_head => {
                        let next =
                            request(&mut stream, &req, &peer, &shared, &http, &mut scratch).await;
                        if matches!(next, Next::KeepAlive) {
                            consume(&mut buf, n);
                        }
                        break next;
                    }
                    Ok(httparse::Status::Partial) if buf.len() < max_head => {}
                    // A whole head over the limit, or none within it.
                    Ok(_) => {
                        break refuse(
                            &mut stream,
                            &http,
                            431,
                            "request header fields too large\n",
                            &mut scratch,
                        )
                        .await;
                    }
                    Err(httparse::Error::TooManyHeaders) if cfg.max_headers > FAST_HEADERS => {
                        break Next::Handover;
                    }
                    Err(httparse::Error::TooManyHeaders) => {
                        break refuse(
                            &mut stream,
                            &http,
                            431,
                            "too many header fields\n",
                            &mut scratch,
                        )
                        .await;
                    }
                    Err(e) => {
                        let why = format!("malformed request: {e}\n");
                        break refuse(&mut stream, &http, 400, &why, &mut scratch).await;
                    }
                }
            }
            // More bytes, within the time; between requests, `stop` ends it.
            let idle = buf.is_empty();
            let read =
                tokio::time::timeout_at(deadline, read_more(&mut stream, &mut buf, max_head));
            let got = if idle {
                tokio::select! {
                    r = read => r,
                    _ = stop.cancelled() => return,
                }
            } else {
                read.await
            };
            match got {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(_)) => {}
            }
        };
        first = false;
        scratch.trim();
        match next {
            Next::KeepAlive if !stop.is_cancelled() => {}
            Next::KeepAlive | Next::Close => {
                let _ = stream.shutdown().await;
                return;
            }
            Next::Abort => {
                // SO_LINGER 0: the close sends RST, not FIN.
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                return;
            }
            Next::Handover => {
                let io = Rewind {
                    pre: buf,
                    at: 0,
                    inner: stream,
                };
                super::proxy::serve_hyper(io, peer, shared, http, stop).await;
                return;
            }
        }
    }
}

/// A target in origin form whose every byte RFC 3986 allows in a path or
/// query (`pchar`, `/`, `?`, `%`): the policy reads it and the upstream
/// gets it as it is.
fn origin_form(target: &str) -> bool {
    target.starts_with('/')
        && target
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&c))
}

/// Drops a handled request's head from the buffer (pipelined requests
/// after it stay).
fn consume(buf: &mut Vec<u8>, n: usize) {
    if n >= buf.len() {
        buf.clear();
    } else {
        buf.drain(..n);
    }
}

/// Reads what the socket has into `buf` (at most up to `max` + 1 bytes in
/// all, so a head past the limit is seen as such).
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<usize> {
    let room = (max + 1).saturating_sub(buf.len()).clamp(1, 16 * 1024);
    buf.reserve(room);
    stream
        .read_buf(&mut bytes::BufMut::limit(&mut *buf, room))
        .await
}

/// One parsed request: framing and smuggling checks, the policies, then a
/// local answer or the upstream exchange.
async fn request(
    stream: &mut TcpStream,
    req: &httparse::Request<'_, '_>,
    peer: &Peer,
    shared: &Shared,
    http: &HttpState,
    scratch: &mut Scratch,
) -> Next {
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Next::Handover;
    };
    let mut s = Scan::default();
    for h in req.headers.iter() {
        s.add(h);
    }
    // Refused on any request the fast path sees, before it could reach hyper.
    if let Some(why) = s.refusal() {
        return refuse(stream, http, 400, why, scratch).await;
    }
    // HTTP/1.0 (keep-alive by request, no chunked answers), absolute or
    // asterisk targets (and any with a byte RFC 3986 does not allow there,
    // such as a `#`: hyper's URI parser decides those), bodies and
    // upgrades are hyper's, and counted there.
    if version != 1 || !origin_form(target) || s.body || s.upgrade {
        return Next::Handover;
    }
    http.stats.requests.fetch_add(1, Relaxed);
    let view = View {
        method,
        target,
        host: s.host,
        headers: req.headers,
    };
    let xff = header_values(req.headers, "x-forwarded-for");
    let client = route::client_ip(http, xff, peer);
    let head = method == "HEAD";
    let close = s.close;
    let answer = match route::decide(shared, http, &view, client) {
        None => {
            http.stats.unrouted.fetch_add(1, Relaxed);
            Local::new(404, "no route for this request\n")
        }
        Some(Verdict::Respond { status, body }) => {
            http.stats.responded.fetch_add(1, Relaxed);
            let status = if (200..=599).contains(&status) {
                status
            } else {
                500
            };
            Local::new(status, body.to_string())
        }
        Some(Verdict::Redirect { status, location }) => {
            http.stats.redirected.fetch_add(1, Relaxed);
            if route::visible(location.as_bytes()) {
                let status = if (300..=399).contains(&status) {
                    status
                } else {
                    302
                };
                Local {
                    location: Some(location.to_string()),
                    ..Local::new(status, "")
                }
            } else {
                Local::new(500, "bad redirect location\n")
            }
        }
        Some(Verdict::Route { pool, headers }) => {
            let r = h1_upstream::Req {
                method,
                target,
                headers: req.headers,
                host: s.host,
                connection: &s.connection,
                head,
                close,
            };
            match h1_upstream::forward(stream, &r, peer, http, &pool, &headers, scratch).await {
                Ok(h1_upstream::Relayed::KeepAlive) if !close => return Next::KeepAlive,
                Ok(h1_upstream::Relayed::Abort) => return Next::Abort,
                Ok(_) => return Next::Close,
                Err(local) => local,
            }
        }
        Some(_) => Local::new(404, "no route for this request\n"),
    };
    write_local(&mut scratch.out, &answer, head, close);
    // A client that does not read cannot hold the connection.
    let limit = Duration::from_millis(http.config.body_timeout_ms);
    match tokio::time::timeout(limit, stream.write_all(&scratch.out)).await {
        Ok(Ok(())) if !close => Next::KeepAlive,
        Ok(Ok(())) => Next::Close,
        _ => Next::Abort,
    }
}

/// Answers `status` with `why` and closes (after counting it refused).
async fn refuse(
    stream: &mut TcpStream,
    http: &HttpState,
    status: u16,
    why: &str,
    scratch: &mut Scratch,
) -> Next {
    http.stats.refused.fetch_add(1, Relaxed);
    write_local(
        &mut scratch.out,
        &Local::new(status, why.to_string()),
        false,
        true,
    );
    let _ = stream.write_all(&scratch.out).await;
    Next::Close
}

/// A local answer's bytes into `out`: text/plain, its length and `Date`;
/// no body for `HEAD`; `Connection: close` when the connection ends.
pub(super) fn write_local(out: &mut Vec<u8>, a: &Local, head: bool, close: bool) {
    use std::io::Write as _;
    out.clear();
    let reason = hyper::StatusCode::from_u16(a.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    // 204 and 304 have no body (RFC 9110 §15.3.5, §15.4.5): a `respond
    // 204 "text"` sends none, or the text would be read as the next answer.
    let bodiless = matches!(a.status, 204 | 304);
    let _ = write!(out, "HTTP/1.1 {} {reason}\r\n", a.status);
    if !bodiless {
        let _ = write!(
            out,
            "content-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n",
            a.body.len()
        );
    }
    if let Some(l) = &a.location {
        let _ = write!(out, "location: {l}\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    push_date(out);
    out.extend_from_slice(b"\r\n");
    if !head && !bodiless {
        out.extend_from_slice(a.body.as_bytes());
    }
}

/// A `Date` field line of now (RFC 9110 §6.6.1: an origin server with a
/// clock sends one, and a proxy adds one to an answer that has none).
pub(super) fn push_date(out: &mut Vec<u8>) {
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        let now = std::time::SystemTime::now();
        let secs = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if d.0 != secs {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(d.1.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
}

thread_local! {
    /// The `Date` value of this second (formatted once a second, not per answer).
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// What the request's header fields say about its framing and connection.
#[derive(Default)]
struct Scan<'b> {
    /// `Content-Length` values seen; whether they differ or are not a number.
    length: Option<&'b [u8]>,
    bad_length: bool,
    /// `Transfer-Encoding` present.
    chunked: bool,
    /// A body follows (a length above 0, or a transfer coding).
    body: bool,
    /// `Upgrade` or `Expect`: hyper's.
    upgrade: bool,
    /// `Host` fields, and the first.
    hosts: usize,
    host: Option<&'b str>,
    /// `Connection: close`.
    close: bool,
    /// The `Connection` field values (the fields they name are hop-by-hop).
    connection: smallvec::SmallVec<[&'b [u8]; 2]>,
}

impl<'b> Scan<'b> {
    fn add(&mut self, h: &httparse::Header<'b>) {
        let n = h.name;
        if n.eq_ignore_ascii_case("content-length") {
            let v = trim(h.value);
            let number = !v.is_empty() && v.len() <= 18 && v.iter().all(u8::is_ascii_digit);
            match self.length {
                Some(prev) if prev != v => self.bad_length = true,
                _ => {}
            }
            self.bad_length |= !number;
            self.length = Some(v);
            self.body |= v.iter().any(|&c| c != b'0');
        } else if n.eq_ignore_ascii_case("transfer-encoding") {
            self.chunked = true;
            self.body = true;
        } else if n.eq_ignore_ascii_case("host") {
            self.hosts += 1;
            if self.host.is_none() {
                self.host = std::str::from_utf8(h.value)
                    .ok()
                    .filter(|_| route::visible(h.value));
            }
        } else if n.eq_ignore_ascii_case("connection") {
            self.connection.push(h.value);
            self.close |= h
                .value
                .split(|&c| c == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(b"close"));
        } else if n.eq_ignore_ascii_case("upgrade") || n.eq_ignore_ascii_case("expect") {
            self.upgrade = true;
        }
    }

    /// Why the request is refused before anything else (RFC 9112 §6.1,
    /// §6.3; one host only).
    fn refusal(&self) -> Option<&'static str> {
        if self.chunked && self.length.is_some() {
            Some("both Content-Length and Transfer-Encoding\n")
        } else if self.bad_length {
            Some("conflicting Content-Length\n")
        } else if self.hosts > 1 {
            Some("more than one Host\n")
        } else {
            None
        }
    }
}

/// `b` without leading and trailing spaces and tabs.
pub(super) fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t'))
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// The values of every field called `lower_name` that hyper would read as
/// text (visible ASCII).
fn header_values<'h, 'n>(
    headers: &'h [httparse::Header<'h>],
    lower_name: &'n str,
) -> impl Iterator<Item = &'h str> + use<'h, 'n> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(lower_name))
        .filter(|h| route::visible(h.value))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
}

/// A request as the policies read it.
struct View<'r> {
    method: &'r str,
    target: &'r str,
    host: Option<&'r str>,
    headers: &'r [httparse::Header<'r>],
}

impl RequestParts for View<'_> {
    fn method(&self) -> &str {
        self.method
    }
    fn host(&self) -> Option<&str> {
        self.host
    }
    fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }
    fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
    fn header(&self, lower_name: &str) -> Option<Cow<'_, str>> {
        route::join_fields(lower_name, header_values(self.headers, lower_name))
    }
}

/// A connection handed to hyper: the bytes the fast path read but did not
/// handle come first, then the socket.
pub(super) struct Rewind {
    pre: Vec<u8>,
    at: usize,
    inner: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.at < this.pre.len() {
            let n = (this.pre.len() - this.at).min(out.remaining());
            out.put_slice(&this.pre[this.at..this.at + n]);
            this.at += n;
            if this.at == this.pre.len() {
                this.pre = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, out)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, b)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(head: &[u8]) -> Option<&'static str> {
        let mut fields = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut fields);
        assert!(req.parse(head).expect("parses").is_complete());
        let mut s = Scan::default();
        for h in req.headers.iter() {
            s.add(h);
        }
        s.refusal()
    }

    #[test]
    fn framing_that_could_smuggle_is_refused() {
        assert!(scan(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_none());
        assert!(
            scan(b"GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n").is_none()
        );
        for bad in [
            &b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ] {
            assert!(scan(bad).is_some(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn only_plain_origin_form_targets_take_the_fast_path() {
        for ok in ["/", "/a/b?c=d&e=%20", "/x;p=1/@:!$'()*+,~"] {
            assert!(origin_form(ok), "{ok}");
        }
        for other in [
            "/a#b",
            "/a b",
            "/<x>",
            "/`",
            "http://a/",
            "*",
            "/\"\"",
            "/{x}",
        ] {
            assert!(!origin_form(other), "{other}");
        }
    }

    #[test]
    fn trim_drops_spaces_and_tabs_only() {
        assert_eq!(trim(b" \tclose \t"), b"close");
        assert_eq!(trim(b"   "), b"");
        assert_eq!(trim(b"a b"), b"a b");
    }
}
