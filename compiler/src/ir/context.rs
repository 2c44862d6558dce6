//! The DNS context a policy sees: the table of known context paths (one
//! place, used by the checker, the interpreter, docs and editors), and
//! [`Context`], the values of one evaluation.
//!
//! Context paths become slots at compile time ([`Field`] indexes a flat
//! array), so evaluation never looks a path up by name.

use crate::ir::types::Type;
use crate::ir::value::Value;
use crate::ir::Policy;
use serde_json::Value as Json;
use std::collections::HashMap;

/// A context path known to the language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Field {
    /// `client.ip`
    ClientIp,
    /// `client.subnet`
    ClientSubnet,
    /// `client.country`
    ClientCountry,
    /// `client.region`
    ClientRegion,
    /// `client.city`
    ClientCity,
    /// `client.asn`
    ClientAsn,
    /// `query.name`
    QueryName,
    /// `query.type`
    QueryType,
    /// `query.class`
    QueryClass,
    /// `query.transport`
    QueryTransport,
    /// `query.dnssec_ok`
    QueryDnssecOk,
    /// `query.recursion_desired`
    QueryRecursionDesired,
    /// `server.listener`
    ServerListener,
    /// `server.node`
    ServerNode,
    /// `time.hour`
    TimeHour,
    /// `time.weekday`
    TimeWeekday,
    /// `time.unix`
    TimeUnix,
    /// `client.rate` (last: slots keep their numbers in compiled artifacts)
    ClientRate,
}

/// A row of the context table.
pub struct FieldInfo {
    /// The path as written in `{...}`.
    pub path: &'static str,
    /// The slot.
    pub field: Field,
    /// Its static type.
    pub ty: Type,
    /// What it means (shown on hover in editors).
    pub doc: &'static str,
}

/// Roots reserved for context paths; any other root is an injected variable.
pub const ROOTS: &[&str] = &["client", "query", "server", "time", "http"];

/// Every context path, its type and its meaning.
pub const FIELDS: &[FieldInfo] = &[
    FieldInfo { path: "client.ip", field: Field::ClientIp, ty: Type::Ip, doc: "source address of the query" },
    FieldInfo { path: "client.subnet", field: Field::ClientSubnet, ty: Type::Cidr, doc: "EDNS Client Subnet if present, else the source's /24 (IPv4) or /56 (IPv6)" },
    FieldInfo { path: "client.country", field: Field::ClientCountry, ty: Type::String, doc: "GeoIP country (ISO 3166-1 alpha-2) of the ECS address if present, else of the source; \"\" if unknown" },
    FieldInfo { path: "client.region", field: Field::ClientRegion, ty: Type::String, doc: "GeoIP region (ISO 3166-2, e.g. CN-BJ) of the ECS address if present, else of the source; \"\" if unknown" },
    FieldInfo { path: "client.city", field: Field::ClientCity, ty: Type::String, doc: "GeoIP city name; \"\" if unknown" },
    FieldInfo { path: "client.asn", field: Field::ClientAsn, ty: Type::Int, doc: "GeoIP autonomous system number, 0 if unknown" },
    FieldInfo { path: "query.name", field: Field::QueryName, ty: Type::Name, doc: "the question name (canonical: lowercase, no trailing dot)" },
    FieldInfo { path: "query.type", field: Field::QueryType, ty: Type::Qtype, doc: "the question type: A, AAAA, CNAME, TXT, ..." },
    FieldInfo { path: "query.class", field: Field::QueryClass, ty: Type::String, doc: "the question class: \"IN\", \"CH\", ..." },
    FieldInfo { path: "query.transport", field: Field::QueryTransport, ty: Type::String, doc: "\"udp\" or \"tcp\"" },
    FieldInfo { path: "query.dnssec_ok", field: Field::QueryDnssecOk, ty: Type::Bool, doc: "the EDNS DO bit" },
    FieldInfo { path: "query.recursion_desired", field: Field::QueryRecursionDesired, ty: Type::Bool, doc: "the RD flag" },
    FieldInfo { path: "server.listener", field: Field::ServerListener, ty: Type::String, doc: "the listener that received the query (its address:port)" },
    FieldInfo { path: "server.node", field: Field::ServerNode, ty: Type::String, doc: "this edge node's name" },
    FieldInfo { path: "time.hour", field: Field::TimeHour, ty: Type::Int, doc: "hour of the evaluation time, 0-23 (UTC)" },
    FieldInfo { path: "time.weekday", field: Field::TimeWeekday, ty: Type::Int, doc: "day of the week of the evaluation time, 1 = Monday ... 7 = Sunday (UTC)" },
    FieldInfo { path: "time.unix", field: Field::TimeUnix, ty: Type::Int, doc: "evaluation time in seconds since 1970-01-01 UTC" },
    FieldInfo { path: "client.rate", field: Field::ClientRate, ty: Type::Int, doc: "UDP queries this second from the source's prefix (/24, /56 by default), this one included; 0 when no rate limit is configured ([limits] qps_per_prefix)" },
];

/// Number of context slots.
pub const FIELD_COUNT: usize = FIELDS.len();

impl Field {
    /// The row of this field in [`FIELDS`].
    pub fn info(self) -> &'static FieldInfo {
        &FIELDS[self as usize]
    }

    /// Looks a path up.
    pub fn from_path(path: &str) -> Option<Field> {
        FIELDS.iter().find(|f| f.path == path).map(|f| f.field)
    }
}

/// The values one evaluation sees. A field or variable that is not set is
/// *missing*: every comparison that reads it is false.
#[derive(Clone, Debug, Default)]
pub struct Context {
    fields: [Option<Value>; FIELD_COUNT],
    vars: HashMap<String, Value>,
}

impl Context {
    /// Sets a context field. The value must have the field's type.
    pub fn set(&mut self, field: Field, value: Value) {
        self.fields[field as usize] = Some(value);
    }

    /// Clears a context field (makes it missing).
    pub fn unset(&mut self, field: Field) {
        self.fields[field as usize] = None;
    }

    /// A context field's value.
    pub fn get(&self, field: Field) -> Option<&Value> {
        self.fields[field as usize].as_ref()
    }

    /// Sets an injected variable by its dotted path (`user.age`).
    pub fn set_var(&mut self, path: &str, value: Value) {
        self.vars.insert(path.to_string(), value);
    }

    /// An injected variable's value.
    pub fn var(&self, path: &str) -> Option<&Value> {
        self.vars.get(path)
    }

    /// Sets `time.unix`, `time.hour` and `time.weekday` from a Unix time.
    pub fn set_time(&mut self, unix: i64) {
        let days = unix.div_euclid(86_400);
        let secs = unix.rem_euclid(86_400);
        self.set(Field::TimeUnix, Value::Int(unix));
        self.set(Field::TimeHour, Value::Int(secs / 3600));
        // 1970-01-01 was a Thursday (4 in ISO numbering).
        self.set(Field::TimeWeekday, Value::Int((days + 3).rem_euclid(7) + 1));
    }
}

/// A JSON context, or one of its values, that does not fit the policy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContextError {
    /// The top level is not an object.
    #[error("a context is a JSON object, e.g. {{\"user\":{{\"age\":20}}}}")]
    NotAnObject,
    /// A value that does not convert to its path's type.
    #[error("`{path}` is {value}, which is not of type {ty}")]
    WrongType {
        /// The dotted path.
        path: String,
        /// The JSON value.
        value: String,
        /// The type the path has.
        ty: Type,
    },
    /// `time` that is not an integer.
    #[error("`time` is {0}, which is not Unix seconds")]
    Time(String),
    /// A key that is neither a context path nor an input of the policy.
    #[error("`{0}` is neither a context path nor an input of this policy")]
    Unknown(String),
}

impl Context {
    /// Builds a context from JSON with the rules of [`Context::merge_json`],
    /// strictly: any value it would leave out is an error (a typo in a test
    /// case must not read as a missing value).
    pub fn from_json(policy: &Policy, j: &Json) -> Result<Context, ContextError> {
        let mut ctx = Context::default();
        if let Some(problem) = ctx.merge_json(policy, j)?.into_iter().next() {
            return Err(problem);
        }
        Ok(ctx)
    }

    /// Sets values from JSON. The one set of rules every tool uses
    /// (`dnspolicy eval --vars`, the test runners, recorded contexts):
    ///
    /// - the top level is an object; nested objects are paths
    ///   (`{"user":{"age":20}}` is `user.age`), dotted keys are too
    ///   (`{"user.age":20}`); when a path appears both ways the later wins;
    /// - a context path (`"query.name"`) or an injected variable of the
    ///   policy gets the JSON value converted to its type: numbers for
    ///   `int`, booleans for `bool`, strings for `string`, `name`
    ///   (canonicalised), `ip`, `cidr` and `qtype`, arrays for lists;
    /// - `client.ip` also sets `client.subnet` (its /24 or /56) unless the
    ///   JSON sets `client.subnet`; `time` (Unix seconds) sets the `time.*`
    ///   fields.
    ///
    /// What does not fit is left out (missing) and returned: a value that
    /// does not convert ([`ContextError::WrongType`], [`ContextError::Time`])
    /// and a key the policy does not know ([`ContextError::Unknown`]). The
    /// caller decides what is an error; [`Context::from_json`] makes every
    /// one an error. Only a top level that is not an object fails here.
    pub fn merge_json(
        &mut self,
        policy: &Policy,
        j: &Json,
    ) -> Result<Vec<ContextError>, ContextError> {
        let Json::Object(_) = j else {
            return Err(ContextError::NotAnObject);
        };
        let mut flat = Vec::new();
        flatten("", j, &mut flat);
        let mut problems = Vec::new();
        let sets_subnet = flat.iter().any(|(k, _)| k == "client.subnet");
        for (k, v) in flat {
            let wrong = |ty: &Type| ContextError::WrongType {
                path: k.clone(),
                value: v.to_string(),
                ty: ty.clone(),
            };
            if let Some(f) = Field::from_path(&k) {
                let ty = &f.info().ty;
                let Some(val) = Value::from_json(v, ty) else {
                    problems.push(wrong(ty));
                    continue;
                };
                if let (Field::ClientIp, Value::Ip(ip), false) = (f, &val, sets_subnet) {
                    self.set(
                        Field::ClientSubnet,
                        Value::Cidr(crate::backend::interp::default_subnet(*ip)),
                    );
                }
                self.set(f, val);
            } else if k == "time" {
                match v.as_i64() {
                    Some(t) => self.set_time(t),
                    None => problems.push(ContextError::Time(v.to_string())),
                }
            } else if let Some(input) = policy.inputs.iter().find(|i| i.path == k) {
                match Value::from_json(v, &input.ty) {
                    Some(val) => self.set_var(&k, val),
                    None => problems.push(wrong(&input.ty)),
                }
            } else {
                problems.push(ContextError::Unknown(k));
            }
        }
        Ok(problems)
    }
}

/// `{"user":{"age":20}}` → `("user.age", 20)`; dotted keys are kept as
/// written, in document order.
fn flatten<'a>(prefix: &str, j: &'a Json, out: &mut Vec<(String, &'a Json)>) {
    if let Json::Object(map) = j {
        for (k, v) in map {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            flatten(&key, v, out);
        }
    } else if !prefix.is_empty() {
        out.push((prefix.to_string(), j));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_field() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert_eq!(f.field as usize, i, "{}", f.path);
            assert!(ROOTS.contains(&f.path.split('.').next().unwrap_or("")));
        }
    }

    #[test]
    fn time_fields() {
        let mut c = Context::default();
        c.set_time(0);
        assert_eq!(c.get(Field::TimeWeekday), Some(&Value::Int(4)));
        c.set_time(1_795_000_000); // a Wednesday, 11:06:40 UTC
        assert_eq!(c.get(Field::TimeHour), Some(&Value::Int(11)));
        assert_eq!(c.get(Field::TimeWeekday), Some(&Value::Int(3)));
    }
}
