//! HTTP helpers of `tests/http.rs`: hyper backends on loopback, raw
//! HTTP/1.1 exchanges over a socket (so malformed requests can be sent),
//! and a `serve` with an `[http]` config.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{serve, temp, Served};
use std::path::Path;

/// A hyper server on a loopback port: answers `NAME METHOD PATH` plus the
/// headers the proxy adds or edits, echoes `/echo` bodies as they stream,
/// and fails `/health` while `healthy` is false.
pub struct Backend {
    /// Its address.
    pub addr: SocketAddr,
    /// What `/health` answers.
    pub healthy: Arc<AtomicBool>,
    /// Requests served (health checks excluded).
    pub served: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a backend called `name` on a free port (or `port`).
pub fn backend(name: &'static str) -> Backend {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let healthy = Arc::new(AtomicBool::new(true));
    let served = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    let (h, s) = (healthy.clone(), served.clone());
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let (stream, _) = tokio::select! {
                    _ = &mut rx => return,
                    r = l.accept() => match r { Ok(x) => x, Err(_) => continue },
                };
                let (h, s) = (h.clone(), s.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (h, s) = (h.clone(), s.clone());
                        async move { Ok::<_, std::convert::Infallible>(answer(name, req, &h, &s)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    Backend {
        addr,
        healthy,
        served,
        stop: Some(tx),
        thread: Some(thread),
    }
}

type Out = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

fn answer(
    name: &str,
    req: Request<hyper::body::Incoming>,
    healthy: &AtomicBool,
    served: &AtomicU64,
) -> Response<Out> {
    let text = |t: String| Full::new(Bytes::from(t)).map_err(|n| match n {}).boxed();
    if req.uri().path() == "/health" {
        let ok = healthy.load(Ordering::Relaxed);
        let mut r = Response::new(text(String::new()));
        *r.status_mut() = if ok {
            hyper::StatusCode::OK
        } else {
            hyper::StatusCode::SERVICE_UNAVAILABLE
        };
        return r;
    }
    served.fetch_add(1, Ordering::Relaxed);
    if req.uri().path() == "/echo" {
        return Response::new(req.into_body().boxed());
    }
    let h = |n: &str| {
        req.headers()
            .get_all(n)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
    };
    let body = format!(
        "{name} {} {} xff=[{}] route=[{}] debug=[{}] secret=[{}] forwarded=[{}]\n",
        req.method(),
        req.uri(),
        h("x-forwarded-for"),
        h("x-route"),
        h("x-debug"),
        h("x-secret"),
        h("forwarded"),
    );
    let mut r = Response::new(text(body));
    r.headers_mut()
        .insert("x-backend", name.parse().expect("value"));
    // A hop-by-hop header the proxy must not relay.
    r.headers_mut()
        .insert("keep-alive", "timeout=5".parse().expect("value"));
    r
}

/// A raw HTTP/1.1 response.
#[derive(Debug)]
pub struct Raw {
    /// The status code (0: none came).
    pub status: u16,
    /// Header lines, lowercase names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Raw {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` (bytes as they are) on a new connection and reads the
/// response until the server closes or `Content-Length` is reached.
pub fn raw(addr: SocketAddr, request: &[u8]) -> Raw {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("send");
    read_response(&mut s)
}

/// Reads one response from `s`.
pub fn read_response(s: &mut TcpStream) -> Raw {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => {
                return Raw {
                    status: 0,
                    headers: Vec::new(),
                    body: buf,
                };
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let len: Option<usize> = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok());
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    loop {
        if let Some(l) = len {
            if body.len() >= l {
                body.truncate(l);
                break;
            }
        }
        if chunked && body.ends_with(b"0\r\n\r\n") {
            break;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    if chunked {
        body = dechunk(&body);
    }
    Raw {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + size]);
        b = &b[i + 2 + size + 2..];
    }
    out
}

/// GET `path` with extra header lines (`"X-Canary: true"`).
pub fn get_with(addr: SocketAddr, path: &str, headers: &[&str]) -> Raw {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes())
}

/// A config with `routes.dsl` in its plugin directory and one pool per
/// `(name, members, extra TOML)`.
pub fn setup(
    tag: &str,
    policy: &str,
    pools: &[(&str, Vec<SocketAddr>, &str)],
    http_extra: &str,
) -> std::path::PathBuf {
    let dir = temp("http", tag);
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("dir");
    std::fs::write(plugins.join("routes.dsl"), policy).expect("policy");
    let mut toml = format!(
        "plugin_dir = \"{}\"\nhot_reload = true\n\n[http]\ntrusted_proxies = [\"10.0.0.0/8\"]\n{http_extra}\n",
        plugins.display()
    );
    for (name, members, extra) in pools {
        let m: Vec<String> = members.iter().map(|a| format!("\"{a}\"")).collect();
        toml.push_str(&format!(
            "\n[http.pools.{name}]\nmembers = [{}]\n{extra}\n",
            m.join(", ")
        ));
    }
    std::fs::write(dir.join("dnspolicy.toml"), toml).expect("config");
    dir
}

/// `serve` with `dir`'s config, an admin and an HTTP listener on free ports.
pub fn start(dir: &Path) -> Served {
    let config = dir.join("dnspolicy.toml");
    serve(
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--admin",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ],
        Some(&dir.join("serve.log")),
    )
}
