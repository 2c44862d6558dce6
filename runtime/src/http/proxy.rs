//! The HTTP listener (proxy threads, each an event loop accepting from the
//! one socket; every connection starts on the fast path, `h1`) and hyper's
//! way through for what the fast path hands over — h2c, request bodies,
//! upgrades, HTTP/1.0: limits, the client's address, the chain's HTTP
//! policies (`route`), then a local answer or the upstream exchange
//! (hop-by-hop headers out, `X-Forwarded-For` and `Forwarded` in, the
//! policy's header edits, streamed bodies with time limits).

use super::route::Peer;
use super::{Body, HttpState};
use crate::server::Shared;
use bytes::Bytes;
use dnspolicy_compiler::ir::http::RequestParts;
use dnspolicy_compiler::Verdict;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Request, Response, StatusCode};
use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context as TaskCx, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves HTTP on `threads` threads, each a single-threaded event loop
/// with its own upstream connections accepting from the one listener (like
/// nginx's workers: a request and its upstream exchange stay on one
/// thread, with no cross-thread wakeups), until `stop`. Health checks run
/// on the caller's runtime. Connections in progress finish their request.
pub async fn run(
    listener: std::net::TcpListener,
    threads: usize,
    shared: Arc<Shared>,
    http: Arc<HttpState>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let _checks = http.start_checks();
    let slots = Arc::new(tokio::sync::Semaphore::new(
        http.config.max_connections.max(1),
    ));
    let mut handles = Vec::new();
    for i in 0..threads.max(1) {
        let l = listener.try_clone()?;
        let (shared, http, stop, slots) =
            (shared.clone(), http.clone(), stop.clone(), slots.clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("dnspolicy-http-{i}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start an HTTP proxy thread");
                            return;
                        }
                    };
                    rt.block_on(async move {
                        match TcpListener::from_std(l) {
                            Ok(l) => serve(l, shared, http, slots, stop).await,
                            Err(e) => tracing::error!(error = %e, "cannot use the HTTP listener"),
                        }
                    });
                })?,
        );
    }
    stop.cancelled().await;
    let _ = tokio::task::spawn_blocking(move || {
        for h in handles {
            let _ = h.join();
        }
    })
    .await;
    Ok(())
}

/// One proxy thread's accept loop.
async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    http: Arc<HttpState>,
    slots: Arc<tokio::sync::Semaphore>,
    stop: CancellationToken,
) {
    let mut conns = tokio::task::JoinSet::new();
    let mut sweep = tokio::time::interval(Duration::from_secs(10));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Finished connections leave the set (it keeps their results).
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            _ = sweep.tick() => {
                super::upstream::sweep();
                super::h1_upstream::sweep();
                continue;
            }
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (shared, http, stop) = (shared.clone(), http.clone(), stop.clone());
        conns.spawn(async move {
            let _permit = permit;
            let peer = Arc::new(Peer::new(peer, &http));
            super::h1::serve_conn(stream, peer, shared, http, stop).await;
        });
    }
    // Connections finish their request (each shuts down gracefully).
    while conns.join_next().await.is_some() {}
    super::upstream::close_idle();
    super::h1_upstream::close_idle();
}

/// Serves a connection with hyper (HTTP/2 with prior knowledge, and the
/// HTTP/1 requests the fast path hands over: bodies, upgrades, HTTP/1.0),
/// until it ends or `stop` (then gracefully, up to 5 s).
pub(super) async fn serve_hyper<I>(
    io: I,
    peer: Arc<Peer>,
    shared: Arc<Shared>,
    http: Arc<HttpState>,
    stop: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(io);
    let h = http.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (shared, http, peer) = (shared.clone(), h.clone(), peer.clone());
        async move { Ok::<_, Infallible>(handle(&shared, &http, req, &peer).await) }
    });
    let mut b = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    b.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_millis(http.config.header_timeout_ms))
        .max_buf_size(http.config.max_header_bytes.max(8192))
        .max_headers(http.config.max_headers);
    b.http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_header_list_size(u32::try_from(http.config.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_millis(http.config.header_timeout_ms)));
    let conn = b.serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

/// A request as the policies read it.
struct Parts<'r>(&'r hyper::http::request::Parts);

impl RequestParts for Parts<'_> {
    fn method(&self) -> &str {
        self.0.method.as_str()
    }
    fn host(&self) -> Option<&str> {
        self.0
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| self.0.headers.get(hyper::header::HOST)?.to_str().ok())
    }
    fn path(&self) -> &str {
        self.0.uri.path()
    }
    fn query(&self) -> Option<&str> {
        self.0.uri.query()
    }
    fn header(&self, lower_name: &str) -> Option<Cow<'_, str>> {
        let values = self
            .0
            .headers
            .get_all(lower_name)
            .iter()
            .filter_map(|v| v.to_str().ok());
        super::route::join_fields(lower_name, values)
    }
}

fn local(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// One request.
async fn handle(
    shared: &Shared,
    http: &HttpState,
    req: Request<Incoming>,
    peer: &Peer,
) -> Response<Body> {
    http.stats.requests.fetch_add(1, Relaxed);
    let (parts, body) = req.into_parts();
    if let Some(why) = smuggling(&parts.headers).or_else(|| hosts_disagree(&parts)) {
        http.stats.refused.fetch_add(1, Relaxed);
        let mut r = local(StatusCode::BAD_REQUEST, why);
        r.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    let xff = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let client = super::route::client_ip(http, xff, peer);
    let Some(verdict) = super::route::decide(shared, http, &Parts(&parts), client) else {
        http.stats.unrouted.fetch_add(1, Relaxed);
        return local(StatusCode::NOT_FOUND, "no route for this request\n");
    };
    match verdict {
        Verdict::Respond { status, body } => {
            http.stats.responded.fetch_add(1, Relaxed);
            local(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body.to_string(),
            )
        }
        Verdict::Redirect { status, location } => {
            http.stats.redirected.fetch_add(1, Relaxed);
            let mut r = local(
                StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND),
                "",
            );
            match HeaderValue::from_str(&location) {
                Ok(v) => {
                    r.headers_mut().insert(hyper::header::LOCATION, v);
                }
                Err(_) => {
                    return local(StatusCode::INTERNAL_SERVER_ERROR, "bad redirect location\n")
                }
            }
            r
        }
        Verdict::Route { pool, headers } => forward(http, parts, body, peer, &pool, &headers).await,
        _ => local(StatusCode::NOT_FOUND, "no route for this request\n"),
    }
}

/// Why a request is refused before its body is read: several lengths that
/// differ, or both `Content-Length` and `Transfer-Encoding` (RFC 9112
/// §6.1: where does the body end?). hyper already refuses the first and
/// drops the length of the second on HTTP/1 (the fast path refuses it on
/// every request it reads, before handing a connection over); this holds
/// for whatever reaches here.
fn smuggling(h: &HeaderMap) -> Option<&'static str> {
    if h.contains_key(hyper::header::TRANSFER_ENCODING)
        && h.contains_key(hyper::header::CONTENT_LENGTH)
    {
        return Some("both Content-Length and Transfer-Encoding\n");
    }
    let mut lengths = h.get_all(hyper::header::CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        if lengths.any(|l| l != first) || first.to_str().map_or(true, |v| v.contains(',')) {
            return Some("conflicting Content-Length\n");
        }
    }
    None
}

/// A request whose host is ambiguous: several `Host` fields, or a `Host`
/// that differs from the request target's authority (the policy and the
/// upstream must see the same host).
fn hosts_disagree(parts: &hyper::http::request::Parts) -> Option<&'static str> {
    let mut hosts = parts.headers.get_all(hyper::header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Some("more than one Host\n");
    }
    match (parts.uri.authority(), first) {
        (Some(a), Some(h)) if !a.as_str().eq_ignore_ascii_case(h.to_str().unwrap_or("")) => {
            Some("Host differs from the request target\n")
        }
        _ => None,
    }
}

/// Hop-by-hop fields (RFC 9110 §7.6.1) and those the `Connection` field names.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    use hyper::header::{
        CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING,
        UPGRADE,
    };
    static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
    let hop = [
        &CONNECTION,
        &KEEP_ALIVE,
        &PROXY_AUTHENTICATE,
        &PROXY_AUTHORIZATION,
        &PROXY_CONNECTION,
        &TE,
        &TRAILER,
        &TRANSFER_ENCODING,
        &UPGRADE,
    ];
    // Most messages have none: one pass over the names, no removals.
    if !h.keys().any(|n| hop.contains(&n)) {
        return;
    }
    if h.contains_key(&CONNECTION) {
        let named: Vec<HeaderName> = h
            .get_all(&CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    for n in hop {
        h.remove(n);
    }
}

async fn forward(
    http: &HttpState,
    mut parts: hyper::http::request::Parts,
    body: Incoming,
    peer: &Peer,
    pool_name: &str,
    edits: &[dnspolicy_compiler::ir::value::HeaderOp],
) -> Response<Body> {
    let Some(pool) = http.pools.get(pool_name) else {
        http.stats.unknown_pool.fetch_add(1, Relaxed);
        tracing::warn!(pool = %pool_name, "a policy routed to a pool that is not configured");
        return local(StatusCode::BAD_GATEWAY, format!("no pool `{pool_name}`\n"));
    };
    let Some(picked) = pool.pick() else {
        return local(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("pool `{pool_name}` has no healthy member\n"),
        );
    };
    let host = Parts(&parts).host().map(str::to_string);
    let h = &mut parts.headers;
    strip_hop_by_hop(h);
    // Room for what is added below: one growth, not several.
    h.reserve(4 + edits.len());
    // The upstream sees the host the policy saw: the authority when the
    // request has one (RFC 9112 §3.2.2; HTTP/2 carries only that), and
    // without any (HTTP/1.0) the member's, as HTTP/1.1 requires one.
    let upstream_host = match (&host, parts.uri.authority()) {
        (Some(host), Some(_)) => HeaderValue::from_str(host).ok(),
        (_, None) if h.contains_key(hyper::header::HOST) => None,
        _ => HeaderValue::from_str(picked.member.authority.as_str()).ok(),
    };
    if let Some(v) = upstream_host {
        h.insert(hyper::header::HOST, v);
    }
    static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    static XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    if h.contains_key(&XFF) {
        let mut xff = String::with_capacity(64);
        for v in h.get_all(&XFF).iter().filter_map(|v| v.to_str().ok()) {
            xff.push_str(v);
            xff.push_str(", ");
        }
        xff.push_str(&peer.ip);
        if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(xff)) {
            h.insert(&XFF, v);
        }
    } else {
        h.insert(&XFF, peer.xff.clone());
    }
    let mut fwd = String::with_capacity(64);
    fwd.push_str("for=");
    fwd.push_str(&peer.for_);
    fwd.push_str(";proto=http");
    // Only a host that cannot break out of its quotes (RFC 7239 §4).
    let plain = |c: char| c.is_ascii_alphanumeric() || ".-:[]_".contains(c);
    if let Some(host) = host.as_deref().filter(|h| h.chars().all(plain)) {
        fwd.push_str(";host=\"");
        fwd.push_str(host);
        fwd.push('"');
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(fwd)) {
        h.append(hyper::header::FORWARDED, v);
    }
    // A trusted proxy in front (TLS ended there) says which scheme it was.
    if !(peer.trusted && h.contains_key(&XFP)) {
        h.insert(&XFP, HeaderValue::from_static("http"));
    }
    for e in edits {
        let Ok(name) = HeaderName::from_bytes(e.name.as_bytes()) else {
            continue;
        };
        match &e.value {
            Some(v) => {
                if let Ok(v) = HeaderValue::from_str(v) {
                    h.insert(name, v);
                }
            }
            None => {
                h.remove(name);
            }
        }
    }
    // Origin form (`/path?query`): the connection is to the member.
    let target = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| hyper::http::uri::PathAndQuery::from_static("/"));
    parts.uri = hyper::Uri::from(target);
    parts.version = hyper::Version::HTTP_11;
    let body_timeout = Duration::from_millis(http.config.body_timeout_ms);
    // A request without a body (most GETs) needs no timer. With a body, a
    // failed exchange may be the client's doing (it stopped sending or went
    // away): only a failed connect counts against the member then.
    let bodyless = body.is_end_stream();
    let up_body = if bodyless {
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed()
    } else {
        TimeoutBody::new(body, body_timeout).boxed()
    };
    let up = Request::from_parts(parts, up_body);
    let timeout = Duration::from_millis(http.config.upstream_timeout_ms);
    let exchange = super::upstream::exchange(picked.member.addr, up);
    let resp = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            if bodyless || matches!(e, super::upstream::UpError::Connect(_)) {
                picked.failed();
            }
            http.stats.upstream_errors.fetch_add(1, Relaxed);
            tracing::debug!(pool = %pool_name, member = %picked.member.addr, error = %e, "upstream exchange failed");
            return local(
                StatusCode::BAD_GATEWAY,
                format!("upstream {} failed\n", picked.member.addr),
            );
        }
        Err(_) => {
            if bodyless {
                picked.failed();
            }
            http.stats.upstream_timeouts.fetch_add(1, Relaxed);
            return local(
                StatusCode::GATEWAY_TIMEOUT,
                format!("upstream {} timed out\n", picked.member.addr),
            );
        }
    };
    if resp.status().is_server_error() {
        picked.failed();
    } else {
        picked.ok();
    }
    let class = (resp.status().as_u16() / 100).clamp(1, 5) as usize - 1;
    http.stats.relayed[class].fetch_add(1, Relaxed);
    pool.responses[class].fetch_add(1, Relaxed);
    let (mut rp, rb) = resp.into_parts();
    strip_hop_by_hop(&mut rp.headers);
    Response::from_parts(rp, TimeoutBody::new(rb, body_timeout).boxed())
}

/// A body whose next frame must come within `limit` (each frame resets
/// it): a client or upstream that stops sending cannot hold the exchange.
/// The timer is made the first time the body has to wait: a small body
/// that is all there costs no allocation and no timer.
struct TimeoutBody<B> {
    inner: B,
    limit: Duration,
    deadline: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> TimeoutBody<B> {
    fn new(inner: B, limit: Duration) -> Self {
        TimeoutBody {
            inner,
            limit,
            deadline: tokio::time::Instant::now() + limit,
            sleep: None,
        }
    }
}

/// A body that stopped for longer than `body_timeout_ms`.
#[derive(Debug)]
pub struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the body stopped for longer than body_timeout_ms")
    }
}

impl std::error::Error for BodyTimedOut {}

impl<B> hyper::body::Body for TimeoutBody<B>
where
    B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = super::BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, super::BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(f) => {
                this.deadline = tokio::time::Instant::now() + this.limit;
                Poll::Ready(f.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
