//! `dnspolicy lsp`: a language server over stdio. It publishes the
//! checker's diagnostics when a document opens or changes, shows the type
//! and meaning of context paths on hover, and completes context paths
//! (after `{` or `<`) and keywords.
//!
//! Positions follow LSP's default encoding: 0-based lines, UTF-16 columns.

use dnspolicy_compiler::diagnostics::Severity;
use dnspolicy_compiler::ir::context::FIELDS;
use dnspolicy_compiler::syntax::lexer::KEYWORDS;
use dnspolicy_compiler::{check, Span};
use lsp_server::{Connection, Message, Notification, Request, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::ExitCode;

/// Serves until the client says `exit`.
pub fn run() -> ExitCode {
    let (conn, io) = Connection::stdio();
    let caps = json!({
        "textDocumentSync": 1,
        "hoverProvider": true,
        "documentFormattingProvider": true,
        "completionProvider": { "triggerCharacters": [".", "{", "<"] },
    });
    if let Err(e) = conn.initialize(caps) {
        eprintln!("dnspolicy lsp: initialize failed: {e}");
        return ExitCode::from(2);
    }
    let mut docs: HashMap<String, String> = HashMap::new();
    for msg in &conn.receiver {
        match msg {
            Message::Request(req) => {
                if conn.handle_shutdown(&req).unwrap_or(true) {
                    break;
                }
                let resp = handle_request(&req, &docs);
                let _ = conn.sender.send(Message::Response(resp));
            }
            Message::Notification(n) => {
                if let Some((uri, text)) = document_update(&n) {
                    let diags = diagnostics(&uri, text.as_deref().unwrap_or(""));
                    match text {
                        Some(t) => {
                            docs.insert(uri.clone(), t);
                        }
                        None => {
                            docs.remove(&uri);
                        }
                    }
                    let params = json!({ "uri": uri, "diagnostics": diags });
                    let note = Notification::new("textDocument/publishDiagnostics".into(), params);
                    let _ = conn.sender.send(Message::Notification(note));
                }
            }
            Message::Response(_) => {}
        }
    }
    drop(conn);
    let _ = io.join();
    ExitCode::SUCCESS
}

/// `(uri, Some(new text))` for didOpen/didChange, `(uri, None)` for didClose.
fn document_update(n: &Notification) -> Option<(String, Option<String>)> {
    let p = &n.params;
    let uri = p["textDocument"]["uri"].as_str()?.to_string();
    match n.method.as_str() {
        "textDocument/didOpen" => {
            Some((uri, Some(p["textDocument"]["text"].as_str()?.to_string())))
        }
        // Full sync: the last change holds the whole text.
        "textDocument/didChange" => {
            let text = p["contentChanges"].as_array()?.last()?["text"]
                .as_str()?
                .to_string();
            Some((uri, Some(text)))
        }
        "textDocument/didClose" => Some((uri, None)),
        _ => None,
    }
}

fn handle_request(req: &Request, docs: &HashMap<String, String>) -> Response {
    let p = &req.params;
    let doc = p["textDocument"]["uri"].as_str().and_then(|u| docs.get(u));
    let pos = (
        p["position"]["line"].as_u64(),
        p["position"]["character"].as_u64(),
    );
    let result = match (req.method.as_str(), doc, pos) {
        ("textDocument/hover", Some(text), (Some(l), Some(c))) => {
            hover(text, l as usize, c as usize)
        }
        ("textDocument/completion", Some(text), (Some(l), Some(c))) => {
            completion(text, l as usize, c as usize)
        }
        ("textDocument/formatting", Some(text), _) => formatting(text),
        ("textDocument/hover" | "textDocument/completion" | "textDocument/formatting", _, _) => {
            Value::Null
        }
        _ => {
            return Response::new_err(
                req.id.clone(),
                lsp_server::ErrorCode::MethodNotFound as i32,
                format!("unsupported: {}", req.method),
            );
        }
    };
    Response::new_ok(req.id.clone(), result)
}

/// Document formatting: one edit replacing the whole text with its
/// canonical layout; none when it is already formatted or does not parse
/// (the diagnostics say why).
fn formatting(text: &str) -> Value {
    match dnspolicy_compiler::syntax::format::format(text) {
        Ok(f) if f != text => json!([{
            "range": { "start": position(text, 0), "end": position(text, text.len() as u32) },
            "newText": f,
        }]),
        _ => json!([]),
    }
}

/// LSP position (0-based line, UTF-16 column) of a byte offset.
fn position(text: &str, at: u32) -> Value {
    let at = (at as usize).min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col: usize = before[line_start..].chars().map(char::len_utf16).sum();
    json!({ "line": line, "character": col })
}

fn range(text: &str, s: Span) -> Value {
    json!({ "start": position(text, s.start), "end": position(text, s.end) })
}

/// The checker's diagnostics as LSP diagnostics.
pub fn diagnostics(uri: &str, text: &str) -> Vec<Value> {
    check(text)
        .diagnostics
        .iter()
        .map(|d| {
            let mut message = d.message.clone();
            if !d.primary.message.is_empty() {
                message.push_str(&format!(": {}", d.primary.message));
            }
            if let Some(h) = &d.help {
                message.push_str(&format!("\nhelp: {h}"));
            }
            let related: Vec<Value> = d
                .secondary
                .iter()
                .map(|l| json!({ "location": { "uri": uri, "range": range(text, l.span) }, "message": l.message }))
                .collect();
            json!({
                "range": range(text, d.primary.span),
                "severity": if d.severity == Severity::Error { 1 } else { 2 },
                "code": d.code,
                "source": "dnspolicy",
                "message": message,
                "relatedInformation": related,
            })
        })
        .collect()
}

/// The byte offset of an LSP position in `text`.
fn offset(text: &str, line: usize, character: usize) -> Option<usize> {
    let start = if line == 0 {
        0
    } else {
        text.match_indices('\n').nth(line - 1).map(|(i, _)| i + 1)?
    };
    let mut units = 0;
    for (i, ch) in text[start..].char_indices() {
        if units >= character || ch == '\n' {
            return Some(start + i);
        }
        units += ch.len_utf16();
    }
    Some(text.len())
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Hover on a context path: its type and meaning.
fn hover(text: &str, line: usize, character: usize) -> Value {
    let Some(at) = offset(text, line, character) else {
        return Value::Null;
    };
    let start = text[..at]
        .rfind(|c: char| !is_path_char(c))
        .map_or(0, |i| i + 1);
    let end = text[at..]
        .find(|c: char| !is_path_char(c))
        .map_or(text.len(), |i| at + i);
    let word = &text[start..end];
    match FIELDS.iter().find(|f| f.path == word) {
        Some(f) => json!({
            "contents": { "kind": "markdown", "value": format!("`{}`: **{}**\n\n{}", f.path, f.ty, f.doc) },
            "range": range(text, Span::new(start as u32, end as u32)),
        }),
        None => Value::Null,
    }
}

/// Completion: context paths inside `{...}` / `<...>`, keywords elsewhere.
fn completion(text: &str, line: usize, character: usize) -> Value {
    let Some(at) = offset(text, line, character) else {
        return json!([]);
    };
    let start = text[..at]
        .rfind(|c: char| !is_path_char(c))
        .map_or(0, |i| i + 1);
    let typed = &text[start..at];
    let opener = text[..start].chars().next_back();
    let edit_range = range(text, Span::new(start as u32, at as u32));
    if matches!(opener, Some('{' | '<')) {
        let items: Vec<Value> = FIELDS
            .iter()
            .filter(|f| f.path.starts_with(typed))
            .map(|f| {
                json!({
                    "label": f.path,
                    "kind": 5,
                    "detail": f.ty.to_string(),
                    "documentation": f.doc,
                    "textEdit": { "range": edit_range, "newText": f.path },
                })
            })
            .collect();
        return Value::Array(items);
    }
    let items: Vec<Value> = KEYWORDS
        .iter()
        .filter(|k| k.starts_with(typed))
        .map(|k| json!({ "label": k, "kind": 14, "textEdit": { "range": edit_range, "newText": k } }))
        .collect();
    Value::Array(items)
}
