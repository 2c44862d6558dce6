//! The DNS context a policy sees: the table of known context paths (one
//! place, used by the checker, the interpreter, docs and editors), and
//! [`Context`], the values of one evaluation.
//!
//! Context paths become slots at compile time ([`Field`] indexes a flat
//! array), so evaluation never looks a path up by name.

use crate::ir::Policy;
use crate::types::Type;
use crate::value::Value;
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
pub const ROOTS: &[&str] = &["client", "query", "server", "time"];

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

impl Context {
    /// Builds a context from a flat JSON object keyed by dotted paths:
    /// context paths (`"query.name": "www.example.com"`) and the policy's
    /// injected variables (`"user.age": 20`). Values are converted to each
    /// path's type; `client.subnet` defaults from `client.ip`. Used by tests
    /// and tools that replay recorded contexts.
    pub fn from_json(policy: &Policy, j: &Json) -> Result<Context, String> {
        let Json::Object(map) = j else {
            return Err("a context is a JSON object".into());
        };
        let mut ctx = Context::default();
        for (k, v) in map {
            if let Some(f) = Field::from_path(k) {
                let val = Value::from_json(v, &f.info().ty)
                    .ok_or_else(|| format!("`{k}`: {v} is not a {}", f.info().ty))?;
                if let (Field::ClientIp, Value::Ip(ip)) = (f, &val) {
                    if ctx.get(Field::ClientSubnet).is_none() {
                        ctx.set(
                            Field::ClientSubnet,
                            Value::Cidr(crate::interp::default_subnet(*ip)),
                        );
                    }
                }
                ctx.set(f, val);
            } else if k == "time" {
                ctx.set_time(v.as_i64().ok_or("`time` is Unix seconds")?);
            } else if let Some(input) = policy.inputs.iter().find(|i| &i.path == k) {
                let val = Value::from_json(v, &input.ty)
                    .ok_or_else(|| format!("`{k}`: {v} is not a {}", input.ty))?;
                ctx.set_var(k, val);
            } else {
                return Err(format!(
                    "`{k}` is neither a context path nor an input of this policy"
                ));
            }
        }
        Ok(ctx)
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
