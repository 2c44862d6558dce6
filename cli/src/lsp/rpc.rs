//! JSON-RPC 2.0 over LSP's base protocol (`Content-Length` framed
//! messages on stdio). Our own framing rather than `lsp-server`'s: that
//! crate's reader thread ends on the first malformed message, and the
//! server with it, where the spec asks for a `-32700` parse error and
//! for the server to go on.

use serde_json::{json, Value};
use std::io::{self, BufRead, Write};

/// JSON-RPC error codes the server sends.
pub mod code {
    /// The body is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// JSON, but not a request or notification.
    pub const INVALID_REQUEST: i64 = -32600;
    /// A method the server does not implement.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Parameters of the wrong shape or type.
    pub const INVALID_PARAMS: i64 = -32602;
    /// A request before `initialize`.
    pub const SERVER_NOT_INITIALIZED: i64 = -32002;
}

/// One message read from the client.
pub enum Incoming {
    /// A request (it has an `id`) or a notification.
    Message {
        /// `None` for a notification.
        id: Option<Value>,
        method: String,
        params: Value,
    },
    /// A response to a request of ours (the server sends none it waits on).
    Response,
    /// A frame whose body is not a JSON-RPC message: what to answer.
    Bad {
        /// The request's id when it could be read, else `null`.
        id: Value,
        code: i64,
        message: String,
    },
    /// The client closed its end.
    Eof,
}

/// Reads one framed message. An `Err` is a broken frame (no usable
/// `Content-Length`, a short body) or I/O: the stream cannot be resynced.
pub fn read(r: &mut impl BufRead) -> io::Result<Incoming> {
    let mut len: Option<usize> = None;
    let mut saw_header = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return if saw_header {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "end of input inside a header",
                ))
            } else {
                Ok(Incoming::Eof)
            };
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if saw_header {
                break;
            }
            continue;
        }
        saw_header = true;
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                len = value.trim().parse().ok();
            }
        }
    }
    let len = len.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "a message without a valid Content-Length",
        )
    })?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(classify(&body))
}

fn bad(id: Value, code: i64, message: impl Into<String>) -> Incoming {
    Incoming::Bad {
        id,
        code,
        message: message.into(),
    }
}

fn classify(body: &[u8]) -> Incoming {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad(Value::Null, code::PARSE_ERROR, format!("not JSON: {e}")),
    };
    let Some(obj) = v.as_object() else {
        return bad(
            Value::Null,
            code::INVALID_REQUEST,
            "a message must be a JSON object",
        );
    };
    let id = obj.get("id").cloned();
    if let Some(id) = &id {
        if !(id.is_string() || id.is_i64() || id.is_u64() || id.is_null()) {
            return bad(
                Value::Null,
                code::INVALID_REQUEST,
                "id must be a number or a string",
            );
        }
    }
    match obj.get("method") {
        Some(Value::String(m)) => Incoming::Message {
            id,
            method: m.clone(),
            params: obj.get("params").cloned().unwrap_or(Value::Null),
        },
        Some(_) => bad(
            id.unwrap_or(Value::Null),
            code::INVALID_REQUEST,
            "method must be a string",
        ),
        None if id.is_some() && (obj.contains_key("result") || obj.contains_key("error")) => {
            Incoming::Response
        }
        None => bad(
            id.unwrap_or(Value::Null),
            code::INVALID_REQUEST,
            "a request needs a method",
        ),
    }
}

/// Writes one framed message and flushes it.
pub fn write(w: &mut impl Write, v: &Value) -> io::Result<()> {
    let body = v.to_string();
    write!(w, "Content-Length: {}\r\n\r\n{body}", body.len())?;
    w.flush()
}

/// A success response.
pub fn ok(id: Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// An error response.
pub fn err(id: Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

/// A notification from the server.
pub fn notification(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "method": method, "params": params })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(raw: &str) -> Incoming {
        read(&mut raw.as_bytes()).expect("a frame")
    }

    fn frame(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    #[test]
    fn frames_are_classified() {
        assert!(matches!(one(""), Incoming::Eof));
        match one(&frame("{oops")) {
            Incoming::Bad { code, id, .. } => {
                assert_eq!(code, code::PARSE_ERROR);
                assert_eq!(id, Value::Null);
            }
            _ => panic!("a parse error"),
        }
        match one(&frame(r#"{"id":3,"method":false}"#)) {
            Incoming::Bad { code, id, .. } => {
                assert_eq!(code, code::INVALID_REQUEST);
                assert_eq!(id, json!(3));
            }
            _ => panic!("an invalid request"),
        }
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{}}"#;
        let raw = format!(
            "content-length: {}\r\nContent-Type: x\r\n\r\n{body}",
            body.len()
        );
        assert!(matches!(one(&raw), Incoming::Message { id: Some(_), .. }));
        assert!(read(&mut "Content-Type: x\r\n\r\n{}".as_bytes()).is_err());
    }
}
