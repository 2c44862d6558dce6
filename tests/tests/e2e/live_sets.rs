//! Live named data sets: a policy's `set blocklist = file("block.txt")` is
//! read when the plugin loads and re-read when the file changes, with no
//! reload of the policy (the server here has no hot reload: only the set
//! watcher can change the answers). A file that turns bad keeps the old
//! members and the log names the line.

use dnspolicy_e2e::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::time::{Duration, Instant};

const POLICY: &str = "set blocklist = file(\"block.txt\")\n\
rule block when {query.name} in blocklist { then nxdomain }\n\
rule ok { then answer A 192.0.2.1 }\n";

async fn blocked(s: &TestServer, name: &str) -> bool {
    let r = udp(s.dns, &query(name, RecordType::A)).await;
    r.response_code == ResponseCode::NXDomain
}

/// Waits up to 5 s for `name` to become blocked (or not).
async fn until(s: &TestServer, name: &str, want: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if blocked(s, name).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sets_follow_their_file_and_keep_the_last_good_contents() {
    let tap = log_tap();
    let dir = plugin_dir(
        "live-sets",
        &[
            ("p.dsl", POLICY),
            ("block.txt", "# ads\nads.example.com\n*.tracker.example\n"),
        ],
    );
    let mut c = config();
    c.plugin_dir = Some(dir.clone());
    let s = start(c).await;
    assert!(blocked(&s, "ads.example.com.").await);
    assert!(blocked(&s, "x.tracker.example.").await);
    assert!(!blocked(&s, "new.example.com.").await);

    // A new member is served within the poll interval.
    std::fs::write(
        dir.join("block.txt"),
        "ads.example.com\n*.tracker.example\nnew.example.com\n",
    )
    .expect("write");
    assert!(until(&s, "new.example.com.", true).await, "new member");
    // A removed member stops matching.
    std::fs::write(dir.join("block.txt"), "new.example.com\n").expect("write");
    assert!(until(&s, "ads.example.com.", false).await, "removed member");

    // A bad line: nothing of the new file is taken, the log names the line.
    std::fs::write(
        dir.join("block.txt"),
        "new.example.com\nthird.example.com\n10.0.0.1/8\n",
    )
    .expect("write");
    assert!(
        tap.wait_for(
            "line 3: `10.0.0.1/8` has host bits set",
            Duration::from_secs(5)
        ),
        "the bad line is reported"
    );
    assert!(!blocked(&s, "third.example.com.").await, "all or nothing");
    assert!(blocked(&s, "new.example.com.").await, "old members kept");
    // ... and says so on the admin endpoint.
    let (_, m) = http_get(s.admin, "/metrics").await;
    let series = |result: &str| {
        format!("dnspolicy_live_set_reloads_total{{plugin=\"p\",set=\"blocklist\",result=\"{result}\"}}")
    };
    assert_eq!(metric(&m, &series("refused")), 1, "{m}");
    assert!(metric(&m, &series("ok")) >= 2, "{m}");
    assert_eq!(
        metric(
            &m,
            "dnspolicy_live_set_members{plugin=\"p\",set=\"blocklist\"}"
        ),
        1
    );
    let (_, body) = http_get(s.admin, "/plugins").await;
    let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
    let live = &doc[0]["live_sets"][0];
    assert_eq!(live["set"], "blocklist", "{body}");
    assert!(
        live["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("line 3")),
        "{body}"
    );

    // Fixed: taken again.
    std::fs::write(dir.join("block.txt"), "third.example.com\n").expect("write");
    assert!(until(&s, "third.example.com.", true).await, "fixed file");
    assert!(!blocked(&s, "new.example.com.").await);

    // A new version of the policy whose file is gone is refused: the last
    // good chain serves. (An unchanged policy is kept as it is by a
    // reload; its set watcher follows the file.)
    std::fs::remove_file(dir.join("block.txt")).expect("rm");
    std::fs::write(dir.join("p.dsl"), format!("# v2\n{POLICY}")).expect("write v2");
    let (status, body) = http(s.admin, "POST", "/reload").await;
    assert!(status.contains("409"), "{status} {body}");
    assert!(body.contains("block.txt"), "{body}");
    assert!(blocked(&s, "third.example.com.").await);
    s.stop().await;
}
