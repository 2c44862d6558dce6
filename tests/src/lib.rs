//! Test support: start a `dnspolicy` server in-process on a free loopback
//! port, and a small DNS client built on hickory-proto's wire format that
//! talks to it over real UDP and TCP sockets.

use dnspolicy_runtime::{Config, Server, Shared};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

/// A running server; stopped when dropped.
pub struct TestServer {
    /// DNS address (UDP and TCP).
    pub dns: SocketAddr,
    /// Admin HTTP address.
    pub admin: SocketAddr,
    stop: CancellationToken,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Stops the server and waits until it has finished (logs closed,
    /// upstream exchanges drained).
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(r) = self.running.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), r).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A config on free loopback ports with one worker.
pub fn config() -> Config {
    Config {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        admin: dnspolicy_runtime::config::AdminSection::at(SocketAddr::from(([127, 0, 0, 1], 0))),
        workers: 1,
        upstream_timeout_ms: 800,
        ..Config::default()
    }
}

/// The geo redirect every example plugin implements (DSL, Lua, WAT, C):
/// an ECS client in the example map's CN-BJ network (198.51.100.0/24) gets
/// CNAME cdn-bj.example.com plus its address with ECS scope 24 (the answer
/// depended on the client); a client elsewhere gets cdn-global.
pub async fn assert_geo_split(dns: SocketAddr) {
    let bj: IpAddr = "198.51.100.0".parse().expect("ip");
    let r = udp(
        dns,
        &with_ecs(query("www.example.com.", RecordType::A), bj, 24),
    )
    .await;
    assert_eq!(answers(&r), vec!["CNAME cdn-bj.example.com.", "192.0.2.10"]);
    assert_eq!(
        ecs_of(&r).map(|e| e.2),
        Some(24),
        "the answer depended on the client: scope 24"
    );
    let us: IpAddr = "203.0.113.0".parse().expect("ip");
    let r = udp(
        dns,
        &with_ecs(query("www.example.com.", RecordType::A), us, 24),
    )
    .await;
    assert_eq!(
        answers(&r),
        vec!["CNAME cdn-global.example.com.", "192.0.2.20"]
    );
}

/// Starts a server with `config` on the current tokio runtime.
pub async fn start(config: Config) -> TestServer {
    let shared = Shared::from_config(&config).expect("server setup");
    let server = Server::bind(&config, shared).expect("bind");
    let dns = server.dns_addrs()[0];
    let admin = server.admin_addr().expect("admin address");
    let stop = CancellationToken::new();
    let s = stop.clone();
    let running = tokio::spawn(async move {
        let _ = server.run(s).await;
    });
    TestServer {
        dns,
        admin,
        stop,
        running: Some(running),
    }
}

/// A fresh directory under the system temp dir, unique to this call (tests
/// run in parallel threads of one process).
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("dnspolicy-e2e-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Writes `files` (name, content) into a fresh plugin directory.
pub fn plugin_dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = temp_dir(name);
    for (f, content) in files {
        std::fs::write(d.join(f), content).expect("write plugin");
    }
    d
}

/// `../shared` beside the checkout (test data: GeoIP DBs, fuzz corpus).
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// A query for `name`/`rtype` with RD set and an ID of its own (so a
/// reply to the wrong query shows up as an ID mismatch).
pub fn query(name: &str, rtype: RecordType) -> Message {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);
    let mut m = Message::query();
    m.metadata.id =
        NEXT.fetch_add(7919, std::sync::atomic::Ordering::Relaxed) ^ (std::process::id() as u16);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    m
}

/// Adds an EDNS OPT record with a client subnet option.
pub fn with_ecs(mut m: Message, addr: IpAddr, source: u8) -> Message {
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(addr, source, 0)));
    m.set_edns(e);
    m
}

/// Adds a plain EDNS OPT record.
pub fn with_edns(mut m: Message) -> Message {
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.set_edns(e);
    m
}

/// Sends raw bytes over UDP; the reply bytes, or `None` after `wait`.
pub async fn udp_raw(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    udp_raw_from(IpAddr::from([127, 0, 0, 1]), server, bytes, wait).await
}

/// [`udp`] from the source address `from` (any 127.0.0.0/8 address works
/// on loopback); `None` when no answer came within `wait`.
pub async fn udp_from(
    from: IpAddr,
    server: SocketAddr,
    m: &Message,
    wait: Duration,
) -> Option<Message> {
    let bytes = udp_raw_from(from, server, &m.to_vec().expect("encode"), wait).await?;
    Some(Message::from_vec(&bytes).expect("a valid DNS message"))
}

/// [`udp_raw`] from the source address `from`.
pub async fn udp_raw_from(
    from: IpAddr,
    server: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(SocketAddr::new(from, 0))
        .await
        .expect("client socket");
    sock.send_to(bytes, server).await.expect("send");
    let mut buf = vec![0u8; 65_535];
    let (n, _) = tokio::time::timeout(wait, sock.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

/// One query over UDP.
pub async fn udp(server: SocketAddr, m: &Message) -> Message {
    let bytes = udp_raw(server, &m.to_vec().expect("encode"), Duration::from_secs(3))
        .await
        .expect("a UDP answer");
    let r = Message::from_vec(&bytes).expect("a valid DNS message");
    assert_eq!(r.metadata.id, m.metadata.id, "ID echoed");
    r
}

/// One query over TCP.
pub async fn tcp(server: SocketAddr, m: &Message) -> Message {
    let mut s = TcpStream::connect(server).await.expect("connect");
    let b = m.to_vec().expect("encode");
    let mut framed = (b.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&b);
    s.write_all(&framed).await.expect("write");
    let n = tokio::time::timeout(Duration::from_secs(3), s.read_u16())
        .await
        .expect("timely")
        .expect("length");
    let mut buf = vec![0u8; usize::from(n)];
    s.read_exact(&mut buf).await.expect("body");
    Message::from_vec(&buf).expect("a valid DNS message")
}

/// The A/AAAA addresses and CNAME targets of an answer section, as text.
pub fn answers(r: &Message) -> Vec<String> {
    r.answers
        .iter()
        .map(|rec| match &rec.data {
            RData::A(a) => a.0.to_string(),
            RData::AAAA(a) => a.0.to_string(),
            RData::CNAME(c) => format!("CNAME {}", c.0),
            RData::TXT(t) => format!("TXT {t}"),
            other => other.to_string(),
        })
        .collect()
}

/// The ECS option of a response: (address, source, scope).
pub fn ecs_of(r: &Message) -> Option<(IpAddr, u8, u8)> {
    match r
        .edns
        .as_ref()?
        .option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)?
    {
        EdnsOption::Subnet(c) => Some((c.addr(), c.source_prefix(), c.scope_prefix())),
        _ => None,
    }
}

/// GETs `path` from the admin endpoint: (status line, body).
pub async fn http_get(admin: SocketAddr, path: &str) -> (String, String) {
    http(admin, "GET", path).await
}

/// One admin request without a body: (status line, body).
pub async fn http(admin: SocketAddr, method: &str, path: &str) -> (String, String) {
    http_with(admin, method, path, "").await
}

/// One admin request without a body, with extra header lines (each ending
/// in `\r\n`): (status line, body).
pub async fn http_with(
    admin: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
) -> (String, String) {
    let mut s = TcpStream::connect(admin).await.expect("connect admin");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("write");
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .expect("timely")
        .expect("read");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// An address from text (test literals).
pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// The value of one series in a `/metrics` scrape (`name{labels}` as
/// written); panics with the scrape when it is not there.
pub fn metric(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{metrics}"))
}

/// `dig @127.0.0.1 -p PORT ARGS... +tries=1 +time=3`: its stdout. The
/// caller checks `have_tool("dig", …)` first. `dig` blocks its thread: run
/// it from a multi-threaded test or `spawn_blocking`.
pub fn dig(dns: SocketAddr, args: &[&str]) -> String {
    let out = std::process::Command::new("dig")
        .arg(format!("@{}", dns.ip()))
        .args(["-p", &dns.port().to_string()])
        .args(args)
        .args(["+tries=1", "+time=3"])
        .output()
        .expect("dig runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `path` exists (a toolchain's library, not a command), with the
/// CI rule of [`have_tool`]: missing under `CI=true` fails the test.
pub fn have_file(path: &str, package: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "`{path}` is missing (Debian package {package}); CI must install it"
    );
    eprintln!("skipped: `{path}` is missing (Debian package {package})");
    false
}

/// Whether the command-line tool `name` is on `PATH`. Outside CI a missing
/// tool skips the test that needs it, with a note naming the Debian
/// `package`; under `CI=true` it fails the test instead, because CI (and the
/// README's test command, `scripts/test`) installs every tool: a missing
/// one is a broken set-up, never a pass.
pub fn have_tool(name: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let p = dir.join(name);
            p.is_file()
                && std::fs::metadata(&p)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false)
        })
    });
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{name}` is not installed (Debian package {package}); CI must install it"
        );
        eprintln!("`{name}` is not installed (Debian package {package}): skipped; `scripts/test` installs it");
    }
    found
}

/// The server's log lines as they happen, so a test can wait for a
/// plugin's own signal (a `ctx:log` line) instead of sleeping and hoping.
pub struct LogTap {
    lines: std::sync::Mutex<Vec<String>>,
    added: std::sync::Condvar,
}

impl LogTap {
    /// Waits until a line containing `needle` has been logged, up to
    /// `timeout`; whether it was.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if lines.iter().any(|l| l.contains(needle)) {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            lines = self
                .added
                .wait_timeout(lines, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

struct TapLayer(&'static LogTap);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TapLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        let mut lines = self.0.lines.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a long test binary logs a lot; waits look at recent lines.
        if lines.len() >= 20_000 {
            lines.drain(..10_000);
        }
        lines.push(m.0);
        self.0.added.notify_all();
    }
}

/// The process-wide log tap (installed as the global subscriber on first
/// use; every server started in this test binary logs into it).
pub fn log_tap() -> &'static LogTap {
    static TAP: std::sync::OnceLock<&'static LogTap> = std::sync::OnceLock::new();
    TAP.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let tap: &'static LogTap = Box::leak(Box::new(LogTap {
            lines: std::sync::Mutex::new(Vec::new()),
            added: std::sync::Condvar::new(),
        }));
        let subscriber = tracing_subscriber::registry().with(TapLayer(tap));
        let _ = tracing::subscriber::set_global_default(subscriber);
        tap
    })
}
