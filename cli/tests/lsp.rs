//! A client drives `dnspolicy lsp` over stdio: initialize, open a file
//! with an error, receive its diagnostics, hover a path, complete a path.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Client {
    child: Child,
    stdin: ChildStdin,
    rx: mpsc::Receiver<Value>,
    next_id: i64,
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_messages(stdout: ChildStdout, tx: mpsc::Sender<Value>) {
    let mut r = BufReader::new(stdout);
    loop {
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                len = v.parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        if let Ok(v) = serde_json::from_slice(&body) {
            if tx.send(v).is_err() {
                return;
            }
        }
    }
}

impl Client {
    fn start() -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dnspolicy"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnspolicy lsp");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || read_messages(stdout, tx));
        Client {
            child,
            stdin,
            rx,
            next_id: 1,
        }
    }

    fn send(&mut self, msg: Value) {
        let body = msg.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let m = self.recv();
            if m["id"] == id {
                return m;
            }
        }
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    fn recv(&self) -> Value {
        self.rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a message from the server within 10 s")
    }

    /// Replaces the document with `text` and asks for completion at
    /// `character` on line 0: the response and its labels.
    fn complete(
        &mut self,
        uri: &str,
        version: i64,
        text: &str,
        character: u32,
    ) -> (Value, Vec<String>) {
        self.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [{ "text": text }] }),
        );
        let _ = self.diagnostics_for(uri);
        let r = self.request(
            "textDocument/completion",
            json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": character } }),
        );
        let labels = r["result"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|i| i["label"].as_str().map(str::to_string))
            .collect();
        (r, labels)
    }

    fn diagnostics_for(&self, uri: &str) -> Vec<Value> {
        loop {
            let m = self.recv();
            if m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri {
                return m["params"]["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
            }
        }
    }
}

#[test]
fn diagnostics_hover_and_completion() {
    let mut c = Client::start();
    let init = c.request(
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {} }),
    );
    assert_eq!(
        init["result"]["capabilities"]["hoverProvider"], true,
        "{init}"
    );
    c.notify("initialized", json!({}));

    let uri = "file:///tmp/geo.dsl";
    let text = "rule geo {\n  if {client.regoin} == \"CN-BJ\" { then rewrite \"cdn-bj.example.com\" }\n}\n";
    c.notify("textDocument/didOpen", json!({ "textDocument": { "uri": uri, "languageId": "dnspolicy", "version": 1, "text": text } }));
    let diags = c.diagnostics_for(uri);
    assert_eq!(diags.len(), 1, "{diags:?}");
    let d = &diags[0];
    assert_eq!(d["code"], "E0020");
    assert_eq!(d["severity"], 1);
    assert_eq!(
        d["range"],
        json!({ "start": { "line": 1, "character": 5 }, "end": { "line": 1, "character": 20 } })
    );
    assert!(
        d["message"]
            .as_str()
            .is_some_and(|m| m.contains("client.region")),
        "{d}"
    );

    // Fixing the file clears the diagnostics.
    let fixed = text.replace("regoin", "region");
    c.notify("textDocument/didChange", json!({ "textDocument": { "uri": uri, "version": 2 }, "contentChanges": [{ "text": fixed }] }));
    assert!(c.diagnostics_for(uri).is_empty());

    // Hover on a context path.
    let h = c.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 1, "character": 12 } }),
    );
    let value = h["result"]["contents"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        value.contains("client.region") && value.contains("string") && value.contains("ISO 3166-2"),
        "{h}"
    );

    // Completion after `{client.`.
    let (r, labels) = c.complete(uri, 3, "if {client.", 11);
    for want in ["client.ip", "client.subnet", "client.region", "client.asn"] {
        assert!(labels.contains(&want.to_string()), "{labels:?}");
    }
    assert!(
        labels.iter().all(|l| l.starts_with("client.")),
        "{labels:?}"
    );
    let edit = &r["result"][0]["textEdit"];
    assert_eq!(
        edit["range"]["start"],
        json!({ "line": 0, "character": 4 }),
        "replaces the typed path"
    );

    // Keywords elsewhere.
    let (_, labels) = c.complete(uri, 4, "rule x { th", 11);
    assert_eq!(labels, ["then"]);

    // HTTP paths: completed by prefix, hovered with a header name in them.
    let (_, labels) = c.complete(uri, 5, "if {http.", 9);
    for want in ["http.method", "http.path", "http.header.", "http.query."] {
        assert!(labels.contains(&want.to_string()), "{labels:?}");
    }
    let http_text = "rule c when {http.header.x-canary} == \"true\" { then route canary }\n";
    c.notify("textDocument/didChange", json!({ "textDocument": { "uri": uri, "version": 6 }, "contentChanges": [{ "text": http_text }] }));
    let h = c.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": 28 } }),
    );
    let value = h["result"]["contents"]["value"]
        .as_str()
        .unwrap_or_default();
    assert!(
        value.contains("http.header.x-canary") && value.contains("case-insensitive"),
        "{h}"
    );

    let s = c.request("shutdown", Value::Null);
    assert!(s.get("error").is_none(), "{s}");
    c.notify("exit", Value::Null);
    let status = c.child.wait().expect("exit");
    assert!(status.success());
}

#[test]
fn document_formatting_is_dnspolicy_fmt() {
    let mut c = Client::start();
    let init = c.request(
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {} }),
    );
    assert_eq!(
        init["result"]["capabilities"]["documentFormattingProvider"], true,
        "{init}"
    );
    c.notify("initialized", json!({}));
    let uri = "file:///tmp/messy.dsl";
    let text = "# steer\nrule   geo   when {query.name}==\"www.example.com\"{\n  if {client.region}==\"CN-BJ\" {then rewrite \"cdn-bj.example.com\"}   # BJ\n}\n";
    c.notify("textDocument/didOpen", json!({ "textDocument": { "uri": uri, "languageId": "dnspolicy", "version": 1, "text": text } }));
    let _ = c.diagnostics_for(uri);
    let r = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    let edits = r["result"].as_array().expect("edits");
    assert_eq!(edits.len(), 1, "{r}");
    assert_eq!(
        edits[0]["range"],
        json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 4, "character": 0 } })
    );
    assert_eq!(
        edits[0]["newText"],
        "# steer\nrule geo when {query.name} == \"www.example.com\" {\n    if {client.region} == \"CN-BJ\" { then rewrite \"cdn-bj.example.com\" }  # BJ\n}\n"
    );
    // Already formatted: no edit. A file that does not parse: no edit.
    let formatted = edits[0]["newText"].as_str().expect("text").to_string();
    c.notify("textDocument/didChange", json!({ "textDocument": { "uri": uri, "version": 2 }, "contentChanges": [{ "text": formatted }] }));
    let _ = c.diagnostics_for(uri);
    let r = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": {} }),
    );
    assert_eq!(r["result"], json!([]));
    c.notify("textDocument/didChange", json!({ "textDocument": { "uri": uri, "version": 3 }, "contentChanges": [{ "text": "rule {" }] }));
    let _ = c.diagnostics_for(uri);
    let r = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": {} }),
    );
    assert_eq!(r["result"], json!([]));
}

impl Client {
    /// Sends raw bytes as one framed message body.
    fn send_raw(&mut self, body: &str) {
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn initialize(&mut self) {
        let init = self.request("initialize", json!({ "capabilities": {} }));
        assert!(init.get("result").is_some(), "{init}");
        self.notify("initialized", json!({}));
    }

    /// Waits for the server to end on its own: its exit status code.
    fn exit_status(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not exit within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The JSON-RPC error code of a response.
fn error_code(r: &Value) -> i64 {
    r["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("an error response: {r}"))
}

#[test]
fn protocol_errors_are_answered_and_the_server_goes_on() {
    let mut c = Client::start();
    // A request before initialize.
    let r = c.request("textDocument/hover", json!({}));
    assert_eq!(error_code(&r), -32002, "{r}");
    c.initialize();

    // Malformed JSON: a parse error with a null id, and the server lives.
    c.send_raw("{\"jsonrpc\": \"2.0\", \"id\": 7, \"method\": ");
    let r = c.recv();
    assert_eq!(error_code(&r), -32700, "{r}");
    assert_eq!(r["id"], Value::Null, "{r}");
    // JSON that is not a request.
    c.send_raw("[1, 2]");
    assert_eq!(error_code(&c.recv()), -32600);

    let uri = "file:///tmp/p.dsl";
    c.notify("textDocument/didOpen", json!({ "textDocument": { "uri": uri, "languageId": "dnspolicy", "version": 1, "text": "rule r when {client.asn} == 1 { then refuse }\n" } }));
    assert!(c.diagnostics_for(uri).is_empty());
    // Wrongly typed params: -32602, for each request that takes them.
    for (method, params) in [
        (
            "textDocument/hover",
            json!({ "textDocument": { "uri": uri }, "position": { "line": "0", "character": 14 } }),
        ),
        (
            "textDocument/completion",
            json!({ "textDocument": { "uri": 5 }, "position": { "line": 0, "character": 14 } }),
        ),
        ("textDocument/formatting", json!({ "textDocument": null })),
        ("textDocument/hover", json!("not an object")),
    ] {
        let r = c.request(method, params);
        assert_eq!(error_code(&r), -32602, "{method}: {r}");
    }
    // An unknown method: -32601.
    let r = c.request("textDocument/rename", json!({}));
    assert_eq!(error_code(&r), -32601, "{r}");
    // A malformed notification gets no reply but a log message.
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri } }),
    );
    let m = c.recv();
    assert_eq!(m["method"], "window/logMessage", "{m}");

    // After all that, it still works.
    let h = c.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": 15 } }),
    );
    assert!(
        h["result"]["contents"]["value"]
            .as_str()
            .is_some_and(|v| v.contains("client.asn")),
        "{h}"
    );

    // `exit` without `shutdown`: status 1.
    c.notify("exit", Value::Null);
    assert_eq!(c.exit_status(), Some(1));
}

#[test]
fn exit_after_shutdown_is_status_0_and_requests_after_shutdown_fail() {
    let mut c = Client::start();
    c.initialize();
    let s = c.request("shutdown", Value::Null);
    assert_eq!(s["result"], Value::Null, "{s}");
    let r = c.request("textDocument/hover", json!({}));
    assert_eq!(error_code(&r), -32600, "{r}");
    c.notify("exit", Value::Null);
    assert_eq!(c.exit_status(), Some(0));

    // The client going away without exit: status 1.
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnspolicy"))
        .arg("lsp")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnspolicy lsp");
    let body =
        json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {} }).to_string();
    let mut stdin = child.stdin.take().expect("stdin");
    write!(stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
    drop(stdin);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(1));
}
