//! Plugin sets through a real OCI registry (Debian's `docker-registry`,
//! started here on loopback with its own storage): push, pull
//! byte-identical, inspect, serve pinned by digest and following a tag,
//! a tampered blob refused while the last good set keeps serving, and the
//! single-WASM artifact in the CNCF Wasm format, field by field.

use dnspolicy_e2e::have_tool;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;
use common::{ask, bin, registry, registry_with, repo_root, Reg, Served};

fn temp(name: &str) -> PathBuf {
    common::temp("oci", name)
}

fn oci(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("oci")
        .args(args)
        .output()
        .expect("dnspolicy oci runs")
}

fn push(dir: &Path, reference: &str) -> String {
    let o = oci(&[
        "push",
        dir.to_str().expect("utf-8"),
        reference,
        "--insecure",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "push: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let last = out.lines().last().expect("a last line").to_string();
    assert!(
        last.starts_with("sha256:") && last.len() == 71,
        "digest on the last line: {out}"
    );
    last
}

/// A TXT answer for NAME from a one-rule policy.
fn txt_policy(dir: &Path, name: &str, text: &str) {
    std::fs::write(
        dir.join("version.dsl"),
        format!("rule version when {{query.name}} == \"{name}\" {{ then answer TXT \"{text}\" ttl 1 }}\n"),
    )
    .expect("policy");
}

fn serve(extra: &[&str]) -> Served {
    let mut args = vec!["--no-admin", "--workers", "1"];
    args.extend_from_slice(extra);
    common::serve(&args, None)
}

fn build_c_plugin(out: &Path) -> bool {
    if !have_tool("clang", "clang") {
        return false;
    }
    let ok = Command::new("bash")
        .arg(repo_root().join("examples/plugins/wasm/c-wasi/build.sh"))
        .env("OUT", out)
        .output()
        .expect("build.sh runs")
        .status
        .success();
    assert!(ok, "the c-wasi kit builds");
    true
}

#[test]
fn round_trip_of_every_plugin_kind_and_serve_pinned() {
    let Some(reg) = registry("roundtrip") else {
        return;
    };
    let set = temp("set");
    let root = repo_root();
    std::fs::copy(
        root.join("examples/serve/plugins/geo_redirect.dsl"),
        set.join("geo.dsl"),
    )
    .expect("dsl");
    std::fs::copy(
        root.join("examples/plugins/dns/geo_redirect.lua"),
        set.join("geo_lua.lua"),
    )
    .expect("lua");
    std::fs::copy(
        root.join("examples/plugins/wasm/geo_redirect.wat"),
        set.join("geo_wat.wat"),
    )
    .expect("wat");
    std::fs::write(set.join("geo_lua.yaml"), "priority: -10\n").expect("metadata");
    // A policy with a file-backed set: the data file travels in the set.
    std::fs::write(
        set.join("listed.dsl"),
        "set listed = file(\"listed.txt\")\nrule listed when {query.name} in listed { then answer A 192.0.2.77 }\n",
    )
    .expect("live policy");
    std::fs::write(set.join("listed.txt"), "listed.example.com\n").expect("live data");
    // Before the geo plugins, which answer every name.
    std::fs::write(set.join("listed.yaml"), "priority: 50\n").expect("metadata");
    let o = Command::new(bin())
        .args(["compile", "--target", "wasm", "-o"])
        .arg(set.join("compiled.wasm"))
        .arg(root.join("examples/blocklist.dsl"))
        .output()
        .expect("compile");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    build_c_plugin(&set.join("geo_c.wasm"));
    let digest = push(&set, &format!("{}/sets/edge:v1", reg.addr));
    // Pull by digest into a fresh directory: every file byte-identical.
    let fresh = temp("fresh");
    let pinned = format!("{}/sets/edge@{digest}", reg.addr);
    let o = oci(&[
        "pull",
        &pinned,
        fresh.to_str().expect("utf-8"),
        "--insecure",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut names = 0;
    for e in std::fs::read_dir(&set).expect("set") {
        let p = e.expect("entry").path();
        let name = p.file_name().expect("name");
        assert_eq!(
            std::fs::read(&p).expect("ours"),
            std::fs::read(fresh.join(name)).expect("pulled"),
            "{name:?}"
        );
        names += 1;
    }
    assert!(
        names >= 5,
        "DSL, Lua (+ yaml), WAT, compiled WASM (and C when clang is here)"
    );
    let o = oci(&[
        "inspect",
        &format!("{}/sets/edge:v1", reg.addr),
        "--insecure",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&digest) && text.contains("geo_lua.lua") && text.contains("-10"),
        "{text}"
    );
    // Served from the pinned digest: a real DNS query answered.
    let cache = temp("cache-pinned");
    let s = serve(&[
        "--source",
        &format!("oci://{pinned}"),
        "--insecure",
        "--source-cache",
        cache.to_str().expect("utf-8"),
    ]);
    let a = ask(s.dns, "www.example.com", 1).expect("an answer");
    assert_eq!(a, ["cdn-global.example.com.", "192.0.2.20"]);
    let a = ask(s.dns, "listed.example.com", 1).expect("an answer");
    assert_eq!(a, ["192.0.2.77"], "the set's data came with it");
    drop(s);
    // The registry gone, a restart serves the cached set (offline); this
    // time the source comes from the config file's [source].
    drop(reg);
    let conf = cache.join("serve.toml");
    std::fs::write(
        &conf,
        format!(
            "[source]\nurl = \"oci://{pinned}\"\ninsecure = true\ncache = \"{}\"\n",
            cache.display()
        ),
    )
    .expect("config");
    let s = serve(&["--config", conf.to_str().expect("utf-8")]);
    assert_eq!(
        ask(s.dns, "www.example.com", 1).expect("an answer")[1],
        "192.0.2.20"
    );
}

/// The blob file of `digest` in the registry's storage.
fn blob_file(reg: &Reg, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    reg.storage
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

#[test]
fn a_tag_is_followed_and_a_tampered_set_is_refused() {
    let Some(reg) = registry("follow") else {
        return;
    };
    let live = format!("{}/sets/live:current", reg.addr);
    let v1 = temp("v1");
    txt_policy(&v1, "version.example.com", "v1");
    push(&v1, &live);
    let cache = temp("cache-follow");
    let s = serve(&[
        "--source",
        &format!("oci://{live}"),
        "--insecure",
        "--source-poll",
        "0.3",
        "--source-cache",
        cache.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        ask(s.dns, "version.example.com", 16).expect("answer"),
        ["v1"]
    );
    // Load at a fixed rate while the tag moves: every query answered.
    let dns = s.dns;
    let load = std::thread::spawn(move || {
        let (mut sent, mut lost, mut seen) = (0, 0, Vec::new());
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(4) {
            sent += 1;
            match ask(dns, "version.example.com", 16) {
                Some(a) => seen.push(a.join("")),
                None => lost += 1,
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (sent, lost, seen)
    });
    std::thread::sleep(Duration::from_millis(500));
    let v2 = temp("v2");
    txt_policy(&v2, "version.example.com", "v2");
    let t_push = Instant::now();
    push(&v2, &live);
    let t0 = Instant::now();
    while ask(s.dns, "version.example.com", 16).expect("answer") != ["v2"] {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "the new tag was not picked up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("v2 in service {:?} after the push", t_push.elapsed());
    let (sent, lost, seen) = load.join().expect("load");
    assert_eq!(lost, 0, "{lost} of {sent} queries lost during the swap");
    assert!(
        seen.iter().all(|a| a == "v1" || a == "v2"),
        "only whole sets: {seen:?}"
    );
    // v3 is pushed under another tag and tampered with in the registry's
    // storage (same length, one byte changed): a pull says so...
    let v3 = temp("v3");
    txt_policy(&v3, "version.example.com", "v3");
    let side = format!("{}/sets/live:side", reg.addr);
    push(&v3, &side);
    let layer = {
        let o = oci(&["inspect", &side, "--insecure", "--format", "json"]);
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("inspect json");
        j["manifest"]["layers"][0]["digest"]
            .as_str()
            .expect("layer digest")
            .to_string()
    };
    let f = blob_file(&reg, &layer);
    let mut bytes = std::fs::read(&f).expect("blob in storage");
    let i = bytes.iter().position(|&b| b == b'3').expect("the v3 text");
    bytes[i] = b'4';
    std::fs::write(&f, &bytes).expect("tamper");
    let o = oci(&[
        "pull",
        &side,
        temp("tampered").to_str().expect("utf-8"),
        "--insecure",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("digest"), "a digest error: {err}");
    // ...and when the followed tag moves to it, the server refuses it and
    // v2 keeps serving.
    push(&v3, &live);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        ask(s.dns, "version.example.com", 16).expect("answer"),
        ["v2"]
    );
}

fn http_get(addr: &str, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/vnd.oci.image.manifest.v1+json\r\n\r\n"
    )
    .expect("request");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("response");
    let at = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end")
        + 4;
    all[at..].to_vec()
}

#[test]
fn a_single_wasm_plugin_is_a_cncf_wasm_artifact() {
    let Some(reg) = registry("cncf") else { return };
    let dir = temp("wasm-only");
    let o = Command::new(bin())
        .args(["compile", "--target", "wasm", "-o"])
        .arg(dir.join("blocklist.wasm"))
        .arg(repo_root().join("examples/blocklist.dsl"))
        .output()
        .expect("compile");
    assert!(o.status.success());
    let wasm = std::fs::read(dir.join("blocklist.wasm")).expect("module");
    let digest = push(&dir, &format!("{}/wasm/blocklist:v1", reg.addr));
    let manifest = http_get(&reg.addr, &format!("/v2/wasm/blocklist/manifests/{digest}"));
    let m: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest json");
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = m["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "exactly one layer");
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    assert_eq!(layers[0]["size"], wasm.len());
    assert_eq!(
        layers[0]["annotations"]["org.opencontainers.image.title"],
        "blocklist.wasm"
    );
    let config_digest = m["config"]["digest"].as_str().expect("config digest");
    let c: serde_json::Value = serde_json::from_slice(&http_get(
        &reg.addr,
        &format!("/v2/wasm/blocklist/blobs/{config_digest}"),
    ))
    .expect("config json");
    assert_eq!(c["architecture"], "wasm");
    assert_eq!(c["os"], "wasip1");
    assert_eq!(c["layerDigests"], serde_json::json!([layers[0]["digest"]]));
    assert!(
        c["created"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{c}"
    );
    let blob = http_get(
        &reg.addr,
        &format!(
            "/v2/wasm/blocklist/blobs/{}",
            layers[0]["digest"].as_str().expect("digest")
        ),
    );
    assert_eq!(blob, wasm, "the layer is the module itself");
}

#[test]
fn basic_auth_from_the_environment_or_a_docker_config() {
    // A bcrypt htpasswd line, made by Debian's python3 (libxcrypt).
    let o = Command::new("/usr/bin/python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt; print(crypt.crypt('s3cret', crypt.mksalt(crypt.METHOD_BLOWFISH)))",
        ])
        .output()
        .expect("python3 runs");
    let hash = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(hash.starts_with("$2"), "a bcrypt hash: {hash}");
    let Some(reg) = registry_with("auth", Some(&format!("alice:{hash}"))) else {
        return;
    };
    let set = repo_root().join("examples/serve/plugins");
    let reference = format!("{}/private/edge:v1", reg.addr);
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(bin());
        c.arg("oci")
            .args(args)
            .env_remove("DNSPOLICY_REGISTRY_USER")
            .env_remove("DNSPOLICY_REGISTRY_PASSWORD");
        c.env("DOCKER_CONFIG", temp("no-docker-config"));
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("dnspolicy oci runs")
    };
    let set_s = set.to_str().expect("utf-8");
    let o = run(&["push", set_s, &reference, "--insecure"], &[]);
    assert_eq!(o.status.code(), Some(1), "anonymous push refused");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(
        &["push", set_s, &reference, "--insecure"],
        &[
            ("DNSPOLICY_REGISTRY_USER", "alice"),
            ("DNSPOLICY_REGISTRY_PASSWORD", "s3cret"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dc = temp("docker-config");
    // base64("alice:s3cret")
    std::fs::write(
        dc.join("config.json"),
        format!(
            r#"{{"auths": {{"{}": {{"auth": "YWxpY2U6czNjcmV0"}}}}}}"#,
            reg.addr
        ),
    )
    .expect("config.json");
    let o = run(
        &["inspect", &reference, "--insecure"],
        &[("DOCKER_CONFIG", dc.to_str().expect("utf-8"))],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("geo_redirect.dsl"));
}
