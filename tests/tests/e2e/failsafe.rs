//! Fail safe, never fail open: strict start-up and readiness, per-plugin
//! last good versions on reload, and the RFC corners (opcodes, FORMERR
//! echoes, private ECS, NODATA after a CNAME, scopes longer than the
//! source).

use dnspolicy_e2e::*;
use dnspolicy_runtime::config::OnPluginError;
use dnspolicy_runtime::Shared;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use std::time::{Duration, Instant};

const GOOD: &str = "if {query.name} == \"a.test\" { then answer A 192.0.2.1 }\n";
const BROKEN: &str = "if {query.nam} == \"a.test\" { then answer A 192.0.2.1 }\n";

#[tokio::test]
async fn a_plugin_that_does_not_load_stops_start_up() {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir(
        "strict",
        &[("good.dsl", GOOD), ("bad.dsl", BROKEN)],
    ));
    let err = match Shared::from_config(&c) {
        Ok(_) => panic!("a broken plugin must stop start-up"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("bad.dsl") && err.contains("unknown context path"),
        "{err}"
    );
    assert!(err.contains("--allow-partial"), "{err}");
}

#[tokio::test]
async fn allow_partial_starts_but_is_not_ready() {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir(
        "partial",
        &[("good.dsl", GOOD), ("bad.dsl", BROKEN)],
    ));
    c.serve.on_plugin_error = OnPluginError::Skip;
    let s = start(c).await;
    assert_eq!(
        answers(&udp(s.dns, &query("a.test.", RecordType::A)).await),
        ["192.0.2.1"]
    );
    let (status, _) = http_get(s.admin, "/healthz").await;
    assert!(status.contains("200"), "alive: {status}");
    let (status, body) = http_get(s.admin, "/readyz").await;
    assert!(status.contains("503"), "{status}");
    assert!(
        body.contains("failed") && body.contains("bad.dsl"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_broken_file_does_not_block_the_others() {
    let dir = plugin_dir("per-plugin", &[("a.dsl", GOOD)]);
    let mut c = config();
    c.plugin_dir = Some(dir.clone());
    c.hot_reload = true;
    let s = start(c).await;
    let (status, _) = http_get(s.admin, "/readyz").await;
    assert!(status.contains("200"), "{status}");
    // a.dsl breaks and b.dsl arrives in the same change.
    std::fs::write(dir.join("a.dsl"), BROKEN).expect("break a");
    std::fs::write(
        dir.join("b.dsl"),
        "if {query.name} == \"b.test\" { then answer A 192.0.2.2 }\n",
    )
    .expect("add b");
    let t0 = Instant::now();
    loop {
        let r = udp(s.dns, &query("b.test.", RecordType::A)).await;
        if answers(&r) == ["192.0.2.2"] {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "b.dsl live within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // a.dsl's last good version keeps answering, and says it is stale.
    assert_eq!(
        answers(&udp(s.dns, &query("a.test.", RecordType::A)).await),
        ["192.0.2.1"]
    );
    let (_, plugins) = http_get(s.admin, "/plugins").await;
    let list: Vec<serde_json::Value> = serde_json::from_str(&plugins).expect("json");
    let a = list.iter().find(|p| p["name"] == "a").expect("a listed");
    assert_eq!(a["state"], "stale", "{plugins}");
    let (_, metrics) = http_get(s.admin, "/metrics").await;
    assert!(
        metrics.contains("dnspolicy_plugin_stale{plugin=\"a.dsl\"} 1"),
        "{metrics}"
    );
    let (status, body) = http_get(s.admin, "/readyz").await;
    assert!(
        status.contains("503") && body.contains("stale"),
        "{status} {body}"
    );
    // Fixed: ready again.
    std::fs::write(dir.join("a.dsl"), GOOD).expect("fix a");
    let (status, _) = http(s.admin, "POST", "/reload").await;
    assert!(status.contains("200"), "{status}");
    let (status, _) = http_get(s.admin, "/readyz").await;
    assert!(status.contains("200"), "{status}");
}

#[tokio::test]
async fn set_mode_is_all_or_nothing() {
    let dir = plugin_dir("set-mode", &[("a.dsl", GOOD)]);
    let mut c = config();
    c.plugin_dir = Some(dir.clone());
    c.reload.atomic = dnspolicy_runtime::plugin::chain::ReloadMode::Set;
    let s = start(c).await;
    std::fs::write(dir.join("a.dsl"), BROKEN).expect("break a");
    std::fs::write(
        dir.join("b.dsl"),
        "if {query.name} == \"b.test\" { then answer A 192.0.2.2 }\n",
    )
    .expect("add b");
    let (status, body) = http(s.admin, "POST", "/reload").await;
    assert!(status.contains("409"), "{status} {body}");
    // Nothing of the new set went live.
    let r = udp(s.dns, &query("b.test.", RecordType::A)).await;
    assert!(r.answers.is_empty(), "b.dsl is not live: {r:?}");
    assert_eq!(
        answers(&udp(s.dns, &query("a.test.", RecordType::A)).await),
        ["192.0.2.1"]
    );
}

/// A header-only query (QDCOUNT 0) with opcode STATUS (2).
#[tokio::test]
async fn unknown_opcodes_are_notimp_before_counts_are_checked() {
    let s = start(config()).await;
    for opcode in [1u8, 2, 4, 5, 15] {
        let mut p = vec![0u8; 12];
        p[0..2].copy_from_slice(&0xbeefu16.to_be_bytes());
        p[2] = opcode << 3 | 1;
        let r = udp_raw(s.dns, &p, Duration::from_secs(2))
            .await
            .expect("a reply");
        assert_eq!(&r[0..2], &[0xbe, 0xef]);
        assert_eq!(r[2] & 0x80, 0x80, "a response");
        assert_eq!((r[2] >> 3) & 0x0F, opcode, "opcode echoed");
        assert_eq!(r[3] & 0x0F, 4, "opcode {opcode}: NOTIMP");
    }
}

/// ECS with an unknown family: hickory cannot parse the message; the
/// FORMERR still echoes the question and carries an OPT, without the option.
#[tokio::test]
async fn formerr_echoes_question_and_opt() {
    let s = start(config()).await;
    let q = with_edns(query("www.example.com.", RecordType::A));
    let mut p = q.to_vec().expect("encode");
    // Append an ECS option with FAMILY 3 to the OPT record's RDATA.
    let opt = b"\x00\x08\x00\x04\x00\x03\x00\x00";
    let n = p.len();
    let rdlen = u16::from_be_bytes([p[n - 2], p[n - 1]]);
    assert_eq!(rdlen, 0, "the query's OPT has no options yet");
    p[n - 2..].copy_from_slice(&(opt.len() as u16).to_be_bytes());
    p.extend_from_slice(opt);
    let r = udp_raw(s.dns, &p, Duration::from_secs(2))
        .await
        .expect("a reply");
    let m = Message::from_vec(&r).expect("the FORMERR parses");
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.queries.len(), 1, "the question is echoed");
    assert_eq!(m.queries[0].name.to_ascii(), "www.example.com.");
    let edns = m.edns.as_ref().expect("an OPT record");
    assert!(edns.options().as_ref().is_empty(), "without the bad option");
}

const BY_SUBNET: &str = r#"
set inside = [10.0.0.0/8, 192.168.0.0/16, 172.16.0.0/12, 100.64.0.0/10, 198.51.100.0/24]
if {client.subnet} in inside { then answer A 192.0.2.99 } else { then answer A 192.0.2.1 }
"#;

#[tokio::test]
async fn private_ecs_does_not_steer() {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("private-ecs", &[("p.dsl", BY_SUBNET)]));
    let s = start(c).await;
    // A private ECS address says nothing about where the client is: the
    // source (127.0.0.1, its /24) decides, and the scope is 0.
    for (addr, len) in [
        ("10.1.2.0", 24),
        ("192.168.1.0", 24),
        ("172.16.0.0", 12),
        ("100.64.0.0", 10),
    ] {
        let r = udp(
            s.dns,
            &with_ecs(query("x.test.", RecordType::A), ip(addr), len),
        )
        .await;
        assert_eq!(
            answers(&r),
            ["192.0.2.1"],
            "{addr}: not steered by a private subnet"
        );
        assert_eq!(
            ecs_of(&r),
            Some((ip(addr), len, 0)),
            "{addr}: echoed, scope 0"
        );
    }
    // The documentation ranges are not private: they steer.
    let r = udp(
        s.dns,
        &with_ecs(query("x.test.", RecordType::A), ip("198.51.100.0"), 24),
    )
    .await;
    assert_eq!(answers(&r), ["192.0.2.99"]);
    assert_eq!(ecs_of(&r), Some((ip("198.51.100.0"), 24, 24)));
    // ecs.private = "use": a private network behind its own resolver.
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("private-ecs-use", &[("p.dsl", BY_SUBNET)]));
    c.ecs.private = dnspolicy_runtime::config::PrivateEcs::Use;
    let s = start(c).await;
    let r = udp(
        s.dns,
        &with_ecs(query("x.test.", RecordType::A), ip("10.1.2.0"), 24),
    )
    .await;
    assert_eq!(answers(&r), ["192.0.2.99"]);
    assert_eq!(ecs_of(&r), Some((ip("10.1.2.0"), 24, 24)));
}

#[tokio::test]
async fn nodata_after_a_cname_carries_the_soa() {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir(
        "cname-nodata",
        &[(
            "p.dsl",
            "if {query.name} == \"www.example.com\" { then rewrite \"cdn-bj.example.com\" }\n",
        )],
    ));
    let s = start(c).await;
    // cdn-bj has an A record and no AAAA.
    let r = udp(s.dns, &query("www.example.com.", RecordType::AAAA)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&r), ["CNAME cdn-bj.example.com."]);
    assert_eq!(r.authorities.len(), 1, "RFC 2308 §2.2: the SOA");
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
}

#[tokio::test]
async fn scope_may_be_longer_than_the_source() {
    // The embedded region map: 198.51.100.0/24 is CN-BJ, no IPv6 entries.
    let s = start(config()).await;
    // A /16 source inside the map's /24 CN-BJ network: the decision needed
    // the /24, which caches must be told (RFC 7871 §7.2.1).
    let r = udp(
        s.dns,
        &with_ecs(
            query("www.example.com.", RecordType::A),
            ip("198.51.0.0"),
            16,
        ),
    )
    .await;
    let (_, source, scope) = ecs_of(&r).expect("ECS echoed");
    assert_eq!(source, 16);
    assert_eq!(scope, 24, "the /24 the region map would need");
    // IPv6 ECS against a map with no IPv6 entries: the miss covers all of
    // IPv6's source prefix, not scope 0.
    let r = udp(
        s.dns,
        &with_ecs(
            query("www.example.com.", RecordType::A),
            ip("2001:db8:1::"),
            48,
        ),
    )
    .await;
    assert_eq!(ecs_of(&r).map(|e| e.2), Some(48));
}
