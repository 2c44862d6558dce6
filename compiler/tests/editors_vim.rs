//! The Vim syntax file, tried in real Vim: headless Vim opens every
//! example (and `editors/vim/tests/highlight.dsl`, the tricky cases) with
//! only `editors/vim` added to its runtime path, and reports the filetype
//! and the highlight group at every byte of every token. The expected
//! group comes from the compiler's own lexer, so a token the syntax file
//! splits, misses or swallows (an `<angle>` variable seen as an operator,
//! `::ffff:1.2.3.4` in two pieces) fails here.
//!
//! Needs `vim` (Debian package vim); under `CI=true` a missing Vim fails.

#[path = "support/examples.rs"]
mod examples;

use dnspolicy_compiler::ir::types::QTYPES;
use dnspolicy_compiler::syntax::lexer::{lex, Tok};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn have_vim() -> bool {
    let found = Command::new("vim")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "vim is missing (Debian package vim); CI must install it"
        );
        eprintln!("skipped: vim is not installed");
    }
    found
}

/// The highlight group a token should get (after links are followed);
/// `None` for plain text (punctuation, names).
fn keyword_group(w: &str) -> Option<&'static str> {
    Some(match w {
        "if" | "else" | "then" | "when" | "pass" => "Conditional",
        "const" | "set" | "input" | "rule" | "priority" | "let" => "Keyword",
        "in" | "not" | "and" | "or" | "matches" | "starts_with" | "ends_with" => "Operator",
        "true" | "false" => "Boolean",
        "answer" | "rewrite" | "ttl" | "forward" | "pool" | "count" | "nxdomain" | "nodata"
        | "refuse" | "servfail" | "drop" | "truncate" | "route" | "respond" | "redirect"
        | "set_header" | "remove_header" => "Statement",
        _ => return None,
    })
}

fn is_context(path: &str) -> bool {
    ["client.", "query.", "server.", "time.", "http."]
        .iter()
        .any(|r| path.starts_with(r))
}

/// One expectation: a byte range of the source and its group (`""` for
/// none).
struct Expect {
    start: usize,
    end: usize,
    group: &'static str,
}

/// What every token of `src` should look like, from the lexer.
fn expectations(src: &str) -> Vec<Expect> {
    let (toks, errors) = lex(src);
    assert!(errors.is_empty(), "{errors:?}");
    let mut out = Vec::new();
    let text = |i: usize| &src[toks[i].0 as usize..toks[i].2 as usize];
    let mut i = 0;
    while i < toks.len() {
        let (s, tok, e) = (toks[i].0 as usize, &toks[i].1, toks[i].2 as usize);
        let mut push =
            |start: usize, end: usize, group: &'static str| out.push(Expect { start, end, group });
        // `{path}`: one variable, braces included.
        if matches!(tok, Tok::LBrace)
            && i + 2 < toks.len()
            && matches!(toks[i + 1].1, Tok::Ident(_) | Tok::Path(_))
            && matches!(toks[i + 2].1, Tok::RBrace)
        {
            let group = if is_context(text(i + 1)) {
                "Identifier"
            } else {
                "PreProc"
            };
            push(s, toks[i + 2].2 as usize, group);
            i += 3;
            continue;
        }
        let prev = i.checked_sub(1).map(|j| &toks[j].1);
        let group = match tok {
            Tok::AngleVar(p) => {
                if is_context(p) {
                    "Identifier"
                } else {
                    "PreProc"
                }
            }
            Tok::Int(_) | Tok::Ip(_) | Tok::Cidr(_) => "Number",
            Tok::Str(_) => {
                // Ends only: escapes inside are SpecialChar.
                push(s, s + 1, "String");
                push(e - 1, e, "String");
                i += 1;
                continue;
            }
            Tok::Colon => "Delimiter",
            Tok::LBracket if matches!(prev, Some(Tok::Colon)) => "Delimiter",
            Tok::Ident(w) => {
                let next = toks.get(i + 1).map(|t| &t.1);
                if let Some(g) = keyword_group(w) {
                    g
                } else if QTYPES.iter().any(|(n, _)| n == w)
                    || w.strip_prefix("TYPE")
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                {
                    "Constant"
                } else if ["hash", "lower", "len"].contains(w) && matches!(next, Some(Tok::LParen))
                {
                    "Function"
                } else if *w == "log"
                    && matches!(prev, Some(Tok::Int(_) | Tok::Ident(_)))
                    && matches!(next, Some(Tok::When | Tok::LBrace | Tok::Lt))
                {
                    // The rule flag, after `priority N` or the rule's name.
                    "StorageClass"
                } else if matches!(prev, Some(Tok::Colon | Tok::LBracket))
                    && ["bool", "int", "string", "name", "ip", "cidr", "qtype"].contains(w)
                {
                    "Type"
                } else {
                    ""
                }
            }
            // A bare dotted path (after `input`): plain, keywords inside
            // are not keywords.
            Tok::Path(_) => "",
            Tok::EqEq
            | Tok::NotEq
            | Tok::Lt
            | Tok::Le
            | Tok::Gt
            | Tok::Ge
            | Tok::Plus
            | Tok::Minus
            | Tok::Star
            | Tok::Slash
            | Tok::Percent
            | Tok::Assign
            | Tok::AngleOpen
            | Tok::Not
            | Tok::And
            | Tok::Or => keyword_group(text(i)).unwrap_or("Operator"),
            _ => keyword_group(text(i)).unwrap_or_default(),
        };
        push(s, e, group);
        i += 1;
    }
    // Comments: the first `#` or `//` in a gap between tokens.
    let mut gaps: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    for t in &toks {
        gaps.push((at, t.0 as usize));
        at = t.2 as usize;
    }
    gaps.push((at, src.len()));
    for (a, b) in gaps {
        let mut k = a;
        while k < b {
            let rest = &src[k..b];
            if rest.starts_with('#') || rest.starts_with("//") {
                let end = rest.find('\n').map_or(b, |n| k + n);
                out.push(Expect {
                    start: k,
                    end,
                    group: "Comment",
                });
                k = end;
            }
            k += 1;
        }
    }
    out
}

/// (1-based line, 1-based byte column) of a byte offset.
fn line_col(src: &str, at: usize) -> (usize, usize) {
    let before = &src[..at];
    let line = before.matches('\n').count() + 1;
    let col = at - before.rfind('\n').map_or(0, |n| n + 1) + 1;
    (line, col)
}

/// Asks Vim: the filetype, then at each position the standard group the
/// syntax item there links to (one level: Vim's default links would fold
/// Keyword into Statement), `unlinked NAME` for an item without a link.
fn vim_groups(file: &Path, positions: &[(usize, usize)]) -> (String, Vec<String>) {
    let dir = std::env::temp_dir().join(format!(
        "dnspolicy-vim-{}-{}",
        std::process::id(),
        file.file_stem().and_then(|s| s.to_str()).unwrap_or("x")
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pos_file = dir.join("positions");
    let out_file = dir.join("groups");
    let script = dir.join("probe.vim");
    let pos: Vec<String> = positions.iter().map(|(l, c)| format!("{l} {c}")).collect();
    std::fs::write(&pos_file, pos.join("\n") + "\n").expect("write positions");
    let rtp = repo()
        .join("editors/vim")
        .canonicalize()
        .expect("editors/vim");
    std::fs::write(
        &script,
        format!(
            "set nocompatible\n\
             let &rtp = '{rtp},' . &rtp\n\
             filetype on\n\
             syntax on\n\
             edit {file}\n\
             let out = [&filetype]\n\
             for p in readfile('{pos}')\n\
             \x20 let [l, c] = map(split(p), 'str2nr(v:val)')\n\
             \x20 let name = synIDattr(synID(l, c, 1), 'name')\n\
             \x20 let link = name == '' ? '' : matchstr(execute('hi ' . name), 'links to \\zs\\S\\+')\n\
             \x20 call add(out, name == '' ? '' : link == '' ? 'unlinked ' . name : link)\n\
             endfor\n\
             call writefile(out, '{out}')\n\
             qall!\n",
            rtp = rtp.display(),
            file = file.display(),
            pos = pos_file.display(),
            out = out_file.display(),
        ),
    )
    .expect("write script");
    let o = Command::new("timeout")
        .args([
            "60", "vim", "-N", "-u", "NONE", "-i", "NONE", "-n", "-es", "-S",
        ])
        .arg(&script)
        .output()
        .expect("run vim");
    let text = std::fs::read_to_string(&out_file).unwrap_or_else(|e| {
        panic!(
            "vim wrote no answer ({e}); status {:?}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let _ = std::fs::remove_dir_all(&dir);
    let mut lines = text.lines().map(str::to_string);
    let ft = lines.next().unwrap_or_default();
    (ft, lines.collect())
}

fn check_file(file: &Path) -> Vec<String> {
    let src = std::fs::read_to_string(file).expect("read");
    let exp = expectations(&src);
    let mut positions = Vec::new();
    let mut wanted = Vec::new();
    for e in &exp {
        for b in e.start..e.end {
            if !src.is_char_boundary(b) || src[b..].starts_with(char::is_whitespace) {
                continue;
            }
            positions.push(line_col(&src, b));
            wanted.push((b, e));
        }
    }
    let (ft, got) = vim_groups(file, &positions);
    let mut bad = Vec::new();
    if ft != "dnspolicy" {
        bad.push(format!("{}: filetype={ft}", file.display()));
    }
    assert_eq!(got.len(), positions.len(), "one answer per position");
    for ((b, e), g) in wanted.iter().zip(&got) {
        if g != e.group {
            let (l, c) = line_col(&src, *b);
            bad.push(format!(
                "{}:{l}:{c}: `{}` in `{}` is {:?}, want {:?}",
                file.display(),
                &src[*b..*b + 1],
                &src[e.start..e.end],
                g,
                e.group
            ));
        }
    }
    bad
}

#[test]
fn vim_highlights_every_example_token_as_the_lexer_reads_it() {
    if !have_vim() {
        return;
    }
    let mut files = vec![repo().join("editors/vim/tests/highlight.dsl")];
    files.extend(examples::example_policies());
    assert!(files.len() > 5, "{files:?}");
    let bad: Vec<String> = files.iter().flat_map(|f| check_file(f)).collect();
    assert!(
        bad.is_empty(),
        "{} wrong:\n{}",
        bad.len(),
        bad[..bad.len().min(60)].join("\n")
    );
}

#[test]
fn structurizr_and_dsssl_files_keep_their_filetype() {
    if !have_vim() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("dnspolicy-vim-ft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (name, text, want) in [
        ("w.dsl", "workspace {\n  model {\n  }\n}\n", "structurizr"),
        ("d.dsl", "<!DOCTYPE style-sheet>\n", "dsl"),
        ("p.dsl", "rule r { then refuse }\n", "dnspolicy"),
    ] {
        let f = dir.join(name);
        std::fs::write(&f, text).expect("write");
        let (ft, _) = vim_groups(&f, &[]);
        assert_eq!(ft, want, "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
