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

fn dig(dns: &str, args: &[&str]) -> Option<String> {
    let (host, port) = dns.rsplit_once(':').expect("addr");
    let out = Command::new("dig")
        .arg(format!("@{host}"))
        .args(["-p", port, "+tries=1", "+time=2"])
        .args(args)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn embedded_default_from_any_directory() {
    let s = serve(&[]);
    let Some(out) = dig(&s.dns, &["www.example.com", "+subnet=198.51.100.7/24"]) else {
        eprintln!("dig not installed; skipped (CI installs bind9-dnsutils)");
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
