//! The HTTP strategy router end to end: `dnspolicy serve --http-listen`
//! in front of hyper backends on loopback (started here), with the example
//! policy `examples/http/routes.dsl`; requests are raw HTTP/1.1 over
//! sockets (so malformed ones can be sent) and h2c through hyper's client.

mod common;
mod http_support;

use http_support::{backend, get_with, raw, read_response, setup, start, Backend};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn example_policy() -> String {
    std::fs::read_to_string(common::repo_root().join("examples/http/routes.dsl")).expect("example")
}

struct Four {
    api: Backend,
    canary: Backend,
    premium: Backend,
    sh: Backend,
}

fn four() -> Four {
    Four {
        api: backend("api"),
        canary: backend("api-canary"),
        premium: backend("api-premium"),
        sh: backend("api-sh"),
    }
}

fn pools(b: &Four) -> Vec<(&'static str, Vec<SocketAddr>, &'static str)> {
    vec![
        ("api", vec![b.api.addr], ""),
        ("api-canary", vec![b.canary.addr], ""),
        ("api-premium", vec![b.premium.addr], ""),
        ("api-sh", vec![b.sh.addr], ""),
    ]
}

#[test]
fn the_three_routes_in_priority_order() {
    let b = four();
    let dir = setup("table", &example_policy(), &pools(&b), "");
    let s = start(&dir);
    let http = s.http.expect("an http= address");
    let who = |path: &str, headers: &[&str]| {
        let r = get_with(http, path, headers);
        assert_eq!(r.status, 200, "{path} {headers:?}: {}", r.text());
        r.header("x-backend").unwrap_or("").to_string()
    };
    // Each row of the table, then the rows competing: the higher priority wins.
    assert_eq!(who("/api/items", &["X-Canary: true"]), "api-canary");
    assert_eq!(who("/api/items", &["X-User-Tier: premium"]), "api-premium");
    assert_eq!(who("/api/items?region=cn-sh", &[]), "api-sh");
    assert_eq!(who("/api/items", &[]), "api");
    assert_eq!(
        who(
            "/api/items?region=cn-sh",
            &["X-User-Tier: premium", "X-Canary: true"]
        ),
        "api-canary"
    );
    assert_eq!(
        who("/api/items?region=cn-sh", &["x-user-tier: premium"]),
        "api-premium"
    );
    assert_eq!(
        who(
            "/api/items?region=cn-bj",
            &["X-Canary: false", "X-User-Tier: gold"]
        ),
        "api"
    );

    // What reaches the backend: the policy's header edits, the proxy's
    // X-Forwarded-For and Forwarded, no hop-by-hop field (nor the one
    // `Connection` names); and nothing hop-by-hop comes back.
    let r = get_with(
        http,
        "/x?region=cn-sh",
        &["X-Debug: 1", "Connection: close, x-secret", "X-Secret: s"],
    );
    let t = r.text();
    assert!(t.contains("route=[cn-sh]"), "{t}");
    assert!(t.contains("xff=[127.0.0.1]"), "{t}");
    assert!(t.contains("secret=[]"), "{t}");
    assert!(
        t.contains("forwarded=[for=127.0.0.1;proto=http;host=\"shop.example\"]"),
        "{t}"
    );
    assert!(r.header("keep-alive").is_none(), "{:?}", r.headers);
    let t = get_with(http, "/x", &["X-Debug: 1"]).text();
    assert!(
        t.starts_with("api GET /x ") && t.contains("debug=[]"),
        "{t}"
    );

    // Answered by the proxy itself.
    let r = get_with(http, "/internal/admin", &[]);
    assert_eq!((r.status, r.text().as_str()), (403, "forbidden\n"));
    let r = get_with(http, "/v1/items", &[]);
    assert_eq!((r.status, r.header("location")), (308, Some("/v2/")));

    // An untrusted peer cannot say who the client is; the chain is shown.
    let t = get_with(http, "/x", &["X-Forwarded-For: 10.9.9.9"]).text();
    assert!(t.contains("xff=[10.9.9.9, 127.0.0.1]"), "{t}");
    let (code, plugins) = common::get(s.admin.expect("admin"), "/plugins");
    assert_eq!(code, 200);
    assert!(plugins.contains("\"front\":\"http\""), "{plugins}");
    let (_, metrics) = common::get(s.admin.expect("admin"), "/metrics");
    assert!(
        metrics.contains(&format!(
            "dnspolicy_http_pool_requests_total{{pool=\"api-canary\",member=\"{}\"}} 2",
            b.canary.addr
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("dnspolicy_http_local_responses_total{reason=\"redirect\"} 1"),
        "{metrics}"
    );
}

#[test]
fn the_client_address_and_host_cannot_be_forged() {
    let b = backend("api");
    let policy = "rule xff when {client.ip} == 198.51.100.7 { then respond 200 \"xff\" }\nrule other when {http.path} == \"/peer\" { then respond 200 \"peer\" }\nthen route api\n";
    let dir = setup("forge", policy, &[("api", vec![b.addr], "")], "");
    // Loopback is the trusted proxy here.
    let config = dir.join("dnspolicy.toml");
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("10.0.0.0/8", "127.0.0.0/8");
    std::fs::write(&config, text).expect("config");
    let s = start(&dir);
    let http = s.http.expect("http");
    let body = |xff: &str| get_with(http, "/peer", &[&format!("X-Forwarded-For: {xff}")]).text();
    assert_eq!(
        body("198.51.100.7"),
        "xff",
        "a trusted proxy names the client"
    );
    assert_eq!(
        body("198.51.100.7, 127.0.0.5"),
        "xff",
        "trusted hops are skipped"
    );
    // An entry that is not an address ends the walk: what precedes it
    // could have been written by the client.
    assert_eq!(body("198.51.100.7, 203.0.113.9:51234"), "peer");
    // The host: one, and the one the policy reads.
    let r = raw(
        http,
        b"GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400, "{r:?}");
    let r = raw(
        http,
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400, "{r:?}");
    // A host that would break out of Forwarded's quotes is left out of it.
    let t = raw(
        http,
        b"GET /x HTTP/1.1\r\nHost: x\", for=6.6.6.6;host=\"y\r\nConnection: close\r\n\r\n",
    )
    .text();
    assert!(t.contains("forwarded=[for=127.0.0.1;proto=http]"), "{t}");
}

#[test]
fn h2c_is_routed_like_http1() {
    let b = four();
    let dir = setup("h2c", &example_policy(), &pools(&b), "");
    let s = start(&dir);
    let http = s.http.expect("http");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
        for (hdr, want) in [("x-user-tier", "api-premium"), ("x-canary", "api-canary")] {
            let value = if hdr == "x-canary" { "true" } else { "premium" };
            let req = hyper::Request::get(format!("http://{http}/items"))
                .header(hdr, value)
                .body(http_body_util::Empty::new())
                .expect("request");
            let resp = client.request(req).await.expect("h2c exchange");
            assert_eq!(resp.version(), hyper::Version::HTTP_2);
            assert_eq!(
                resp.headers()
                    .get("x-backend")
                    .and_then(|v| v.to_str().ok()),
                Some(want)
            );
        }
    });
}

#[test]
fn health_checks_take_a_member_out_and_bring_it_back() {
    let (a, c) = (backend("a"), backend("c"));
    let health = "[http.pools.web.health]\npath = \"/health\"\ninterval_ms = 100\ntimeout_ms = 500\nrise = 2\nfall = 2";
    let dir = setup(
        "health",
        "then route web\n",
        &[("web", vec![a.addr, c.addr], health)],
        "",
    );
    let s = start(&dir);
    let http = s.http.expect("http");
    let spread = |n: usize| {
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..n {
            let r = get_with(http, "/", &[]);
            assert_eq!(r.status, 200, "{}", r.text());
            *seen
                .entry(r.header("x-backend").unwrap_or("").to_string())
                .or_insert(0) += 1;
        }
        seen
    };
    assert_eq!(spread(10).len(), 2, "round robin over both");
    c.healthy.store(false, Ordering::Relaxed);
    let t0 = Instant::now();
    while spread(4).contains_key("c") {
        assert!(t0.elapsed() < Duration::from_secs(5), "c was not taken out");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(spread(10).keys().collect::<Vec<_>>(), ["a"]);
    c.healthy.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    while !spread(4).contains_key("c") {
        assert!(t0.elapsed() < Duration::from_secs(5), "c did not come back");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every member failing its check: 503, not a guess.
    a.healthy.store(false, Ordering::Relaxed);
    c.healthy.store(false, Ordering::Relaxed);
    let t0 = Instant::now();
    while get_with(http, "/", &[]).status != 503 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no 503 with every member down"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_dead_member_is_ejected_and_a_dead_pool_is_502_then_503() {
    let live = backend("live");
    let dead: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .expect("addr");
    let eject = "[http.pools.web.eject]\nfailures = 1\nduration_ms = 60000";
    let eject2 = "[http.pools.gone.eject]\nfailures = 1\nduration_ms = 60000";
    let policy = "rule g when {http.path} == \"/gone\" { then route gone }\nthen route web\n";
    let dir = setup(
        "eject",
        policy,
        &[
            ("web", vec![dead, live.addr], eject),
            ("gone", vec![dead], eject2),
        ],
        "",
    );
    let s = start(&dir);
    let http = s.http.expect("http");
    let codes: Vec<u16> = (0..6).map(|_| get_with(http, "/", &[]).status).collect();
    // At most the first try meets the dead member (502); then it is out.
    assert!(codes[1..].iter().all(|&c| c == 200), "{codes:?}");
    assert!(
        codes.iter().filter(|&&c| c == 502).count() <= 1,
        "{codes:?}"
    );
    assert_eq!(get_with(http, "/gone", &[]).status, 502);
    assert_eq!(get_with(http, "/gone", &[]).status, 503);
    let (_, metrics) = common::get(s.admin.expect("admin"), "/metrics");
    assert!(
        metrics.contains(&format!(
            "dnspolicy_http_pool_member_up{{pool=\"gone\",member=\"{dead}\"}} 0"
        )),
        "{metrics}"
    );
}

#[test]
fn a_large_streamed_body_passes_through_unchanged() {
    let b = backend("echo");
    let dir = setup(
        "body",
        "then route echo\n",
        &[("echo", vec![b.addr], "")],
        "",
    );
    let s = start(&dir);
    let http = s.http.expect("http");
    // 24 MiB, sent chunked by one thread while this one reads the echo.
    let body: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut conn = TcpStream::connect(http).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut w = conn.try_clone().expect("clone");
    let sent = body.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n").expect("head");
        for c in sent.chunks(64 * 1024 + 7) {
            write!(w, "{:x}\r\n", c.len()).expect("size");
            w.write_all(c).expect("chunk");
            w.write_all(b"\r\n").expect("crlf");
        }
        w.write_all(b"0\r\n\r\n").expect("end");
    });
    let r = read_response(&mut conn);
    writer.join().expect("writer");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "the echoed body differs");
}

#[test]
fn a_reload_under_a_request_loop_loses_no_request() {
    let (one, two) = (backend("one"), backend("two"));
    let dir = setup(
        "reload",
        "then route one\n",
        &[("one", vec![one.addr], ""), ("two", vec![two.addr], "")],
        "",
    );
    let s = start(&dir);
    let http = s.http.expect("http");
    let admin = s.admin.expect("admin");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let (mut ok, mut bad) = (0u32, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let r = get_with(http, "/", &[]);
                    if r.status == 200 {
                        ok += 1;
                    } else {
                        bad.push((r.status, r.text()));
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                (ok, bad)
            })
        })
        .collect();
    let policy = dir.join("plugins/routes.dsl");
    for i in 0..10 {
        let to = if i % 2 == 0 { "two" } else { "one" };
        std::fs::write(&policy, format!("then route {to}\n")).expect("write");
        let r = raw(
            admin,
            b"POST /reload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let t0 = Instant::now();
        while get_with(http, "/", &[]).header("x-backend") != Some(to) {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "reload {i} did not route to {to}"
            );
        }
        // The loop keeps going across every swap, however slow the machine.
        let at = done.load(Ordering::Relaxed);
        while done.load(Ordering::Relaxed) < at + 10 {
            assert!(t0.elapsed() < Duration::from_secs(10), "the loop stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for l in loops {
        let (ok, bad) = l.join().expect("loop");
        assert!(bad.is_empty(), "lost requests: {bad:?}");
        total += ok;
    }
    assert!(total >= 100, "the loop ran ({total} requests)");
    assert!(one.served.load(Ordering::Relaxed) > 0 && two.served.load(Ordering::Relaxed) > 0);

    // A version that does not check is refused; the last good one serves,
    // and says so.
    let serving = get_with(http, "/", &[])
        .header("x-backend")
        .unwrap_or("")
        .to_string();
    std::fs::write(&policy, "then route {query.name}\n").expect("write");
    let r = raw(
        admin,
        b"POST /reload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(
        r.text().contains("routes.dsl"),
        "the reload names the file: {r:?}"
    );
    for _ in 0..5 {
        assert_eq!(
            get_with(http, "/", &[]).header("x-backend"),
            Some(serving.as_str())
        );
    }
    let (_, plugins) = common::get(admin, "/plugins");
    assert!(plugins.contains("\"state\":\"stale\""), "{plugins}");
}

#[test]
fn malformed_and_abusive_requests_are_refused() {
    let b = backend("api");
    let extra = "header_timeout_ms = 500\nmax_headers = 20\nmax_header_bytes = 4096";
    let dir = setup(
        "abuse",
        "then route api\n",
        &[("api", vec![b.addr], "")],
        extra,
    );
    let s = start(&dir);
    let http = s.http.expect("http");
    let before = b.served.load(Ordering::Relaxed);
    // Request smuggling. Two framings: refused (400, closed).
    let r = raw(http, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(
        (r.status, r.header("connection")),
        (400, Some("close")),
        "CL + TE: {r:?}"
    );
    // The same behind a good request on a kept-alive connection: the good
    // one is answered, the one with two framings refused (400, closed), so
    // the request hidden behind its chunked body is never read, let alone
    // sent upstream.
    let mut c = TcpStream::connect(http).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nPOST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    // Both answers, to the close (they may come in one segment).
    let mut all = Vec::new();
    let _ = std::io::Read::read_to_end(&mut c, &mut all);
    let all = String::from_utf8_lossy(&all);
    let (ok, refused) = all
        .split_once("HTTP/1.1 400")
        .expect("a 400 after the first answer");
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.contains("api GET /ok "),
        "{all}"
    );
    assert!(
        refused.contains("connection: close")
            && refused.contains("both Content-Length and Transfer-Encoding"),
        "{all}"
    );
    assert!(
        !all.contains("/smuggled") && !all.contains("/first"),
        "{all}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        b.served.load(Ordering::Relaxed),
        before + 1,
        "/first and /smuggled never reached the backend"
    );
    let before = before + 1;
    // Two lengths that differ: refused.
    let r = raw(
        http,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
    assert_eq!(r.status, 400, "two lengths: {r:?}");
    // Bytes no header may hold.
    let r = raw(http, b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n");
    assert_eq!(r.status, 400, "a control byte: {r:?}");
    let r = raw(http, b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: a\r\n\r\n");
    assert_eq!(r.status, 400, "a space in a name: {r:?}");
    // Too many headers, too large a head.
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..40 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let r = raw(http, many.as_bytes());
    assert_eq!(r.status, 431, "40 headers: {r:?}");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let r = raw(http, big.as_bytes());
    assert!(matches!(r.status, 431 | 400), "a 20 kB header: {r:?}");
    assert_eq!(
        b.served.load(Ordering::Relaxed),
        before,
        "nothing refused reached the backend"
    );
    // A client that never finishes its headers, and one that sits idle,
    // are cut after header_timeout_ms.
    for partial in [&b""[..], b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow:"] {
        let mut c = TcpStream::connect(http).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c.write_all(partial).expect("send");
        let t0 = Instant::now();
        let r = read_response(&mut c);
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "{:?} held {:?}",
            String::from_utf8_lossy(partial),
            t0.elapsed()
        );
        assert!(r.status == 0 || r.status == 408, "{r:?}");
    }
    // A kept-alive connection left idle after an answer is closed too.
    let mut c = TcpStream::connect(http).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    c.write_all(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut c).status, 200);
    let t0 = Instant::now();
    assert_eq!(read_response(&mut c).status, 0, "closed, not answered");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "idle connection held {:?}",
        t0.elapsed()
    );
    // A well-formed request still works.
    assert_eq!(get_with(http, "/", &[]).status, 200);
}

#[test]
fn an_upstream_response_with_bad_headers_is_a_502() {
    // A backend that answers with a control byte in a header value.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let bad = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for c in l.incoming().take(4) {
            let Ok(mut c) = c else { continue };
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut c, &mut buf);
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nX-Evil: a\x00b\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let dir = setup(
        "badup",
        "then route bad\n",
        &[("bad", vec![bad], "[http.pools.bad.eject]\nfailures = 0")],
        "",
    );
    let s = start(&dir);
    let r = get_with(s.http.expect("http"), "/", &[]);
    assert_eq!(r.status, 502, "{r:?}");
}

#[test]
fn an_upstream_that_closes_idle_connections_costs_no_request() {
    // Two backends that answer once per connection: one with keep-alive,
    // then closing the connection 50 ms later without a word (as a
    // backend's idle timeout does), one with `Connection: close`, closing
    // at once. The proxy must notice each closed connection and use a new
    // one, never answer 502. Each counts the connections it accepted.
    let quiet = closing_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nup\n", 50);
    let close = closing_backend(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nup\n",
        0,
    );
    let policy = "rule c when {http.path} == \"/close\" { then route close }\nthen route quiet\n";
    let dir = setup(
        "idleclose",
        policy,
        &[("quiet", vec![quiet.0], ""), ("close", vec![close.0], "")],
        "",
    );
    let s = start(&dir);
    let http = s.http.expect("http");
    for i in 0..5 {
        for (path, pause) in [("/", 150), ("/close", 0)] {
            let r = get_with(http, path, &[]);
            assert_eq!(
                (r.status, r.text()),
                (200, "up\n".to_string()),
                "{path} request {i}: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(pause));
        }
    }
    for (name, b) in [("quiet", &quiet), ("close", &close)] {
        assert_eq!(
            b.1.load(Ordering::SeqCst),
            5,
            "{name}: one connection per request, no closed one reused"
        );
    }
}

/// A raw backend answering `response` once per connection, closing it
/// `linger_ms` later; its address and the connections it accepted.
fn closing_backend(
    response: &'static [u8],
    linger_ms: u64,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for c in l.incoming().take(16) {
            let Ok(mut c) = c else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = std::io::Read::read(&mut c, &mut buf);
                let _ = c.write_all(response);
                std::thread::sleep(Duration::from_millis(linger_ms));
                let _ = c.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (addr, accepted)
}

#[test]
fn stalled_bodies_are_cut_after_the_body_timeout() {
    use std::io::Read;
    use std::sync::mpsc;
    // A backend that answers every POST's head at once, then reads the
    // body until the connection ends and reports what it got and when;
    // a GET gets 10 of 100 promised bytes, then nothing for 5 s.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let (seen_tx, seen) = mpsc::channel::<(usize, Duration)>();
    std::thread::spawn(move || {
        for c in l.incoming().take(4) {
            let Ok(mut c) = c else { continue };
            let seen_tx = seen_tx.clone();
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let mut buf = [0u8; 4096];
                let n = c.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                if head.starts_with("GET") {
                    let _ =
                        c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
                    std::thread::sleep(Duration::from_secs(5));
                    return;
                }
                let mut got = head.split("\r\n\r\n").nth(1).map_or(0, str::len);
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => got += k,
                    }
                }
                let _ = seen_tx.send((got, t0.elapsed()));
            });
        }
    });
    let dir = setup(
        "bodystall",
        "then route slow\n",
        &[("slow", vec![addr], "[http.pools.slow.eject]\nfailures = 0")],
        "body_timeout_ms = 300",
    );
    let s = start(&dir);
    let http = s.http.expect("http");

    // The upstream stops mid-body: the client's connection ends soon after
    // the timeout, with the part that came (never a complete-looking body).
    let mut c = TcpStream::connect(http).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(4)))
        .expect("timeout");
    let t0 = Instant::now();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the connection was held past the body timeout: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("0123456789"), "only what came: {text}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    // The client stops mid-body: the upstream exchange is aborted (the
    // backend sees its connection end, without the missing bytes).
    let mut c = TcpStream::connect(http).expect("connect");
    c.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .expect("send");
    let (bytes, after) = seen
        .recv_timeout(Duration::from_secs(4))
        .expect("the upstream connection ended");
    assert!(bytes < 100, "{bytes} body bytes reached the backend");
    assert!(after < Duration::from_secs(3), "{after:?}");
    drop(c);
}
