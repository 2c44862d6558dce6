//! The admin endpoint: /metrics, /healthz, /plugins.

use dnspolicy_e2e::*;
use hickory_proto::rr::RecordType;

#[tokio::test]
async fn metrics_health_and_plugins() {
    let dir = plugin_dir(
        "admin",
        &[
            (
                "a_geo.dsl",
                "rule geo { if {query.name} == \"x.test\" { then nxdomain } }",
            ),
            ("a_geo.yaml", "version: \"1.2.0\"\npriority: 5\n"),
            ("broken.dsl", "if {query.nam} == 1 { then refuse }"),
            ("script.lua", "function apply(ctx) end"),
            (".hidden.dsl", "then refuse"),
            ("editor.dsl~", "then refuse"),
        ],
    );
    let mut c = config();
    c.plugin_dir = Some(dir);
    // broken.dsl is part of the test: start without it, as --allow-partial.
    c.serve.on_plugin_error = dnspolicy_runtime::config::OnPluginError::Skip;
    let s = start(c).await;
    for _ in 0..3 {
        udp(s.dns, &query("x.test.", RecordType::A)).await;
    }
    let (status, body) = http_get(s.admin, "/healthz").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(body.trim(), "ok");

    let (status, body) = http_get(s.admin, "/metrics").await;
    assert!(status.contains("200"));
    for needle in [
        "dnspolicy_queries_total{transport=\"udp\"} 3",
        "dnspolicy_responses_total{rcode=\"NXDOMAIN\"} 3",
        "dnspolicy_verdicts_total{verdict=\"nxdomain\"} 3",
        "dnspolicy_rule_queries_total{id=\"a_geo.dsl:geo\",plugin=\"a_geo.dsl\",rule=\"geo\"} 3",
        "dnspolicy_plugins{state=\"loaded\"} 2",
        "dnspolicy_plugins{state=\"failed\"} 1",
        "dnspolicy_query_duration_seconds_count 3",
    ] {
        assert!(body.contains(needle), "missing `{needle}` in:\n{body}");
    }

    let (_, body) = http_get(s.admin, "/plugins").await;
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).expect("JSON list");
    assert_eq!(list.len(), 3, "{body}");
    let by_name = |n: &str| {
        list.iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("{n} listed: {body}"))
    };
    let geo = by_name("a_geo");
    assert_eq!(
        (
            geo["kind"].as_str(),
            geo["state"].as_str(),
            geo["version"].as_str()
        ),
        (Some("dsl"), Some("loaded"), Some("1.2.0"))
    );
    assert_eq!(geo["priority"], 5);
    assert_eq!(geo["rules"]["geo"], 3);
    // Served as native code: the one rule is a constant verdict under its
    // index key (no code at all).
    assert_eq!(
        geo["native"],
        serde_json::json!({"compiled": 0, "constant": 1, "interpreted": 0, "functions": 0}),
        "{body}"
    );
    assert!(
        by_name("script").get("native").is_none(),
        "Lua is not compiled"
    );
    let broken = by_name("broken");
    assert_eq!(broken["state"], "failed");
    assert!(
        broken["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown context path")),
        "{body}"
    );
    assert_eq!(by_name("script")["kind"], "lua");
    assert!(
        !body.contains("hidden") && !body.contains("editor"),
        "{body}"
    );

    let (status, _) = http_get(s.admin, "/nope").await;
    assert!(status.contains("404"));
}
