//! Verdicts to responses: static answers, rewrites, negative answers,
//! truncation, flags and EDNS.

use dnspolicy_e2e::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const POLICY: &str = r#"
rule statics priority 10 {
    if {query.name} == "static.test" { then answer A 192.0.2.7, 192.0.2.8 ttl 60 }
    if {query.name} == "v6.test" { then answer AAAA 2001:db8::7 }
    if {query.name} == "txt.test" { then answer TXT "hello world" }
    if {query.name} == "gone.test" { then nxdomain }
    if {query.name} == "empty.test" { then nodata }
    if {query.name} == "no.test" { then refuse }
    if {query.name} == "broken.test" { then servfail }
    if {query.name} == "silent.test" { then drop }
    if {query.name} == "big.test" && {query.transport} == "udp" { then truncate }
    if {query.name} == "big.test" { then answer A 192.0.2.99 }
    if {query.name} == "alias.test" { then rewrite "cdn-bj.example.com" ttl 30 }
    if {query.name} == "blocked.example.com" { then nxdomain }
    if {query.name} == "dangling.test" { then rewrite "nope.example.com" }
    if {query.name} == "many.test" { then answer A 192.0.2.100, 192.0.2.101, 192.0.2.102, 192.0.2.103, 192.0.2.104, 192.0.2.105, 192.0.2.106, 192.0.2.107, 192.0.2.108, 192.0.2.109, 192.0.2.110, 192.0.2.111, 192.0.2.112, 192.0.2.113, 192.0.2.114, 192.0.2.115, 192.0.2.116, 192.0.2.117, 192.0.2.118, 192.0.2.119, 192.0.2.120, 192.0.2.121, 192.0.2.122, 192.0.2.123, 192.0.2.124, 192.0.2.125, 192.0.2.126, 192.0.2.127, 192.0.2.128, 192.0.2.129, 192.0.2.130, 192.0.2.131, 192.0.2.132, 192.0.2.133, 192.0.2.134, 192.0.2.135, 192.0.2.136, 192.0.2.137, 192.0.2.138, 192.0.2.139 }
    if {query.name} == "missing-target.test" { then rewrite "nothing.example.com" }
}
"#;

async fn server() -> TestServer {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("answers", &[("policy.dsl", POLICY)]));
    start(c).await
}

#[tokio::test]
async fn static_answers_with_ttl_and_flags() {
    let s = server().await;
    let q = query("static.test.", RecordType::A);
    let r = udp(s.dns, &q).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&r), vec!["192.0.2.7", "192.0.2.8"]);
    assert!(r.answers.iter().all(|a| a.ttl == 60));
    assert!(r.metadata.authoritative, "policy answers are authoritative");
    assert!(r.metadata.recursion_desired, "RD echoed");
    assert!(
        !r.metadata.recursion_available,
        "no upstream, no recursion offered"
    );
    assert_eq!(r.queries, q.queries, "question echoed");
    assert!(r.edns.is_none(), "no OPT when the query had none");
    // An A answer is no answer to AAAA.
    let r = udp(s.dns, &query("static.test.", RecordType::AAAA)).await;
    assert_eq!(
        (r.metadata.response_code, r.answers.len()),
        (ResponseCode::NoError, 0)
    );
    let r = udp(s.dns, &query("v6.test.", RecordType::AAAA)).await;
    assert_eq!(answers(&r), vec!["2001:db8::7"]);
    assert_eq!(r.answers[0].ttl, 300, "default TTL");
    let r = udp(s.dns, &query("txt.test.", RecordType::TXT)).await;
    assert_eq!(answers(&r), vec!["TXT hello world"]);
}

#[tokio::test]
async fn negative_and_error_verdicts() {
    let s = server().await;
    let r = udp(s.dns, &query("gone.test.", RecordType::A)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(r.authorities.is_empty(), "no out-of-zone SOA");
    let r = udp(s.dns, &query("blocked.example.com.", RecordType::A)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(r.authorities.len(), 1, "SOA of the local zone");
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
    // A rewrite into a name the zone does not have: NXDOMAIN (RFC 6604).
    let r = udp(s.dns, &query("dangling.test.", RecordType::A)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(answers(&r), vec!["CNAME nope.example.com."]);
    let r = udp(s.dns, &query("empty.test.", RecordType::A)).await;
    assert_eq!(
        (r.metadata.response_code, r.answers.len()),
        (ResponseCode::NoError, 0)
    );
    let r = udp(s.dns, &query("no.test.", RecordType::A)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    let r = udp(s.dns, &query("broken.test.", RecordType::A)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    // Nothing matched and the name is outside the zone: REFUSED (no upstream).
    let r = udp(s.dns, &query("elsewhere.test.", RecordType::A)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    // Dropped queries get no answer at all.
    let q = query("silent.test.", RecordType::A);
    let got = udp_raw(
        s.dns,
        &q.to_vec().expect("encode"),
        std::time::Duration::from_millis(300),
    )
    .await;
    assert!(got.is_none());
}

#[tokio::test]
async fn rewrite_resolves_the_target_from_the_zone() {
    let s = server().await;
    let r = udp(s.dns, &query("alias.test.", RecordType::A)).await;
    assert_eq!(answers(&r), vec!["CNAME cdn-bj.example.com.", "192.0.2.10"]);
    assert_eq!(r.answers[0].ttl, 30);
    // A target the zone does not have: the CNAME alone.
    let r = udp(s.dns, &query("missing-target.test.", RecordType::A)).await;
    assert_eq!(answers(&r), vec!["CNAME nothing.example.com."]);
    // Names of the zone itself are answered from it when no plugin decides.
    let r = udp(s.dns, &query("cdn-global.example.com.", RecordType::AAAA)).await;
    assert_eq!(answers(&r), vec!["2001:db8::20"]);
    let r = udp(s.dns, &query("nope.example.com.", RecordType::A)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
}

// `dig` blocks its thread: the server needs another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_then_tcp_retry() {
    let s = server().await;
    let q = query("big.test.", RecordType::A);
    let r = udp(s.dns, &q).await;
    assert!(r.metadata.truncation, "TC set over UDP");
    assert!(r.answers.is_empty());
    let r = tcp(s.dns, &q).await;
    assert!(!r.metadata.truncation);
    assert_eq!(answers(&r), vec!["192.0.2.99"]);
    // dig retries over TCP by itself.
    if have_tool("dig", "bind9-dnsutils") {
        let text = dig(s.dns, &["big.test", "A"]);
        assert!(text.contains("Truncated, retrying in TCP mode"), "{text}");
        assert!(text.contains("192.0.2.99"), "{text}");
    }
}

#[tokio::test]
async fn edns_is_echoed() {
    let s = server().await;
    let r = udp(s.dns, &with_edns(query("static.test.", RecordType::A))).await;
    let e = r.edns.as_ref().expect("OPT in the reply");
    assert_eq!(e.version(), 0);
    assert!(ecs_of(&r).is_none());
    // EDNS version 1 is answered BADVERS.
    let mut q = with_edns(query("static.test.", RecordType::A));
    if let Some(e) = q.edns.as_mut() {
        e.set_version(1);
    }
    let r = udp(s.dns, &q).await;
    // BADVERS and BADSIG share code 16; what matters is the number, and it
    // travels in the OPT record.
    assert_eq!(u16::from(r.metadata.response_code), 16);
    assert!(r.edns.is_some(), "BADVERS comes with an OPT record");
}

#[tokio::test]
async fn udp_size_limit() {
    let s = server().await;
    // 40 A records (~700 bytes) do not fit the 512 bytes of plain DNS...
    let r = udp(s.dns, &query("many.test.", RecordType::A)).await;
    assert!(r.metadata.truncation);
    assert!(r.answers.is_empty());
    // ...but fit the 1232 bytes an EDNS client gets, and TCP.
    let r = udp(s.dns, &with_edns(query("many.test.", RecordType::A))).await;
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 40);
    let r = tcp(s.dns, &query("many.test.", RecordType::A)).await;
    assert_eq!(r.answers.len(), 40);
}

#[tokio::test]
async fn over_tcp_too() {
    let s = server().await;
    let r = tcp(s.dns, &query("static.test.", RecordType::A)).await;
    assert_eq!(answers(&r), vec!["192.0.2.7", "192.0.2.8"]);
}

/// A burst of queries against a policy with thousands of name keys: the
/// server reads them in batches and looks each batch up together (the
/// prefetch steps of `Chain::prefetch`), and every query still gets the
/// answer for its own name, REFUSED for names no rule has.
#[tokio::test]
async fn a_burst_against_a_big_index_answers_each_query_for_its_own_name() {
    const RULES: u32 = 3000;
    let mut policy = String::new();
    for i in 0..RULES {
        policy.push_str(&format!(
            "rule s{i} when {{query.name}} ends_with \"s{i}.burst.test\" {{ then answer A 10.0.{}.{} ttl 60 }}\n",
            i / 256,
            i % 256
        ));
    }
    policy.push_str("rule other priority -1 { then refuse }\n");
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("burst", &[("policy.dsl", &policy)]));
    let s = start(c).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let want = |k: u16| -> Option<(String, String)> {
        let i = (u32::from(k) * 7919) % RULES;
        (!k.is_multiple_of(10)).then(|| {
            (
                format!("h{k}.s{i}.burst.test."),
                format!("10.0.{}.{}", i / 256, i % 256),
            )
        })
    };
    const QUERIES: u16 = 300;
    // In waves of 50, each sent before any answer is read, so they queue
    // at the server (all 300 at once could overflow its receive buffer
    // while a debug build works through them).
    let mut seen = vec![false; usize::from(QUERIES)];
    let mut buf = [0u8; 1500];
    for wave in (0..QUERIES).step_by(50) {
        for k in wave..wave + 50 {
            let name = want(k).map_or(format!("h{k}.none.burst.test."), |w| w.0);
            let mut q = query(&name, RecordType::A);
            q.metadata.id = k;
            sock.send_to(&q.to_vec().expect("encode"), s.dns)
                .await
                .expect("send");
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen[usize::from(wave)..usize::from(wave + 50)]
            .iter()
            .any(|s| !s)
        {
            let Ok(got) = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await else {
                break;
            };
            let n = got.expect("recv");
            let r = hickory_proto::op::Message::from_vec(&buf[..n]).expect("a DNS answer");
            let k = r.metadata.id;
            assert!(k < QUERIES, "an answer to a query we sent: id {k}");
            let asked = r.queries.first().map(|q| q.name().to_string());
            match want(k) {
                Some((name, ip)) => {
                    assert_eq!(asked.as_deref(), Some(name.as_str()), "query {k}");
                    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name}");
                    assert_eq!(answers(&r), vec![ip], "{name}");
                }
                None => assert_eq!(r.metadata.response_code, ResponseCode::Refused, "query {k}"),
            }
            seen[usize::from(k)] = true;
        }
    }
    let lost = seen.iter().filter(|s| !**s).count();
    assert_eq!(lost, 0, "{lost} of {QUERIES} queries had no answer");
}
