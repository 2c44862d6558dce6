//! `dnspolicy lsp`: a language server over stdio. It publishes the
//! checker's diagnostics when a document opens or changes, shows the type
//! and meaning of context paths on hover, and completes context paths
//! (after `{` or `<`) and keywords.
//!
//! Positions follow LSP's default encoding: 0-based lines, UTF-16 columns.

mod rpc;

use dnspolicy_compiler::diagnostics::Severity;
use dnspolicy_compiler::ir::context::FIELDS;
use dnspolicy_compiler::syntax::lexer::KEYWORDS;
use dnspolicy_compiler::{check, Span};
use rpc::{code, Incoming};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io;
use std::process::ExitCode;

/// Serves until the client says `exit`: status 0 after `shutdown`, 1
/// without (as the spec asks), 1 when the input breaks off.
pub fn run() -> ExitCode {
    let mut input = io::stdin().lock();
    let mut out = io::stdout().lock();
    let mut server = Server::default();
    loop {
        let msg = match rpc::read(&mut input) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("dnspolicy lsp: unreadable input, stopping: {e}");
                return ExitCode::from(1);
            }
        };
        let replies = match msg {
            Incoming::Eof => return server.exit_code(),
            Incoming::Response => continue,
            Incoming::Bad { id, code, message } => {
                eprintln!("dnspolicy lsp: {message}");
                vec![rpc::err(id, code, &message)]
            }
            Incoming::Message {
                id: Some(id),
                method,
                params,
            } => vec![match server.request(&method, &params) {
                Ok(result) => rpc::ok(id, result),
                Err((code, message)) => rpc::err(id, code, &message),
            }],
            Incoming::Message {
                id: None, method, ..
            } if method == "exit" => return server.exit_code(),
            Incoming::Message {
                id: None,
                method,
                params,
            } => server.notification(&method, &params),
        };
        for r in &replies {
            if let Err(e) = rpc::write(&mut out, r) {
                eprintln!("dnspolicy lsp: cannot write to the client: {e}");
                return ExitCode::from(1);
            }
        }
    }
}

/// A request's failure: a JSON-RPC error code and message.
type Failure = (i64, String);

fn invalid(what: &str) -> Failure {
    (code::INVALID_PARAMS, format!("invalid params: {what}"))
}

/// `params.textDocument.uri`.
fn uri(p: &Value) -> Result<&str, Failure> {
    p["textDocument"]["uri"]
        .as_str()
        .ok_or_else(|| invalid("textDocument.uri must be a string"))
}

/// `params.position` as (line, character).
fn pos(p: &Value) -> Result<(usize, usize), Failure> {
    let n = |k: &str| {
        p["position"][k]
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| invalid(&format!("position.{k} must be a non-negative integer")))
    };
    Ok((n("line")?, n("character")?))
}

#[derive(Default)]
struct Server {
    initialized: bool,
    shut_down: bool,
    docs: HashMap<String, String>,
}

impl Server {
    fn exit_code(&self) -> ExitCode {
        if self.shut_down {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }

    fn request(&mut self, method: &str, p: &Value) -> Result<Value, Failure> {
        if method == "initialize" {
            if self.initialized {
                return Err((code::INVALID_REQUEST, "already initialized".into()));
            }
            if !p.is_object() {
                return Err(invalid("initialize takes an object"));
            }
            self.initialized = true;
            return Ok(json!({
                "capabilities": {
                    "textDocumentSync": 1,
                    "hoverProvider": true,
                    "documentFormattingProvider": true,
                    "completionProvider": { "triggerCharacters": [".", "{", "<"] },
                },
                "serverInfo": { "name": "dnspolicy", "version": env!("CARGO_PKG_VERSION") },
            }));
        }
        if !self.initialized {
            return Err((code::SERVER_NOT_INITIALIZED, "initialize first".into()));
        }
        if self.shut_down {
            return Err((code::INVALID_REQUEST, "the server is shut down".into()));
        }
        match method {
            "shutdown" => {
                self.shut_down = true;
                Ok(Value::Null)
            }
            "textDocument/hover" => {
                let (uri, (l, c)) = (uri(p)?, pos(p)?);
                Ok(self.docs.get(uri).map_or(Value::Null, |t| hover(t, l, c)))
            }
            "textDocument/completion" => {
                let (uri, (l, c)) = (uri(p)?, pos(p)?);
                Ok(self
                    .docs
                    .get(uri)
                    .map_or(json!([]), |t| completion(t, l, c)))
            }
            "textDocument/formatting" => {
                let uri = uri(p)?;
                Ok(self.docs.get(uri).map_or(Value::Null, |t| formatting(t)))
            }
            _ => Err((
                code::METHOD_NOT_FOUND,
                format!("unsupported method: {method}"),
            )),
        }
    }

    /// Handles a notification; what to send back (diagnostics, or a log
    /// message saying why a malformed notification was ignored: the spec
    /// gives notifications no reply).
    fn notification(&mut self, method: &str, p: &Value) -> Vec<Value> {
        let tracked = matches!(
            method,
            "textDocument/didOpen" | "textDocument/didChange" | "textDocument/didClose"
        );
        if !self.initialized || !tracked {
            return Vec::new();
        }
        let Some((uri, text)) = document_update(method, p) else {
            let m = format!("dnspolicy lsp: ignored {method} with invalid params");
            eprintln!("{m}");
            return vec![rpc::notification(
                "window/logMessage",
                json!({ "type": 1, "message": m }),
            )];
        };
        let diags = diagnostics(&uri, text.as_deref().unwrap_or(""));
        match text {
            Some(t) => {
                self.docs.insert(uri.clone(), t);
            }
            None => {
                self.docs.remove(&uri);
            }
        }
        vec![rpc::notification(
            "textDocument/publishDiagnostics",
            json!({ "uri": uri, "diagnostics": diags }),
        )]
    }
}

/// `(uri, Some(new text))` for didOpen/didChange, `(uri, None)` for
/// didClose; `None` when the params are not what the method takes (or
/// the method is one the server does not track, like didSave).
fn document_update(method: &str, p: &Value) -> Option<(String, Option<String>)> {
    let uri = p["textDocument"]["uri"].as_str()?.to_string();
    match method {
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
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'
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
    let (ty, doc) = match FIELDS.iter().find(|f| f.path == word) {
        Some(f) => (f.ty.to_string(), f.doc),
        None => match dnspolicy_compiler::ir::http::path_doc(word) {
            Some(d) => ("string".to_string(), d),
            None => return Value::Null,
        },
    };
    json!({
        "contents": { "kind": "markdown", "value": format!("`{word}`: **{ty}**\n\n{doc}") },
        "range": range(text, Span::new(start as u32, end as u32)),
    })
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
        let fields = FIELDS.iter().map(|f| (f.path, f.ty.to_string(), f.doc));
        let http = dnspolicy_compiler::ir::http::HTTP_PATHS
            .iter()
            .map(|(p, d)| (*p, "string".to_string(), *d));
        let items: Vec<Value> = fields
            .chain(http)
            .filter(|(p, _, _)| p.starts_with(typed))
            .map(|(p, ty, doc)| {
                json!({
                    "label": p,
                    "kind": 5,
                    "detail": ty,
                    "documentation": doc,
                    "textEdit": { "range": edit_range, "newText": p },
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
