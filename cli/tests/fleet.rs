//! Edge fleets on a real etcd cluster (Debian's `etcd-server`, members
//! started here on loopback ports with their own data directories) and
//! real `dnspolicy serve` edges answering real DNS: push, ACK in status,
//! NACK by one edge, members killed and brought back, offline restarts,
//! compacted history, compare-and-set, canary and promote, queries during pushes.

mod common;

use common::{ask, bin, free_port, get, serve, Served};
use dnspolicy_e2e::have_tool;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn temp(name: &str) -> PathBuf {
    common::temp("fleet", name)
}

/// An etcd cluster on loopback; every member stopped by its PID on drop.
struct Cluster {
    names: Vec<String>,
    client: Vec<u16>,
    peer: Vec<u16>,
    dirs: Vec<PathBuf>,
    children: Vec<Option<Child>>,
    token: String,
    /// The members' data (hundreds of MB of preallocated WAL): removed on
    /// drop.
    root: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.stop(i);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Cluster {
    /// `n` members, started and healthy; `None` (or a failure under CI)
    /// without etcd.
    fn start(tag: &str, n: usize) -> Option<Cluster> {
        if !have_tool("etcd", "etcd-server") {
            return None;
        }
        let root = temp(&format!("etcd-{tag}"));
        let mut c = Cluster {
            names: (0..n).map(|i| format!("m{i}")).collect(),
            client: (0..n).map(|_| free_port()).collect(),
            peer: (0..n).map(|_| free_port()).collect(),
            dirs: (0..n).map(|i| root.join(format!("m{i}"))).collect(),
            children: (0..n).map(|_| None).collect(),
            token: format!("t-{tag}-{}", std::process::id()),
            root,
        };
        for i in 0..n {
            c.run(i);
        }
        for i in 0..n {
            c.wait_healthy(i);
        }
        Some(c)
    }

    fn run(&mut self, i: usize) {
        let cluster: Vec<String> = (0..self.names.len())
            .map(|j| format!("{}=http://127.0.0.1:{}", self.names[j], self.peer[j]))
            .collect();
        let client = format!("http://127.0.0.1:{}", self.client[i]);
        let peer = format!("http://127.0.0.1:{}", self.peer[i]);
        let child = Command::new("etcd")
            .args(["--name", &self.names[i]])
            .arg("--data-dir")
            .arg(&self.dirs[i])
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &cluster.join(",")])
            .args([
                "--initial-cluster-token",
                &self.token,
                "--initial-cluster-state",
                "new",
            ])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        self.children[i] = Some(child);
    }

    fn wait_healthy(&self, i: usize) {
        let addr: SocketAddr = format!("127.0.0.1:{}", self.client[i])
            .parse()
            .expect("addr");
        let t0 = Instant::now();
        loop {
            if std::net::TcpStream::connect(addr).is_ok() {
                let (code, body) = get(addr, "/health");
                if code == 200 && body.contains("true") {
                    return;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "etcd member {i} not healthy"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self, i: usize) {
        self.run(i);
    }

    /// Client URLs for `push`/`status`.
    fn urls(&self) -> String {
        self.client
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `etcd://…/NAME` for `serve`, with the members `only` (all if empty).
    fn source(&self, set: &str, only: &[usize]) -> String {
        let hosts: Vec<String> = (0..self.client.len())
            .filter(|i| only.is_empty() || only.contains(i))
            .map(|i| format!("127.0.0.1:{}", self.client[i]))
            .collect();
        format!("etcd://{}/{set}", hosts.join(","))
    }
}

fn dnspolicy(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("dnspolicy runs")
}

fn push(c: &Cluster, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["push", dir.to_str().expect("utf-8"), "--etcd"];
    let urls = c.urls();
    args.push(&urls);
    args.extend_from_slice(&["--set", "edge"]);
    args.extend_from_slice(extra);
    dnspolicy(&args)
}

fn push_ok(c: &Cluster, dir: &Path, extra: &[&str]) {
    let o = push(c, dir, extra);
    assert!(
        o.status.success(),
        "push: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A set whose one policy answers `version.example.com TXT` with `text`.
fn version_set(name: &str, text: &str) -> PathBuf {
    let d = temp(name);
    std::fs::write(
        d.join("version.dsl"),
        format!("rule version when {{query.name}} == \"version.example.com\" {{ then answer TXT \"{text}\" ttl 1 }}\n"),
    )
    .expect("policy");
    d
}

fn edge(c: &Cluster, node: &str, state: &Path, only: &[usize], extra: &[&str]) -> Served {
    let source = c.source("edge", only);
    let mut args = vec![
        "--source",
        &source,
        "--node",
        node,
        "--source-cache",
        state.to_str().expect("utf-8"),
        "--admin",
        "127.0.0.1:0",
        "--workers",
        "1",
    ];
    args.extend_from_slice(extra);
    let log = state.with_extension("log");
    serve(&args, Some(&log))
}

fn version_of(dns: SocketAddr) -> Option<String> {
    ask(dns, "version.example.com", 16).map(|a| a.join(""))
}

/// Waits until every edge answers `want`; how long that took.
fn converge(edges: &[&Served], want: &str, within: Duration) -> Duration {
    let t0 = Instant::now();
    for e in edges {
        while version_of(e.dns).as_deref() != Some(want) {
            assert!(
                t0.elapsed() < within,
                "edge {} still answers {:?}, not {want}",
                e.dns,
                version_of(e.dns)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    t0.elapsed()
}

fn status_json(c: &Cluster) -> serde_json::Value {
    let urls = c.urls();
    let o = dnspolicy(&[
        "status", "--set", "edge", "--etcd", &urls, "--format", "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("status json")
}

/// A node's row in `status --format json`; null while it has not reported.
fn node<'a>(s: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    static NONE: serde_json::Value = serde_json::Value::Null;
    s["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["node"] == name))
        .unwrap_or(&NONE)
}

/// Waits until `dnspolicy status` shows `pred` true.
fn wait_status(
    c: &Cluster,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let s = status_json(c);
        if pred(&s) {
            return s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "status never showed {what}: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[test]
fn three_members_three_edges_ack_nack_and_push_latency() {
    let Some(c) = Cluster::start("ack", 3) else {
        return;
    };
    let v1 = version_set("ack-v1", "v1");
    push_ok(&c, &v1, &["-m", "first"]);
    // edge-3 takes no WASM module over 100 bytes: the set checks on the
    // pusher but not there.
    let cfg = temp("ack-edge3-config").join("edge3.toml");
    std::fs::write(&cfg, "[limits]\nwasm_module_bytes = 100\n").expect("config");
    let states: Vec<PathBuf> = (1..=3).map(|i| temp(&format!("ack-state{i}"))).collect();
    let e1 = edge(&c, "edge-1", &states[0], &[], &[]);
    let e2 = edge(&c, "edge-2", &states[1], &[], &[]);
    let e3 = edge(
        &c,
        "edge-3",
        &states[2],
        &[],
        &["--config", cfg.to_str().expect("utf-8")],
    );
    let edges = [&e1, &e2, &e3];
    converge(&edges, "v1", Duration::from_secs(10));
    let s = wait_status(&c, "three ACKs of version 1", |s| {
        ["edge-1", "edge-2", "edge-3"].iter().all(|n| {
            s["nodes"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["node"] == *n && x["state"] == "ok" && x["version"] == 1)
            })
        })
    });
    assert_eq!(s["head"]["version"], 1);
    // An edge's status page shows the fleet (read at its lease's pace).
    let t0 = Instant::now();
    loop {
        let (_, body) = get(e1.admin.expect("admin"), "/status.json");
        let j: serde_json::Value = serde_json::from_str(&body).expect("status json");
        let nodes = j["fleet"]["nodes"].as_array().map_or(0, Vec::len);
        if nodes == 3 {
            assert_eq!(j["fleet"]["version"], 1);
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the fleet is not on the status page: {j}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // 20 pushes: time from the push command to every edge answering it.
    let mut took = Vec::new();
    for i in 2..=21 {
        let d = version_set(&format!("ack-v{i}"), &format!("v{i}"));
        let t0 = Instant::now();
        push_ok(&c, &d, &[]);
        converge(&edges, &format!("v{i}"), Duration::from_secs(10));
        took.push(t0.elapsed());
    }
    took.sort();
    eprintln!(
        "push to all 3 edges answering, 20 pushes: p50 {:?} p99 {:?} max {:?}",
        percentile(&took, 0.5),
        percentile(&took, 0.99),
        took[took.len() - 1]
    );

    // A set with a WASM module: edges 1 and 2 take it, edge 3 refuses it
    // (NACK with the error) and keeps serving version 21.
    let big = version_set("ack-big", "v22");
    std::fs::copy(
        common::repo_root().join("examples/plugins/wasm/geo_redirect.wat"),
        big.join("geo.wat"),
    )
    .expect("wat");
    std::fs::write(big.join("geo.yaml"), "priority: -10\n").expect("metadata");
    push_ok(&c, &big, &[]);
    converge(&[&e1, &e2], "v22", Duration::from_secs(10));
    let s = wait_status(&c, "edge-3's NACK", |s| {
        node(s, "edge-3")["state"] == "refused"
    });
    let n3 = node(&s, "edge-3");
    assert_eq!(n3["version"], 21, "edge-3 keeps version 21: {s}");
    assert_eq!(n3["target"], 22);
    assert!(
        n3["error"]
            .as_str()
            .is_some_and(|e| e.contains("wasm_module_bytes")),
        "the NACK says why: {n3}"
    );
    assert_eq!(
        version_of(e3.dns).as_deref(),
        Some("v21"),
        "edge-3 serves the previous version"
    );
    assert_eq!(node(&s, "edge-1")["state"], "ok");
    let urls = c.urls();
    let table = dnspolicy(&["status", "--set", "edge", "--etcd", &urls]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.lines().any(|l| l.starts_with("edge-3")
            && l.contains("refused")
            && l.contains("wasm_module_bytes")),
        "the table shows the NACK:\n{table}"
    );
    let (_, metrics) = get(e3.admin.expect("admin"), "/metrics");
    assert!(
        metrics.contains("dnspolicy_fleet_applied_version 21"),
        "{metrics}"
    );

    // A stopped edge's lease is revoked: status says it is gone at once.
    let mut e2 = e2;
    common::stop_cleanly(&mut e2);
    let s = wait_status(&c, "edge-2 gone", |s| node(s, "edge-2")["state"] == "gone");
    assert_eq!(node(&s, "edge-1")["state"], "ok");
}

#[test]
fn members_down_offline_restart_compaction_and_convergence() {
    let Some(mut c) = Cluster::start("down", 3) else {
        return;
    };
    push_ok(&c, &version_set("down-v1", "v1"), &[]);
    let (s1, s2) = (temp("down-state1"), temp("down-state2"));
    let e1 = edge(&c, "edge-1", &s1, &[], &[]);
    // edge-2 knows one member only: its watch breaks with it.
    let e2 = edge(&c, "edge-2", &s2, &[2], &[]);
    converge(&[&e1, &e2], "v1", Duration::from_secs(10));

    // One member down: pushes go on and edge-1's watch moves on.
    c.stop(0);
    push_ok(&c, &version_set("down-v2", "v2"), &[]);
    converge(&[&e1, &e2], "v2", Duration::from_secs(10));

    // edge-2's only member goes; versions 3–5 are pushed and the history
    // compacted past the revision edge-2 last saw: it reads the head again
    // when its member is back, so it needs no history.
    c.stop(2);
    c.restart(0);
    c.wait_healthy(0);
    for v in 3..=5 {
        push_ok(
            &c,
            &version_set(&format!("down-v{v}"), &format!("v{v}")),
            &[],
        );
    }
    converge(&[&e1], "v5", Duration::from_secs(10));
    assert_eq!(
        version_of(e2.dns).as_deref(),
        Some("v2"),
        "edge-2 cut off keeps serving"
    );
    let rev = {
        let addr: SocketAddr = format!("127.0.0.1:{}", c.client[1]).parse().expect("addr");
        let o = Command::new("curl")
            .args([
                "-s",
                "-X",
                "POST",
                &format!("http://{addr}/v3/kv/range"),
                "-d",
                "{\"key\":\"eA==\"}",
            ])
            .output()
            .expect("curl");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("range json");
        v["header"]["revision"]
            .as_str()
            .expect("revision")
            .to_string()
    };
    let o = Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            &format!("http://127.0.0.1:{}/v3/kv/compaction", c.client[1]),
            "-d",
            &format!("{{\"revision\":\"{rev}\",\"physical\":true}}"),
        ])
        .output()
        .expect("curl");
    assert!(o.status.success());
    c.restart(2);
    c.wait_healthy(2);
    converge(&[&e2], "v5", Duration::from_secs(15));

    // Every member down: both edges keep answering.
    for i in 0..3 {
        c.stop(i);
    }
    for _ in 0..20 {
        assert_eq!(version_of(e1.dns).as_deref(), Some("v5"));
        assert_eq!(version_of(e2.dns).as_deref(), Some("v5"));
    }
    // A restart with etcd down serves the persisted set, and says so.
    drop(e1);
    let e1 = edge(&c, "edge-1", &s1, &[], &[]);
    assert_eq!(
        version_of(e1.dns).as_deref(),
        Some("v5"),
        "the persisted set serves"
    );
    let (code, ready) = get(e1.admin.expect("admin"), "/readyz");
    assert_eq!(code, 200, "{ready}");
    assert!(ready.contains("offline"), "{ready}");
    let (_, m) = get(e1.admin.expect("admin"), "/metrics");
    assert!(m.contains("dnspolicy_fleet_offline 1"), "{m}");

    // etcd back: a new version reaches both, and the offline flag clears.
    for i in 0..3 {
        c.restart(i);
    }
    for i in 0..3 {
        c.wait_healthy(i);
    }
    push_ok(&c, &version_set("down-v6", "v6"), &[]);
    converge(&[&e1, &e2], "v6", Duration::from_secs(15));
    // The answer changes at the swap; the gauges follow a moment later.
    let t0 = Instant::now();
    loop {
        let (_, m) = get(e1.admin.expect("admin"), "/metrics");
        if m.contains("dnspolicy_fleet_offline 0")
            && m.contains("dnspolicy_fleet_applied_version 6")
        {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "{m}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = wait_status(&c, "both on version 6", |s| {
        node(s, "edge-1")["version"] == 6 && node(s, "edge-2")["version"] == 6
    });
    assert_eq!(node(&s, "edge-1")["state"], "ok");
}

#[test]
fn bad_push_refused_and_if_version_races_have_one_winner() {
    let Some(c) = Cluster::start("cas", 1) else {
        return;
    };
    // A set that does not check is not pushed: nothing reaches etcd.
    let bad = temp("cas-bad");
    std::fs::write(
        bad.join("broken.dsl"),
        "rule r when {query.nme} == \"x\" { then nxdomain }\n",
    )
    .expect("policy");
    let o = push(&c, &bad, &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("not pushed"));
    assert!(status_json(&c)["head"].is_null(), "nothing was written");

    push_ok(&c, &version_set("cas-v1", "v1"), &["--if-version", "0"]);
    // Two operators push on top of the same version at once: exactly one
    // wins each round.
    for round in 1..=5u64 {
        let (a, b) = (
            version_set(&format!("cas-a{round}"), "a"),
            version_set(&format!("cas-b{round}"), "b"),
        );
        let v = round.to_string();
        let urls = c.urls();
        let spawn = |d: &Path| {
            Command::new(bin())
                .args([
                    "push",
                    d.to_str().expect("utf-8"),
                    "--etcd",
                    &urls,
                    "--set",
                    "edge",
                    "--if-version",
                    &v,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("push")
        };
        let (pa, pb) = (spawn(&a), spawn(&b));
        let (ra, rb) = (
            pa.wait_with_output().expect("a"),
            pb.wait_with_output().expect("b"),
        );
        let wins = [&ra, &rb].iter().filter(|o| o.status.success()).count();
        assert_eq!(
            wins,
            1,
            "round {round}: {} / {}",
            String::from_utf8_lossy(&ra.stderr),
            String::from_utf8_lossy(&rb.stderr)
        );
        let loser = if ra.status.success() { &rb } else { &ra };
        assert!(String::from_utf8_lossy(&loser.stderr).contains("not pushed"));
        assert_eq!(status_json(&c)["head"]["version"], round + 1);
    }
    // Rollback pushes version 1's files again as a new version.
    let urls = c.urls();
    let o = dnspolicy(&["rollback", "--set", "edge", "--to", "1", "--etcd", &urls]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let state = temp("cas-state");
    let e = edge(&c, "edge-1", &state, &[], &[]);
    converge(&[&e], "v1", Duration::from_secs(10));
    assert_eq!(status_json(&c)["head"]["version"], 7);
}

#[test]
fn canary_then_promote_and_a_nack_stops_the_rollout() {
    let Some(c) = Cluster::start("canary", 1) else {
        return;
    };
    push_ok(&c, &version_set("canary-v1", "v1"), &[]);
    let cfg = temp("canary-cfg").join("small.toml");
    std::fs::write(&cfg, "[limits]\nwasm_module_bytes = 100\n").expect("config");
    let a = edge(&c, "edge-a", &temp("canary-a"), &[], &[]);
    let b = edge(&c, "edge-b", &temp("canary-b"), &[], &[]);
    let small = edge(
        &c,
        "edge-small",
        &temp("canary-small"),
        &[],
        &["--config", cfg.to_str().expect("utf-8")],
    );
    converge(&[&a, &b, &small], "v1", Duration::from_secs(10));
    push_ok(&c, &version_set("canary-v2", "v2"), &["--canary", "edge-a"]);
    converge(&[&a], "v2", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        version_of(b.dns).as_deref(),
        Some("v1"),
        "outside the canary"
    );
    let urls = c.urls();
    let o = dnspolicy(&["promote", "--set", "edge", "--etcd", &urls]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    converge(&[&a, &b, &small], "v2", Duration::from_secs(10));

    // The canary refuses version 3: promote says so and does nothing.
    let v3 = version_set("canary-v3", "v3");
    std::fs::copy(
        common::repo_root().join("examples/plugins/wasm/geo_redirect.wat"),
        v3.join("geo.wat"),
    )
    .expect("wat");
    std::fs::write(v3.join("geo.yaml"), "priority: -10\n").expect("metadata");
    push_ok(&c, &v3, &["--canary", "edge-small"]);
    wait_status(&c, "the canary's NACK", |s| {
        node(s, "edge-small")["state"] == "refused"
    });
    let o = dnspolicy(&["promote", "--set", "edge", "--etcd", &urls]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("edge-small refused version 3"), "{err}");
    std::thread::sleep(Duration::from_millis(300));
    for e in [&a, &b, &small] {
        assert_eq!(
            version_of(e.dns).as_deref(),
            Some("v2"),
            "the rollout stopped"
        );
    }
}

#[test]
fn no_query_lost_while_twenty_versions_are_pushed() {
    let Some(c) = Cluster::start("load", 1) else {
        return;
    };
    push_ok(&c, &version_set("load-v0", "v0"), &[]);
    let e = edge(&c, "edge-1", &temp("load-state"), &[], &[]);
    converge(&[&e], "v0", Duration::from_secs(10));
    let dns = e.dns;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let halt = stop.clone();
    // A fixed rate: one query every 2 ms, each waited for.
    let load = std::thread::spawn(move || {
        let (mut sent, mut lost) = (0u32, 0u32);
        let mut next = Instant::now();
        while !halt.load(std::sync::atomic::Ordering::Relaxed) {
            sent += 1;
            if version_of(dns).is_none() {
                lost += 1;
            }
            next += Duration::from_millis(2);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        (sent, lost)
    });
    for v in 1..=20 {
        push_ok(
            &c,
            &version_set(&format!("load-v{v}"), &format!("v{v}")),
            &[],
        );
        converge(&[&e], &format!("v{v}"), Duration::from_secs(10));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, lost) = load.join().expect("load");
    assert!(sent > 100, "the load ran ({sent} queries)");
    assert_eq!(lost, 0, "{lost} of {sent} queries lost during 20 pushes");
}

#[test]
fn a_version_can_point_at_an_oci_artifact() {
    let Some(c) = Cluster::start("oci", 1) else {
        return;
    };
    let Some(reg) = common::registry("fleet-oci") else {
        return;
    };
    // The set goes to the registry; etcd gets a pointer pinned by digest.
    let v1 = version_set("oci-v1", "oci-v1");
    let tag = format!("{}/sets/edge:v1", reg.addr);
    let o = dnspolicy(&[
        "oci",
        "push",
        v1.to_str().expect("utf-8"),
        &tag,
        "--insecure",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let digest = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .expect("digest")
        .to_string();
    let urls = c.urls();
    let o = dnspolicy(&[
        "push",
        "--oci",
        &tag,
        "--insecure",
        "--etcd",
        &urls,
        "--set",
        "edge",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains(&format!("@{digest}")),
        "pinned to the tag's digest: {out}"
    );
    let state = temp("oci-state");
    let e = edge(&c, "edge-1", &state, &[], &[]);
    converge(&[&e], "oci-v1", Duration::from_secs(10));
    wait_status(&c, "the ACK", |s| {
        node(s, "edge-1")["version"] == 1 && node(s, "edge-1")["state"] == "ok"
    });

    // The tag moves on; version 1 still means the digest it was pinned to.
    let v2 = version_set("oci-v2", "oci-v2");
    let o = dnspolicy(&[
        "oci",
        "push",
        v2.to_str().expect("utf-8"),
        &tag,
        "--insecure",
    ]);
    assert!(o.status.success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(version_of(e.dns).as_deref(), Some("oci-v1"));
    // An unreachable registry: nothing is pushed.
    let o = dnspolicy(&[
        "push",
        "--oci",
        "127.0.0.1:1/sets/none:v1",
        "--insecure",
        "--etcd",
        &urls,
        "--set",
        "edge",
    ]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "an unreachable registry is not pushed"
    );
    assert_eq!(status_json(&c)["head"]["version"], 1);
    // Restart with the registry gone: the persisted copy serves.
    drop(reg);
    drop(e);
    let e = edge(&c, "edge-1", &state, &[], &[]);
    assert_eq!(
        version_of(e.dns).as_deref(),
        Some("oci-v1"),
        "served from the persisted copy"
    );
}
