//! Answer pools on a real server: members leave and rejoin the answers as
//! real TCP, HTTP and DNS listeners on loopback stop and start (0 SERVFAIL
//! meanwhile), each pick answers as promised, and the ECS scope says what
//! the answer depended on.

use dnspolicy_e2e::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP listener accepting and closing connections until aborted.
async fn tcp_listener(addr: SocketAddr) -> tokio::task::JoinHandle<()> {
    let l = bind_retry(addr).await;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    })
}

/// Binds `addr`, retrying briefly: a port just closed may linger.
async fn bind_retry(addr: SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..50 {
        let s = tokio::net::TcpSocket::new_v4().expect("socket");
        s.set_reuseaddr(true).expect("reuseaddr");
        if s.bind(addr).is_ok() {
            return s.listen(64).expect("listen");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot bind {addr}");
}

/// Polls `name` A every 100 ms until `done(addresses)`, asserting every
/// answer is NOERROR with at least one address; the time it took.
async fn until(
    dns: SocketAddr,
    name: &str,
    limit: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Duration {
    let t0 = Instant::now();
    loop {
        let r = udp(dns, &query(name, RecordType::A)).await;
        assert_eq!(
            r.metadata.response_code,
            ResponseCode::NoError,
            "every answer is valid"
        );
        let a = answers(&r);
        assert!(!a.is_empty(), "never an empty answer");
        if done(&a) {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "still {a:?} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn has(a: &[String], ip: &str) -> bool {
    a.iter().any(|x| x == ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_config_follows_tcp_health_checks() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gslb/dnspolicy.toml");
    let mut c = dnspolicy_runtime::Config::from_file(&path).expect("examples/gslb/dnspolicy.toml");
    let base = config();
    (c.listen, c.admin, c.workers) = (base.listen, base.admin, 1);
    let ports = [19001, 19002, 19003];
    let mut listeners = Vec::new();
    for p in ports {
        listeners.push(tcp_listener(SocketAddr::from(([127, 0, 0, 1], p))).await);
    }
    let s = start(c).await;
    let all = ["192.0.2.101", "192.0.2.102", "192.0.2.103"];
    until(s.dns, "gslb.example.com.", Duration::from_secs(5), |a| {
        a == all
    })
    .await;
    let r = udp(s.dns, &query("gslb.example.com.", RecordType::A)).await;
    assert!(
        r.answers.iter().all(|rec| rec.ttl <= 30),
        "TTL capped at max_ttl"
    );
    // Member 2 stops: it leaves within fall (2) x interval (1 s), plus a probe's slack.
    listeners.remove(1).abort();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let took = until(s.dns, "gslb.example.com.", Duration::from_secs(5), |a| {
        !has(a, "192.0.2.102")
    })
    .await;
    assert!(took <= Duration::from_millis(3500), "left after {took:?}");
    let a = answers(&udp(s.dns, &query("gslb.example.com.", RecordType::A)).await);
    assert_eq!(a, ["192.0.2.101", "192.0.2.103"]);
    let (_, m) = http_get(s.admin, "/metrics").await;
    assert_eq!(
        metric(
            &m,
            "dnspolicy_pool_member_up{pool=\"web\",member=\"192.0.2.102\"}"
        ),
        0
    );
    assert_eq!(
        metric(
            &m,
            "dnspolicy_pool_member_up{pool=\"web\",member=\"192.0.2.101\"}"
        ),
        1
    );
    // It starts again: back within rise (2) x interval.
    listeners.insert(
        1,
        tcp_listener(SocketAddr::from(([127, 0, 0, 1], 19002))).await,
    );
    let took = until(s.dns, "gslb.example.com.", Duration::from_secs(5), |a| {
        a == all
    })
    .await;
    assert!(took <= Duration::from_millis(3500), "back after {took:?}");
    let (_, m) = http_get(s.admin, "/metrics").await;
    assert_eq!(
        metric(
            &m,
            "dnspolicy_pool_member_changes_total{pool=\"web\",member=\"192.0.2.102\"}"
        ),
        2
    );
    assert!(
        metric(
            &m,
            "dnspolicy_pool_checks_total{pool=\"web\",member=\"192.0.2.102\",result=\"failed\"}"
        ) >= 2
    );
    // Every member down: the fallback answers all of them, never nothing.
    for l in listeners.drain(..) {
        l.abort();
    }
    until(s.dns, "gslb.example.com.", Duration::from_secs(5), |a| {
        a == all
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let a = answers(&udp(s.dns, &query("gslb.example.com.", RecordType::A)).await);
    assert_eq!(a, all, "no member healthy: fallback = \"all\"");
    let (_, m) = http_get(s.admin, "/metrics").await;
    assert!(metric(&m, "dnspolicy_pool_fallback_answers_total{pool=\"web\"}") >= 1);
    if have_tool("dig", "bind9-dnsutils") {
        let dns = s.dns;
        let out =
            tokio::task::spawn_blocking(move || dig(dns, &["gslb.example.com", "A", "+short"]))
                .await
                .expect("dig");
        assert_eq!(
            out.lines().count(),
            3,
            "dig sees the three addresses: {out}"
        );
    }
    s.stop().await;
}

/// An HTTP server answering 200, or 503 while `sick` is set.
async fn http_health(sick: Arc<AtomicBool>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let t = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let sick = sick.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let status = if sick.load(Relaxed) {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (addr, t)
}

/// A DNS responder answering NOERROR, or REFUSED while `sick` is set.
async fn dns_health(sick: Arc<AtomicBool>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = sock.local_addr().expect("addr");
    let t = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.add_queries(q.queries.clone());
            if sick.load(Relaxed) {
                r.metadata.response_code = ResponseCode::Refused;
            }
            let _ = sock.send_to(&r.to_vec().expect("encode"), from).await;
        }
    });
    (addr, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_dns_checks_and_the_healthy_count() {
    let (web_sick, dns_sick) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (h, h_task) = http_health(web_sick.clone()).await;
    let (d, d_task) = dns_health(dns_sick.clone()).await;
    let policy = r#"
rule mixed when {query.name} == "mixed.example.com" { then pool mixed }
rule guarded when {query.name} == "guarded.example.com" {
    if {pool.dead.healthy} == 0 { then rewrite "cdn-global.example.com" ttl 5 }
    then pool dead
}
"#;
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("gslb-checks", &[("p.dsl", policy)]));
    c.pools = toml::from_str(&format!(
        r#"
[mixed]
health = {{ interval = 0.2, timeout = 0.5, rise = 2, fall = 2 }}
members = [
    {{ address = "192.0.2.1", check = "http://{h}/healthz" }},
    {{ address = "192.0.2.2", check = "dns://{d}/probe.example.com?type=A" }},
    {{ address = "192.0.2.3" }},
]
[dead]
health = {{ interval = 0.2, rise = 2, fall = 2 }}
members = [{{ address = "192.0.2.9", check = "tcp://127.0.0.1:1" }}]
"#
    ))
    .expect("pools");
    let s = start(c).await;
    let all = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];
    until(s.dns, "mixed.example.com.", Duration::from_secs(3), |a| {
        a == all
    })
    .await;
    web_sick.store(true, Relaxed);
    until(s.dns, "mixed.example.com.", Duration::from_secs(3), |a| {
        a == ["192.0.2.2", "192.0.2.3"]
    })
    .await;
    dns_sick.store(true, Relaxed);
    until(s.dns, "mixed.example.com.", Duration::from_secs(3), |a| {
        a == ["192.0.2.3"]
    })
    .await;
    web_sick.store(false, Relaxed);
    dns_sick.store(false, Relaxed);
    until(s.dns, "mixed.example.com.", Duration::from_secs(3), |a| {
        a == all
    })
    .await;
    // {pool.dead.healthy} reads 0 once its only member is out.
    until(s.dns, "guarded.example.com.", Duration::from_secs(3), |a| {
        a.first().map(String::as_str) == Some("CNAME cdn-global.example.com.")
    })
    .await;
    h_task.abort();
    d_task.abort();
    s.stop().await;
}

#[tokio::test]
async fn picks_answer_as_promised_with_honest_ecs_scope() {
    let policy = r#"
rule w when {query.name} == "w.example.com" { then pool weighted weighted }
rule s when {query.name} == "s.example.com" { then pool weighted sticky {client.subnet} }
rule f when {query.name} == "f.example.com" { then pool weighted failover count 2 }
rule n when {query.name} == "n.example.com" { then pool edge nearest }
"#;
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("gslb-picks", &[("p.dsl", policy)]));
    c.geoip = vec![shared_dir().join("geoip/GeoIP2-City-Test.mmdb")];
    c.pools = toml::from_str(
        r#"
[weighted]
members = [
    { address = "192.0.2.1", weight = 1, priority = 2 },
    { address = "192.0.2.2", weight = 2, priority = 1 },
    { address = "192.0.2.3", weight = 7, priority = 3 },
]
[edge]
members = [
    { address = "192.0.2.51", location = [51.51, -0.09] },
    { address = "192.0.2.52", location = [47.25, -122.31] },
    { address = "192.0.2.53", location = [58.41, 15.62] },
]
"#,
    )
    .expect("pools");
    let s = start(c).await;
    let ask = |name: &'static str, ecs: &'static str, source: u8| {
        let dns = s.dns;
        async move { udp(dns, &with_ecs(query(name, RecordType::A), ip(ecs), source)).await }
    };
    // Weighted: shares near 1:2:7; the answer did not depend on the client: scope 0.
    let mut hits = std::collections::BTreeMap::<String, u32>::new();
    let n = 2000;
    for _ in 0..n {
        let r = ask("w.example.com.", "198.51.100.0", 24).await;
        assert_eq!(ecs_of(&r).map(|e| e.2), Some(0), "weighted: scope 0");
        *hits.entry(answers(&r)[0].clone()).or_default() += 1;
    }
    for (a, want) in [("192.0.2.1", 0.1), ("192.0.2.2", 0.2), ("192.0.2.3", 0.7)] {
        let share = f64::from(hits[a]) / f64::from(n);
        assert!((share - want).abs() < 0.04, "{a}: {share} (want {want})");
    }
    // Sticky by subnet: the same member for the same subnet; scope = the hashed prefix.
    let first = answers(&ask("s.example.com.", "198.51.100.0", 24).await);
    for _ in 0..20 {
        let r = ask("s.example.com.", "198.51.100.0", 24).await;
        assert_eq!(answers(&r), first);
        assert_eq!(
            ecs_of(&r).map(|e| e.2),
            Some(24),
            "sticky by a /24: scope 24"
        );
    }
    let r = ask("s.example.com.", "203.0.112.0", 20).await;
    assert_eq!(
        ecs_of(&r).map(|e| e.2),
        Some(20),
        "sticky by a /20: scope 20"
    );
    // Failover: the two best priorities in order; scope 0.
    let r = ask("f.example.com.", "198.51.100.0", 24).await;
    assert_eq!(answers(&r), ["192.0.2.2", "192.0.2.1"]);
    assert_eq!(ecs_of(&r).map(|e| e.2), Some(0));
    // Nearest: clients in London, Washington State and Linköping (the test
    // GeoIP database) get their own edge; the scope is GeoIP's network.
    for (client, want) in [
        ("81.2.69.142", "192.0.2.51"),
        ("216.160.83.56", "192.0.2.52"),
        ("89.160.20.112", "192.0.2.53"),
    ] {
        let r = udp(
            s.dns,
            &with_ecs(query("n.example.com.", RecordType::A), ip(client), 32),
        )
        .await;
        assert_eq!(answers(&r), [want], "client {client}");
        let scope = ecs_of(&r).map(|e| e.2).expect("ECS echoed");
        assert!(
            (8..=32).contains(&scope),
            "nearest: scope is GeoIP's prefix, got {scope}"
        );
    }
    s.stop().await;
}
