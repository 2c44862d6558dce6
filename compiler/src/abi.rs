//! The WASM plugin ABI, version 1: the one table both sides read.
//!
//! `grammar/WASM-ABI.md` explains it to people; this module is the
//! machine-readable source of truth. The emitter
//! ([`crate::backend::wasm`]) takes its import names and signatures from
//! [`HOST_IMPORTS`] and its exports from [`EXPORTS`]; the wasmtime host in
//! `dnspolicy-runtime` links exactly [`HOST_IMPORTS`] and [`WASI_IMPORTS`],
//! checks every module's imports and exports against them, and writes the
//! query with [`Header`]. A test on each side keeps them honest: the host's
//! linker defines exactly this table, and every emitted module imports only
//! from it.
//!
//! Pure data and byte encodings: no wasmtime, no I/O.

use crate::ir::types::{Cidr, Type};
use crate::ir::value::Value;
use std::net::IpAddr;

/// The ABI version (`dnspolicy_abi_version()` must return it).
pub const ABI_VERSION: i32 = 1;
/// The import module of the host functions.
pub const IMPORT_MODULE: &str = "dnspolicy";
/// The WASI module whose harmless part is offered ([`WASI_IMPORTS`]).
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// A value type in the ABI's signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// `i32`
    I32,
    /// `i64`
    I64,
}

impl Ty {
    /// The name WebAssembly text uses.
    pub fn name(self) -> &'static str {
        match self {
            Ty::I32 => "i32",
            Ty::I64 => "i64",
        }
    }
}

/// One function of the ABI: its module, name and signature.
#[derive(Debug, PartialEq, Eq)]
pub struct AbiFunc {
    /// Import module ([`IMPORT_MODULE`] or [`WASI_MODULE`]); `""` for an export.
    pub module: &'static str,
    /// Function name.
    pub name: &'static str,
    /// Parameter types.
    pub params: &'static [Ty],
    /// Result types.
    pub results: &'static [Ty],
}

impl AbiFunc {
    /// The signature as WebAssembly text writes it: `(i32, i32) -> (i32)`.
    pub fn signature(&self) -> String {
        signature(self.params, self.results)
    }
}

/// `(i32, i32) -> (i32)` for the given parameter and result types.
pub fn signature(params: &[Ty], results: &[Ty]) -> String {
    let list = |ts: &[Ty]| ts.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ");
    format!("({}) -> ({})", list(params), list(results))
}

use Ty::{I32, I64};

macro_rules! f {
    ($m:expr, $n:expr, [$($p:expr),*], [$($r:expr),*]) => {
        AbiFunc { module: $m, name: $n, params: &[$($p),*], results: &[$($r),*] }
    };
}

/// The exports every plugin module must have, besides `memory`.
pub const EXPORTS: &[AbiFunc] = &[
    f!("", "dnspolicy_abi_version", [], [I32]),
    f!("", "alloc", [I32], [I32]),
    f!("", "init", [I32, I32], [I32]),
    f!("", "process", [I32, I32], [I32]),
    f!("", "destroy", [], []),
];

/// The exported memory's name.
pub const MEMORY_EXPORT: &str = "memory";

/// The host functions of module [`IMPORT_MODULE`] (they mirror the Lua `ctx`).
pub const HOST_IMPORTS: &[AbiFunc] = &[
    f!(IMPORT_MODULE, "get_qname", [I32, I32], [I32]),
    f!(IMPORT_MODULE, "get_qtype", [], [I32]),
    f!(IMPORT_MODULE, "get_client_ip", [I32, I32], [I32]),
    f!(IMPORT_MODULE, "get_source_ip", [I32, I32], [I32]),
    f!(IMPORT_MODULE, "get_ecs", [I32, I32], [I32]),
    f!(IMPORT_MODULE, "geo_region", [I32, I32, I32, I32], [I32]),
    f!(IMPORT_MODULE, "geo_country", [I32, I32, I32, I32], [I32]),
    f!(IMPORT_MODULE, "geo_city", [I32, I32, I32, I32], [I32]),
    f!(IMPORT_MODULE, "geo_asn", [I32, I32], [I64]),
    f!(IMPORT_MODULE, "set_answer", [I32, I32, I32, I32], [I32]),
    f!(
        IMPORT_MODULE,
        "add_record",
        [I32, I32, I32, I32, I32, I32],
        [I32]
    ),
    f!(IMPORT_MODULE, "set_rcode", [I32], [I32]),
    f!(IMPORT_MODULE, "drop", [], [I32]),
    f!(IMPORT_MODULE, "truncate", [], [I32]),
    f!(IMPORT_MODULE, "forward", [I32, I32], [I32]),
    f!(IMPORT_MODULE, "log", [I32, I32, I32], []),
    f!(IMPORT_MODULE, "get_var", [I32, I32, I32, I32], [I32]),
    f!(IMPORT_MODULE, "set_verdict", [I32, I32, I32], [I32]),
    f!(IMPORT_MODULE, "regex_match", [I32, I32, I32, I32], [I32]),
    f!(IMPORT_MODULE, "get_field", [I32, I32, I32], [I32]),
    f!(IMPORT_MODULE, "set_value", [I32, I32, I32, I32], [I32]),
];

/// The part of `wasi_snapshot_preview1` a plugin may import (what each
/// does is the host's business: `grammar/WASM-ABI.md` lists it).
pub const WASI_IMPORTS: &[AbiFunc] = &[
    f!(WASI_MODULE, "fd_write", [I32, I32, I32, I32], [I32]),
    f!(WASI_MODULE, "fd_read", [I32, I32, I32, I32], [I32]),
    f!(WASI_MODULE, "fd_close", [I32], [I32]),
    f!(WASI_MODULE, "fd_seek", [I32, I64, I32, I32], [I32]),
    f!(WASI_MODULE, "fd_tell", [I32, I32], [I32]),
    f!(WASI_MODULE, "fd_sync", [I32], [I32]),
    f!(WASI_MODULE, "fd_fdstat_get", [I32, I32], [I32]),
    f!(WASI_MODULE, "fd_fdstat_set_flags", [I32, I32], [I32]),
    f!(WASI_MODULE, "fd_filestat_get", [I32, I32], [I32]),
    f!(WASI_MODULE, "fd_prestat_get", [I32, I32], [I32]),
    f!(WASI_MODULE, "fd_prestat_dir_name", [I32, I32, I32], [I32]),
    f!(WASI_MODULE, "fd_readdir", [I32, I32, I32, I64, I32], [I32]),
    f!(
        WASI_MODULE,
        "path_open",
        [I32, I32, I32, I32, I32, I64, I64, I32, I32],
        [I32]
    ),
    f!(
        WASI_MODULE,
        "path_filestat_get",
        [I32, I32, I32, I32, I32],
        [I32]
    ),
    f!(WASI_MODULE, "path_create_directory", [I32, I32, I32], [I32]),
    f!(WASI_MODULE, "path_remove_directory", [I32, I32, I32], [I32]),
    f!(WASI_MODULE, "path_unlink_file", [I32, I32, I32], [I32]),
    f!(
        WASI_MODULE,
        "path_rename",
        [I32, I32, I32, I32, I32, I32],
        [I32]
    ),
    f!(WASI_MODULE, "clock_time_get", [I32, I64, I32], [I32]),
    f!(WASI_MODULE, "clock_res_get", [I32, I32], [I32]),
    f!(WASI_MODULE, "random_get", [I32, I32], [I32]),
    f!(WASI_MODULE, "proc_exit", [I32], []),
    f!(WASI_MODULE, "sched_yield", [], [I32]),
    f!(WASI_MODULE, "poll_oneoff", [I32, I32, I32, I32], [I32]),
    f!(WASI_MODULE, "args_sizes_get", [I32, I32], [I32]),
    f!(WASI_MODULE, "args_get", [I32, I32], [I32]),
    f!(WASI_MODULE, "environ_sizes_get", [I32, I32], [I32]),
    f!(WASI_MODULE, "environ_get", [I32, I32], [I32]),
];

/// The row of an import, looked up by module and name.
pub fn import(module: &str, name: &str) -> Option<&'static AbiFunc> {
    HOST_IMPORTS
        .iter()
        .chain(WASI_IMPORTS)
        .find(|f| f.module == module && f.name == name)
}

/// The row of a host function of [`IMPORT_MODULE`]. Panics on a name that
/// is not in [`HOST_IMPORTS`]: callers pass literals, and the ABI test
/// covers each.
pub fn host(name: &str) -> &'static AbiFunc {
    match import(IMPORT_MODULE, name) {
        Some(f) => f,
        None => panic!("`{name}` is not a host function of the plugin ABI"),
    }
}

/// What `process` returns: pass.
pub const PROCESS_PASS: i32 = 0;
/// What `process` returns: decided through the host calls.
pub const PROCESS_DECIDED: i32 = 1;

/// The custom section naming the rules, one per line (per-rule metrics).
pub const SECTION_RULES: &str = "dnspolicy.rules";
/// The custom section of a compiled policy: the context fields it reads, a
/// decimal bit mask of [`crate::Field`] slots.
pub const SECTION_FIELDS: &str = "dnspolicy.fields";
/// The custom section of a compiled policy: its injected variables as JSON
/// (`[{"path": "user.tier", "type": "string"}]`).
pub const SECTION_INPUTS: &str = "dnspolicy.inputs";

/// The `get_field` id of injected variable `i` is `INPUT_BASE + i`; below
/// it, an id is a context field's slot.
pub const INPUT_BASE: u32 = 1000;

/// The query as `process` sees it: a 16-byte header, then the canonical
/// question name.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | ABI version |
/// | 4 | 2 | qtype |
/// | 6 | 2 | qclass (1 IN, 3 CH, 4 HS, 254 NONE, 255 ANY, 0 other) |
/// | 8 | 1 | transport: 0 UDP, 1 TCP |
/// | 9 | 1 | flags: [`Header::RD`], [`Header::DO`], [`Header::ECS`] |
/// | 10 | 2 | qname length |
/// | 12 | 4 | reserved (0) |
/// | 16 | qname length | the name: lowercase, no trailing dot |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// The question type.
    pub qtype: u16,
    /// The question class code.
    pub qclass: u16,
    /// Over TCP.
    pub tcp: bool,
    /// [`Header::RD`] | [`Header::DO`] | [`Header::ECS`].
    pub flags: u8,
}

impl Header {
    /// Bytes before the name.
    pub const LEN: usize = 16;
    /// Longest name written (longer names are cut; DNS names are ≤ 253).
    pub const MAX_QNAME: usize = 1024;
    /// The buffer the host allocates once per instance.
    pub const CAP: usize = Header::LEN + Header::MAX_QNAME;
    /// Flag: recursion desired.
    pub const RD: u8 = 1;
    /// Flag: DNSSEC OK.
    pub const DO: u8 = 2;
    /// Flag: the query carries EDNS Client Subnet.
    pub const ECS: u8 = 4;

    /// The class code of a class mnemonic (`IN` → 1; unknown → 0).
    pub fn class_code(class: &str) -> u16 {
        match class {
            "IN" => 1,
            "CH" => 3,
            "HS" => 4,
            "NONE" => 254,
            "ANY" => 255,
            _ => 0,
        }
    }

    /// Writes the header and `qname` into `dst`; returns the bytes written
    /// (`ctx_len`), or 0 when `dst` is shorter than the header. The name is
    /// cut to what fits and to [`Header::MAX_QNAME`].
    pub fn write(&self, qname: &[u8], dst: &mut [u8]) -> usize {
        let n = qname
            .len()
            .min(Header::MAX_QNAME)
            .min(dst.len().saturating_sub(Header::LEN));
        let Some(h) = dst.get_mut(..Header::LEN) else {
            return 0;
        };
        h[0..4].copy_from_slice(&(ABI_VERSION as u32).to_le_bytes());
        h[4..6].copy_from_slice(&self.qtype.to_le_bytes());
        h[6..8].copy_from_slice(&self.qclass.to_le_bytes());
        h[8] = u8::from(self.tcp);
        h[9] = self.flags;
        h[10..12].copy_from_slice(&(n as u16).to_le_bytes());
        h[12..16].fill(0);
        dst[Header::LEN..Header::LEN + n].copy_from_slice(&qname[..n]);
        Header::LEN + n
    }
}

/// The type code of a value type in `set_value` (and of `get_field`'s
/// forms): 0 bool, 1 int, 2 string, 3 name, 4 ip, 5 cidr, 6 qtype. Lists
/// have none.
pub fn type_code(t: &Type) -> Option<i32> {
    Some(match t {
        Type::Bool => 0,
        Type::Int => 1,
        Type::String => 2,
        Type::Name => 3,
        Type::Ip => 4,
        Type::Cidr => 5,
        Type::Qtype => 6,
        _ => return None,
    })
}

/// The `set_value` type code of a pool key (an int in binary form): the
/// sticky key of the `pool` verdict this call decides next (`then pool NAME
/// sticky KEY` hands `hash(KEY)` over this way, then its static verdict).
pub const POOL_KEY_CODE: i32 = 7;

/// Bytes of an address in binary form: family (4 or 6), 16 address bytes
/// (an IPv4 address in the first 4).
pub const IP_BYTES: usize = 17;
/// Bytes of a prefix in binary form: the address form, then the length.
pub const CIDR_BYTES: usize = 18;

/// An address in binary form.
pub fn ip_bytes(ip: &IpAddr) -> [u8; IP_BYTES] {
    let mut b = [0u8; IP_BYTES];
    match ip {
        IpAddr::V4(a) => {
            b[0] = 4;
            b[1..5].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            b[0] = 6;
            b[1..17].copy_from_slice(&a.octets());
        }
    }
    b
}

/// A prefix in binary form.
pub fn cidr_bytes(c: &Cidr) -> [u8; CIDR_BYTES] {
    let mut b = [0u8; CIDR_BYTES];
    b[..IP_BYTES].copy_from_slice(&ip_bytes(&c.addr));
    b[IP_BYTES] = c.len;
    b
}

/// A value in the binary form `get_field` returns and `set_value` takes:
/// bool 1 byte; int and qtype 8 bytes little-endian; string and name their
/// UTF-8 bytes; ip [`IP_BYTES`]; cidr [`CIDR_BYTES`]. Lists have no form.
pub fn encode_value(v: &Value) -> Option<Vec<u8>> {
    Some(match v {
        Value::Bool(b) => vec![u8::from(*b)],
        Value::Int(i) => i.to_le_bytes().to_vec(),
        Value::Qtype(q) => i64::from(*q).to_le_bytes().to_vec(),
        Value::Str(s) | Value::Name(s) => s.as_bytes().to_vec(),
        Value::Ip(ip) => ip_bytes(ip).to_vec(),
        Value::Cidr(c) => cidr_bytes(c).to_vec(),
        Value::List(_) => return None,
    })
}

/// Reads a value back from [`encode_value`]'s form, given its type code.
/// Anything malformed (a prefix with host bits, a bad family) is `None`.
pub fn decode_value(code: i32, b: &[u8]) -> Option<Value> {
    let ip = |b: &[u8]| -> Option<IpAddr> {
        match b.first()? {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(b.get(1..5)?).ok()?)),
            6 => Some(IpAddr::from(<[u8; 16]>::try_from(b.get(1..17)?).ok()?)),
            _ => None,
        }
    };
    let int = |b: &[u8]| Some(i64::from_le_bytes(b.try_into().ok()?));
    Some(match code {
        0 => Value::Bool(*b.first()? != 0),
        1 => Value::Int(int(b)?),
        2 => Value::Str(std::str::from_utf8(b).ok()?.into()),
        3 => Value::Name(std::str::from_utf8(b).ok()?.into()),
        4 if b.len() == IP_BYTES => Value::Ip(ip(b)?),
        5 if b.len() == CIDR_BYTES => {
            // A prefix must be one: length in range, no host bits.
            let (addr, len) = (ip(b)?, b[IP_BYTES]);
            let c = Cidr::containing(addr, len);
            if c.len != len || c.addr != addr {
                return None;
            }
            Value::Cidr(c)
        }
        6 => Value::Qtype(u16::try_from(int(b)?).ok()?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_module() {
        let mut seen = std::collections::HashSet::new();
        for f in HOST_IMPORTS.iter().chain(WASI_IMPORTS).chain(EXPORTS) {
            assert!(seen.insert((f.module, f.name)), "{}.{}", f.module, f.name);
        }
    }

    #[test]
    fn header_layout() {
        let h = Header {
            qtype: 28,
            qclass: Header::class_code("IN"),
            tcp: true,
            flags: Header::RD | Header::ECS,
        };
        let mut buf = [0xffu8; Header::CAP];
        let n = h.write(b"www.example.com", &mut buf);
        assert_eq!(n, 16 + 15);
        assert_eq!(&buf[0..4], &1u32.to_le_bytes());
        assert_eq!(&buf[4..6], &28u16.to_le_bytes());
        assert_eq!(&buf[6..8], &1u16.to_le_bytes());
        assert_eq!(buf[8], 1);
        assert_eq!(buf[9], 0b101);
        assert_eq!(&buf[10..12], &15u16.to_le_bytes());
        assert_eq!(&buf[12..16], &[0; 4]);
        assert_eq!(&buf[16..31], b"www.example.com");
        assert_eq!(h.write(b"x", &mut [0u8; 8]), 0, "too small for the header");
    }

    #[test]
    fn values_round_trip() {
        let vals = [
            Value::Bool(true),
            Value::Int(-5),
            Value::Qtype(65),
            Value::Str("é".into()),
            Value::Name("a.b".into()),
            Value::Ip("2001:db8::1".parse().unwrap()),
            Value::Cidr("10.1.0.0/16".parse().unwrap()),
        ];
        for v in vals {
            let code = type_code(&v.ty()).unwrap();
            let b = encode_value(&v).unwrap();
            assert_eq!(decode_value(code, &b), Some(v));
        }
        // host bits set: not a prefix
        let mut b = cidr_bytes(&"10.1.0.0/16".parse().unwrap());
        b[3] = 1;
        assert_eq!(decode_value(5, &b), None);
    }
}
