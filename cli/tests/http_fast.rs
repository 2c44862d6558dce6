//! The HTTP/1.1 fast path of `serve --http-listen` on the wire: pipelined
//! requests answered in order, every way an upstream ends a body (length,
//! chunked, its close), interim 1xx answers dropped, `HEAD`, and a kept-alive
//! connection handed to hyper when a request with a body comes. The
//! backend is a raw socket server (so each framing is exactly as written)
//! or a hyper one.

mod common;
mod http_support;

use http_support::{backend, setup, start};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the raw backend answers per path; `/close` ends the connection
/// after its answer (a body delimited by the close).
fn answer(path: &str) -> &'static [u8] {
    match path {
        "/len" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Kind: len\r\n\r\nok",
        "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        "/early" => b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nlater",
        "/close" => b"HTTP/1.0 200 OK\r\nX-Kind: close\r\n\r\nuntil the close",
        "/connlen" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: content-length\r\n\r\nhello",
        "/cut" => b"HTTP/1.1 200 OK\r\n\r\npartial",
        "/nostatus" => b"HTTP/1.1 000 X\r\nContent-Length: 0\r\n\r\n",
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    }
}

/// A kept-alive raw backend: reads request heads (no bodies), answers each
/// with [`answer`]; the number of connections it accepted.
fn raw_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = conns.clone();
    std::thread::spawn(move || {
        for c in l.incoming().take(64) {
            let Ok(mut c) = c else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let path = head.split(' ').nth(1).unwrap_or("");
                        if c.write_all(answer(path)).is_err() || path == "/close" {
                            return;
                        }
                        if path == "/cut" {
                            // Stalls mid-body (no length: the close would end it).
                            std::thread::sleep(Duration::from_secs(3));
                            return;
                        }
                    }
                    match c.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, conns)
}

/// One response off `b` (after `at`): status, lowercase head text, body,
/// and where it ended. A `HEAD` answer has no body whatever it says.
fn next_response(b: &[u8], at: usize, head_request: bool) -> (u16, String, Vec<u8>, usize) {
    let rest = &b[at..];
    let end = rest
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(rest)));
    let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
    let status = head[9..12].parse().expect("status");
    let mut i = end + 4;
    let field = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
    };
    let mut body = Vec::new();
    if head_request {
    } else if let Some(len) = field("content-length") {
        let len: usize = len.parse().expect("length");
        body.extend_from_slice(&rest[i..i + len]);
        i += len;
    } else if field("transfer-encoding").as_deref() == Some("chunked") {
        // As sent: the whole chunked body, to the end of its trailers
        // (the last chunk's CR starts the search for the empty line).
        let find = |h: &[u8], n: &[u8]| h.windows(n.len()).position(|w| w == n);
        let last = find(&rest[i..], b"\r\n0\r\n").expect("a last chunk") + 3;
        let tail = last + find(&rest[i + last..], b"\r\n\r\n").expect("the end") + 4;
        body.extend_from_slice(&rest[i..i + tail]);
        i += tail;
    } else {
        body.extend_from_slice(&rest[i..]);
        i = rest.len();
    }
    (status, head, body, at + i)
}

/// Sends `bytes` on a new connection and reads until the server closes it.
fn exchange(http: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut c = connect(http);
    c.write_all(bytes).expect("send");
    let mut all = Vec::new();
    let _ = c.read_to_end(&mut all);
    all
}

fn connect(http: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(http).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    c
}

#[test]
fn pipelined_requests_and_every_body_framing_pass_through() {
    let (raw, conns) = raw_backend();
    let api = backend("api");
    let policy = "rule e when {http.path} == \"/echo\" { then route api }\n\
                  rule n when {http.path} == \"/nocontent\" { then respond 204 \"gone\" }\n\
                  rule a when {http.path} == \"/admin\" { then respond 403 \"no\" }\n\
                  then route raw\n";
    let dir = setup(
        "fast",
        policy,
        &[
            ("raw", vec![raw], "[http.pools.raw.eject]\nfailures = 0"),
            ("api", vec![api.addr], ""),
        ],
        "body_timeout_ms = 300",
    );
    let s = start(&dir);
    let http = s.http.expect("http");

    // Four requests in one write, answered in order on one connection.
    let all = exchange(
        http,
        b"GET /len HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /len HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /early HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let (st, head, body, at) = next_response(&all, 0, false);
    assert_eq!((st, body.as_slice()), (200, &b"ok"[..]), "{head}");
    assert!(head.contains("x-kind: len"), "{head}");
    // The raw backend sends no Date: the proxy adds one (RFC 9110 §6.6.1).
    assert!(head.contains("\r\ndate: "), "{head}");
    let (st, head, body, at) = next_response(&all, at, false);
    assert_eq!(st, 200, "{head}");
    assert!(head.contains("x-kind: chunked"), "{head}");
    assert_eq!(
        String::from_utf8_lossy(&body),
        "5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        "the chunked body as the upstream sent it"
    );
    let (st, head, body, at) = next_response(&all, at, true);
    assert_eq!((st, body.len()), (200, 0), "{head}");
    assert!(head.contains("content-length: 2"), "{head}");
    let (st, head, body, at) = next_response(&all, at, false);
    assert_eq!(
        (st, body.as_slice()),
        (200, &b"later"[..]),
        "the 103 is dropped: {head}"
    );
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(
        at,
        all.len(),
        "nothing after the last answer: {:?}",
        String::from_utf8_lossy(&all)
    );

    // A body that ends with the upstream's close: the client's connection
    // ends after it too (that is its framing), whatever the client asked.
    let all = exchange(http, b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n");
    let (st, head, body, _) = next_response(&all, 0, false);
    assert_eq!(
        (st, body.as_slice()),
        (200, &b"until the close"[..]),
        "{head}"
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");

    // A request with a body after a fast-path one on the same connection:
    // the connection goes to hyper, and both are answered.
    let all = exchange(http, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    let (st, head, _, at) = next_response(&all, 0, false);
    assert_eq!(st, 200, "{head}");
    let (st, head, body, _) = next_response(&all, at, false);
    assert_eq!((st, body.as_slice()), (200, &b"hello"[..]), "{head}");

    // Upstream connections were kept and reused, not one per request: the
    // raw backend's answer to HEAD carries a body (so the proxy drops that
    // connection) and /close closes one; five exchanges, at most three.
    assert!(
        conns.load(Ordering::SeqCst) <= 3,
        "{} upstream connections",
        conns.load(Ordering::SeqCst)
    );

    // `Connection: content-length` from the upstream does not strip the
    // length its body is framed by; a local 204 has no body (its text would
    // be read as the next answer).
    let all = exchange(
        http,
        b"GET /connlen HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /len HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let (st, head, body, at) = next_response(&all, 0, false);
    assert_eq!((st, body.as_slice()), (200, &b"hello"[..]), "{head}");
    assert!(head.contains("content-length: 5"), "{head}");
    let (st, head, body, at) = next_response(&all, at, true);
    assert_eq!((st, body.len()), (204, 0), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    let (st, head, body, at) = next_response(&all, at, false);
    assert_eq!((st, body.as_slice()), (200, &b"ok"[..]), "{head}");
    assert_eq!(at, all.len(), "{:?}", String::from_utf8_lossy(&all));

    // A target with a fragment goes to hyper, whose URI the policy reads
    // without it: `/admin#x` is `/admin` to the rule, not a way past it.
    let all = exchange(
        http,
        b"GET /admin#x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let (st, head, _, _) = next_response(&all, 0, false);
    assert_eq!(st, 403, "{head}");

    // A status line with no real status is a bad answer: 502.
    let all = exchange(
        http,
        b"GET /nostatus HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let (st, head, _, _) = next_response(&all, 0, false);
    assert_eq!(st, 502, "{head}");

    // A body delimited by the close that stalls: after body_timeout_ms the
    // client's connection is reset, not closed (a clean close would make
    // the part that came look complete).
    let mut c = connect(http);
    c.write_all(b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        match c.read(&mut chunk) {
            Ok(0) => break None,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) => break Some(e.kind()),
        }
    };
    assert!(
        String::from_utf8_lossy(&got).ends_with("partial"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(
        end,
        Some(std::io::ErrorKind::ConnectionReset),
        "reset, not closed"
    );
}
