//! TCP done properly (RFC 7766 §6.2.1.1): queries pipelined on one
//! connection are answered concurrently, so a query that waits for a slow
//! upstream does not hold back the ones behind it, and answers may come
//! back out of order; a connection has a bound on queries in flight.

use dnspolicy_e2e::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// An upstream that answers every query with A 192.0.2.77 after `delay`.
async fn slow_upstream(delay: Duration) -> std::net::SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = sock.local_addr().expect("addr");
    let sock = std::sync::Arc::new(sock);
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let sock = sock.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let mut r = Message::response(q.metadata.id, q.metadata.op_code);
                r.queries = q.queries.clone();
                if let Some(qq) = q.queries.first() {
                    r.answers.push(hickory_proto::rr::Record::from_rdata(
                        qq.name.clone(),
                        30,
                        hickory_proto::rr::RData::A("192.0.2.77".parse().expect("ip")),
                    ));
                }
                if let Ok(b) = r.to_vec() {
                    let _ = sock.send_to(&b, from).await;
                }
            });
        }
    });
    addr
}

const POLICY: &str = r#"
if {query.name} == "fast.test" { then answer A 192.0.2.1 }
if {query.name} ends_with "slow.test" { then forward "default" }
"#;

async fn write_query(s: &mut TcpStream, m: &Message) {
    let b = m.to_vec().expect("encode");
    let mut framed = (b.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&b);
    s.write_all(&framed).await.expect("write");
}

async fn read_reply(s: &mut TcpStream) -> Message {
    let len = tokio::time::timeout(Duration::from_secs(5), s.read_u16())
        .await
        .expect("a reply within 5 s")
        .expect("read length");
    let mut b = vec![0u8; usize::from(len)];
    s.read_exact(&mut b).await.expect("read reply");
    Message::from_vec(&b).expect("reply parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_are_answered_out_of_order() {
    let up = slow_upstream(Duration::from_millis(400)).await;
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("tcp-pipeline", &[("p.dsl", POLICY)]));
    c.add_upstream(&up.to_string()).expect("default pool");
    let s = start(c).await;
    let mut conn = TcpStream::connect(s.dns).await.expect("connect");
    let slow = query("a.slow.test.", RecordType::A);
    let fast = query("fast.test.", RecordType::A);
    write_query(&mut conn, &slow).await;
    write_query(&mut conn, &fast).await;
    let t0 = Instant::now();
    let first = read_reply(&mut conn).await;
    assert_eq!(
        first.metadata.id, fast.metadata.id,
        "the fast answer comes first"
    );
    assert_eq!(answers(&first), ["192.0.2.1"]);
    assert!(
        t0.elapsed() < Duration::from_millis(300),
        "not held back by the slow one"
    );
    let second = read_reply(&mut conn).await;
    assert_eq!(second.metadata.id, slow.metadata.id);
    assert_eq!(answers(&second), ["192.0.2.77"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_runs_upstream_queries_concurrently_within_its_bound() {
    let up = slow_upstream(Duration::from_millis(300)).await;
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("tcp-bound", &[("p.dsl", POLICY)]));
    c.add_upstream(&up.to_string()).expect("default pool");
    let s = start(c).await;
    let mut conn = TcpStream::connect(s.dns).await.expect("connect");
    // 40 slow queries: one after another they would take 12 s; with 32 in
    // flight at most they take two rounds of the upstream's delay.
    let mut ids = std::collections::BTreeSet::new();
    let t0 = Instant::now();
    for i in 0..40 {
        let q = query(&format!("q{i}.slow.test."), RecordType::A);
        ids.insert(q.metadata.id);
        write_query(&mut conn, &q).await;
    }
    for _ in 0..40 {
        let r = read_reply(&mut conn).await;
        assert!(
            ids.remove(&r.metadata.id),
            "an answer to a query asked once"
        );
        assert_eq!(answers(&r), ["192.0.2.77"]);
    }
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "concurrent: {took:?}");
    assert!(
        took >= Duration::from_millis(550),
        "bounded: 40 queries with 32 in flight need two rounds ({took:?})"
    );
}
