//! Upstream exchanges on the proxy thread's own kept-alive connections,
//! driven inside the request's task.
//!
//! hyper's pooled client runs every upstream connection as a task of its
//! own: each request crosses to it through a channel and its response
//! comes back through another, with a wakeup each way and a pool behind a
//! lock. Here a connection is a hyper `http1` handshake whose connection
//! future is polled by whoever holds it: the request's task while it sends
//! and reads the head, then the response body as it streams (nginx's
//! shape: one event loop per thread, a request and its upstream exchange
//! on it). An idle connection rests in a per-thread list, polled by no one;
//! taking one polls it once, which notices an upstream that closed it.

use super::Body;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

type Conn = http1::Connection<TokioIo<tokio::net::TcpStream>, Body>;

/// A kept-alive upstream connection: its sending half and the connection
/// future, which has no task of its own.
struct Up {
    tx: http1::SendRequest<Body>,
    conn: Conn,
    /// When it was last put back.
    since: Instant,
}

/// Idle connections kept per member at most, and for how long.
const MAX_IDLE: usize = 256;
const IDLE_FOR: Duration = Duration::from_secs(60);

thread_local! {
    /// This proxy thread's idle connections by member (its runtime's I/O
    /// driver owns their sockets: they never leave the thread).
    static IDLE: RefCell<HashMap<SocketAddr, Vec<Up>>> = RefCell::new(HashMap::new());
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum UpError {
    /// No connection could be made (the member is at fault).
    Connect(std::io::Error),
    /// The exchange on a connection failed.
    Exchange(hyper::Error),
}

impl std::fmt::Display for UpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpError::Connect(e) => write!(f, "connect: {e}"),
            UpError::Exchange(e) => write!(f, "exchange: {e}"),
        }
    }
}

/// Sends `req` to `addr` and waits for the response head: on an idle
/// connection that is still open, else on a new one. A request that never
/// left (the idle connection had closed) is sent again on the next.
pub async fn exchange(
    addr: SocketAddr,
    mut req: Request<Body>,
) -> Result<Response<UpBody>, UpError> {
    loop {
        let (mut up, fresh) = match take(addr) {
            Some(up) => (up, false),
            None => (connect(addr).await?, true),
        };
        let sent = up.tx.try_send_request(req);
        let mut sent = std::pin::pin!(sent);
        let mut ended = false;
        let res = std::future::poll_fn(|cx| {
            // The connection first: it writes the request and reads the
            // answer, which the second poll then finds without a wakeup.
            ended = Pin::new(&mut up.conn).poll(cx).is_ready();
            match sent.as_mut().poll(cx) {
                Poll::Ready(r) => Poll::Ready(Some(r)),
                Poll::Pending if ended => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        match res {
            Some(Ok(resp)) => {
                let (parts, body) = resp.into_parts();
                // A connection that ended (`Connection: close`) has put
                // all it read in the body already, and is not polled again.
                let mut body = UpBody {
                    inner: body,
                    up: (!ended).then_some(up),
                    addr,
                };
                if body.inner.is_end_stream() {
                    body.put_back();
                }
                return Ok(Response::from_parts(parts, body));
            }
            Some(Err(mut e)) => match e.take_message() {
                Some(r) if !fresh => req = r,
                _ => return Err(UpError::Exchange(e.into_error())),
            },
            // The connection ended without an answer (hyper answers the
            // request future first; this is a guard, not a path).
            None => {
                return Err(UpError::Connect(std::io::Error::other(
                    "the upstream connection ended",
                )))
            }
        }
    }
}

/// An idle connection to `addr` that is still open and ready, newest first.
fn take(addr: SocketAddr) -> Option<Up> {
    loop {
        let mut up = IDLE.with(|idle| idle.borrow_mut().get_mut(&addr)?.pop())?;
        // One poll, with no waker to keep: an upstream that closed the
        // connection (or sent something unasked) ends it here.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if Pin::new(&mut up.conn).poll(&mut cx).is_ready() {
            continue;
        }
        let ready = matches!(up.tx.poll_ready(&mut cx), Poll::Ready(Ok(())));
        if ready && up.since.elapsed() < IDLE_FOR {
            return Some(up);
        }
    }
}

/// Puts a connection whose exchange is complete back for the next request.
fn put_back(addr: SocketAddr, mut up: Up) {
    up.since = Instant::now();
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(addr).or_default();
        // The oldest go first: past their time, or past the limit.
        let stale = list
            .iter()
            .take_while(|u| u.since.elapsed() >= IDLE_FOR)
            .count();
        list.drain(..stale);
        if list.len() < MAX_IDLE {
            list.push(up);
        }
    });
}

/// Drops this thread's idle connections that the upstream closed or that
/// rested past their time (nobody polls an idle one otherwise, so without
/// this a quiet member's closed sockets would wait for its next request).
pub fn sweep() {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        for list in idle.values_mut() {
            list.retain_mut(|u| {
                u.since.elapsed() < IDLE_FOR && Pin::new(&mut u.conn).poll(&mut cx).is_pending()
            });
        }
        idle.retain(|_, list| !list.is_empty());
    });
}

/// Closes this thread's idle connections (before its runtime goes).
pub fn close_idle() {
    IDLE.with(|idle| idle.borrow_mut().clear());
}

async fn connect(addr: SocketAddr) -> Result<Up, UpError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(UpError::Connect)?;
    let _ = stream.set_nodelay(true);
    let (tx, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(UpError::Exchange)?;
    Ok(Up {
        tx,
        conn,
        since: Instant::now(),
    })
}

/// An upstream response body. Polling it drives its connection, which goes
/// back to the idle list once the body is complete (a body dropped before
/// its end closes the connection: HTTP/1 cannot skip the rest).
pub struct UpBody {
    inner: Incoming,
    up: Option<Up>,
    addr: SocketAddr,
}

impl UpBody {
    fn put_back(&mut self) {
        if let Some(up) = self.up.take() {
            put_back(self.addr, up);
        }
    }
}

impl Drop for UpBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.put_back();
        }
    }
}

impl hyper::body::Body for UpBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(up) = this.up.as_mut() {
            if Pin::new(&mut up.conn).poll(cx).is_ready() {
                // Ended: what it read is in the body's channel already.
                this.up = None;
            }
        }
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => this.put_back(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.put_back(),
            Poll::Ready(Some(Err(_))) => this.up = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
