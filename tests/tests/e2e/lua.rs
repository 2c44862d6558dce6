//! Lua plugins served for real: the original geo_redirect.lua, one test per
//! sandbox escape route (each fails, is counted, and the server keeps
//! answering), and Lua plugins composed with a DSL policy by priority.

use dnspolicy_e2e::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

fn example_lua() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/plugins/dns/geo_redirect.lua"
    ))
    .expect("examples/plugins/dns/geo_redirect.lua")
}

#[tokio::test]
async fn original_geo_redirect_lua() {
    // Byte for byte the example of the architecture brief.
    assert_eq!(
        example_lua(),
        "function apply(ctx)\n  local client_ip = ctx:get_client_ip()\n  local region = ctx:lookup_geo_region(client_ip)\n  if region == \"CN-BJ\" then\n    ctx:set_answer(\"cdn-bj.example.com\", \"A\", 300)\n  else\n    ctx:set_answer(\"cdn-global.example.com\", \"A\", 300)\n  end\nend\n"
    );
    let mut c = config();
    c.plugin_dir = Some(plugin_dir(
        "lua-geo",
        &[("geo_redirect.lua", &example_lua())],
    ));
    let s = start(c).await;
    assert_geo_split(s.dns).await;
    let r = udp(s.dns, &query("www.example.com.", RecordType::A)).await;
    assert_eq!(answers(&r)[1], "192.0.2.20");
}

#[tokio::test]
async fn source_address_in_a_beijing_network() {
    let dir = temp_dir("lua-csv");
    std::fs::write(dir.join("regions.csv"), "127.0.0.0/8,CN,CN-BJ\n").expect("csv");
    let mut c = config();
    c.geoip = vec![dir.join("regions.csv")];
    c.plugin_dir = Some(plugin_dir(
        "lua-geo-src",
        &[("geo_redirect.lua", &example_lua())],
    ));
    let s = start(c).await;
    let r = udp(s.dns, &query("www.example.com.", RecordType::A)).await;
    assert_eq!(answers(&r), vec!["CNAME cdn-bj.example.com.", "192.0.2.10"]);
}

/// Each escape attempt lives in its own plugin; after it fails the query
/// falls through to `ok.lua`, which answers, and the failure is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_escapes_fail_and_are_counted() {
    let attacks: &[(&str, &str, &str)] = &[
        (
            "os_execute",
            "os.execute('touch /tmp/dnspolicy-pwned')",
            "error",
        ),
        ("io_open", "io.open('/etc/passwd')", "error"),
        ("require", "require('os')", "error"),
        (
            "load_bytecode",
            "load(string.char(27, 76, 74, 2))()",
            "error",
        ),
        ("string_dump", "string.dump(function() end)", "error"),
        ("debug_registry", "debug.getregistry()", "error"),
        (
            "ffi",
            "local ffi = require('ffi') ffi.C.system('id')",
            "error",
        ),
        (
            "string_metatable",
            "setmetatable(getmetatable(''), { __index = function() return 'x' end })",
            "error",
        ),
        ("endless_loop", "while true do end", "budget"),
        (
            "pcall_loop",
            "while true do pcall(function() while true do end end) end",
            "budget",
        ),
        (
            "memory_bomb",
            "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 65536) .. i end",
            "memory",
        ),
        ("plain_error", "error('boom')", "error"),
    ];
    let named: Vec<(&str, &str)> = attacks.iter().map(|(n, code, _)| (*n, *code)).collect();
    let s = attack_server(
        "lua-sandbox",
        &named,
        "limits:\n  memory: 4194304\n  instructions: 200000\n",
    )
    .await;

    // The string metatable attack also tries to change strings for others:
    // a later query must still see normal strings.
    for (name, _, _) in attacks {
        let qname = format!("{}.attack.test.", name.replace('_', "-"));
        let r = udp(s.dns, &query(&qname, RecordType::A)).await;
        assert_eq!(
            answers(&r),
            vec!["192.0.2.1"],
            "{name}: the attack must fail and fall through"
        );
    }
    assert!(!std::path::Path::new("/tmp/dnspolicy-pwned").exists());
    let (_, metrics) = http_get(s.admin, "/metrics").await;
    for (name, _, reason) in attacks {
        let line = format!(
            "dnspolicy_plugin_failures_total{{plugin=\"{name}.lua\",reason=\"{reason}\"}} 1"
        );
        assert!(
            metrics.contains(&line),
            "missing `{line}` in:\n{}",
            metrics
                .lines()
                .filter(|l| l.contains("failures"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // Still answering normally, and the looping plugin can run again.
    let r = udp(s.dns, &query("www.example.com.", RecordType::A)).await;
    assert_eq!(answers(&r), vec!["192.0.2.1"]);
    let r = udp(s.dns, &query("endless-loop.attack.test.", RecordType::A)).await;
    assert_eq!(answers(&r), vec!["192.0.2.1"]);
}

#[tokio::test]
async fn lua_and_dsl_compose_by_priority() {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir(
        "lua-chain",
        &[
            ("a_block.lua", "function apply(ctx)\n  if ctx:get_qname():find('blocked', 1, true) then ctx:set_rcode('NXDOMAIN') end\nend\n"),
            ("a_block.yaml", "priority: 300\n"),
            ("b_policy.dsl", "if {query.name} ends_with \"example.com\" { then answer A 192.0.2.40 }"),
            ("b_policy.yaml", "priority: 200\n"),
            ("c_records.lua", "function init(config) prefix = config.prefix end\nfunction apply(ctx)\n  ctx:add_record(ctx:get_qname(), 'TXT', prefix .. '-' .. ctx:get_qtype(), 60)\n  ctx:log('debug', 'answered')\nend\n"),
            ("c_records.yaml", "priority: 100\nconfig:\n  prefix: from-lua\n"),
        ],
    ));
    let s = start(c).await;
    let r = udp(s.dns, &query("blocked.example.com.", RecordType::A)).await;
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::NXDomain,
        "the higher Lua plugin wins"
    );
    let r = udp(s.dns, &query("www.example.com.", RecordType::A)).await;
    assert_eq!(answers(&r), vec!["192.0.2.40"], "then the DSL policy");
    let r = udp(s.dns, &query("other.test.", RecordType::TXT)).await;
    assert_eq!(
        answers(&r),
        vec!["TXT from-lua-TXT"],
        "then the lower Lua plugin, with its config"
    );
    let (_, body) = http_get(s.admin, "/plugins").await;
    assert!(
        body.contains("\"kind\":\"lua\"") && body.contains("\"state\":\"loaded\""),
        "{body}"
    );
}

/// Work a count hook cannot see: C calls that call back into Lua (they nest
/// on the native stack) and backtracking patterns (one long C call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_stack_and_pattern_bombs_are_refused() {
    let attacks: &[(&str, &str)] = &[
        ("gsub_recursion", "local function f() return (string.gsub('x', 'x', f)) end f()"),
        ("sort_recursion", "local function f(a, b) table.sort({3, 2, 1}, f) return a < b end table.sort({3, 2, 1}, f)"),
        ("tostring_recursion", "local t = {} setmetatable(t, { __tostring = function() return tostring(t) end }) tostring(t)"),
        ("pattern_bomb", "string.find(string.rep('a', 40), string.rep('a?', 40) .. string.rep('a', 40))"),
        ("long_subject", "string.find(string.rep('a', 100000), '(a-)-b')"),
    ];
    let s = attack_server("lua-native", attacks, "").await;
    for (name, _) in attacks {
        let qname = format!("{}.attack.test.", name.replace('_', "-"));
        let r = udp(s.dns, &query(&qname, RecordType::A)).await;
        assert_eq!(
            answers(&r),
            vec!["192.0.2.1"],
            "{name}: refused, and the server is alive"
        );
    }
    let (_, metrics) = http_get(s.admin, "/metrics").await;
    for (name, _) in attacks {
        let failed: u64 = metrics
            .lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "dnspolicy_plugin_failures_total{{plugin=\"{name}.lua\""
                ))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(failed, 1, "{name}");
    }
}

/// A server with one plugin per attack, each answering only its own name
/// (`NAME.attack.test`) after the attack, and `ok.lua` below them all: a
/// failed attack falls through to `192.0.2.1`.
async fn attack_server(dir: &str, attacks: &[(&str, &str)], limits: &str) -> TestServer {
    let mut files: Vec<(String, String)> = Vec::new();
    for (i, (name, code)) in attacks.iter().enumerate() {
        let qname = format!("{}.attack.test", name.replace('_', "-"));
        files.push((
            format!("{name}.lua"),
            format!("function apply(ctx)\n  if ctx:get_qname() == \"{qname}\" then\n    {code}\n    ctx:set_answer(\"192.0.2.66\", \"A\", 5)\n  end\nend\n"),
        ));
        files.push((
            format!("{name}.yaml"),
            format!("priority: {}\n{limits}", 100 + i),
        ));
    }
    files.push((
        "ok.lua".into(),
        "function apply(ctx) ctx:set_answer(\"192.0.2.1\", \"A\", 5) end\n".into(),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let mut c = config();
    c.plugin_dir = Some(plugin_dir(dir, &refs));
    start(c).await
}

/// `ctx` is one object per state: a script that keeps it sees the query
/// being applied, never an earlier one.
#[tokio::test]
async fn a_kept_ctx_describes_the_current_query() {
    let mut c = config();
    c.plugin_dir = Some(plugin_dir(
        "lua-kept",
        &[(
            "kept.lua",
            "function apply(ctx)\n  if kept == nil then kept = ctx end\n  ctx:add_record(ctx:get_qname(), 'TXT', kept:get_qname() .. '/' .. kept:get_qtype(), 60)\nend\n",
        )],
    ));
    let s = start(c).await;
    for (name, t, want) in [
        ("a.test.", RecordType::TXT, "TXT a.test/TXT"),
        ("b.test.", RecordType::TXT, "TXT b.test/TXT"),
        ("c.test.", RecordType::A, "TXT c.test/A"),
        // The same name twice in a row, then another: the state's cached
        // Lua string of the last name is reused, never served stale.
        ("c.test.", RecordType::A, "TXT c.test/A"),
        ("a.test.", RecordType::TXT, "TXT a.test/TXT"),
    ] {
        let r = udp(s.dns, &query(name, t)).await;
        assert_eq!(answers(&r), vec![want]);
    }
}
