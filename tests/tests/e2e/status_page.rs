//! The status page in a real headless browser (Debian's chromium): it
//! loads without console errors, shows non-zero QPS while a query loop
//! runs, and lists the served plugins; the test leaves a screenshot in
//! `target/status-page.png` (not committed).

use dnspolicy_e2e::*;
use hickory_proto::rr::RecordType;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const POLICY: &str = "rule hit { if {query.name} == \"a.test\" { then answer A 192.0.2.1 } }\n";

fn chromium(args: &[&str], url: &str) -> (String, String) {
    let profile = temp_dir("chromium-profile");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_live_traffic_and_plugins() {
    if !have_tool("chromium", "chromium") {
        return;
    }
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("status", &[("served.dsl", POLICY)]));
    let s = start(c).await;
    // A query loop for the whole test.
    let dns = s.dns;
    let looping = tokio::spawn(async move {
        loop {
            udp(dns, &query("a.test.", RecordType::A)).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    // Two samples with traffic in them.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, json) = http_get(s.admin, "/status.json").await;
    let v: serde_json::Value = serde_json::from_str(&json).expect("status.json");
    let samples = v["samples"].as_array().expect("samples");
    assert!(
        samples.iter().any(|x| x["qps"].as_f64() > Some(10.0)),
        "{json}"
    );

    let url = format!("http://{}/ui", s.admin);
    let u = url.clone();
    let (dom, log) = tokio::task::spawn_blocking(move || {
        chromium(&["--dump-dom", "--virtual-time-budget=3000"], &u)
    })
    .await
    .expect("chromium");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(errors.is_empty(), "console messages: {errors:?}");
    let qps: f64 = dom
        .split("id=\"qps-now\" data-qps=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no QPS card in\n{dom}"));
    assert!(qps > 0.0, "the QPS card shows {qps}");
    assert!(
        dom.contains("<td>served</td>"),
        "the plugin table lists it:\n{dom}"
    );
    assert!(dom.contains("hit: "), "per-rule hits:\n{dom}");
    let points = dom
        .split("id=\"qps-line\"")
        .nth(1)
        .and_then(|r| r.split("points=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .unwrap_or("");
    assert!(
        points.split(' ').count() >= 2,
        "the QPS graph has points: {points:?}"
    );

    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/status-page.png");
    let arg = format!("--screenshot={}", shot.display());
    tokio::task::spawn_blocking(move || {
        chromium(
            &[
                &arg,
                "--window-size=1280,1100",
                "--virtual-time-budget=3000",
            ],
            &url,
        )
    })
    .await
    .expect("chromium");
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "a screenshot in {}", shot.display());
    looping.abort();
}

/// Every series the Grafana dashboard (`examples/grafana/dnspolicy.json`)
/// queries is one `/metrics` exposes.
#[tokio::test]
async fn the_grafana_dashboard_queries_real_series() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/grafana/dnspolicy.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("JSON");
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("grafana", &[("served.dsl", POLICY)]));
    let s = start(c).await;
    let (_, metrics) = http_get(s.admin, "/metrics").await;
    let mut checked = 0;
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            for part in expr.split("dnspolicy_").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let series = format!("dnspolicy_{name}");
                assert!(
                    metrics.contains(&format!("# TYPE {series} "))
                        || metrics
                            .contains(&format!("# TYPE {} ", series.trim_end_matches("_bucket"))),
                    "{series} (panel {}) is not in /metrics",
                    p["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 12, "{checked} series checked");
}
