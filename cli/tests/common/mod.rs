//! What the process-level tests share: the binary, temp dirs, free ports,
//! a `serve` child stopped by its PID, one UDP query, an OCI registry
//! (Debian's docker-registry) on loopback.

#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;
use std::time::Instant;

/// The `dnspolicy` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dnspolicy")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh directory for test `tag`'s `name`.
pub fn temp(tag: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dnspolicy-{tag}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `dnspolicy serve`, killed when dropped.
pub struct Served {
    /// The process.
    pub child: Child,
    /// Its DNS address.
    pub dns: SocketAddr,
    /// Its admin address, when it has one.
    pub admin: Option<SocketAddr>,
    /// Its HTTP front door, when it has one.
    pub http: Option<SocketAddr>,
    /// Its stdout after the `listening` line (kept open).
    pub stdout: BufReader<ChildStdout>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops a server with SIGTERM and waits (10 s at most) for it to exit:
/// a clean shutdown (logs flushed, a fleet lease revoked).
pub fn stop_cleanly(s: &mut Served) {
    let pid = s.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let t0 = Instant::now();
    while s.child.try_wait().expect("wait").is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "serve did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `dnspolicy serve --listen 127.0.0.1:0 ARGS…` and waits for its
/// `listening` line; stderr goes to `log` when given.
pub fn serve(args: &[&str], log: Option<&Path>) -> Served {
    let stderr = match log {
        Some(p) => Stdio::from(std::fs::File::create(p).expect("log file")),
        None => Stdio::null(),
    };
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read");
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
    };
    let dns = field("dns=").unwrap_or_else(|| panic!("serve did not start: {line:?}"));
    let admin = field("admin=");
    let http = field("http=");
    Served {
        child,
        dns,
        admin,
        http,
        stdout,
    }
}

/// One UDP query; the TXT strings or A addresses of the answer, `None`
/// when nothing came back in time.
pub fn ask(dns: SocketAddr, name: &str, qtype: u16) -> Option<Vec<String>> {
    ask_within(dns, name, qtype, Duration::from_secs(2))
}

/// [`ask`] with its own timeout.
pub fn ask_within(dns: SocketAddr, name: &str, qtype: u16, wait: Duration) -> Option<Vec<String>> {
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
    let s = UdpSocket::bind("127.0.0.1:0").expect("socket");
    s.set_read_timeout(Some(wait)).expect("timeout");
    s.send_to(&q, dns).expect("send");
    let mut buf = [0u8; 1500];
    let n = s.recv(&mut buf).ok()?;
    let m = hickory_proto::op::Message::from_vec(&buf[..n]).expect("a DNS answer");
    Some(m.answers.iter().map(|r| r.data.to_string()).collect())
}

/// GET `path` on a loopback HTTP server: (status code, body).
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

/// A registry on loopback; stopped (by its PID) when dropped.
pub struct Reg {
    /// The process.
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Its storage root (tests tamper with blobs there).
    pub storage: PathBuf,
}

impl Drop for Reg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn registry(name: &str) -> Option<Reg> {
    registry_with(name, None)
}

/// A registry; with `htpasswd` (a `user:bcrypt-hash` line) it asks for
/// basic auth.
pub fn registry_with(name: &str, htpasswd: Option<&str>) -> Option<Reg> {
    if !dnspolicy_e2e::have_tool("docker-registry", "docker-registry") {
        return None;
    }
    let dir = temp("registry", name);
    let addr = format!("127.0.0.1:{}", free_port());
    let storage = dir.join("data");
    let config = dir.join("config.yml");
    let mut text = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
        storage.display()
    );
    if let Some(line) = htpasswd {
        let f = dir.join("htpasswd");
        std::fs::write(&f, format!("{line}\n")).expect("htpasswd");
        text.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: dnspolicy-test\n    path: {}\n",
            f.display()
        ));
    }
    std::fs::write(&config, text).expect("registry config");
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry");
    let reg = Reg {
        child,
        addr,
        storage,
    };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(&reg.addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "registry did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(reg)
}
