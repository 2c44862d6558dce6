//! The wire fast path gives the answers hickory's path gives. The same
//! server state is built twice, with and without the fast path
//! (`Config::fast_path`), and every query of a corpus (names in and out of
//! the zone, each record type the policies answer, with and without EDNS,
//! DO, ECS of both families, upper case, TCP and UDP, tiny UDP sizes) is
//! answered by both: the replies must say the same thing, section by
//! section (the bytes may differ: name compression is chosen differently).

use dnspolicy_runtime::server::Worker;
use dnspolicy_runtime::{Config, Shared};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, Record, RecordType};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const POLICY: &str = r#"
set blocked = ["ads.example.net", "*.tracker.example"]
set bj = [198.51.100.0/24, 2001:db8:100::/48]
rule block priority 100 { if {query.name} in blocked { then nxdomain } }
rule empty priority 90 { if {query.name} == "empty.example.com" { then nodata } }
rule refused priority 80 { if {query.name} == "no.test" { then refuse } }
rule broken priority 70 { if {query.name} == "broken.test" { then servfail } }
rule tc priority 60 { if {query.name} == "tc.test" { then truncate } }
rule many priority 50 { if {query.name} == "many.test" { then answer A 192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4, 192.0.2.5, 192.0.2.6, 192.0.2.7, 192.0.2.8, 192.0.2.9, 192.0.2.10, 192.0.2.11, 192.0.2.12, 192.0.2.13, 192.0.2.14, 192.0.2.15, 192.0.2.16, 192.0.2.17, 192.0.2.18, 192.0.2.19, 192.0.2.20, 192.0.2.21, 192.0.2.22, 192.0.2.23, 192.0.2.24, 192.0.2.25, 192.0.2.26, 192.0.2.27, 192.0.2.28, 192.0.2.29, 192.0.2.30, 192.0.2.31, 192.0.2.32 ttl 5 } }
rule v6 priority 40 { if {query.name} == "v6.test" { then answer AAAA 2001:db8::1 ttl 7 } }
rule txt priority 35 { if {query.name} == "txt.test" { then answer TXT "hello" } }
rule geo priority 30 when {query.name} == "www.example.com" {
    if {client.subnet} in bj || {client.region} == "CN-BJ" { then rewrite "cdn-bj.example.com" ttl 300 }
    else { then rewrite "cdn-global.example.com" ttl 300 }
}
rule alias priority 20 { if {query.name} == "alias.test" { then rewrite "alias.example.com" } }
rule away priority 10 { if {query.name} == "away.test" { then rewrite "elsewhere.invalid" } }
rule static priority 5 { if {query.name} ends_with "static.test" { then answer A 192.0.2.1 } }
"#;

fn shared(fast: bool) -> Shared {
    let dir = std::env::temp_dir().join(format!("dnspolicy-fastpath-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("p.dsl"), POLICY).expect("policy");
    let config = Config {
        plugin_dir: Some(dir),
        zone: Some(root().join("examples/serve/example.zone")),
        geoip: vec![root().join("examples/geo/regions.csv")],
        workers: 1,
        fast_path: fast,
        ..Config::default()
    };
    let s = Shared::from_config(&config).expect("shared");
    let chain = s.chain.load();
    assert!(chain.failed.is_empty(), "{:?}", chain.failed);
    assert_eq!(chain.plugins.len(), 1);
    drop(chain);
    s
}

struct Case {
    name: &'static str,
    rtype: RecordType,
    edns: Option<(u16, bool)>,
    ecs: Option<(&'static str, u8)>,
}

fn packet(c: &Case) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(c.name).expect("name"),
        c.rtype,
    ));
    if let Some((payload, dnssec_ok)) = c.edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        e.set_dnssec_ok(dnssec_ok);
        if let Some((addr, len)) = c.ecs {
            let ip: IpAddr = addr.parse().expect("ip");
            e.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(ip, len, 0)));
        }
        m.set_edns(e);
    }
    m.to_vec().expect("encode")
}

/// What a reply says, independent of how its names were compressed.
fn meaning(bytes: &[u8]) -> String {
    let m = Message::from_vec(bytes).expect("the reply parses");
    let rec = |r: &Record| {
        format!(
            "{} {} {:?} {} {}",
            r.name.to_lowercase(),
            r.ttl,
            r.dns_class,
            r.record_type(),
            r.data.to_string().to_lowercase()
        )
    };
    let md = &m.metadata;
    let edns = m.edns.as_ref().map(|e| {
        let ecs = match e.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(c)) => {
                format!("{}/{}/{}", c.addr(), c.source_prefix(), c.scope_prefix())
            }
            _ => "-".into(),
        };
        format!(
            "payload {} do {} version {} ecs {ecs}",
            e.max_payload(),
            e.flags().dnssec_ok,
            e.version()
        )
    });
    format!(
        "id {} qr {:?} op {:?} aa {} tc {} rd {} ra {} cd {} rcode {:?}\nq {:?}\nan {:?}\nns {:?}\nar {:?}\nedns {:?}",
        md.id,
        md.message_type,
        md.op_code,
        md.authoritative,
        md.truncation,
        md.recursion_desired,
        md.recursion_available,
        md.checking_disabled,
        md.response_code,
        m.queries
            .iter()
            .map(|q| format!("{} {} {}", q.name.to_lowercase(), q.query_type, q.query_class))
            .collect::<Vec<_>>(),
        m.answers.iter().map(rec).collect::<Vec<_>>(),
        m.authorities.iter().map(rec).collect::<Vec<_>>(),
        m.additionals.iter().map(rec).collect::<Vec<_>>(),
        edns,
    )
}

#[test]
fn both_paths_give_the_same_answers() {
    let (fast, slow) = (shared(true), shared(false));
    let names = [
        "www.example.com.",
        "WWW.Example.COM.",
        "ads.example.net.",
        "a.b.tracker.example.",
        "empty.example.com.",
        "gone.example.com.",
        "cdn-bj.example.com.",
        "alias.example.com.",
        "alias.test.",
        "away.test.",
        "no.test.",
        "broken.test.",
        "tc.test.",
        "many.test.",
        "v6.test.",
        "txt.test.",
        "static.test.",
        "deep.static.test.",
        "elsewhere.test.",
        "example.com.",
        ".",
    ];
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::MX,
        RecordType::CNAME,
        RecordType::ANY,
    ];
    type Opt = (Option<(u16, bool)>, Option<(&'static str, u8)>);
    let ednses: [Opt; 7] = [
        (None, None),
        (Some((1232, false)), None),
        (Some((4096, true)), None),
        (Some((512, false)), Some(("198.51.100.0", 24))),
        (Some((1232, false)), Some(("203.0.113.0", 24))),
        (Some((1232, true)), Some(("2001:db8:100::", 48))),
        (Some((1232, false)), Some(("0.0.0.0", 0))),
    ];
    let from = SocketAddr::from(([127, 0, 0, 1], 40000));
    let (mut wf, mut ws) = (
        Worker::new(Some(0), "127.0.0.1:53".into()),
        Worker::new(Some(0), "127.0.0.1:53".into()),
    );
    let (mut of, mut os) = (Vec::new(), Vec::new());
    let mut compared = 0;
    for name in names {
        for rtype in types {
            for (edns, ecs) in ednses {
                let c = Case {
                    name,
                    rtype,
                    edns,
                    ecs,
                };
                let p = packet(&c);
                for tcp in [false, true] {
                    // Twice: the first query of a kind makes its template,
                    // the second uses it.
                    for round in 0..2 {
                        let a = wf.handle(&fast, &p, from, tcp, &mut of);
                        let b = ws.handle(&slow, &p, from, tcp, &mut os);
                        assert_eq!(
                            a, b,
                            "{name} {rtype} {edns:?} {ecs:?} tcp {tcp}: reply or not"
                        );
                        if a {
                            assert_eq!(
                                meaning(&of),
                                meaning(&os),
                                "{name} {rtype} {edns:?} {ecs:?} tcp {tcp} round {round}"
                            );
                            compared += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(compared > 3000, "only {compared} replies compared");
    // And the answers are the policy's, not a refusal of everything.
    let bj = packet(&Case {
        name: "www.example.com.",
        rtype: RecordType::A,
        edns: Some((1232, false)),
        ecs: Some(("198.51.100.0", 24)),
    });
    assert!(wf.handle(&fast, &bj, from, false, &mut of));
    let text = meaning(&of);
    assert!(
        text.contains("cdn-bj.example.com. 300") && text.contains("198.51.100.0/24/24"),
        "{text}"
    );
    let many = packet(&Case {
        name: "many.test.",
        rtype: RecordType::A,
        edns: None,
        ecs: None,
    });
    assert!(wf.handle(&fast, &many, from, false, &mut of));
    let m = Message::from_vec(&of).expect("parses");
    assert!(m.metadata.truncation, "32 addresses do not fit 512 bytes");
}
