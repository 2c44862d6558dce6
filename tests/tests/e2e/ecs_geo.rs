//! Geo steering by source address, by ECS, by CSV map and MaxMind DB, and
//! the ECS scope that tells caches the truth.

use dnspolicy_e2e::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

#[tokio::test]
async fn embedded_default_steers_by_region() {
    let s = start(config()).await;
    // A Beijing client by ECS (the example region map: 198.51.100.0/24 is CN-BJ).
    let r = udp(
        s.dns,
        &with_ecs(
            query("www.example.com.", RecordType::A),
            ip("198.51.100.0"),
            24,
        ),
    )
    .await;
    assert_eq!(answers(&r), vec!["CNAME cdn-bj.example.com.", "192.0.2.10"]);
    assert_eq!(
        ecs_of(&r),
        Some((ip("198.51.100.0"), 24, 24)),
        "scope = the /24 the region came from"
    );
    // A US client by ECS.
    let r = udp(
        s.dns,
        &with_ecs(
            query("www.example.com.", RecordType::A),
            ip("203.0.113.0"),
            24,
        ),
    )
    .await;
    assert_eq!(
        answers(&r),
        vec!["CNAME cdn-global.example.com.", "192.0.2.20"]
    );
    // No ECS: the source address (127.0.0.1, unknown) decides.
    let r = udp(s.dns, &query("www.example.com.", RecordType::A)).await;
    assert_eq!(answers(&r)[1], "192.0.2.20");
    // A decision that did not look at the client: scope 0.
    let r = udp(
        s.dns,
        &with_ecs(
            query("cdn-bj.example.com.", RecordType::A),
            ip("198.51.100.0"),
            24,
        ),
    )
    .await;
    assert_eq!(ecs_of(&r), Some((ip("198.51.100.0"), 24, 0)));
    // A /16 source: the region map has nothing for 198.51.0.0, so global.
    let r = udp(
        s.dns,
        &with_ecs(
            query("www.example.com.", RecordType::A),
            ip("198.51.0.0"),
            16,
        ),
    )
    .await;
    assert_eq!(answers(&r)[1], "192.0.2.20");
}

#[tokio::test]
async fn ipv4_mapped_ecs_scope_is_in_the_ipv6_family() {
    let s = start(config()).await;
    let mapped = ip("::ffff:198.51.100.0");
    let r = udp(
        s.dns,
        &with_ecs(query("www.example.com.", RecordType::A), mapped, 120),
    )
    .await;
    assert_eq!(
        answers(&r)[1],
        "192.0.2.10",
        "the mapped address is the Beijing client"
    );
    assert_eq!(
        ecs_of(&r),
        Some((mapped, 120, 120)),
        "a /24 of IPv4 is a /120 of IPv6"
    );
}

#[tokio::test]
async fn malformed_ecs_is_formerr() {
    let s = start(config()).await;
    let good = with_ecs(
        query("www.example.com.", RecordType::A),
        ip("198.51.100.0"),
        24,
    )
    .to_vec()
    .expect("encode");
    // Set a stray bit beyond /24 by appending an extra address octet: last
    // 7 bytes are FAMILY(2) SRC SCOPE ADDR(3); rebuild with 4 address octets.
    let mut bad = good.clone();
    let n = bad.len();
    // option length 7 -> 8 and rdlength +1, then the extra octet.
    bad[n - 9] += 1; // OPTION-LENGTH low byte
    bad[n - 13] += 1; // RDLENGTH low byte
    bad.push(7);
    let r = udp_raw(s.dns, &bad, std::time::Duration::from_secs(2))
        .await
        .expect("answered");
    let m = hickory_proto::op::Message::from_vec(&r).expect("valid");
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
}

#[tokio::test]
async fn maxmind_city_db_and_scope_from_the_network() {
    let mut c = config();
    c.geoip = vec![shared_dir().join("geoip/GeoIP2-City-Test.mmdb")];
    c.plugin_dir = Some(plugin_dir(
        "mmdb",
        &[(
            "geo.dsl",
            r#"if {query.name} == "www.example.com" {
                 if {client.region} == "GB-ENG" { then rewrite "cdn-bj.example.com" }
                 else if {client.country} == "US" { then answer A 192.0.2.55 }
                 else { then rewrite "cdn-global.example.com" }
               }"#,
        )],
    ));
    let s = start(c).await;
    // 81.2.69.144/28 is London (GB-ENG) in the test DB: scope = 28.
    let r = udp(
        s.dns,
        &with_ecs(
            query("www.example.com.", RecordType::A),
            ip("81.2.69.144"),
            28,
        ),
    )
    .await;
    assert_eq!(answers(&r)[0], "CNAME cdn-bj.example.com.");
    assert_eq!(ecs_of(&r).map(|e| e.2), Some(28));
    // The DB holds 214.78.120.0/22 as one network: the answer holds for
    // all of it, so the scope (22) is shorter than the /24 source.
    let r = udp(
        s.dns,
        &with_ecs(
            query("www.example.com.", RecordType::A),
            ip("214.78.120.0"),
            24,
        ),
    )
    .await;
    assert_eq!(answers(&r), vec!["192.0.2.55"], "214.78.120.0/22 is US-CA");
    assert_eq!(
        ecs_of(&r).map(|e| e.2),
        Some(22),
        "the DB's /22 covers the whole /24 source"
    );
    let r = udp(
        s.dns,
        &with_ecs(
            query("www.example.com.", RecordType::A),
            ip("89.160.20.128"),
            25,
        ),
    )
    .await;
    assert_eq!(
        answers(&r)[0],
        "CNAME cdn-global.example.com.",
        "SE is neither"
    );
}

#[tokio::test]
async fn csv_region_map_by_source_address() {
    let dir = temp_dir("csv");
    std::fs::write(
        dir.join("regions.csv"),
        "cidr,country,region\n127.0.0.0/8,CN,CN-BJ\n",
    )
    .expect("csv");
    let mut c = config();
    c.geoip = vec![dir.join("regions.csv")];
    let s = start(c).await;
    // The client itself (127.0.0.1) is a Beijing client now.
    let r = udp(s.dns, &query("www.example.com.", RecordType::A)).await;
    assert_eq!(answers(&r), vec!["CNAME cdn-bj.example.com.", "192.0.2.10"]);
}

// `dig` blocks its thread: the server needs another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_quick_start() {
    if !have_tool("dig", "bind9-dnsutils") {
        return;
    }
    let s = start(config()).await;
    let text = dig(s.dns, &["www.example.com", "+subnet=198.51.100.7/24"]);
    assert!(text.contains("status: NOERROR"), "{text}");
    assert!(text.contains("cdn-bj.example.com."), "{text}");
    assert!(text.contains("192.0.2.10"), "{text}");
    assert!(text.contains("CLIENT-SUBNET: 198.51.100.0/24/24"), "{text}");
}
