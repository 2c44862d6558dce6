//! The query path allocates nothing in steady state. A counting global
//! allocator counts this thread's allocations while a worker answers
//! queries in process (the same `Worker::handle` the UDP loop calls):
//! after a warm-up (templates made, buffers grown, GeoIP cached), 1 000
//! queries of each kind must make 0 allocations. Lua and WASM plugin calls
//! allocate (their context copies the query): their count per query is
//! stated and must stay constant.
#![allow(unsafe_code)]

use dnspolicy_runtime::server::Worker;
use dnspolicy_runtime::{Config, Shared};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; the bookkeeping touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note() {
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = COUNT.try_with(|n| n.set(n.get() + 1));
        }
    });
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while `f` runs.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    COUNT.with(Cell::get)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn plugin_dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dnspolicy-alloc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (f, text) in files {
        std::fs::write(dir.join(f), text).expect("write plugin");
    }
    dir
}

fn shared(plugins: PathBuf, geoip: Vec<PathBuf>) -> Arc<Shared> {
    let config = Config {
        plugin_dir: Some(plugins),
        zone: Some(root().join("examples/serve/example.zone")),
        geoip,
        workers: 1,
        ..Config::default()
    };
    Arc::new(Shared::from_config(&config).expect("shared state"))
}

fn query(name: &str, ecs: Option<(&str, u8)>) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x4242;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(name).expect("name"),
        RecordType::A,
    ));
    if let Some((addr, len)) = ecs {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        let ip: IpAddr = addr.parse().expect("ip");
        e.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(ip, len, 0)));
        m.set_edns(e);
    }
    m.to_vec().expect("encode")
}

/// Answers `packet` 200 times to warm up, checks the answer, then counts
/// the allocations of 1 000 more.
fn steady_state(shared: &Shared, packet: &[u8], check: impl Fn(&Message)) -> u64 {
    let mut w = Worker::new(Some(0), "127.0.0.1:53".into());
    let from = SocketAddr::from(([127, 0, 0, 1], 40000));
    let mut out = Vec::new();
    for _ in 0..200 {
        assert!(w.handle(shared, packet, from, false, &mut out), "no reply");
    }
    check(&Message::from_vec(&out).expect("the reply parses"));
    allocations(|| {
        for _ in 0..1000 {
            w.handle(shared, packet, from, false, &mut out);
        }
    })
}

fn answers(m: &Message) -> Vec<String> {
    m.answers.iter().map(|r| r.data.to_string()).collect()
}

#[test]
fn static_answer_allocates_nothing() {
    let s = shared(
        plugin_dir(
            "static",
            &[(
                "p.dsl",
                "if {query.name} == \"www.example.com\" { then answer A 192.0.2.1 }\n",
            )],
        ),
        vec![],
    );
    let n = steady_state(&s, &query("www.example.com.", None), |m| {
        assert_eq!(answers(m), ["192.0.2.1"]);
    });
    assert_eq!(n, 0, "allocations for 1 000 static answers");
}

#[test]
fn answer_pool_picks_allocate_nothing() {
    let policy = "rule w when {query.name} == \"w.example.com\" { then pool web weighted count 2 }\n\
                  rule s when {query.name} == \"s.example.com\" { then pool web sticky {client.subnet} }\n\
                  rule f when {query.name} == \"f.example.com\" { if {pool.web.healthy} > 0 { then pool web failover } }\n";
    let mut config = Config {
        plugin_dir: Some(plugin_dir("pools", &[("p.dsl", policy)])),
        zone: Some(root().join("examples/serve/example.zone")),
        workers: 1,
        ..Config::default()
    };
    config.pools = toml::from_str(
        "[web]\nmembers = [{ address = \"192.0.2.1\", priority = 2 }, { address = \"192.0.2.2\", priority = 1 }, { address = \"192.0.2.3\", weight = 3 }]\n",
    )
    .expect("pools");
    let s = Arc::new(Shared::from_config(&config).expect("shared state"));
    for (name, want) in [
        ("w.example.com.", 2),
        ("s.example.com.", 1),
        ("f.example.com.", 1),
    ] {
        let n = steady_state(&s, &query(name, Some(("198.51.100.0", 24))), |m| {
            assert_eq!(answers(m).len(), want, "{name}: {:?}", answers(m));
        });
        assert_eq!(n, 0, "allocations for 1 000 `{name}` pool answers");
    }
}

#[test]
fn rewrite_resolved_from_the_zone_allocates_nothing() {
    let s = shared(
        plugin_dir(
            "rewrite",
            &[(
                "p.dsl",
                "if {query.name} == \"www.example.com\" { then rewrite \"cdn-bj.example.com\" }\n",
            )],
        ),
        vec![],
    );
    let n = steady_state(&s, &query("www.example.com.", None), |m| {
        assert_eq!(answers(m), ["cdn-bj.example.com.", "192.0.2.10"]);
    });
    assert_eq!(n, 0, "allocations for 1 000 rewrites");
}

const GEO: &str = "rule geo when {query.name} == \"www.example.com\" {\n  if {client.region} == \"CN-BJ\" { then rewrite \"cdn-bj.example.com\" ttl 300 }\n  else { then rewrite \"cdn-global.example.com\" ttl 300 }\n}\n";

#[test]
fn geo_by_csv_allocates_nothing() {
    let s = shared(
        plugin_dir("geo-csv", &[("p.dsl", GEO)]),
        vec![root().join("examples/geo/regions.csv")],
    );
    let n = steady_state(
        &s,
        &query("www.example.com.", Some(("198.51.100.0", 24))),
        |m| {
            assert_eq!(answers(m), ["cdn-bj.example.com.", "192.0.2.10"]);
        },
    );
    assert_eq!(n, 0, "allocations for 1 000 geo answers (CSV)");
}

#[test]
fn geo_by_mmdb_allocates_nothing() {
    const GEO_GB: &str = "rule geo when {query.name} == \"www.example.com\" {\n  if {client.country} == \"GB\" { then rewrite \"cdn-bj.example.com\" ttl 300 }\n  else { then rewrite \"cdn-global.example.com\" ttl 300 }\n}\n";
    let s = shared(
        plugin_dir("geo-mmdb", &[("p.dsl", GEO_GB)]),
        vec![root().join("../shared/geoip/GeoIP2-City-Test.mmdb")],
    );
    // 81.2.69.144/28 is GB in the test database.
    let n = steady_state(
        &s,
        &query("www.example.com.", Some(("81.2.69.144", 28))),
        |m| {
            assert_eq!(answers(m), ["cdn-bj.example.com.", "192.0.2.10"]);
        },
    );
    assert_eq!(
        n, 0,
        "allocations for 1 000 geo answers (MaxMind DB, cache hit)"
    );
}

#[test]
fn nxdomain_with_soa_allocates_nothing() {
    let s = shared(
        plugin_dir(
            "nx",
            &[(
                "p.dsl",
                "if {query.name} ends_with \"example.com\" { then nxdomain }\n",
            )],
        ),
        vec![],
    );
    let n = steady_state(&s, &query("gone.example.com.", None), |m| {
        assert_eq!(
            m.metadata.response_code,
            hickory_proto::op::ResponseCode::NXDomain
        );
        assert_eq!(m.authorities.len(), 1, "the zone's SOA");
    });
    assert_eq!(n, 0, "allocations for 1 000 NXDOMAIN answers");
}

#[test]
fn refused_allocates_nothing() {
    let s = shared(
        plugin_dir(
            "refused",
            &[(
                "p.dsl",
                "if {query.name} == \"www.example.com\" { then answer A 192.0.2.1 }\n",
            )],
        ),
        vec![],
    );
    let n = steady_state(&s, &query("elsewhere.test.", None), |m| {
        assert_eq!(
            m.metadata.response_code,
            hickory_proto::op::ResponseCode::Refused
        );
    });
    assert_eq!(n, 0, "allocations for 1 000 REFUSED answers");
}

/// Lua and WASM calls build the plugin's view of the query: a few
/// allocations each, the same every time.
#[test]
fn lua_and_wasm_calls_allocate_a_constant_amount() {
    let lua = std::fs::read_to_string(root().join("examples/plugins/dns/geo_redirect.lua"))
        .expect("lua example");
    let wat = std::fs::read_to_string(root().join("examples/plugins/wasm/geo_redirect.wat"))
        .expect("wat example");
    for (kind, file, text) in [("lua", "p.lua", lua), ("wasm", "p.wat", wat)] {
        let s = shared(
            plugin_dir(&format!("kind-{kind}"), &[(file, &text)]),
            vec![root().join("examples/geo/regions.csv")],
        );
        let packet = query("www.example.com.", Some(("198.51.100.0", 24)));
        let first = steady_state(&s, &packet, |m| {
            assert_eq!(answers(m), ["cdn-bj.example.com.", "192.0.2.10"]);
        });
        let second = steady_state(&s, &packet, |_| {});
        eprintln!("{kind}: {first} and {second} allocations per 1 000 queries");
        assert!(first > 0, "{kind}: the count is real");
        // The same per query, run after run; Lua's collector may add a few
        // in a thousand.
        assert_eq!(
            (first + 500) / 1000,
            (second + 500) / 1000,
            "{kind}: per query"
        );
        assert!(
            first.abs_diff(second) * 100 <= first,
            "{kind}: {first} vs {second}"
        );
        assert!(
            first % 1000 <= 20 || first % 1000 >= 980,
            "{kind}: {first} per 1 000"
        );
    }
}

/// The counter counts: one `Vec` is one allocation.
#[test]
fn the_counter_counts() {
    let n = allocations(|| {
        let v: Vec<u8> = Vec::with_capacity(16);
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}
