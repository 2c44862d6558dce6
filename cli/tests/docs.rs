//! The command examples of `README.md` and `grammar/REFERENCE.md` run as
//! tests, so the docs cannot drift from the binary.
//!
//! What runs: fenced blocks tagged `console`. Each `$ COMMAND` line runs in
//! `sh -c` (with the built `dnspolicy` first on `PATH`, no colour), in a
//! scratch directory holding a copy of `examples/`; the lines after it, up
//! to the next `$`, are its expected output, stdout and stderr together as a
//! terminal shows them. A line `...` stands for any number of lines.
//!
//! Files the examples use: a block tagged `dsl NAME` is written to `NAME`
//! before the commands after it run; a command that names a `.dsl` file and
//! ends in a comment (`$ dnspolicy eval s.dsl   # then "x"`) gets that
//! comment as the file's text (after an optional `NAME:`), unless a block
//! or `examples/` already made that file.
//!
//! A block tagged `console serve` runs against `dnspolicy serve` on its
//! embedded default, started on free loopback ports: `-p 5353` and
//! `127.0.0.1:9153` in its commands are those ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fenced block: its info string and lines.
struct Block {
    info: String,
    lines: Vec<String>,
    at: usize,
}

fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut cur: Option<Block> = None;
    for (n, line) in md.lines().enumerate() {
        if let Some(info) = line.strip_prefix("```") {
            match cur.take() {
                Some(b) => out.push(b),
                None => {
                    cur = Some(Block {
                        info: info.trim().to_string(),
                        lines: Vec::new(),
                        at: n + 1,
                    })
                }
            }
        } else if let Some(b) = cur.as_mut() {
            b.lines.push(line.to_string());
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read examples").flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

/// Whether `got` matches `want`, where a `...` line in `want` matches any
/// run of lines.
fn matches(want: &[String], got: &[String]) -> bool {
    match want.split_first() {
        None => got.is_empty(),
        Some((w, rest)) if w == "..." => (0..=got.len()).any(|k| matches(rest, &got[k..])),
        Some((w, rest)) => got
            .split_first()
            .is_some_and(|(g, grest)| g.trim_end() == w.trim_end() && matches(rest, grest)),
    }
}

/// The embedded-default server of a `console serve` block.
struct Served {
    child: Child,
    dns_port: String,
    admin: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Served {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnspolicy"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnspolicy serve");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the listening line");
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {line:?}"))
            .to_string()
    };
    let dns = field("dns=");
    Served {
        child,
        dns_port: dns.rsplit_once(':').expect("addr").1.to_string(),
        admin: field("admin="),
    }
}

/// Runs every console block of one document; returns the failures.
fn run_doc(doc: &str) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(root().join(doc)).expect("doc");
    let dir = std::env::temp_dir().join(format!(
        "dnspolicy-docs-{}-{}",
        std::process::id(),
        doc.replace('/', "_")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&root().join("examples"), &dir.join("examples"));
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_dnspolicy"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut failures = Vec::new();
    let mut ran = 0;
    // Files a command's comment wrote (it may write them again).
    let mut from_comments = std::collections::HashSet::new();
    for b in blocks(&text) {
        if let Some(name) = b.info.strip_prefix("dsl ") {
            std::fs::write(dir.join(name.trim()), b.lines.join("\n") + "\n").expect("fixture");
            continue;
        }
        let served = match b.info.as_str() {
            "console" => None,
            "console serve" => {
                let have = dnspolicy_e2e::have_tool("dig", "bind9-dnsutils")
                    & dnspolicy_e2e::have_tool("curl", "curl");
                if !have {
                    continue;
                }
                Some(serve(&dir))
            }
            _ => continue,
        };
        let mut i = 0;
        while i < b.lines.len() {
            let Some(cmd) = b.lines[i].strip_prefix("$ ") else {
                failures.push(format!("{doc}:{}: output before a command", b.at + i + 1));
                i += 1;
                continue;
            };
            let line_no = b.at + i + 1;
            let mut want = Vec::new();
            i += 1;
            while i < b.lines.len() && !b.lines[i].starts_with("$ ") {
                want.push(b.lines[i].clone());
                i += 1;
            }
            let mut cmd = cmd.to_string();
            if let Some((run, comment)) = cmd.split_once("  # ") {
                let file = run
                    .split_whitespace()
                    .find(|w| w.ends_with(".dsl") && !w.contains('/'))
                    .filter(|f| from_comments.contains(*f) || !dir.join(f).exists());
                if let (Some(file), true) = (file, run.trim_start().starts_with("dnspolicy")) {
                    from_comments.insert(file.to_string());
                    let body = comment.trim();
                    let body = body
                        .strip_prefix(&format!("{file}:"))
                        .unwrap_or(body)
                        .trim();
                    std::fs::write(dir.join(file), format!("{body}\n")).expect("fixture");
                }
                cmd = run.trim_end().to_string();
            }
            if let Some(s) = &served {
                cmd = cmd
                    .replace("-p 5353", &format!("-p {}", s.dns_port))
                    .replace("127.0.0.1:9153", &s.admin);
            }
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("{cmd} 2>&1"))
                .current_dir(&dir)
                .env("PATH", &path)
                .env("NO_COLOR", "1")
                .env("RUST_LOG", "off")
                .output()
                .expect("sh");
            ran += 1;
            let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            if !matches(&want, &got) {
                failures.push(format!(
                    "{doc}:{line_no}: $ {cmd}\n--- expected\n{}\n--- got\n{}",
                    want.join("\n"),
                    got.join("\n")
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    (ran, failures)
}

#[test]
fn readme_examples() {
    let (ran, failures) = run_doc("README.md");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(ran >= 8, "only {ran} README commands ran");
}

#[test]
fn reference_examples() {
    let (ran, failures) = run_doc("grammar/REFERENCE.md");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(ran >= 20, "only {ran} REFERENCE commands ran");
}

#[test]
fn the_matcher_elides_only_with_dots() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(matches(&s(&["a", "...", "d"]), &s(&["a", "b", "c", "d"])));
    assert!(matches(&s(&["a", "..."]), &s(&["a"])));
    assert!(!matches(&s(&["a", "d"]), &s(&["a", "b", "d"])));
    assert!(!matches(&s(&["a"]), &s(&["a", "b"])));
}
