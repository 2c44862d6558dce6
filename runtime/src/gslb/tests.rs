//! The picks' promises, measured on the real selection code: weighted
//! shares, how few keys move when a member joins, failover order, nearest
//! by coordinates and by region, fallbacks, families and the TTL cap.

use super::*;
use dnspolicy_compiler::ir::hash::hash_value;
use dnspolicy_compiler::{Cidr, Value};

fn pools(toml_text: &str) -> Pools {
    #[derive(serde::Deserialize)]
    struct Doc {
        pools: BTreeMap<String, PoolConfig>,
    }
    let d: Doc = toml::from_str(toml_text).expect("pool toml");
    Pools::new(&d.pools, 30).expect("valid pools")
}

fn verdict(pool: &str, pick: Pick, count: u32, key: Option<i64>) -> Verdict {
    Verdict::Pool {
        pool: pool.into(),
        pick,
        count,
        ttl: 300,
        key,
    }
}

fn nowhere() -> Place {
    (None, "".into(), "".into())
}

fn ips(v: &Verdict) -> Vec<String> {
    match v {
        Verdict::Answer { data, .. } => data.iter().map(|d| d.to_string()).collect(),
        other => panic!("not an address answer: {other:?}"),
    }
}

const THREE: &str = r#"
[pools.web]
members = [
    { address = "192.0.2.1", weight = 1 },
    { address = "192.0.2.2", weight = 2 },
    { address = "192.0.2.3", weight = 7 },
]
"#;

#[test]
fn weighted_shares_follow_the_weights() {
    let p = pools(THREE);
    let v = verdict("web", Pick::Weighted, 1, None);
    let mut hits = BTreeMap::<String, u32>::new();
    let n = 100_000;
    for _ in 0..n {
        let a = p.answer(&v, 1, &mut nowhere).expect("pool exists");
        *hits.entry(ips(&a)[0].clone()).or_default() += 1;
    }
    for (ip, want) in [("192.0.2.1", 0.1), ("192.0.2.2", 0.2), ("192.0.2.3", 0.7)] {
        let share = f64::from(hits[ip]) / f64::from(n);
        assert!(
            (share - want).abs() <= 0.01,
            "{ip}: share {share}, weight share {want}"
        );
    }
    // count 2: two distinct members every time.
    let v = verdict("web", Pick::Weighted, 2, None);
    for _ in 0..1000 {
        let a = ips(&p.answer(&v, 1, &mut nowhere).expect("pool"));
        assert_eq!(a.len(), 2);
        assert_ne!(a[0], a[1]);
    }
}

fn subnet_key(i: u32) -> i64 {
    let addr = std::net::Ipv4Addr::from(0x0100_0000 + (i << 8));
    hash_value(&Value::Cidr(Cidr::containing(addr.into(), 24)))
}

#[test]
fn sticky_keeps_clients_and_moves_few_when_a_member_joins() {
    let before = pools(
        r#"[pools.web]
members = [{ address = "192.0.2.1" }, { address = "192.0.2.2" }, { address = "192.0.2.3" }]"#,
    );
    let after = pools(
        r#"[pools.web]
members = [{ address = "192.0.2.1" }, { address = "192.0.2.2" }, { address = "192.0.2.3" }, { address = "192.0.2.4" }]"#,
    );
    let n = 10_000;
    let (mut moved, mut per_member) = (0, BTreeMap::<String, u32>::new());
    for i in 0..n {
        let v = verdict("web", Pick::Sticky, 1, Some(subnet_key(i)));
        let a = ips(&before.answer(&v, 1, &mut nowhere).expect("pool"))[0].clone();
        // Stable: the same key, the same member.
        assert_eq!(
            a,
            ips(&before.answer(&v, 1, &mut nowhere).expect("pool"))[0]
        );
        let b = ips(&after.answer(&v, 1, &mut nowhere).expect("pool"))[0].clone();
        *per_member.entry(a.clone()).or_default() += 1;
        if a != b {
            moved += 1;
            assert_eq!(b, "192.0.2.4", "a key only ever moves to the new member");
        }
    }
    let share = f64::from(moved) / f64::from(n);
    assert!(share <= 0.30, "{share} of the subnets moved");
    assert!(share >= 0.20, "the new member takes its share: {share}");
    for (m, c) in per_member {
        let s = f64::from(c) / f64::from(n);
        assert!((s - 1.0 / 3.0).abs() < 0.03, "{m} has {s} of the keys");
    }
}

#[test]
fn failover_takes_the_best_priority_that_is_healthy() {
    let p = pools(
        r#"[pools.db]
members = [
    { address = "192.0.2.3", priority = 3 },
    { address = "192.0.2.1", priority = 1 },
    { address = "192.0.2.2", priority = 2 },
]"#,
    );
    let v = verdict("db", Pick::Failover, 1, None);
    assert_eq!(
        ips(&p.answer(&v, 1, &mut nowhere).expect("pool")),
        ["192.0.2.1"]
    );
    p.pools[0].members[1].healthy.store(false, Relaxed);
    assert_eq!(
        ips(&p.answer(&v, 1, &mut nowhere).expect("pool")),
        ["192.0.2.2"]
    );
    assert_eq!(p.healthy("db"), Some(2));
    let v2 = verdict("db", Pick::Failover, 2, None);
    assert_eq!(
        ips(&p.answer(&v2, 1, &mut nowhere).expect("pool")),
        ["192.0.2.2", "192.0.2.3"]
    );
}

#[test]
fn nearest_by_coordinates_then_region() {
    let p = pools(
        r#"[pools.edge]
members = [
    { address = "192.0.2.10", location = [51.5, -0.13] },
    { address = "192.0.2.20", location = [47.6, -122.3] },
    { address = "192.0.2.30", region = "SE-E" },
]"#,
    );
    let v = verdict("edge", Pick::Nearest, 1, None);
    let at = |loc: Option<(f64, f64)>, region: &str, country: &str| {
        let (r, c): (Arc<str>, Arc<str>) = (region.into(), country.into());
        ips(&p
            .answer(&v, 1, &mut || (loc, r.clone(), c.clone()))
            .expect("pool"))[0]
            .clone()
    };
    assert_eq!(
        at(Some((48.85, 2.35)), "FR-IDF", "FR"),
        "192.0.2.10",
        "Paris is nearest London"
    );
    assert_eq!(
        at(Some((45.5, -122.7)), "US-OR", "US"),
        "192.0.2.20",
        "Portland is nearest Seattle"
    );
    assert_eq!(
        at(None, "SE-E", "SE"),
        "192.0.2.30",
        "no coordinates: the region decides"
    );
}

#[test]
fn fallbacks_families_names_and_ttl_cap() {
    let p = pools(
        r#"[pools.web]
fallback = "backup"
members = [
    { address = "192.0.2.1", check = "tcp://127.0.0.1:9" },
    { address = "2001:db8::1", check = "tcp://127.0.0.1:9" },
]
[pools.backup]
members = [{ address = "198.51.100.1" }]
[pools.cname]
members = [{ name = "Edge.Example.NET." }]
[pools.lonely]
members = [{ address = "192.0.2.9", check = "tcp://127.0.0.1:9" }]
"#,
    );
    let v = verdict("web", Pick::All, 0, None);
    // Health-checked: the TTL is capped at max_ttl.
    let a = p.answer(&v, 1, &mut nowhere).expect("pool");
    assert_eq!(
        a,
        Verdict::Answer {
            rtype: 1,
            data: [Value::Ip("192.0.2.1".parse().expect("address"))]
                .into_iter()
                .collect(),
            ttl: 30
        }
    );
    assert_eq!(
        ips(&p.answer(&v, 28, &mut nowhere).expect("pool")),
        ["2001:db8::1"]
    );
    assert_eq!(
        p.answer(&v, 16, &mut nowhere),
        Some(Verdict::Nodata),
        "TXT: nothing of that type"
    );
    for m in &p.get("web").expect("web").members {
        m.healthy.store(false, Relaxed);
    }
    // All down: the backup pool answers (its TTL is not capped: no checks).
    let a = p.answer(&v, 1, &mut nowhere).expect("pool");
    assert_eq!(
        a,
        Verdict::Answer {
            rtype: 1,
            data: [Value::Ip("198.51.100.1".parse().expect("address"))]
                .into_iter()
                .collect(),
            ttl: 300
        }
    );
    // No backup: every member, rather than nothing.
    p.get("lonely").expect("lonely").members[0]
        .healthy
        .store(false, Relaxed);
    assert_eq!(
        ips(&p
            .answer(&verdict("lonely", Pick::All, 0, None), 1, &mut nowhere)
            .expect("pool")),
        ["192.0.2.9"]
    );
    assert_eq!(
        p.answer(&verdict("cname", Pick::All, 0, None), 1, &mut nowhere),
        Some(Verdict::Rewrite {
            target: "edge.example.net".into(),
            ttl: 300
        })
    );
    assert_eq!(
        p.answer(&verdict("nope", Pick::All, 0, None), 1, &mut nowhere),
        None
    );
    assert_eq!(p.unknown.load(Relaxed), 1);
}

#[test]
fn bad_pools_are_refused_with_the_reason() {
    #[derive(serde::Deserialize)]
    struct Doc {
        pools: BTreeMap<String, PoolConfig>,
    }
    let err = |t: &str| {
        let d: Doc = toml::from_str(t).expect("toml");
        Pools::new(&d.pools, 30).expect_err("invalid").to_string()
    };
    assert!(err("[pools.a]\nmembers = []").contains("at least one member"));
    assert!(err(
        "[pools.a]\nmembers = [{ address = \"192.0.2.1\", check = \"ftp://1.2.3.4:21\" }]"
    )
    .contains("unknown scheme `ftp`"));
    assert!(
        err("[pools.a]\nmembers = [{ address = \"192.0.2.1\", name = \"x.example\" }]")
            .contains("exactly one of")
    );
    assert!(
        err("[pools.a]\nfallback = \"b\"\nmembers = [{ address = \"192.0.2.1\" }]")
            .contains("fallback `b`")
    );
    assert!(
        err("[pools.a]\nhealth = { fall = 0 }\nmembers = [{ address = \"192.0.2.1\" }]")
            .contains("at least 1")
    );
    assert!(err(
        "[pools.a]\nmembers = [{ address = \"192.0.2.1\", check = \"dns://127.0.0.1:53\" }]"
    )
    .contains("names the question"));
}

#[test]
fn probes_parse() {
    use health::Probe;
    assert_eq!(
        Probe::parse("tcp://127.0.0.1:19001"),
        Ok(Probe::Tcp("127.0.0.1:19001".parse().expect("address")))
    );
    assert!(
        matches!(Probe::parse("http://[::1]:8080/healthz?x=1"), Ok(Probe::Http { path, .. }) if path == "/healthz?x=1")
    );
    assert!(matches!(
        Probe::parse("dns://127.0.0.1:5300/www.example.com?type=aaaa"),
        Ok(Probe::Dns {
            qtype: hickory_proto::rr::RecordType::AAAA,
            ..
        })
    ));
    assert!(
        Probe::parse("tcp://localhost:80").is_err(),
        "hosts are addresses"
    );
}
