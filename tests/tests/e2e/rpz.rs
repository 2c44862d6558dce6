//! `dnspolicy import rpz` against the reference: the same Response Policy
//! Zone loaded into Unbound (its `rpz:` support) and, imported, into
//! dnspolicy; the same queries to both must get the same outcome (RCODE,
//! answer data, TC, or no answer at all). Names no trigger stops come from
//! a third server, a plain dnspolicy serving the test zone, which Unbound
//! forwards to and the policy server serves itself.

use dnspolicy_e2e::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Unbound(Child);

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const ZONE: &str = "$ORIGIN example.com.\n$TTL 60\n@ SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 60\n  NS ns.example.com.\n\
ns A 192.0.2.53\ngood A 198.51.100.6\nok.bad A 198.51.100.5\nx.bad A 198.51.100.7\nempty A 198.51.100.8\n\
drop A 198.51.100.9\ntcp A 198.51.100.10\nwalled A 198.51.100.11\n";

fn unbound(rpz: &Path, upstream: SocketAddr) -> (Unbound, SocketAddr) {
    let dir = temp_dir("unbound-rpz");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("port")
        .port();
    let conf = format!(
        r#"server:
  interface: 127.0.0.1
  port: {port}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{dir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "respip iterator"
forward-zone:
  name: "."
  forward-addr: {ip}@{up}
rpz:
  name: "rpz.example."
  zonefile: "{rpz}"
"#,
        dir = dir.display(),
        ip = upstream.ip(),
        up = upstream.port(),
        rpz = rpz.display(),
    );
    let path = dir.join("unbound.conf");
    std::fs::write(&path, conf).expect("unbound.conf");
    let child = Command::new("unbound")
        .args(["-d", "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start unbound");
    (Unbound(child), SocketAddr::from(([127, 0, 0, 1], port)))
}

/// What a query got: no answer, or (RCODE, TC, answer data sorted).
fn outcome(r: Option<Message>) -> Option<(ResponseCode, bool, Vec<String>)> {
    let r = r?;
    let mut data: Vec<String> = r
        .answers
        .iter()
        .filter_map(|a| match &a.data {
            RData::A(x) => Some(x.0.to_string()),
            RData::AAAA(x) => Some(x.0.to_string()),
            RData::TXT(t) => Some(t.to_string()),
            _ => None,
        })
        .collect();
    data.sort();
    Some((r.metadata.response_code, r.metadata.truncation, data))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_rpz_answers_as_unbound_does() {
    if !have_tool("unbound", "unbound") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rpz = root.join("examples/rpz/blocklist.rpz");
    let text = std::fs::read_to_string(&rpz).expect("rpz");
    let imported =
        dnspolicy_runtime::import::rpz::import(&[("blocklist.rpz".into(), text)]).expect("imports");
    assert_eq!(
        imported.warnings.len(),
        2,
        "rpz-ip and rpz-nsdname: {:?}",
        imported.warnings
    );
    assert!(imported.warnings.iter().any(|w| w.contains("rpz-ip")));
    assert!(imported.warnings.iter().any(|w| w.contains("rpz-nsdname")));
    let dir = temp_dir("rpz-zone");
    std::fs::write(dir.join("example.com.zone"), ZONE).expect("zone");
    // The plain server: the zone, no policy.
    let mut base = config();
    base.plugin_dir = Some(plugin_dir("rpz-none", &[]));
    base.zone = Some(dir.join("example.com.zone"));
    let b = start(base).await;
    // The policy server: the imported RPZ in front of the same zone.
    let mut pc = config();
    pc.plugin_dir = Some(plugin_dir("rpz-policy", &[("rpz.dsl", &imported.policy)]));
    pc.zone = Some(dir.join("example.com.zone"));
    let p = start(pc).await;
    let (_u, u) = unbound(&rpz, b.dns);
    // Unbound takes a moment to listen and load the zone.
    let t0 = Instant::now();
    while udp_from(
        ip("127.0.0.1"),
        u,
        &query("good.example.com.", RecordType::A),
        Duration::from_millis(500),
    )
    .await
    .is_none()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "unbound did not start"
        );
    }
    let cases: &[(&str, &str, RecordType)] = &[
        ("127.0.0.1", "good.example.com.", RecordType::A),
        ("127.0.0.1", "bad.example.com.", RecordType::A),
        ("127.0.0.1", "x.bad.example.com.", RecordType::A),
        ("127.0.0.1", "deep.x.bad.example.com.", RecordType::AAAA),
        ("127.0.0.1", "ok.bad.example.com.", RecordType::A),
        ("127.0.0.1", "empty.example.com.", RecordType::A),
        ("127.0.0.1", "drop.example.com.", RecordType::A),
        ("127.0.0.1", "tcp.example.com.", RecordType::A),
        ("127.0.0.1", "walled.example.com.", RecordType::A),
        ("127.0.0.1", "walled.example.com.", RecordType::TXT),
        ("127.0.0.1", "walled.example.com.", RecordType::AAAA),
        ("127.0.0.1", "a.garden.example.com.", RecordType::A),
        ("127.0.0.7", "good.example.com.", RecordType::A),
        ("127.0.0.7", "walled.example.com.", RecordType::A),
    ];
    let mut table = String::new();
    for (from, name, t) in cases {
        let from: IpAddr = ip(from);
        let m = query(name, *t);
        let ours = outcome(udp_from(from, p.dns, &m, Duration::from_millis(800)).await);
        let theirs = outcome(udp_from(from, u, &m, Duration::from_millis(800)).await);
        table.push_str(&format!(
            "{from} {name} {t}: dnspolicy {ours:?}, unbound {theirs:?}\n"
        ));
        assert_eq!(ours, theirs, "{from} {name} {t}\n{table}");
    }
    eprintln!("{table}");
    // The triggers did something (the comparison is not between two
    // servers that ignore the zone).
    assert!(
        table.contains("bad.example.com. A: dnspolicy Some((NXDomain"),
        "{table}"
    );
    assert!(
        table.contains("drop.example.com. A: dnspolicy None"),
        "{table}"
    );
    assert!(table.contains("192.0.2.80"), "{table}");
    b.stop().await;
    p.stop().await;
}
