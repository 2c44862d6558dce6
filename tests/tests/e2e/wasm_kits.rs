//! Plugin authors' kits: the geo redirect built from source by real
//! toolchains — Rust (the SDK in `sdk/rust/dnspolicy-plugin`, Debian's
//! rustc), C and C++ with wasi-libc, Zig (PyPI `ziglang`), AssemblyScript
//! (npm) — and served end to end like the Lua example; and a module calling WASI functions off the allow-list, which
//! loads and gets ENOSYS at run time.

use dnspolicy_e2e::*;
use hickory_proto::rr::RecordType;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds a kit's example with its own `build.sh` (the one documented
/// build line, shared with the bench), writing `out`.
fn build_kit(kit: &str, out: &Path, env: &[(&str, &Path)]) {
    let mut cmd = Command::new("bash");
    cmd.arg(repo(&format!("examples/plugins/wasm/{kit}/build.sh")))
        .env("OUT", out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd, &format!("{kit}/build.sh"));
}

async fn serves_the_geo_redirect(dir: PathBuf) -> TestServer {
    let mut c = config();
    c.plugin_dir = Some(dir);
    let s = start(c).await;
    // An ECS client in CN-BJ gets cdn-bj, anyone else cdn-global: UDP...
    assert_geo_split(s.dns).await;
    // ... and TCP.
    let bj = with_ecs(
        query("www.example.com.", RecordType::A),
        "198.51.100.0".parse().expect("ip"),
        24,
    );
    assert_eq!(
        answers(&tcp(s.dns, &bj).await),
        ["CNAME cdn-bj.example.com.", "192.0.2.10"]
    );
    assert_eq!(
        answers(&tcp(s.dns, &query("img.example.com.", RecordType::A)).await),
        ["CNAME cdn-global.example.com.", "192.0.2.20"]
    );
    s
}

#[tokio::test]
async fn rust_sdk_geo_redirect_built_with_debian_rustc() {
    if !have_file("/usr/bin/rustc", "rustc")
        || !have_file("/usr/lib/rustlib/wasm32-wasi/lib", "libstd-rust-dev-wasm32")
    {
        return;
    }
    let dir = temp_dir("kit-rust");
    build_kit(
        "rust-geo",
        &dir.join("rust_geo.wasm"),
        &[("RUSTC", Path::new("/usr/bin/rustc"))],
    );
    serves_the_geo_redirect(dir).await;
}

#[tokio::test]
async fn c_wasi_libc_geo_redirect_logs_through_printf() {
    if !have_tool("clang", "clang") || !have_file("/usr/lib/wasm32-wasi/libc.a", "wasi-libc") {
        return;
    }
    let tap = log_tap();
    let dir = temp_dir("kit-c-wasi");
    build_kit("c-wasi", &dir.join("geo_c_wasi.wasm"), &[]);
    let _s = serves_the_geo_redirect(dir).await;
    assert!(
        tap.wait_for("c-wasi geo_redirect ready", Duration::from_secs(5)),
        "printf in init reaches the server log"
    );
    assert!(
        tap.wait_for(
            "first query: www.example.com -> cdn-bj.example.com",
            Duration::from_secs(5)
        ),
        "printf in process reaches the server log"
    );
}

#[tokio::test]
async fn cpp_wasi_geo_redirect_without_exceptions() {
    if !have_tool("clang++", "clang")
        || !have_file("/usr/lib/wasm32-wasi/libc++.a", "libc++-14-dev-wasm32")
    {
        return;
    }
    let dir = temp_dir("kit-cpp-wasi");
    build_kit("cpp-wasi", &dir.join("geo_cpp.wasm"), &[]);
    serves_the_geo_redirect(dir).await;
}

/// fopen finds no preopened directory (wasi-libc fails it itself: no file
/// is reachable), and pread is a WASI call off the allow-list: the module
/// loads, the call gets ENOSYS, the plugin keeps answering.
const OUTSIDE: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "dnspolicy_plugin.h"

int32_t dnspolicy_abi_version(void) { return DNSPOLICY_ABI_VERSION; }
static char heap[4096];
static int32_t top;
int32_t dnspolicy_alloc(int32_t len) {
  int32_t need = (len + 7) & ~7;
  if (len <= 0 || need > (int32_t)sizeof heap - top) return 0;
  int32_t p = (int32_t)(uintptr_t)(heap + top);
  top += need;
  return p;
}
int32_t dnspolicy_init(const char *c, int32_t n) { (void)c; (void)n; return 0; }
int32_t dnspolicy_process(const dnspolicy_ctx *ctx, int32_t len) {
  (void)ctx; (void)len;
  FILE *f = fopen("/etc/passwd", "r");
  int fopen_errno = errno;
  char b[8];
  errno = 0;
  ssize_t r = pread(0, b, sizeof b, 0);
  int pread_errno = errno;
  printf("fopen: %s (%d); pread: %zd errno %d\n", f ? "opened" : "refused", fopen_errno, r, pread_errno);
  fflush(stdout);
  const char *t = (f == NULL && r == -1 && pread_errno == ENOSYS) ? "cdn-global.example.com" : "wrong.example.com";
  dp_set_answer(t, (int32_t)strlen(t), DNSPOLICY_TYPE_A, 300);
  return DNSPOLICY_DECIDED;
}
void dnspolicy_destroy(void) {}
"#;

#[tokio::test]
async fn wasi_calls_off_the_allow_list_get_enosys_at_run_time() {
    if !have_tool("clang", "clang") || !have_file("/usr/lib/wasm32-wasi/libc.a", "wasi-libc") {
        return;
    }
    let tap = log_tap();
    let src_dir = temp_dir("kit-outside-src");
    std::fs::write(src_dir.join("outside.c"), OUTSIDE).expect("write");
    let dir = temp_dir("kit-outside");
    let out = dir.join("outside.wasm");
    run(
        Command::new("clang")
            .args([
                "--target=wasm32-wasi",
                "--sysroot=/usr",
                "-O2",
                "-mexec-model=reactor",
                "-I",
            ])
            .arg(repo("examples/plugins/wasm"))
            .arg("-o")
            .arg(&out)
            .arg(src_dir.join("outside.c")),
        "clang outside.c",
    );
    let wasm = std::fs::read(&out).expect("module");
    let module_imports = String::from_utf8_lossy(&wasm);
    assert!(
        module_imports.contains("fd_pread"),
        "the module imports fd_pread"
    );
    let mut c = config();
    c.plugin_dir = Some(dir);
    let s = start(c).await;
    let r = udp(s.dns, &query("img.example.com.", RecordType::A)).await;
    assert_eq!(answers(&r), ["CNAME cdn-global.example.com.", "192.0.2.20"]);
    assert!(
        tap.wait_for(
            "WASI `fd_pread` is outside the allow-list",
            Duration::from_secs(5)
        ),
        "the ENOSYS stub says so in the log"
    );
    assert!(tap.wait_for("pread: -1 errno 52", Duration::from_secs(5)));
    // Still answering: nothing crashed, no call failed.
    let r = udp(s.dns, &query("img.example.com.", RecordType::A)).await;
    assert_eq!(answers(&r), ["CNAME cdn-global.example.com.", "192.0.2.20"]);
}

/// Where `scripts/test` installs PyPI's `ziglang` (`pip install --target`).
fn ziglang_path() -> PathBuf {
    repo("target/tools/ziglang")
}

#[tokio::test]
async fn zig_geo_redirect() {
    let zig = ziglang_path();
    if !have_file(
        zig.join("ziglang").to_str().expect("utf-8"),
        "PyPI ziglang (scripts/test installs it)",
    ) {
        return;
    }
    let dir = temp_dir("kit-zig");
    build_kit(
        "zig-geo",
        &dir.join("geo_zig.wasm"),
        &[("ZIGLANG_PATH", &zig)],
    );
    serves_the_geo_redirect(dir).await;
}

#[tokio::test]
async fn assemblyscript_geo_redirect() {
    if !have_tool("npm", "npm") {
        return;
    }
    let dir = temp_dir("kit-as");
    build_kit("as-geo", &dir.join("geo_as.wasm"), &[]);
    serves_the_geo_redirect(dir).await;
}
