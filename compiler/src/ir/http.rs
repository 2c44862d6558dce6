//! The HTTP front door's context: which part of a request each `http.*`
//! path (or a variable bound to a request part in the server's config)
//! reads, and how it is read. Pure functions over [`RequestParts`], so
//! `dnspolicy eval --http` and the server's proxy read requests the same way.

use crate::ir::context::Context;
use crate::ir::value::Value;
use crate::ir::Policy;
use std::borrow::Cow;

/// The `http.` paths for editors (hover, completion): a path, or a prefix
/// ending in `.` that takes a name; and what it reads. Always a string.
pub const HTTP_PATHS: &[(&str, &str)] = &[
    ("http.method", "the request method: GET, POST, ..."),
    ("http.host", "the request's host (authority or Host header), lowercase, without the port"),
    ("http.path", "the request path as sent (not decoded), without the query"),
    ("http.header.", "a request header by name, case-insensitive (e.g. http.header.x-user-tier); several fields are joined with \", \""),
    ("http.query.", "the first query parameter of that name, decoded (e.g. http.query.region)"),
    ("http.cookie.", "a cookie by name, from the Cookie header(s)"),
];

/// The meaning of an `http.` path (`http.header.x-canary`), for hover.
pub fn path_doc(path: &str) -> Option<&'static str> {
    HttpPart::from_path(path)?;
    HTTP_PATHS
        .iter()
        .find(|(p, _)| {
            if p.ends_with('.') {
                path.starts_with(p)
            } else {
                path == *p
            }
        })
        .map(|(_, d)| *d)
}

/// A part of an HTTP request a policy can read (always as a string).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HttpPart {
    /// The method (`GET`).
    Method,
    /// The host, from the URI's authority or the `Host` header, without
    /// the port, lowercase.
    Host,
    /// The path, as sent (not decoded), without the query.
    Path,
    /// A header (name lowercase); several fields are joined with `", "`.
    Header(String),
    /// A query parameter (the first of that name), percent-decoded, `+` a space.
    Query(String),
    /// A cookie (the first of that name), from every `Cookie` field.
    Cookie(String),
}

impl HttpPart {
    /// The part an `http.` context path reads (`http.header.x-user-tier`).
    pub fn from_path(path: &str) -> Option<HttpPart> {
        let rest = path.strip_prefix("http.")?;
        Some(match rest.split_once('.') {
            None => match rest {
                "method" => HttpPart::Method,
                "host" => HttpPart::Host,
                "path" => HttpPart::Path,
                _ => return None,
            },
            Some((_, n)) if n.is_empty() || n.contains('.') => return None,
            Some(("header", n)) => HttpPart::Header(n.to_ascii_lowercase()),
            Some(("query", n)) => HttpPart::Query(n.to_string()),
            Some(("cookie", n)) => HttpPart::Cookie(n.to_string()),
            _ => return None,
        })
    }

    /// The canonical `http.` path of this part (header names lowercase).
    pub fn path(&self) -> String {
        match self {
            HttpPart::Method => "http.method".into(),
            HttpPart::Host => "http.host".into(),
            HttpPart::Path => "http.path".into(),
            HttpPart::Header(n) => format!("http.header.{n}"),
            HttpPart::Query(n) => format!("http.query.{n}"),
            HttpPart::Cookie(n) => format!("http.cookie.{n}"),
        }
    }

    /// A binding's source as written in the server config:
    /// `header:X-User-Tier`, `query:region`, `cookie:session`, `method`,
    /// `host`, `path`.
    pub fn from_binding(spec: &str) -> Result<HttpPart, String> {
        let (kind, name) = spec.split_once(':').unwrap_or((spec, ""));
        let name = name.trim();
        let part = match (kind.trim(), name.is_empty()) {
            ("method", true) => HttpPart::Method,
            ("host", true) => HttpPart::Host,
            ("path", true) => HttpPart::Path,
            ("header", false) => HttpPart::Header(name.to_ascii_lowercase()),
            ("query", false) => HttpPart::Query(name.to_string()),
            ("cookie", false) => HttpPart::Cookie(name.to_string()),
            _ => {
                return Err(format!(
                    "`{spec}`: expected `header:NAME`, `query:NAME`, `cookie:NAME`, `method`, `host` or `path`"
                ))
            }
        };
        Ok(part)
    }

    /// This part of `req`, if the request has it.
    pub fn read<'r>(&self, req: &'r dyn RequestParts) -> Option<Cow<'r, str>> {
        match self {
            HttpPart::Method => Some(Cow::Borrowed(req.method())),
            HttpPart::Host => req
                .host()
                .map(|h| Cow::Owned(strip_port(h).to_ascii_lowercase())),
            HttpPart::Path => Some(Cow::Borrowed(req.path())),
            HttpPart::Header(n) => req.header(n),
            HttpPart::Query(n) => query_param(req.query()?, n).map(Cow::Owned),
            HttpPart::Cookie(n) => {
                let all = req.header("cookie")?;
                cookie(&all, n).map(|c| Cow::Owned(c.to_string()))
            }
        }
    }
}

/// What the context needs from a request. The server implements it over
/// hyper's request parts, `eval --http` over its flags.
pub trait RequestParts {
    /// The method.
    fn method(&self) -> &str;
    /// The authority or `Host` header, as sent (may carry a port).
    fn host(&self) -> Option<&str>;
    /// The path, without the query.
    fn path(&self) -> &str;
    /// The query string, without `?`.
    fn query(&self) -> Option<&str>;
    /// Every field of header `lower_name` joined with `", "` (with `"; "`
    /// for `cookie`), or `None`.
    fn header(&self, lower_name: &str) -> Option<Cow<'_, str>>;
}

/// Where each HTTP input of one policy comes from, worked out once per
/// policy load: its `http.*` paths, and injected variables bound to
/// request parts (`user.tier = "header:X-User-Tier"`).
#[derive(Clone, Debug, Default)]
pub struct HttpInputs {
    reads: Vec<(String, HttpPart)>,
}

impl HttpInputs {
    /// The inputs `policy` reads, with `bindings` (variable path → request
    /// part) for its injected variables. Bindings of variables the policy
    /// does not read are skipped; a bound variable that is not a string is
    /// an error (a request part is text).
    pub fn new(policy: &Policy, bindings: &[(String, HttpPart)]) -> Result<HttpInputs, String> {
        let mut reads = Vec::new();
        for input in &policy.inputs {
            if let Some(part) = HttpPart::from_path(&input.path) {
                reads.push((input.path.clone(), part));
            } else if let Some((_, part)) = bindings.iter().find(|(p, _)| *p == input.path) {
                if !matches!(
                    input.ty,
                    crate::ir::types::Type::String | crate::ir::types::Type::Unknown
                ) {
                    return Err(format!(
                        "`{}` is bound to a request part but the policy reads it as {}",
                        input.path, input.ty
                    ));
                }
                reads.push((input.path.clone(), part.clone()));
            }
        }
        Ok(HttpInputs { reads })
    }

    /// Whether the policy reads anything from requests.
    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }

    /// Sets every input this request has; the others stay missing.
    pub fn fill(&self, ctx: &mut Context, req: &dyn RequestParts) {
        for (path, part) in &self.reads {
            if let Some(v) = part.read(req) {
                ctx.set_var(path, Value::Str(v.as_ref().into()));
            }
        }
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

/// The first value of `name` in a query string, decoded like a form
/// (`+` is a space, `%XX` a byte; invalid UTF-8 is replaced).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first cookie called `name` in a `Cookie` header value
/// (`a=1; b=2`); quotes around the value are removed.
pub fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_cookie() {
        assert_eq!(
            query_param("a=1&region=cn-sh&region=x", "region").as_deref(),
            Some("cn-sh")
        );
        assert_eq!(query_param("q=a+b%20c%2", "q").as_deref(), Some("a b c%2"));
        assert_eq!(query_param("flag&x=1", "flag").as_deref(), Some(""));
        assert_eq!(query_param("x=1", "y"), None);
        assert_eq!(query_param("q=%+4", "q").as_deref(), Some("% 4"));
        assert_eq!(cookie("a=1; tier=\"gold\"; b=2", "tier"), Some("gold"));
        assert_eq!(cookie("a=1", "b"), None);
        assert_eq!(strip_port("Example.com:8080"), "Example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("example.com"), "example.com");
    }

    #[test]
    fn bindings() {
        assert_eq!(
            HttpPart::from_binding("header:X-User-Tier"),
            Ok(HttpPart::Header("x-user-tier".into()))
        );
        assert_eq!(
            HttpPart::from_binding("query:region"),
            Ok(HttpPart::Query("region".into()))
        );
        assert!(HttpPart::from_binding("header:").is_err());
        assert!(HttpPart::from_binding("body").is_err());
    }
}
