//! Who may talk to the server, and how much: the DNS ACL, the per-prefix
//! rate limit (drop, slip, `{client.rate}`), the per-source TCP connection
//! limit, TSIG with an unknown key, NSID, admin bearer tokens and plugin
//! capabilities. Sources are distinct loopback addresses (127.0.0.0/8 is
//! all local on Linux).

use dnspolicy_e2e::*;
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::rdata::tsig::{make_tsig_record, TsigAlgorithm, TsigError, TSIG};
use hickory_proto::rr::{Name, RData, RecordType};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ANSWER: &str = "if {query.name} == \"a.test\" { then answer A 192.0.2.1 }\n";

#[tokio::test]
async fn sources_outside_the_acl_get_refused_and_are_counted() {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("acl", &[("a.dsl", ANSWER)]));
    c.server.acl = vec!["127.0.0.1/32".into()];
    let s = start(c).await;
    let q = query("a.test.", RecordType::A);
    let inside = udp_from(ip("127.0.0.1"), s.dns, &q, Duration::from_secs(3))
        .await
        .expect("answer");
    assert_eq!(answers(&inside), ["192.0.2.1"]);
    let outside = udp_from(ip("127.0.0.2"), s.dns, &q, Duration::from_secs(3))
        .await
        .expect("an answer, REFUSED");
    assert_eq!(outside.metadata.response_code, ResponseCode::Refused);
    assert!(outside.answers.is_empty());
    assert_eq!(outside.queries.len(), 1, "question echoed");
    // TCP from outside too.
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind");
    let mut conn = sock.connect(s.dns).await.expect("connect");
    let b = q.to_vec().expect("encode");
    let mut framed = (b.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&b);
    conn.write_all(&framed).await.expect("write");
    let n = conn.read_u16().await.expect("length");
    let mut buf = vec![0u8; usize::from(n)];
    conn.read_exact(&mut buf).await.expect("body");
    let r = Message::from_vec(&buf).expect("message");
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    let (_, m) = http_get(s.admin, "/metrics").await;
    assert_eq!(metric(&m, "dnspolicy_acl_refused_total"), 2);
}

#[tokio::test]
async fn the_default_acl_is_loopback_and_private() {
    let c = config();
    assert!(c.server.acl.is_empty(), "the default is DEFAULT_ACL");
    let s = start(c).await;
    // Loopback sources are inside the default.
    let r = udp_from(
        ip("127.0.0.9"),
        s.dns,
        &query("www.example.com.", RecordType::A),
        Duration::from_secs(3),
    )
    .await
    .expect("answer");
    assert_ne!(r.metadata.response_code, ResponseCode::Refused);
}

/// One source floods far above its limit; a second keeps being answered.
#[tokio::test]
async fn a_flooding_prefix_is_limited_and_another_is_not() {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("flood", &[("a.dsl", ANSWER)]));
    c.limits.qps_per_prefix = 50;
    let s = start(c).await;
    let flood = tokio::net::UdpSocket::bind("127.0.1.1:0")
        .await
        .expect("bind");
    let q = query("a.test.", RecordType::A).to_vec().expect("encode");
    let started = Instant::now();
    let mut sent = 0u32;
    let mut good_answered = 0;
    let mut good_sent = 0;
    // Two seconds: the flood sends 2 000 queries, the good source 20.
    while started.elapsed() < Duration::from_secs(2) {
        for _ in 0..100 {
            let _ = flood.send_to(&q, s.dns).await;
            sent += 1;
        }
        good_sent += 1;
        if udp_from(
            ip("127.0.2.1"),
            s.dns,
            &query("a.test.", RecordType::A),
            Duration::from_secs(1),
        )
        .await
        .is_some_and(|r| answers(&r) == ["192.0.2.1"])
        {
            good_answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        good_answered, good_sent,
        "the other prefix is answered every time"
    );
    let mut got = 0u32;
    let mut buf = [0u8; 512];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(300), flood.recv_from(&mut buf)).await
    {
        got += 1;
    }
    // At most 50 per one-second window; two seconds touch three windows.
    assert!(got <= 150, "{got} of {sent} flood queries answered");
    assert!(
        got >= 50,
        "the limit lets {got} through, not the first 50 of a second"
    );
    let (_, m) = http_get(s.admin, "/metrics").await;
    let dropped = metric(&m, "dnspolicy_rate_limited_total{action=\"drop\"}");
    assert_eq!(
        u64::from(sent - got),
        dropped,
        "every unanswered query is counted"
    );
}

#[tokio::test]
async fn slip_answers_some_queries_over_the_limit_truncated() {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("slip", &[("a.dsl", ANSWER)]));
    c.limits.qps_per_prefix = 2;
    c.limits.action = dnspolicy_runtime::access::rate::OverLimit::Slip;
    c.limits.slip = 2;
    let s = start(c).await;
    let src = ip("127.0.3.1");
    let mut kinds = Vec::new();
    for _ in 0..6 {
        let r = udp_from(
            src,
            s.dns,
            &query("a.test.", RecordType::A),
            Duration::from_millis(300),
        )
        .await;
        kinds.push(match r {
            Some(r) if r.metadata.truncation => "tc",
            Some(_) => "answer",
            None => "none",
        });
    }
    // Within one second: 2 answers, then slip 1 in 2 (if the second turned
    // over in between, the count restarts: allow it once).
    let tc = kinds.iter().filter(|k| **k == "tc").count();
    let none = kinds.iter().filter(|k| **k == "none").count();
    assert!(tc >= 1 && none >= 1, "{kinds:?}");
    assert_eq!(&kinds[..2], ["answer", "answer"], "{kinds:?}");
}

#[tokio::test]
async fn policies_read_the_rate() {
    let mut c = config();
    let policy = "rule busy priority 10 { if {client.rate} > 3 { then refuse } }\n\
                  rule ok { if {query.name} == \"a.test\" { then answer A 192.0.2.1 } }\n";
    c.plugin_dir = Some(plugin_dir("rate_field", &[("a.dsl", policy)]));
    c.limits.qps_per_prefix = 1000;
    let s = start(c).await;
    let src = ip("127.0.4.1");
    let mut codes = Vec::new();
    for _ in 0..5 {
        let r = udp_from(
            src,
            s.dns,
            &query("a.test.", RecordType::A),
            Duration::from_secs(2),
        )
        .await
        .expect("answer");
        codes.push(r.metadata.response_code);
    }
    // Five queries in well under a second (one restart of the window at most).
    assert_eq!(codes[0], ResponseCode::NoError);
    assert!(codes.contains(&ResponseCode::Refused), "{codes:?}");
}

#[tokio::test]
async fn one_source_may_not_hold_every_tcp_connection() {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("conns", &[("a.dsl", ANSWER)]));
    c.limits.tcp_per_source = 2;
    let s = start(c).await;
    let a = tokio::net::TcpStream::connect(s.dns).await.expect("first");
    let _b = tokio::net::TcpStream::connect(s.dns).await.expect("second");
    let mut third = tokio::net::TcpStream::connect(s.dns)
        .await
        .expect("accepted, then closed");
    let mut buf = [0u8; 2];
    let closed = tokio::time::timeout(Duration::from_secs(3), third.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "the third connection is closed"
    );
    // Room again once one closes (the server notices the close shortly).
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let q = query("a.test.", RecordType::A).to_vec().expect("encode");
        let mut conn = tokio::net::TcpStream::connect(s.dns)
            .await
            .expect("connect");
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        conn.write_all(&framed).await.expect("write");
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), conn.read_u16()).await {
            let mut buf = vec![0u8; usize::from(n)];
            conn.read_exact(&mut buf).await.expect("body");
            let r = Message::from_vec(&buf).expect("message");
            assert_eq!(answers(&r), ["192.0.2.1"]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no room after a connection closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, m) = http_get(s.admin, "/metrics").await;
    assert!(metric(&m, "dnspolicy_tcp_refused_total{limit=\"per_source\"}") >= 1);
}

#[tokio::test]
async fn tsig_with_an_unknown_key_is_notauth_badkey() {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("tsig", &[("a.dsl", ANSWER)]));
    let s = start(c).await;
    let mut q = query("a.test.", RecordType::A);
    let tsig = TSIG::new(
        TsigAlgorithm::HmacSha256,
        1_795_000_000,
        300,
        vec![7; 32],
        q.metadata.id,
        None,
        Vec::new(),
    );
    q.signature = Some(Box::new(make_tsig_record(
        Name::from_ascii("nokey.example.").expect("name"),
        tsig,
    )));
    let r = udp(s.dns, &q).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NotAuth);
    assert!(
        r.answers.is_empty(),
        "nothing answered to an unverified query"
    );
    // The TSIG record is the last one (hickory keeps it with the other
    // additional records without its DNSSEC features).
    let last = r.additionals.last().expect("a TSIG record in the response");
    let RData::TSIG(sig) = &last.data else {
        panic!("the last additional record is not TSIG: {last:?}");
    };
    assert_eq!(last.name.to_ascii(), "nokey.example.");
    assert_eq!(sig.error, Some(TsigError::BadKey));
    assert!(sig.mac.is_empty(), "unsigned (RFC 8945 §5.3.2)");
    assert_eq!(sig.time, 1_795_000_000);
    // dig sees the same.
    if have_tool("dig", "bind9-dnsutils") {
        let text = dig(
            s.dns,
            &[
                "-y",
                "hmac-sha256:nokey:c2VjcmV0c2VjcmV0c2VjcmV0",
                "a.test",
                "A",
            ],
        );
        assert!(text.contains("status: NOTAUTH"), "{text}");
        assert!(text.contains("BADKEY"), "{text}");
    }
    let (_, m) = http_get(s.admin, "/metrics").await;
    assert!(metric(&m, "dnspolicy_tsig_badkey_total") >= 1);
}

fn with_nsid_request(mut m: Message) -> Message {
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.options_mut().insert(EdnsOption::NSID(
        NSIDPayload::new(Vec::new()).expect("empty"),
    ));
    m.set_edns(e);
    m
}

fn nsid_of(r: &Message) -> Option<Vec<u8>> {
    match r.edns.as_ref()?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(p) => Some(p.as_ref().to_vec()),
        _ => None,
    }
}

#[tokio::test]
async fn nsid_is_returned_when_asked_and_configured() {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("nsid", &[("a.dsl", ANSWER)]));
    c.server.nsid = Some("edge-7".into());
    let s = start(c).await;
    let r = udp(s.dns, &with_nsid_request(query("a.test.", RecordType::A))).await;
    assert_eq!(answers(&r), ["192.0.2.1"]);
    assert_eq!(nsid_of(&r).as_deref(), Some(&b"edge-7"[..]));
    // Not asked: not sent.
    let r = udp(s.dns, &with_edns(query("a.test.", RecordType::A))).await;
    assert_eq!(nsid_of(&r), None);
    // REFUSED (no plugin decides) carries it too.
    let r = udp(
        s.dns,
        &with_nsid_request(query("nothing.test.", RecordType::A)),
    )
    .await;
    assert_eq!(nsid_of(&r).as_deref(), Some(&b"edge-7"[..]));
    if have_tool("dig", "bind9-dnsutils") {
        let text = dig(s.dns, &["+nsid", "a.test", "A"]);
        assert!(text.contains("NSID") && text.contains("edge-7"), "{text}");
    }
    // Unconfigured: never sent.
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("nsid_off", &[("a.dsl", ANSWER)]));
    let s = start(c).await;
    let r = udp(s.dns, &with_nsid_request(query("a.test.", RecordType::A))).await;
    assert_eq!(nsid_of(&r), None);
}

#[tokio::test]
async fn mutating_admin_calls_need_the_token() {
    let dir = plugin_dir("token", &[("a.dsl", ANSWER)]);
    let mut c = config();
    c.plugin_dir = Some(dir.clone());
    c.admin.token = Some("s3cret-token".into());
    let s = start(c).await;
    std::fs::write(dir.join("a.dsl"), ANSWER.replace("192.0.2.1", "192.0.2.2")).expect("write");
    let (status, body) = http(s.admin, "POST", "/reload").await;
    assert!(status.contains("401"), "{status}");
    assert!(body.contains("Bearer"), "{body}");
    let (status, _) = http_with(
        s.admin,
        "POST",
        "/reload",
        "Authorization: Bearer wrong\r\n",
    )
    .await;
    assert!(status.contains("401"), "{status}");
    // Nothing changed.
    assert_eq!(
        answers(&udp(s.dns, &query("a.test.", RecordType::A)).await),
        ["192.0.2.1"]
    );
    let (status, m) = http_get(s.admin, "/metrics").await;
    assert!(status.contains("200"), "reads stay open: {status}");
    assert_eq!(
        metric(&m, "dnspolicy_plugin_reload_total{result=\"ok\"}"),
        0
    );
    let (status, body) = http_with(
        s.admin,
        "POST",
        "/reload",
        "Authorization: Bearer s3cret-token\r\n",
    )
    .await;
    assert!(status.contains("200"), "{status} {body}");
    assert_eq!(
        answers(&udp(s.dns, &query("a.test.", RecordType::A)).await),
        ["192.0.2.2"]
    );
}

#[tokio::test]
async fn closed_reads_need_the_token_too() {
    let mut c = config();
    c.admin.token = Some("t0ken".into());
    c.admin.open_reads = false;
    let s = start(c).await;
    let (status, _) = http_get(s.admin, "/metrics").await;
    assert!(status.contains("401"), "{status}");
    let (status, _) = http_with(
        s.admin,
        "GET",
        "/metrics",
        "Authorization: Bearer t0ken\r\n",
    )
    .await;
    assert!(status.contains("200"), "{status}");
}

#[tokio::test]
async fn a_non_loopback_admin_without_a_token_does_not_start() {
    let mut c = config();
    c.admin.listen = Some("0.0.0.0:0".parse().expect("addr"));
    c.admin.token = None;
    c.admin.token_file = Some(temp_dir("no_token").join("missing"));
    let e = dnspolicy_runtime::Shared::from_config(&c)
        .err()
        .expect("refused: a token file that is missing");
    assert!(e.to_string().contains("missing"), "{e}");
    c.admin.token_file = None;
    // DNSPOLICY_ADMIN_TOKEN may be set around the tests: only judge when not.
    if std::env::var_os("DNSPOLICY_ADMIN_TOKEN").is_none() {
        let e = dnspolicy_runtime::Shared::from_config(&c)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("not loopback"), "{e}");
    }
}

const LUA_FORWARD: &str = r#"
function apply(ctx)
  local ok, err = pcall(function() ctx:forward("default") end)
  if ok then
    ctx:set_answer("192.0.2.1")
  elseif string.find(tostring(err), "capability `forward` is not granted", 1, true) then
    ctx:set_answer("192.0.2.99")
  end
end
"#;

#[tokio::test]
async fn plugins_call_only_what_they_were_granted() {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir(
        "caps",
        &[
            ("plain.lua", LUA_FORWARD),
            (
                "granted.lua",
                &LUA_FORWARD
                    .replace("192.0.2.1", "192.0.2.2")
                    .replace("192.0.2.99", "192.0.2.98"),
            ),
            (
                "granted.yaml",
                "priority: 10\ncapabilities: [forward, log]\n",
            ),
            ("plain.yaml", "priority: 5\n"),
        ],
    ));
    let s = start(c).await;
    // The granted plugin runs first and forwards.
    assert_eq!(
        answers(&udp(s.dns, &query("a.test.", RecordType::A)).await),
        ["192.0.2.2"]
    );
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("caps_denied", &[("plain.lua", LUA_FORWARD)]));
    let s = start(c).await;
    assert_eq!(
        answers(&udp(s.dns, &query("a.test.", RecordType::A)).await),
        ["192.0.2.99"],
        "forward denied by default"
    );
    let (_, m) = http_get(s.admin, "/metrics").await;
    assert_eq!(
        metric(
            &m,
            "dnspolicy_plugin_failures_total{plugin=\"plain.lua\",reason=\"capability\"}"
        ),
        1
    );
    // An unknown capability is a metadata error.
    let mut c = config();
    c.plugin_dir = Some(plugin_dir(
        "caps_bad",
        &[
            ("p.lua", LUA_FORWARD),
            ("p.yaml", "capabilities: [teleport]\n"),
        ],
    ));
    let e = dnspolicy_runtime::Shared::from_config(&c)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("teleport"), "{e}");
}
