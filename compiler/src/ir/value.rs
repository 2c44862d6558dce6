//! Run-time values and verdicts, shared by every backend.

use crate::ir::types::{qtype_to_string, Cidr, Type};
use serde_json::{json, Value as Json};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// A value of the language at run time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// `bool`
    Bool(bool),
    /// `int`
    Int(i64),
    /// `string`
    Str(Arc<str>),
    /// `name`, always canonical (lowercase, no trailing dot).
    Name(Arc<str>),
    /// `ip`
    Ip(IpAddr),
    /// `cidr`
    Cidr(Cidr),
    /// `qtype`, by number.
    Qtype(u16),
    /// `[T]`
    List(Arc<[Value]>),
}

impl Value {
    /// The value's static type (a list's element type is taken from its
    /// first element; an empty list is `[_]`).
    pub fn ty(&self) -> Type {
        match self {
            Value::Bool(_) => Type::Bool,
            Value::Int(_) => Type::Int,
            Value::Str(_) => Type::String,
            Value::Name(_) => Type::Name,
            Value::Ip(_) => Type::Ip,
            Value::Cidr(_) => Type::Cidr,
            Value::Qtype(_) => Type::Qtype,
            Value::List(items) => {
                Type::List(Box::new(items.first().map_or(Type::Unknown, Value::ty)))
            }
        }
    }

    /// The value as JSON: numbers and booleans as themselves, everything
    /// else in its presentation form as a string, lists as arrays.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Bool(b) => json!(b),
            Value::Int(i) => json!(i),
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            other => Json::String(other.to_string()),
        }
    }

    /// Converts a JSON value to a value of type `ty` (used for injected
    /// variables). Returns `None` when the JSON does not fit the type.
    pub fn from_json(j: &Json, ty: &Type) -> Option<Value> {
        Some(match (ty, j) {
            (Type::Bool, Json::Bool(b)) => Value::Bool(*b),
            (Type::Int, Json::Number(n)) => Value::Int(n.as_i64()?),
            (Type::String, Json::String(s)) => Value::Str(s.as_str().into()),
            (Type::Name, Json::String(s)) => {
                Value::Name(crate::ir::types::canonical_name(s).ok()?.into())
            }
            (Type::Ip, Json::String(s)) => Value::Ip(s.parse().ok()?),
            (Type::Cidr, Json::String(s)) => Value::Cidr(s.parse().ok()?),
            (Type::Qtype, Json::String(s)) => Value::Qtype(crate::ir::types::qtype_from_str(s)?),
            (Type::List(t), Json::Array(items)) => Value::List(
                items
                    .iter()
                    .map(|i| Value::from_json(i, t))
                    .collect::<Option<Vec<_>>>()?
                    .into(),
            ),
            _ => return None,
        })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => f.write_str(s),
            Value::Name(n) if n.is_empty() => f.write_str("."),
            Value::Name(n) => f.write_str(n),
            Value::Ip(ip) => write!(f, "{ip}"),
            Value::Cidr(c) => write!(f, "{c}"),
            Value::Qtype(q) => f.write_str(&qtype_to_string(*q)),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// How `then pool NAME PICK` picks members among the healthy ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pick {
    /// Every healthy member (up to `count`), in configuration order.
    All,
    /// `count` distinct members drawn at random, in proportion to weight.
    Weighted,
    /// `count` members by weighted rendezvous hashing of a key: the same
    /// key gets the same members, and adding a member moves only the keys
    /// it wins (about 1/N of them).
    Sticky,
    /// The healthy members of the best (lowest) priority.
    Failover,
    /// The members closest to the client (GeoIP coordinates, else region,
    /// else country).
    Nearest,
}

impl Pick {
    /// Every pick, as written in policies.
    pub const ALL: [Pick; 5] = [
        Pick::All,
        Pick::Weighted,
        Pick::Sticky,
        Pick::Failover,
        Pick::Nearest,
    ];

    /// The word in policies and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Pick::All => "all",
            Pick::Weighted => "weighted",
            Pick::Sticky => "sticky",
            Pick::Failover => "failover",
            Pick::Nearest => "nearest",
        }
    }

    /// The pick written `word`.
    pub fn from_name(word: &str) -> Option<Pick> {
        Pick::ALL.into_iter().find(|p| p.as_str() == word)
    }
}

/// The records of an answer: one is kept inline, so serving a constant
/// answer reads its address from the verdict table itself rather than from
/// a second allocation (a cache miss per query with 100 000 answers).
pub type Records = smallvec::SmallVec<[Value; 1]>;

/// What a policy decided for one query. `None` from an evaluation means no
/// rule decided (the query goes on to the next plugin or the default).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// A plain value for the caller (`then "VIP"`).
    Value(Value),
    /// Answer with these records.
    Answer {
        /// Record type number.
        rtype: u16,
        /// Record data, one value per record.
        data: Records,
        /// TTL in seconds.
        ttl: u32,
    },
    /// Answer with `qname CNAME target` plus the target's records.
    Rewrite {
        /// Canonical target name.
        target: String,
        /// TTL in seconds.
        ttl: u32,
    },
    /// Forward to an upstream pool.
    Forward {
        /// The pool's name.
        pool: String,
    },
    /// Answer with members of an answer pool (GSLB), picked by the server
    /// from the members that are healthy at that moment.
    Pool {
        /// The answer pool's name (`[pools.NAME]` in the server config).
        pool: Arc<str>,
        /// How members are picked.
        pick: Pick,
        /// How many members to answer with; 0 = every one picked.
        count: u32,
        /// TTL in seconds (the server may cap it, `[gslb] max_ttl`).
        ttl: u32,
        /// The sticky key: `hash(KEY)` of `pick sticky KEY`, else `None`.
        key: Option<i64>,
    },
    /// NXDOMAIN.
    Nxdomain,
    /// NOERROR with no answer.
    Nodata,
    /// REFUSED.
    Refuse,
    /// SERVFAIL.
    Servfail,
    /// No response at all.
    Drop,
    /// An empty response with TC set, so the client retries over TCP.
    Truncate,
    /// Stop this policy without deciding; the next plugin gets the query.
    Pass,
    /// HTTP: send the request to an upstream pool, with header edits.
    Route {
        /// The HTTP pool's name (`[http.pools.NAME]` in the server config).
        pool: Arc<str>,
        /// Edits of the request's headers, applied in order.
        headers: Arc<[HeaderOp]>,
    },
    /// HTTP: answer the request here.
    Respond {
        /// The status code, 100 to 599.
        status: u16,
        /// The body.
        body: Arc<str>,
    },
    /// HTTP: answer with a redirect.
    Redirect {
        /// 301, 302, 303, 307 or 308.
        status: u16,
        /// The `Location`.
        location: Arc<str>,
    },
}

/// A header edit of a `route` verdict.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeaderOp {
    /// The header name, as written (HTTP field names are case-insensitive).
    pub name: Arc<str>,
    /// The value to set (every field of that name is replaced); `None`
    /// removes the header.
    pub value: Option<Arc<str>>,
}

impl Verdict {
    /// The action keyword (`rewrite`, `answer`, ...), or `value`.
    pub fn action(&self) -> &'static str {
        match self {
            Verdict::Value(_) => "value",
            Verdict::Answer { .. } => "answer",
            Verdict::Rewrite { .. } => "rewrite",
            Verdict::Forward { .. } => "forward",
            Verdict::Pool { .. } => "pool",
            Verdict::Nxdomain => "nxdomain",
            Verdict::Nodata => "nodata",
            Verdict::Refuse => "refuse",
            Verdict::Servfail => "servfail",
            Verdict::Drop => "drop",
            Verdict::Truncate => "truncate",
            Verdict::Pass => "pass",
            Verdict::Route { .. } => "route",
            Verdict::Respond { .. } => "respond",
            Verdict::Redirect { .. } => "redirect",
        }
    }

    /// The verdict as JSON: a value verdict as the value itself, an action
    /// as `{"action": ..., fields...}`.
    pub fn to_json(&self) -> Json {
        match self {
            Verdict::Value(v) => v.to_json(),
            Verdict::Answer { rtype, data, ttl } => json!({
                "action": "answer",
                "type": qtype_to_string(*rtype),
                "data": data.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                "ttl": ttl,
            }),
            Verdict::Rewrite { target, ttl } => {
                json!({"action": "rewrite", "target": target, "ttl": ttl})
            }
            Verdict::Forward { pool } => json!({"action": "forward", "pool": pool}),
            Verdict::Pool {
                pool,
                pick,
                count,
                ttl,
                key,
            } => {
                let mut j = json!({
                    "action": "pool",
                    "pool": &**pool,
                    "pick": pick.as_str(),
                    "count": count,
                    "ttl": ttl,
                });
                if let Some(k) = key {
                    j["key"] = json!(k);
                }
                j
            }
            Verdict::Route { pool, headers } => {
                let mut j = json!({"action": "route", "pool": &**pool});
                if !headers.is_empty() {
                    j["headers"] = headers
                        .iter()
                        .map(|h| match &h.value {
                            Some(v) => json!({"set": &*h.name, "value": &**v}),
                            None => json!({"remove": &*h.name}),
                        })
                        .collect();
                }
                j
            }
            Verdict::Respond { status, body } => {
                json!({"action": "respond", "status": status, "body": &**body})
            }
            Verdict::Redirect { status, location } => {
                json!({"action": "redirect", "status": status, "location": &**location})
            }
            other => json!({"action": other.action()}),
        }
    }

    /// Reads a verdict back from [`Verdict::to_json`]'s form (the form a
    /// compiled WASM policy hands to its host). Value verdicts come back as
    /// strings, ints and bools: their static type is not in the JSON.
    pub fn from_json(j: &Json) -> Option<Verdict> {
        let Some(obj) = j.as_object() else {
            return Some(Verdict::Value(match j {
                Json::Bool(b) => Value::Bool(*b),
                Json::Number(n) => Value::Int(n.as_i64()?),
                Json::String(s) => Value::Str(s.as_str().into()),
                _ => return None,
            }));
        };
        let ttl = || -> Option<u32> { u32::try_from(obj.get("ttl")?.as_u64()?).ok() };
        let text = |k: &str| obj.get(k).and_then(Json::as_str);
        Some(match text("action")? {
            "answer" => {
                let rtype = crate::ir::types::qtype_from_str(text("type")?)?;
                let data = obj
                    .get("data")?
                    .as_array()?
                    .iter()
                    .map(|d| {
                        let s = d.as_str()?;
                        Some(match rtype {
                            1 | 28 => Value::Ip(s.parse().ok()?),
                            5 | 2 | 12 => {
                                Value::Name(crate::ir::types::canonical_name(s).ok()?.into())
                            }
                            _ => Value::Str(s.into()),
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Verdict::Answer {
                    rtype,
                    data: data.into(),
                    ttl: ttl()?,
                }
            }
            "rewrite" => Verdict::Rewrite {
                target: crate::ir::types::canonical_name(text("target")?).ok()?,
                ttl: ttl()?,
            },
            "forward" => Verdict::Forward {
                pool: text("pool")?.to_string(),
            },
            "pool" => Verdict::Pool {
                pool: text("pool")?.into(),
                pick: Pick::from_name(text("pick").unwrap_or("all"))?,
                count: u32::try_from(obj.get("count").map_or(Some(0), Json::as_u64)?).ok()?,
                ttl: ttl()?,
                key: match obj.get("key") {
                    None | Some(Json::Null) => None,
                    Some(k) => Some(k.as_i64()?),
                },
            },
            "nxdomain" => Verdict::Nxdomain,
            "nodata" => Verdict::Nodata,
            "refuse" => Verdict::Refuse,
            "servfail" => Verdict::Servfail,
            "drop" => Verdict::Drop,
            "truncate" => Verdict::Truncate,
            "pass" => Verdict::Pass,
            "route" => Verdict::Route {
                pool: text("pool")?.into(),
                headers: match obj.get("headers") {
                    None => Arc::from([]),
                    Some(h) => h
                        .as_array()?
                        .iter()
                        .map(|op| {
                            Some(match (op.get("set"), op.get("remove")) {
                                (Some(n), None) => HeaderOp {
                                    name: n.as_str()?.into(),
                                    value: Some(op.get("value")?.as_str()?.into()),
                                },
                                (None, Some(n)) => HeaderOp {
                                    name: n.as_str()?.into(),
                                    value: None,
                                },
                                _ => return None,
                            })
                        })
                        .collect::<Option<Vec<_>>>()?
                        .into(),
                },
            },
            "respond" => Verdict::Respond {
                status: u16::try_from(obj.get("status")?.as_u64()?).ok()?,
                body: text("body").unwrap_or("").into(),
            },
            "redirect" => Verdict::Redirect {
                status: u16::try_from(obj.get("status")?.as_u64()?).ok()?,
                location: text("location")?.into(),
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn an_answer_with_one_record_is_one_allocation_free_verdict() {
        use super::{Value, Verdict};
        let v = Verdict::Answer {
            rtype: 1,
            data: [Value::Ip("192.0.2.1".parse().expect("address"))]
                .into_iter()
                .collect(),
            ttl: 60,
        };
        let Verdict::Answer { data, .. } = &v else {
            unreachable!()
        };
        assert!(!data.spilled(), "one record is kept inline");
        // The verdict table stays dense: at most a cache line a verdict.
        assert!(std::mem::size_of::<Verdict>() <= 64);
    }
}
