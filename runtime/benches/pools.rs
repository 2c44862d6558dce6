//! The whole query path in process (`Worker::handle`, the function the UDP
//! loop calls), for a static answer and for the same answer from answer
//! pools: failover (the static answer's twin), weighted and sticky by
//! subnet; side by side in one run, so the ratio pool / static is the
//! figure to read.
//!
//!   cargo bench -p dnspolicy-runtime --bench pools

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use dnspolicy_runtime::server::Worker;
use dnspolicy_runtime::{Config, Shared};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use std::net::SocketAddr;
use std::sync::Arc;

const POLICY: &str = r#"
rule static when {query.name} == "static.example.com" { then answer A 192.0.2.1 ttl 60 }
rule failover when {query.name} == "failover.example.com" { then pool web failover ttl 60 }
rule weighted when {query.name} == "weighted.example.com" { then pool web weighted ttl 60 }
rule sticky when {query.name} == "sticky.example.com" { then pool web sticky {client.subnet} ttl 60 }
"#;

const POOLS: &str = r#"
[web]
members = [
    { address = "192.0.2.1", priority = 1, weight = 1 },
    { address = "192.0.2.2", priority = 2, weight = 2 },
    { address = "192.0.2.3", priority = 3, weight = 7 },
]
"#;

fn shared() -> Arc<Shared> {
    let dir = std::env::temp_dir().join(format!("dnspolicy-bench-pools-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("p.dsl"), POLICY).expect("policy");
    let mut c = Config {
        plugin_dir: Some(dir),
        workers: 1,
        ..Config::default()
    };
    c.gslb.max_ttl = 60;
    c.pools = toml::from_str(POOLS).expect("pools");
    Arc::new(Shared::from_config(&c).expect("shared"))
}

fn packet(name: &str) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 7;
    m.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        RecordType::A,
    ));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
        "198.51.100.0".parse().expect("ip"),
        24,
        0,
    )));
    m.set_edns(e);
    m.to_vec().expect("encode")
}

fn bench(c: &mut Criterion) {
    let s = shared();
    let from = SocketAddr::from(([127, 0, 0, 1], 40000));
    let mut g = c.benchmark_group("query_path");
    for name in ["static", "failover", "weighted", "sticky"] {
        let p = packet(&format!("{name}.example.com."));
        let mut w = Worker::new(Some(0), "127.0.0.1:53".into());
        let mut out = Vec::new();
        assert!(w.handle(&s, &p, from, false, &mut out), "{name}: a reply");
        let r = Message::from_vec(&out).expect("reply");
        assert_eq!(r.answers.len(), 1, "{name}: one address");
        g.bench_function(name, |b| {
            b.iter(|| w.handle(&s, std::hint::black_box(&p), from, false, &mut out))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
