//! A small etcd v3 client over etcd's JSON gateway (`/v3/kv/*`,
//! `/v3/watch`, `/v3/lease/*`), served by every etcd 3.4+ member on its
//! client URL. Keys and values travel base64-encoded and 64-bit numbers as
//! strings, as the gateway's protobuf-JSON mapping has them.
//!
//! Every call tries the member that answered last first, then the others
//! in order: a dead member costs one connect timeout, not the call.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// How long one unary call may take on one member.
const CALL_TIMEOUT: Duration = Duration::from_secs(4);
/// How long connecting to one member may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(800);

/// An etcd call that failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No member could be reached (or none answered in time).
    #[error("etcd unreachable ({0})")]
    Unreachable(String),
    /// A member answered with an error.
    #[error("etcd refused: {0}")]
    Refused(String),
    /// A reply that does not parse as the gateway's JSON.
    #[error("etcd reply malformed: {0}")]
    Malformed(String),
}

/// One key-value pair.
#[derive(Clone, Debug, Default)]
pub struct Kv {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The revision that created the key.
    pub create_revision: i64,
    /// The revision that last changed it.
    pub mod_revision: i64,
}

/// One operation of a transaction (`txn`).
#[derive(Clone, Debug)]
pub enum Op {
    /// Put `key` = `value`.
    Put(Vec<u8>, Vec<u8>),
    /// Delete the keys in [`from`, `to`).
    DeleteRange(Vec<u8>, Vec<u8>),
}

/// A condition of a transaction.
#[derive(Clone, Debug)]
pub enum Compare {
    /// The key's last change was at this revision (0: the key is absent).
    ModRevision(Vec<u8>, i64),
    /// The key exists.
    Exists(Vec<u8>),
}

/// A client for a cluster given by its client URLs.
pub struct Etcd {
    endpoints: Vec<String>,
    http: reqwest::Client,
    preferred: AtomicUsize,
}

/// The end of the key range that holds every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

fn num(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn kv_of(v: &Value) -> Result<Kv, EtcdError> {
    let bytes = |field: &str| -> Result<Vec<u8>, EtcdError> {
        match v.get(field).and_then(Value::as_str) {
            None => Ok(Vec::new()),
            Some(s) => B64
                .decode(s)
                .map_err(|e| EtcdError::Malformed(format!("{field}: {e}"))),
        }
    };
    Ok(Kv {
        key: bytes("key")?,
        value: bytes("value")?,
        create_revision: num(&v["create_revision"]),
        mod_revision: num(&v["mod_revision"]),
    })
}

/// The revision in a reply's header.
pub fn header_revision(v: &Value) -> i64 {
    num(&v["header"]["revision"])
}

impl Etcd {
    /// A client for `spec`: client URLs separated by commas, `http://` or
    /// bare `HOST:PORT`.
    pub fn new(spec: &str) -> Result<Etcd, EtcdError> {
        let endpoints: Vec<String> = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let s = s.trim_end_matches('/');
                if s.starts_with("http://") || s.starts_with("https://") {
                    s.to_string()
                } else {
                    format!("http://{s}")
                }
            })
            .collect();
        if endpoints.is_empty() {
            return Err(EtcdError::Unreachable(format!(
                "no etcd endpoint in `{spec}`"
            )));
        }
        // One TLS stack, ring's (https endpoints), installed once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            // A member that vanishes without a reset still ends the watch.
            .tcp_keepalive(Duration::from_secs(5))
            .build()
            .map_err(|e| EtcdError::Unreachable(e.to_string()))?;
        Ok(Etcd {
            endpoints,
            http,
            preferred: AtomicUsize::new(0),
        })
    }

    /// The client URLs, in order.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The member that answered last.
    pub fn current(&self) -> &str {
        &self.endpoints[self.preferred.load(Relaxed) % self.endpoints.len()]
    }

    fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.endpoints.len();
        let first = self.preferred.load(Relaxed) % n;
        (0..n).map(move |i| (first + i) % n)
    }

    /// POSTs `body` to `path` on the first member that answers (a read or
    /// another call that may safely run twice).
    pub async fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        self.call_with(path, body, true).await
    }

    /// POSTs a write: it moves to another member only when this one was
    /// not reached or says it did nothing (no leader, stopped). After a
    /// timeout the write may have been applied, so that is an error to
    /// the caller, who can read back what happened, rather than a second
    /// write elsewhere.
    pub async fn write(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        self.call_with(path, body, false).await
    }

    async fn call_with(
        &self,
        path: &str,
        body: &Value,
        idempotent: bool,
    ) -> Result<Value, EtcdError> {
        let mut tried = Vec::new();
        for i in self.order() {
            let url = format!("{}{path}", self.endpoints[i]);
            let sent = self
                .http
                .post(&url)
                .timeout(CALL_TIMEOUT)
                .json(body)
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) if idempotent || e.is_connect() => {
                    tried.push(format!("{}: {}", self.endpoints[i], short(&e)));
                    continue;
                }
                Err(e) => return Err(unclear(&self.endpoints[i], &e)),
            };
            let status = resp.status();
            let text = match resp.text().await {
                Ok(t) => t,
                Err(e) if idempotent => {
                    tried.push(format!("{}: {}", self.endpoints[i], short(&e)));
                    continue;
                }
                Err(e) => return Err(unclear(&self.endpoints[i], &e)),
            };
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| EtcdError::Malformed(format!("{path}: {e}: {text:.200}")))?;
            if !status.is_success() || v.get("error").is_some() {
                let msg = v["message"]
                    .as_str()
                    .or_else(|| v["error"].as_str())
                    .unwrap_or(&text)
                    .to_string();
                // A member without a leader (lost quorum) or shutting down:
                // another one may still serve.
                if status.is_server_error()
                    && (msg.contains("leader")
                        || msg.contains("stopped")
                        || (idempotent && msg.contains("timed out")))
                {
                    tried.push(format!("{}: {msg}", self.endpoints[i]));
                    continue;
                }
                return Err(EtcdError::Refused(msg));
            }
            self.preferred.store(i, Relaxed);
            return Ok(v);
        }
        Err(EtcdError::Unreachable(tried.join("; ")))
    }

    /// The value of `key` (if any) and the cluster revision it was read at.
    pub async fn get(&self, key: &[u8]) -> Result<(Option<Kv>, i64), EtcdError> {
        let v = self.call("/v3/kv/range", &json!({"key": b64(key)})).await?;
        let kv = match v["kvs"].as_array().and_then(|a| a.first()) {
            Some(k) => Some(kv_of(k)?),
            None => None,
        };
        Ok((kv, header_revision(&v)))
    }

    /// Every pair whose key starts with `prefix` (values left out when
    /// `keys_only`), in key order, and the revision read at.
    pub async fn prefix(
        &self,
        prefix: &[u8],
        keys_only: bool,
    ) -> Result<(Vec<Kv>, i64), EtcdError> {
        let v = self
            .call(
                "/v3/kv/range",
                &json!({"key": b64(prefix), "range_end": b64(&prefix_end(prefix)), "keys_only": keys_only}),
            )
            .await?;
        let kvs = v["kvs"]
            .as_array()
            .map(|a| a.iter().map(kv_of).collect::<Result<Vec<_>, _>>())
            .transpose()?
            .unwrap_or_default();
        Ok((kvs, header_revision(&v)))
    }

    /// How many keys start with `prefix`.
    pub async fn count(&self, prefix: &[u8]) -> Result<i64, EtcdError> {
        let v = self
            .call(
                "/v3/kv/range",
                &json!({"key": b64(prefix), "range_end": b64(&prefix_end(prefix)), "count_only": true}),
            )
            .await?;
        Ok(num(&v["count"]))
    }

    /// Puts `key` = `value`, attached to `lease` when non-zero; the revision.
    pub async fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, EtcdError> {
        let mut body = json!({"key": b64(key), "value": b64(value)});
        if lease != 0 {
            body["lease"] = json!(lease.to_string());
        }
        let v = self.write("/v3/kv/put", &body).await?;
        Ok(header_revision(&v))
    }

    /// Deletes every key starting with `prefix`.
    pub async fn delete_prefix(&self, prefix: &[u8]) -> Result<(), EtcdError> {
        self.call(
            "/v3/kv/deleterange",
            &json!({"key": b64(prefix), "range_end": b64(&prefix_end(prefix))}),
        )
        .await
        .map(|_| ())
    }

    /// Runs `ops` if every `compare` holds: (whether it did, the revision).
    pub async fn txn(&self, compare: &[Compare], ops: &[Op]) -> Result<(bool, i64), EtcdError> {
        let compare: Vec<Value> = compare
            .iter()
            .map(|c| match c {
                Compare::ModRevision(k, r) => json!({
                    "key": b64(k), "target": "MOD", "result": "EQUAL", "mod_revision": r.to_string()
                }),
                Compare::Exists(k) => json!({
                    "key": b64(k), "target": "CREATE", "result": "GREATER", "create_revision": "0"
                }),
            })
            .collect();
        let success: Vec<Value> = ops
            .iter()
            .map(|o| match o {
                Op::Put(k, v) => json!({"request_put": {"key": b64(k), "value": b64(v)}}),
                Op::DeleteRange(from, to) => {
                    json!({"request_delete_range": {"key": b64(from), "range_end": b64(to)}})
                }
            })
            .collect();
        let v = self
            .write(
                "/v3/kv/txn",
                &json!({"compare": compare, "success": success}),
            )
            .await?;
        Ok((
            v["succeeded"].as_bool().unwrap_or(false),
            header_revision(&v),
        ))
    }

    /// A lease of `ttl` seconds: its id.
    pub async fn lease_grant(&self, ttl: i64) -> Result<i64, EtcdError> {
        let v = self
            .write("/v3/lease/grant", &json!({"TTL": ttl.to_string()}))
            .await?;
        match num(&v["ID"]) {
            0 => Err(EtcdError::Malformed("lease grant without an ID".into())),
            id => Ok(id),
        }
    }

    /// Renews lease `id`: its remaining TTL (0 when it has expired).
    pub async fn lease_keepalive(&self, id: i64) -> Result<i64, EtcdError> {
        let v = self
            .call("/v3/lease/keepalive", &json!({"ID": id.to_string()}))
            .await?;
        Ok(num(&v["result"]["TTL"]))
    }

    /// Revokes lease `id` (its keys go at once).
    pub async fn lease_revoke(&self, id: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", &json!({"ID": id.to_string()}))
            .await
            .map(|_| ())
    }

    /// Watches `key` from revision `start` on the first member that takes
    /// the watch.
    pub async fn watch(&self, key: &[u8], start: i64) -> Result<Watch, EtcdError> {
        let body =
            json!({"create_request": {"key": b64(key), "start_revision": start.to_string()}});
        let mut tried = Vec::new();
        for i in self.order() {
            let url = format!("{}/v3/watch", self.endpoints[i]);
            let sent =
                tokio::time::timeout(CALL_TIMEOUT, self.http.post(&url).json(&body).send()).await;
            let sent = match sent {
                Ok(s) => s,
                Err(_) => {
                    tried.push(format!("{}: no answer to the watch", self.endpoints[i]));
                    self.preferred.store(i + 1, Relaxed);
                    continue;
                }
            };
            match sent {
                Ok(r) if r.status().is_success() => {
                    self.preferred.store(i, Relaxed);
                    return Ok(Watch {
                        resp: r,
                        buf: Vec::new(),
                        member: self.endpoints[i].clone(),
                    });
                }
                Ok(r) => tried.push(format!("{}: HTTP {}", self.endpoints[i], r.status())),
                Err(e) => tried.push(format!("{}: {}", self.endpoints[i], short(&e))),
            }
            // The next member: the preferred one did not answer.
            self.preferred.store(i + 1, Relaxed);
        }
        Err(EtcdError::Unreachable(tried.join("; ")))
    }
}

/// A write that was sent but not answered: it may have been applied.
fn unclear(member: &str, e: &reqwest::Error) -> EtcdError {
    EtcdError::Unreachable(format!(
        "{member}: {} (the write may or may not have been applied)",
        short(e)
    ))
}

fn short(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused or timed out".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        e.to_string()
    }
}

/// What a watch stream said.
#[derive(Debug)]
pub enum WatchEvent {
    /// The watch is in place, at this revision.
    Created(i64),
    /// The key changed (value, `None` when deleted) at this revision.
    Changed(Option<Kv>, i64),
    /// The start revision was compacted away: read the key again.
    Compacted(i64),
}

/// An open watch stream (one HTTP response, one JSON object per line).
pub struct Watch {
    resp: reqwest::Response,
    buf: Vec<u8>,
    /// The member it is open on.
    pub member: String,
}

impl Watch {
    /// The next events; an error when the stream ends or breaks.
    pub async fn next(&mut self) -> Result<Vec<WatchEvent>, EtcdError> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return parse_watch_line(&line);
            }
            match self.resp.chunk().await {
                Ok(Some(c)) => self.buf.extend_from_slice(&c),
                Ok(None) => {
                    return Err(EtcdError::Unreachable(format!(
                        "{}: the watch stream ended",
                        self.member
                    )))
                }
                Err(e) => {
                    return Err(EtcdError::Unreachable(format!(
                        "{}: {}",
                        self.member,
                        short(&e)
                    )))
                }
            }
        }
    }
}

fn parse_watch_line(line: &[u8]) -> Result<Vec<WatchEvent>, EtcdError> {
    let v: Value =
        serde_json::from_slice(line).map_err(|e| EtcdError::Malformed(format!("watch: {e}")))?;
    if let Some(err) = v.get("error") {
        return Err(EtcdError::Refused(format!("watch: {err}")));
    }
    let r = &v["result"];
    let rev = header_revision(r);
    let compact = num(&r["compact_revision"]);
    if compact > 0 {
        return Ok(vec![WatchEvent::Compacted(compact)]);
    }
    if r["canceled"].as_bool() == Some(true) {
        return Err(EtcdError::Refused(format!(
            "watch canceled: {}",
            r["cancel_reason"].as_str().unwrap_or("no reason given")
        )));
    }
    let mut out = Vec::new();
    if r["created"].as_bool() == Some(true) {
        out.push(WatchEvent::Created(rev));
    }
    for e in r["events"].as_array().into_iter().flatten() {
        let kv = kv_of(&e["kv"])?;
        let at = kv.mod_revision;
        if e["type"].as_str() == Some("DELETE") {
            out.push(WatchEvent::Changed(None, at));
        } else {
            out.push(WatchEvent::Changed(Some(kv), at));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn watch_lines() {
        let created = br#"{"result":{"header":{"revision":"7"},"created":true}}"#;
        assert!(matches!(
            parse_watch_line(created).expect("parses").as_slice(),
            [WatchEvent::Created(7)]
        ));
        let put = br#"{"result":{"header":{"revision":"9"},"events":[{"kv":{"key":"L3g=","mod_revision":"9","value":"aGk="}}]}}"#;
        match parse_watch_line(put).expect("parses").as_slice() {
            [WatchEvent::Changed(Some(kv), 9)] => assert_eq!(kv.value, b"hi"),
            other => panic!("{other:?}"),
        }
        let gone =
            br#"{"result":{"header":{"revision":"12"},"compact_revision":"10","canceled":true}}"#;
        assert!(matches!(
            parse_watch_line(gone).expect("parses").as_slice(),
            [WatchEvent::Compacted(10)]
        ));
        assert!(parse_watch_line(b"not json").is_err());
    }
}
