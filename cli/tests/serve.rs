//! `dnspolicy serve` as a user runs it: the binary, real sockets, `dig`,
//! and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Served {
    child: Child,
    dns: String,
    admin: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnspolicy"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--workers",
            "1",
        ])
        .args(extra)
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnspolicy serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    // listening dns=127.0.0.1:PORT admin=127.0.0.1:PORT
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {line:?}"))
            .to_string()
    };
    let (dns, admin) = (field("dns="), field("admin="));
    Served { child, dns, admin }
}

/// `dig`'s output; `None` when dig is not installed (outside CI only:
/// under `CI=true` a missing dig fails the test).
fn dig(dns: &str, args: &[&str]) -> Option<String> {
    if !dnspolicy_e2e::have_tool("dig", "bind9-dnsutils") {
        return None;
    }
    let (host, port) = dns.rsplit_once(':').expect("addr");
    let out = Command::new("dig")
        .arg(format!("@{host}"))
        .args(["-p", port, "+tries=1", "+time=2"])
        .args(args)
        .output()
        .expect("dig runs");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn embedded_default_from_any_directory() {
    let s = serve(&[]);
    let Some(out) = dig(&s.dns, &["www.example.com", "+subnet=198.51.100.7/24"]) else {
        return;
    };
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(
        out.contains("www.example.com.\t300\tIN\tCNAME\tcdn-bj.example.com."),
        "{out}"
    );
    assert!(
        out.contains("cdn-bj.example.com.\t300\tIN\tA\t192.0.2.10"),
        "{out}"
    );
    // The README's plain query: 127.0.0.1 is in no region.
    let out = dig(&s.dns, &["www.example.com"]).expect("dig");
    assert!(
        out.contains("cdn-global.example.com.\t300\tIN\tA\t192.0.2.20"),
        "{out}"
    );
    let out = dig(&s.dns, &["www.example.com", "+subnet=203.0.113.9/24"]).expect("dig");
    assert!(
        out.contains("cdn-global.example.com.\t300\tIN\tA\t192.0.2.20"),
        "{out}"
    );
    assert!(!s.admin.is_empty());
}

#[test]
fn gslb_example_serves_from_any_directory_and_flags_win() {
    // Run from the temp dir: the config's relative plugin_dir is found
    // beside the file; --listen and --admin replace the file's addresses.
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/gslb/dnspolicy.toml"
    );
    let s = serve(&["--config", config]);
    assert_ne!(s.dns, "127.0.0.1:5353", "--listen wins over the file");
    assert_ne!(s.admin, "127.0.0.1:9153", "--admin wins over the file");
    let Some(out) = dig(&s.dns, &["gslb.example.com", "A", "+noall", "+answer"]) else {
        return;
    };
    // Healthy or not (no listeners on 19001-19003 here: the fallback answers
    // them all), the three members, with the capped TTL.
    let mut got: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .collect();
    got.sort_unstable();
    assert_eq!(got, ["192.0.2.101", "192.0.2.102", "192.0.2.103"], "{out}");
    assert!(
        out.lines()
            .all(|l| l.split_whitespace().nth(1) == Some("30")),
        "TTL 30: {out}"
    );
}

#[test]
fn original_command_line_is_accepted_and_sigterm_stops_cleanly() {
    let dir = std::env::temp_dir().join(format!("dnspolicy-serve-{}", std::process::id()));
    let plugins = dir.join("plugins/dns");
    std::fs::create_dir_all(&plugins).expect("dir");
    std::fs::write(
        plugins.join("static.dsl"),
        "if {query.name} == \"static.test\" { then answer A 192.0.2.77 }",
    )
    .expect("write");
    let arg = format!("--plugin-dir={}", plugins.display());
    let mut s = serve(&[&arg, "--enable-hot-reload"]);
    if let Some(out) = dig(&s.dns, &["static.test"]) {
        assert!(out.contains("192.0.2.77"), "{out}");
    }
    let pid = s.child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = s.child.try_wait().expect("wait") {
            assert!(status.success(), "exit after SIGTERM: {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not stop within 5 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// WASI output of a plugin lands in the server log (stderr), line by line.
#[test]
fn wasm_plugin_stdout_goes_to_the_server_log() {
    let dir = std::env::temp_dir().join(format!("dnspolicy-serve-wasi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("hello.wat"),
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "hello from wasm\n")
  (data (i32.const 0) "\40\00\00\00\10\00\00\00")
  (global $heap (mut i32) (i32.const 1024))
  (func (export "dnspolicy_abi_version") (result i32) i32.const 1)
  (func (export "alloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.get $p))
  (func (export "init") (param i32 i32) (result i32) i32.const 0)
  (func (export "destroy"))
  (func (export "process") (param i32 i32) (result i32)
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32)))
    i32.const 0))"#,
    )
    .expect("module");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnspolicy"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-admin",
            "--workers",
            "1",
        ])
        .arg("--plugin-dir")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dnspolicy serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let dns = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("dns="))
        .unwrap_or_else(|| panic!("no dns= in {line:?}"))
        .to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    // A query for www.example.com A, by hand: the plugin prints, then passes.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["www", "example", "com"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    sock.send_to(&q, &dns).expect("send");
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).expect("an answer");
    assert!(
        n >= 12 && buf[..2] == [0x12, 0x34],
        "an answer to our query"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains("wasm stdout: hello from wasm") => break true,
            Ok(l) => seen.push(l),
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        found,
        "no `wasm stdout: hello from wasm` in the log:\n{}",
        seen.join("\n")
    );
}

#[test]
fn bad_setup_exits_2() {
    let o = Command::new(env!("CARGO_BIN_EXE_dnspolicy"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-admin",
            "--zone",
            "/nonexistent/zone",
        ])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read zone"));
    let o = Command::new(env!("CARGO_BIN_EXE_dnspolicy"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-admin",
            "--upstream",
            "not-an-address",
        ])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_plugin_that_fails_stops_serve_unless_partial_is_allowed() {
    let dir = std::env::temp_dir().join(format!("dnspolicy-strict-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("block.dsl"),
        "if {query.nam} == \"x\" { then nxdomain }\n",
    )
    .expect("write");
    let d = dir.to_str().expect("utf-8");
    let o = Command::new(env!("CARGO_BIN_EXE_dnspolicy"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-admin",
            "--plugin-dir",
            d,
        ])
        .output()
        .expect("run");
    assert_eq!(
        o.status.code(),
        Some(2),
        "a blocklist that does not load must not fail open"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("block.dsl") && err.contains("unknown context path"),
        "{err}"
    );
    // --allow-partial starts without it.
    let s = serve(&["--plugin-dir", d, "--allow-partial"]);
    assert!(s.dns.starts_with("127.0.0.1:"), "{}", s.dns);
}

fn run_serve(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dnspolicy"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("DNSPOLICY_ADMIN_TOKEN")
        .output()
        .expect("run")
}

#[test]
fn unsafe_setups_exit_2_with_the_reason() {
    // An admin endpoint beyond loopback without a token.
    let o = run_serve(&["--admin", "0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not loopback") && err.contains("DNSPOLICY_ADMIN_TOKEN"),
        "{err}"
    );
    // An ACL entry that is not a network.
    let o = run_serve(&["--no-admin", "--acl", "10.0.0.0/33"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("10.0.0.0/33"));
    // A zone error names file:line and the line.
    let dir = std::env::temp_dir().join(format!("dnspolicy-zone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let zone = dir.join("bad.zone");
    std::fs::write(
        &zone,
        "$ORIGIN example.com.\n$TTL 300\n@ SOA ns1 h 1 2 3 4 5\nwww AAA 2001:db8::1\n",
    )
    .expect("write");
    let o = run_serve(&["--no-admin", "--zone", zone.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.zone:4") && err.contains("www AAA 2001:db8::1"),
        "{err}"
    );
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// A flood from 200 prefixes far above the limit: another source is still
/// answered every time, and the server's memory does not grow.
#[test]
fn a_flood_is_limited_and_memory_stays_flat() {
    use std::net::UdpSocket;
    let dir = std::env::temp_dir().join(format!("dnspolicy-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let cfg = dir.join("flood.toml");
    std::fs::write(&cfg, "[limits]\nqps_per_prefix = 20\n").expect("write");
    let s = serve(&["--config", cfg.to_str().expect("utf-8")]);
    let pid = s.child.id();
    let dns: std::net::SocketAddr = s.dns.parse().expect("addr");
    // www.example.com A, RD, ID 0x1234.
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in ["www", "example", "com"] {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let good = UdpSocket::bind("127.0.250.1:0").expect("bind");
    good.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let ask = |sock: &UdpSocket| -> bool {
        let mut buf = [0u8; 512];
        sock.send_to(&q, dns).expect("send");
        matches!(sock.recv_from(&mut buf), Ok((n, _)) if n > 12 && buf[..2] == [0x12, 0x34])
    };
    let flooders: Vec<UdpSocket> = (1..=200)
        .map(|i| UdpSocket::bind(format!("127.0.{i}.1:0")).expect("bind flooder"))
        .collect();
    // Warm up every path (answers and drops), then measure.
    for f in &flooders {
        for _ in 0..150 {
            let _ = f.send_to(&q, dns);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(ask(&good));
    let dropped_metric = |admin: &str| -> u64 {
        http_get_blocking(admin, "/metrics")
            .lines()
            .find_map(|l| l.strip_prefix("dnspolicy_rate_limited_total{action=\"drop\"} "))
            .and_then(|v| v.trim().parse().ok())
            .expect("rate limited series")
    };
    let dropped_before = dropped_metric(&s.admin);
    let before = rss_kb(pid);
    let (mut asked, mut answered, mut sent, mut rounds) = (0, 0, 0u64, 0u32);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        // About 40 000 queries a second in all, 200 a second per prefix:
        // ten times the limit, and a pace the server's socket keeps up
        // with (a query the kernel drops proves nothing about the limit).
        for f in &flooders {
            for _ in 0..2 {
                if f.send_to(&q, dns).is_ok() {
                    sent += 1;
                }
            }
        }
        // The other source asks ten times a second: under its limit.
        if rounds.is_multiple_of(10) {
            asked += 1;
            answered += usize::from(ask(&good));
        }
        rounds += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kb(pid);
    assert!(sent > 20_000, "the flood sent {sent}");
    assert_eq!(answered, asked, "the other source is answered every time");
    assert!(
        after <= before + before / 20,
        "RSS grew from {before} kB to {after} kB under a flood of {sent} queries"
    );
    let dropped = dropped_metric(&s.admin) - dropped_before;
    // 200 a second per prefix against a limit of 20: about 90 % dropped.
    assert!(
        dropped > sent / 2 && dropped <= sent,
        "{dropped} of {sent} dropped"
    );
    eprintln!("flood: {sent} queries, {dropped} dropped, RSS {before} -> {after} kB");
}

fn http_get_blocking(admin: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(admin).expect("connect admin");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// SIGTERM while an upstream exchange is in flight: the answer still goes
/// out (the drain), then the process exits 0.
#[test]
fn shutdown_waits_for_upstream_exchanges_in_flight() {
    use std::net::UdpSocket;
    let upstream = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
    let up = upstream.local_addr().expect("addr").to_string();
    // Answers the first query after 700 ms, NOERROR with no records.
    let slow = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        upstream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        if let Ok((n, from)) = upstream.recv_from(&mut buf) {
            std::thread::sleep(Duration::from_millis(700));
            let mut r = buf[..n].to_vec();
            r[2] |= 0x80;
            r[3] = 0x80;
            let _ = upstream.send_to(&r, from);
        }
    });
    let mut s = serve(&["--upstream", &up]);
    let dns: std::net::SocketAddr = s.dns.parse().expect("addr");
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // elsewhere.test A, RD, ID 0x4242: outside the zone, so forwarded.
    let mut q = vec![0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in ["elsewhere", "test"] {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    client.send_to(&q, dns).expect("send");
    std::thread::sleep(Duration::from_millis(200));
    let term = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let mut buf = [0u8; 1500];
    let (n, _) = client
        .recv_from(&mut buf)
        .expect("the answer in flight at SIGTERM still arrives");
    assert!(n >= 12 && buf[..2] == [0x42, 0x42], "ID echoed");
    assert_eq!(buf[3] & 0x0F, 0, "the upstream's NOERROR, not a SERVFAIL");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = s.child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let _ = slow.join();
}
