//! The editors README's Neovim snippet, run as written in headless Neovim
//! (Debian's 0.7): it must detect the filetype, start `dnspolicy lsp`,
//! and show the server's diagnostics, hover and completion through
//! Neovim's own LSP client.
//!
//! Needs `nvim` (Debian package neovim); under `CI=true` a missing Neovim
//! fails.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo")
}

/// The README's ```lua block, pointed at this checkout.
fn readme_snippet() -> String {
    let readme = std::fs::read_to_string(repo().join("editors/README.md")).expect("README");
    let start = readme
        .find("```lua\n")
        .expect("a lua block in editors/README.md")
        + 7;
    let len = readme[start..].find("```").expect("closed");
    readme[start..start + len].replace(
        "/path/to/dnspolicy/editors/vim",
        &repo().join("editors/vim").display().to_string(),
    )
}

const PROBE: &str = r#"
local out = os.getenv("PROBE_OUT")
local r = { filetype = vim.bo.filetype, diagnostics = {} }
vim.wait(15000, function() return #vim.diagnostic.get(0) > 0 end, 50)
for _, d in ipairs(vim.diagnostic.get(0)) do
  local lsp = d.user_data and d.user_data.lsp or {}
  table.insert(r.diagnostics, {
    lnum = d.lnum, col = d.col, severity = d.severity,
    message = d.message, code = d.code or lsp.code,
  })
end
local function ask(method, line, character)
  local params = {
    textDocument = vim.lsp.util.make_text_document_params(),
    position = { line = line, character = character },
  }
  local res = vim.lsp.buf_request_sync(0, method, params, 10000) or {}
  for _, v in pairs(res) do
    if v.result then return v.result end
    if v.err then return { error = v.err } end
  end
  return vim.NIL
end
r.hover = ask("textDocument/hover", 2, 9)
r.completion = ask("textDocument/completion", 1, 8)
r.clients = #vim.lsp.buf_get_clients(0)
vim.fn.writefile({ vim.fn.json_encode(r) }, out)
vim.cmd("qall!")
"#;

#[test]
fn neovim_runs_the_readme_snippet_against_dnspolicy_lsp() {
    if Command::new("nvim").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nvim is missing (Debian package neovim); CI must install it"
        );
        eprintln!("skipped: nvim is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("dnspolicy-nvim-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["config", "data", "cache", "state"] {
        std::fs::create_dir_all(dir.join(sub)).expect("dirs");
    }
    std::fs::write(dir.join("init.lua"), readme_snippet()).expect("init.lua");
    std::fs::write(dir.join("probe.lua"), PROBE).expect("probe.lua");
    let policy = dir.join("geo.dsl");
    // Line 1 has a misspelt path (E0020); line 1 col 8 sits after `{cl`;
    // line 2 col 9 is inside `client.asn`.
    std::fs::write(
        &policy,
        "rule geo {\n  if {client.regoin} == \"CN-BJ\" { then rewrite \"cdn-bj.example.com\" }\n  if {client.asn} == 64500 { then refuse }\n}\n",
    )
    .expect("policy");
    let bin = Path::new(env!("CARGO_BIN_EXE_dnspolicy"));
    let path = format!(
        "{}:{}",
        bin.parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = dir.join("result.json");
    let o = Command::new("timeout")
        .args(["90", "nvim", "--headless", "-n", "-i", "NONE", "-u"])
        .arg(dir.join("init.lua"))
        .arg(&policy)
        .arg("-c")
        .arg(format!("luafile {}", dir.join("probe.lua").display()))
        .current_dir(&dir)
        .env("PATH", path)
        .env("PROBE_OUT", &out)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .output()
        .expect("run nvim");
    let text = std::fs::read_to_string(&out).unwrap_or_else(|e| {
        panic!(
            "nvim wrote no result ({e}); status {:?}\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let r: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(r["filetype"], "dnspolicy", "{r}");
    assert_eq!(r["clients"], 1, "{r}");

    let diags = r["diagnostics"].as_array().expect("diagnostics");
    assert_eq!(diags.len(), 1, "{r}");
    assert_eq!(diags[0]["lnum"], 1, "{r}");
    assert_eq!(diags[0]["col"], 5, "{r}");
    assert_eq!(diags[0]["code"], "E0020", "{r}");
    assert!(
        diags[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("client.region")),
        "{r}"
    );

    let hover = r["hover"]["contents"]["value"].as_str().unwrap_or_default();
    assert!(hover.contains("client.asn") && hover.contains("int"), "{r}");

    let labels: Vec<&str> = r["completion"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["label"].as_str()).collect())
        .unwrap_or_default();
    assert!(labels.contains(&"client.region"), "{r}");
    assert!(labels.iter().all(|l| l.starts_with("cl")), "{labels:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
