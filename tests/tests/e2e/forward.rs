//! Forwarding to an upstream pool: a second dnspolicy server, started by
//! the test, plays the upstream.

use dnspolicy_e2e::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::net::IpAddr;

/// The upstream answers names under upstream.test, and says which client
/// subnet it saw (to prove ECS passes through).
const UPSTREAM: &str = r#"
if {query.name} == "host.upstream.test" { then answer A 198.18.0.1 ttl 42 }
if {query.name} == "ecs.upstream.test" && {client.subnet} in 198.51.100.0/24 { then answer TXT "saw-ecs" }
if {query.name} == "ecs.upstream.test" { then answer TXT "no-ecs" }
if {query.name} == "cdn.upstream.test" { then answer A 198.18.0.2 }
"#;

const EDGE: &str = r#"
rule steer priority 20 { if {query.name} == "host.upstream.test" && {client.region} == "CN-BJ" { then answer A 192.0.2.1 } }
rule canary priority 10 { if {query.name} == "canary.test" { then forward canary } }
rule to_upstream_cdn priority 5 { if {query.name} == "www.edge.test" { then rewrite "cdn.upstream.test" ttl 20 } }
rule lost priority 1 { if {query.name} == "lost.test" { then forward nowhere } }
"#;

#[tokio::test]
async fn forwards_by_default_and_by_verdict() {
    let mut uc = config();
    uc.plugin_dir = Some(plugin_dir("upstream", &[("up.dsl", UPSTREAM)]));
    let up = start(uc).await;

    let mut c = config();
    c.plugin_dir = Some(plugin_dir("edge", &[("edge.dsl", EDGE)]));
    c.add_upstream(&up.dns.to_string()).expect("default pool");
    c.add_upstream(&format!("canary={}", up.dns))
        .expect("canary pool");
    let edge = start(c).await;

    // No plugin decides, the name is not in the zone: the default pool answers.
    let q = query("host.upstream.test.", RecordType::A);
    let r = udp(edge.dns, &q).await;
    assert_eq!(answers(&r), vec!["198.18.0.1"]);
    assert_eq!(r.answers[0].ttl, 42);
    assert_eq!(r.metadata.id, q.metadata.id);
    // Over TCP as well.
    let r = tcp(edge.dns, &q).await;
    assert_eq!(answers(&r), vec!["198.18.0.1"]);
    // A forward verdict to a named pool.
    let r = udp(edge.dns, &query("canary.test.", RecordType::A)).await;
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::Refused,
        "the upstream refuses what it does not know"
    );
    // A rewrite whose target is outside the zone: resolved upstream.
    let r = udp(edge.dns, &query("www.edge.test.", RecordType::A)).await;
    assert_eq!(answers(&r), vec!["CNAME cdn.upstream.test.", "198.18.0.2"]);
    // ECS options pass through to the upstream.
    let ip: IpAddr = "198.51.100.0".parse().expect("ip");
    let r = udp(
        edge.dns,
        &with_ecs(query("ecs.upstream.test.", RecordType::TXT), ip, 24),
    )
    .await;
    assert_eq!(answers(&r), vec!["TXT saw-ecs"]);
    let r = udp(edge.dns, &query("ecs.upstream.test.", RecordType::TXT)).await;
    assert_eq!(answers(&r), vec!["TXT no-ecs"]);
    // The edge looked at the client's region before forwarding: the relayed
    // answer's scope says so (the upstream itself said 0).
    let us: IpAddr = "203.0.113.0".parse().expect("ip");
    let r = udp(
        edge.dns,
        &with_ecs(query("host.upstream.test.", RecordType::A), us, 24),
    )
    .await;
    assert_eq!(answers(&r), vec!["198.18.0.1"]);
    assert_eq!(ecs_of(&r), Some((us, 24, 24)));
    // Nothing looked at the client: the upstream's scope stands.
    let r = udp(
        edge.dns,
        &with_ecs(query("cdn.upstream.test.", RecordType::A), us, 24),
    )
    .await;
    assert_eq!(ecs_of(&r), Some((us, 24, 0)));
    // A pool that does not exist: SERVFAIL, and the server keeps answering.
    let r = udp(edge.dns, &query("lost.test.", RecordType::A)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    let r = udp(edge.dns, &query("host.upstream.test.", RecordType::A)).await;
    assert_eq!(answers(&r), vec!["198.18.0.1"]);
}

#[tokio::test]
async fn dead_upstream_is_servfail() {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("dead", &[]));
    // A port nobody listens on.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let dead = sock.local_addr().expect("addr");
    drop(sock);
    c.add_upstream(&dead.to_string()).expect("pool");
    c.upstream_timeout_ms = 200;
    let s = start(c).await;
    let r = udp(s.dns, &query("anything.test.", RecordType::A)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert!(r.metadata.recursion_available);
}
