//! Behind a real ECS cache: Unbound's subnetcache module in front of the
//! embedded example, forwarding the client's subnet. Clients of different
//! regions asking in turn must each keep getting their own answer from the
//! cache (the scope we send is what lets Unbound keep them apart).

use dnspolicy_e2e::*;
use hickory_proto::rr::RecordType;
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Unbound(Child);

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

fn unbound_in_front_of(upstream: SocketAddr) -> (Unbound, SocketAddr) {
    let dir = temp_dir("unbound");
    let port = free_port();
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
  qname-minimisation: no
  module-config: "subnetcache iterator"
  send-client-subnet: 127.0.0.1
  max-client-subnet-ipv4: 24
  client-subnet-always-forward: yes
forward-zone:
  name: "example.com"
  forward-addr: {ip}@{up}
"#,
        dir = dir.display(),
        ip = upstream.ip(),
        up = upstream.port(),
    );
    let path = dir.join("unbound.conf");
    std::fs::write(&path, conf).expect("write unbound.conf");
    let child = Command::new("unbound")
        .args(["-d", "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start unbound");
    (Unbound(child), SocketAddr::from(([127, 0, 0, 1], port)))
}

#[tokio::test]
async fn clients_of_each_region_keep_their_answer_through_unbound() {
    if !have_tool("unbound", "unbound") {
        return;
    }
    let s = start(config()).await;
    let (_unbound, front) = unbound_in_front_of(s.dns);
    let bj: IpAddr = "198.51.100.7".parse().expect("ip");
    let us: IpAddr = "203.0.113.9".parse().expect("ip");
    let ask = |client: IpAddr| with_ecs(query("www.example.com.", RecordType::A), client, 24);
    // Unbound takes a moment to listen.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if udp_from(
            "127.0.0.1".parse().expect("ip"),
            front,
            &ask(bj),
            Duration::from_millis(500),
        )
        .await
        .is_some()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "unbound did not answer on {front}"
        );
    }
    // Alternate regions several times: the second round comes from the cache.
    for round in 0..3 {
        for (client, want) in [(bj, "cdn-bj.example.com."), (us, "cdn-global.example.com.")] {
            let r = udp(front, &ask(client)).await;
            let got = answers(&r);
            assert!(
                got.iter().any(|a| a == &format!("CNAME {want}")),
                "round {round}, client {client}: {got:?}"
            );
        }
    }
    // A client without ECS is its own /24 (127.0.0.0/24): no region.
    let r = udp(front, &query("www.example.com.", RecordType::A)).await;
    assert!(
        answers(&r)
            .iter()
            .any(|a| a == "CNAME cdn-global.example.com."),
        "{:?}",
        answers(&r)
    );
}
