//! Lua plugins: LuaJIT (built from source by mlua) behind the [`Plugin`]
//! trait, in a sandbox.
//!
//! A script defines `apply(ctx)` and optionally `init(config)` and
//! `destroy()`. Each plugin keeps a Lua state per worker (and a pool for
//! other callers); a state serves one
//! query at a time and is never shared between threads at once, so scripts
//! may keep state in globals, per state (see `docs/lua-plugins.md`).
//!
//! The sandbox: only base (without load/loadstring/dofile/loadfile/
//! collectgarbage/getfenv/setfenv/newproxy/coroutine), string (without
//! dump), table, math and os.time/os.clock are reachable; io, os.execute,
//! require/package, debug, jit and ffi are not loaded or are removed; the
//! string metatable is hidden; only text chunks load. Each state has a
//! memory cap (its allocator refuses past it) and each `apply` an
//! instruction budget (a count hook). LuaJIT's JIT compiler is off in
//! plugin states: compiled traces never call hooks, so a budget could not
//! stop a compiled `while true do end`.

use crate::dns::query::QueryCtx;
use crate::plugin::pool::WorkerSlots;
use crate::plugin::{Decision, Plugin, PluginError};
use dnspolicy_compiler::ir::types::qtype_to_string;
use mlua::{Function, HookTriggers, Lua, LuaOptions, StdLib, UserData, UserDataMethods, VmState};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::plugin::host::Limits;
use crate::plugin::host::{rtype, Call, Failures};

/// A Lua script that cannot be a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LuaError {
    /// The sandbox could not be set up (a host fault, not the script's).
    #[error("cannot set up the Lua sandbox: {0}")]
    Sandbox(String),
    /// The script does not compile, or its top-level code fails; `line` is
    /// where, when Lua says.
    #[error("{message}")]
    Script {
        /// Lua's message (`NAME:LINE: ...`).
        message: String,
        /// The 1-based line it names.
        line: Option<u32>,
    },
    /// No global function `apply`.
    #[error("the script does not define `apply(ctx)`")]
    NoApply,
    /// `init(config)` failed.
    #[error("init failed: {0}")]
    Init(String),
}

impl LuaError {
    /// A script error, with the line Lua names after `chunk:`.
    fn script(e: &mlua::Error, chunk: &str) -> LuaError {
        let message = e.to_string();
        let line = message
            .split(&format!("{chunk}:"))
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.trim().parse().ok());
        LuaError::Script { message, line }
    }
}

fn sandbox(e: mlua::Error) -> LuaError {
    LuaError::Sandbox(e.to_string())
}

/// One Lua state with its budget counter.
struct State {
    lua: Lua,
    apply: Function,
    /// The `ctx` every `apply` of this state gets: made once, holding the
    /// current call (a scoped userdata per call cost a userdata, its
    /// metatable lookups and protected-call closures, on every query).
    ctx: mlua::AnyUserData,
    used: Arc<AtomicU64>,
    clock: Arc<Deadline>,
}

/// When the current call started, against a fixed base (atomics only, so
/// the hook can read it without locks).
struct Deadline {
    base: std::time::Instant,
    started_ns: AtomicU64,
    limit_ns: u64,
}

impl Deadline {
    fn start(&self) {
        self.started_ns
            .store(self.base.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    fn passed(&self) -> bool {
        let now = self.base.elapsed().as_nanos() as u64;
        now.saturating_sub(self.started_ns.load(Ordering::Relaxed)) > self.limit_ns
    }
}

/// A sandboxed Lua script as a plugin.
pub struct LuaPlugin {
    name: String,
    label: Arc<str>,
    gate: Arc<crate::plugin::host::LogGate>,
    src: Arc<str>,
    path: PathBuf,
    limits: Limits,
    config: serde_json::Value,
    pool: WorkerSlots<State>,
    failures: Failures,
}

const HOOK_EVERY: u32 = 1000;

/// Builds a sandboxed state with the script loaded (not yet `init`ed).
fn new_state(src: &str, chunk_name: &str, limits: &Limits) -> Result<State, LuaError> {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::OS | StdLib::JIT,
        LuaOptions::new(),
    )
    .map_err(sandbox)?;
    let used = Arc::new(AtomicU64::new(0));
    let clock = Arc::new(Deadline {
        base: std::time::Instant::now(),
        started_ns: AtomicU64::new(0),
        limit_ns: limits.deadline.as_nanos() as u64,
    });
    clock.start();
    let (probe, probe_clock, budget) = (used.clone(), clock.clone(), limits.instructions);
    // The sandbox keeps this in a local: pcall/xpcall re-raise once the
    // budget is spent, so a script cannot catch the error and loop on.
    let over = lua
        .create_function(move |_, ()| {
            Ok(probe.load(Ordering::Relaxed) >= budget || probe_clock.passed())
        })
        .map_err(sandbox)?;
    lua.globals()
        .set("__dnspolicy_over_budget", over)
        .map_err(sandbox)?;
    lua.load(SANDBOX)
        .set_name("=sandbox")
        .exec()
        .map_err(sandbox)?;
    lua.set_memory_limit(limits.memory).map_err(sandbox)?;
    let (counter, hook_clock) = (used.clone(), clock.clone());
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |_, _| {
            if counter.fetch_add(u64::from(HOOK_EVERY), Ordering::Relaxed) >= budget
                || hook_clock.passed()
            {
                return Err(mlua::Error::runtime("instruction budget exceeded"));
            }
            Ok(VmState::Continue)
        },
    )
    .map_err(sandbox)?;
    // Top-level code runs under the budget too (it is counted from zero).
    lua.load(src)
        .set_name(format!("={chunk_name}"))
        .set_mode(mlua::chunk::ChunkMode::Text)
        .exec()
        .map_err(|e| LuaError::script(&e, chunk_name))?;
    let apply: Function = match lua.globals().get::<mlua::Value>("apply").map_err(sandbox)? {
        mlua::Value::Function(f) => f,
        _ => return Err(LuaError::NoApply),
    };
    let ctx = lua.create_userdata(LuaCall::default()).map_err(sandbox)?;
    Ok(State {
        lua,
        apply,
        ctx,
        used,
        clock,
    })
}

/// Strips the global environment to the sandbox. Runs once per state,
/// before any plugin code.
const SANDBOX: &str = r#"
if jit then jit.off(); jit.flush() end
local over = __dnspolicy_over_budget
__dnspolicy_over_budget = nil
local raw_pcall, raw_xpcall = pcall, xpcall
local function pass(...)
  if over() then error("instruction budget exceeded", 0) end
  return ...
end
pcall = function(...) return pass(raw_pcall(...)) end
xpcall = function(...) return pass(raw_xpcall(...)) end
-- C functions that call back into Lua nest on the native stack, where no
-- Lua limit applies: bound how deep such callbacks may nest.
local unpack_, maxn = unpack, table.maxn
local depth = 0
local function nested(f)
  return function(...)
    if depth >= 8 then error("callbacks nested too deep", 0) end
    depth = depth + 1
    local r = { raw_pcall(f, ...) }
    depth = depth - 1
    if not r[1] then error(r[2], 0) end
    if over() then error("instruction budget exceeded", 0) end
    return unpack_(r, 2, maxn(r))
  end
end
-- Pattern matching backtracks inside one C call, out of the budget's
-- reach: bound the subject and the number of repetition items.
local sub = string.sub
local function pattern_ok(s, p, plain)
  if plain then return end
  if type(s) == "string" and #s > 1024 then error("pattern subject longer than 1024 bytes", 0) end
  if type(p) ~= "string" then return end
  local q, i, n = 0, 1, #p
  while i <= n do
    local c = sub(p, i, i)
    if c == "%" then
      i = i + 2
    else
      if c == "*" or c == "+" or c == "-" or c == "?" then q = q + 1 end
      i = i + 1
    end
  end
  if q > 3 then error("pattern with more than 3 repetition items", 0) end
end
local find, match, gmatch, gsub = string.find, string.match, string.gmatch, string.gsub
string.find = function(s, p, init, plain) pattern_ok(s, p, plain) return find(s, p, init, plain) end
string.match = function(s, p, init) pattern_ok(s, p) return match(s, p, init) end
string.gmatch = function(s, p) pattern_ok(s, p) return gmatch(s, p) end
string.gsub = nested(function(s, p, r, n) pattern_ok(s, p) return gsub(s, p, r, n) end)
string.format = nested(string.format)
table.sort = nested(table.sort)
table.foreach, table.foreachi = nil, nil
tostring = nested(tostring)
local string_mt = getmetatable("")
string_mt.__metatable = false
string.dump = nil
local time, clock = os.time, os.clock
os = { time = nested(time), clock = clock }
for _, name in ipairs({ "load", "loadstring", "dofile", "loadfile", "require", "module", "package",
    "collectgarbage", "getfenv", "setfenv", "newproxy", "coroutine", "debug", "io", "jit", "ffi", "print", "gcinfo" }) do
  _G[name] = nil
end
"#;

/// Checks a script without serving it: it must compile as text, its
/// top-level code must run in the sandbox within the default limits, and it
/// must define `apply`.
pub fn check_script(src: &str, name: &str) -> Result<(), LuaError> {
    new_state(src, name, &Limits::default()).map(|_| ())
}

impl LuaPlugin {
    /// Loads and checks a script; `init(config)` runs in each state made.
    pub fn load(
        name: &str,
        src: &str,
        path: &Path,
        limits: Limits,
        config: &serde_json::Value,
    ) -> Result<LuaPlugin, PluginError> {
        let p = LuaPlugin {
            name: name.to_string(),
            label: name.into(),
            gate: crate::plugin::host::LogGate::granting(limits.grants),
            src: src.into(),
            path: path.to_path_buf(),
            limits,
            config: config.clone(),
            pool: WorkerSlots::new(),
            failures: Failures::default(),
        };
        // Make the first state now, so a broken script fails at load time.
        let state = p.make_state().map_err(|source| PluginError::Lua {
            path: path.to_path_buf(),
            source,
        })?;
        p.pool.claim(None).set(state);
        Ok(p)
    }

    fn make_state(&self) -> Result<State, LuaError> {
        let chunk = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&self.name)
            .to_string();
        let state = new_state(&self.src, &chunk, &self.limits)?;
        if let Ok(mlua::Value::Function(init)) = state.lua.globals().get::<mlua::Value>("init") {
            let cfg = mlua::LuaSerdeExt::to_value(&state.lua, &self.config).map_err(sandbox)?;
            state.used.store(0, Ordering::Relaxed);
            init.call::<()>(cfg)
                .map_err(|e| LuaError::Init(e.to_string()))?;
        }
        Ok(state)
    }

    fn failed(&self, what: &str, e: &mlua::Error) -> Decision<'static> {
        let text = e.to_string();
        let counter = if text.contains("instruction budget exceeded")
            || text.contains("callbacks nested too deep")
        {
            &self.failures.budget
        } else if matches!(e, mlua::Error::MemoryError(_)) || text.contains("not enough memory") {
            &self.failures.memory
        } else {
            &self.failures.error
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(plugin = %self.name, error = %text.lines().next().unwrap_or(""), "{what} failed");
        self.limits.on_failure()
    }
}

impl Plugin for LuaPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "lua"
    }

    fn init(&mut self, _config: &serde_json::Value) -> Result<(), PluginError> {
        // `init(config)` already ran in the first state (and runs in each new one).
        Ok(())
    }

    fn apply<'s>(&'s self, ctx: &mut QueryCtx<'_>) -> Decision<'s> {
        let mut claim = self.pool.claim(ctx.worker());
        let state = match claim.get_or_try_init(|| self.make_state()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(plugin = %self.name, error = %e, "cannot make a Lua state");
                return self.failed("apply", &mlua::Error::runtime("no Lua state"));
            }
        };
        // LuaJIT collects no garbage on an allocation failure: collect now
        // rather than fail a script that holds half its cap.
        if state.lua.used_memory() > self.limits.memory / 2 {
            state.lua.gc_collect().ok();
        }
        let call = Call::new(ctx, self.label.clone(), self.gate.clone());
        let result = state
            .ctx
            .borrow_mut::<LuaCall>()
            .map(|mut c| c.call = Some(call));
        state.used.store(0, Ordering::Relaxed);
        state.clock.start();
        let result = result.and_then(|()| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                state.apply.call::<()>(&state.ctx)
            }))
            .unwrap_or_else(|_| Err(mlua::Error::runtime("the plugin host panicked")))
        });
        // Taken back out: a `ctx` a script kept answers nothing after its call.
        let call = state
            .ctx
            .borrow_mut::<LuaCall>()
            .ok()
            .and_then(|mut c| c.call.take());
        let (result, mut call) = match (result, call) {
            (Ok(()), Some(call)) => (Ok(()), call),
            (Err(e), call) => (
                Err(e),
                call.unwrap_or_else(|| Call::new(ctx, self.label.clone(), self.gate.clone())),
            ),
            (Ok(()), None) => (
                Err(mlua::Error::runtime("the call's context was lost")),
                Call::new(ctx, self.label.clone(), self.gate.clone()),
            ),
        };
        ctx.note_fields_read(call.read);
        match result {
            Ok(()) => call.finish(),
            Err(e) => {
                let d = self.failed("apply", &e);
                // Reclaim what the aborted call left; a state still near its
                // cap is dropped and a fresh one made next time.
                state.lua.gc_collect().ok();
                if state.lua.used_memory() >= self.limits.memory / 2 {
                    claim.discard();
                }
                d
            }
        }
    }

    fn destroy(&mut self) {
        let states = self.pool.drain_mut();
        for s in states {
            if let Ok(mlua::Value::Function(f)) = s.lua.globals().get::<mlua::Value>("destroy") {
                s.used.store(0, Ordering::Relaxed);
                if let Err(e) = f.call::<()>(()) {
                    tracing::warn!(plugin = %self.name, error = %e, "destroy failed");
                }
            }
        }
    }

    fn failures(&self) -> Vec<(&'static str, u64)> {
        let mut r = self.failures.report(false);
        r.push((
            "capability",
            self.gate.denied.load(std::sync::atomic::Ordering::Relaxed),
        ));
        r
    }
}

/// A Lua error from a host-side refusal.
fn lua_err(e: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::runtime(e)
}

/// An optional address argument, read in place (no copy of the text).
fn parse_ip(ip: Option<mlua::LuaString>) -> mlua::Result<Option<IpAddr>> {
    ip.map(|s| {
        let text = s.to_str()?;
        text.parse::<IpAddr>()
            .map_err(|_| mlua::Error::runtime(format!("`{}` is not an IP address", &*text)))
    })
    .transpose()
}

/// A string argument, borrowed from Lua.
fn text(s: &mlua::LuaString) -> mlua::Result<mlua::BorrowedStr> {
    s.to_str()
}

/// An address as a Lua string, formatted on the stack: the host's answers
/// go to Lua without a Rust allocation (Lua interns a string it has).
fn ip_string(lua: &Lua, ip: IpAddr) -> mlua::Result<mlua::LuaString> {
    use std::io::Write as _;
    let mut buf = [0u8; 48];
    let left = {
        let mut w = &mut buf[..];
        let _ = write!(w, "{ip}");
        w.len()
    };
    lua.create_string(&buf[..buf.len() - left])
}

/// A question type's mnemonic (`TYPEnnn` when it has none).
fn qtype_string(lua: &Lua, n: u16) -> mlua::Result<mlua::LuaString> {
    match dnspolicy_compiler::ir::types::QTYPES
        .iter()
        .find(|(_, v)| *v == n)
    {
        Some((m, _)) => lua.create_string(m),
        None => lua.create_string(qtype_to_string(n)),
    }
}

/// The `ctx` a script's `apply` gets: the shared host call while a call
/// runs, and the Lua strings of answers that repeat (question types, GeoIP
/// names), made once per state.
#[derive(Default)]
struct LuaCall {
    call: Option<Call>,
    qtypes: Vec<(u16, mlua::LuaString)>,
    /// By the address of the GeoIP database's shared text (kept alive here,
    /// so an address is never reused for other text while cached).
    names: std::collections::HashMap<usize, (Arc<str>, mlua::LuaString)>,
    /// The last client address and query name handed to Lua, as Lua
    /// strings. Under a memory cap mlua makes every string in a protected
    /// call that allocates a closure; an authoritative server's clients
    /// are resolvers that send runs of queries, and hot names repeat.
    last_ip: Option<(IpAddr, mlua::LuaString)>,
    last_name: Option<(Arc<str>, mlua::LuaString)>,
}

/// Strings cached per state at most (GeoIP names are a finite set; past
/// this they are made per call).
const MAX_NAMES: usize = 4096;

impl LuaCall {
    fn call(&mut self) -> mlua::Result<&mut Call> {
        self.call
            .as_mut()
            .ok_or_else(|| mlua::Error::runtime("ctx is only valid during apply(ctx)"))
    }

    fn qtype(&mut self, lua: &Lua) -> mlua::Result<mlua::LuaString> {
        let n = self.call()?.qtype;
        if let Some((_, s)) = self.qtypes.iter().find(|(t, _)| *t == n) {
            return Ok(s.clone());
        }
        let s = qtype_string(lua, n)?;
        if self.qtypes.len() < 64 {
            self.qtypes.push((n, s.clone()));
        }
        Ok(s)
    }

    fn ip(&mut self, lua: &Lua, ip: IpAddr) -> mlua::Result<mlua::LuaString> {
        match &self.last_ip {
            Some((last, s)) if *last == ip => Ok(s.clone()),
            _ => {
                let s = ip_string(lua, ip)?;
                self.last_ip = Some((ip, s.clone()));
                Ok(s)
            }
        }
    }

    /// An address argument: the string last handed out is known without
    /// parsing it again (LuaJIT interns strings: same text, same pointer).
    fn ip_arg(&self, ip: Option<mlua::LuaString>) -> mlua::Result<Option<IpAddr>> {
        if let (Some(arg), Some((last, s))) = (&ip, &self.last_ip) {
            if arg.to_pointer() == s.to_pointer() {
                return Ok(Some(*last));
            }
        }
        parse_ip(ip)
    }

    fn qname(&mut self, lua: &Lua) -> mlua::Result<mlua::LuaString> {
        let q = self.call()?.qname.clone();
        match &self.last_name {
            Some((last, s)) if **last == *q => Ok(s.clone()),
            _ => {
                let s = lua.create_string(&*q)?;
                self.last_name = Some((q, s.clone()));
                Ok(s)
            }
        }
    }

    fn name(&mut self, lua: &Lua, text: &Arc<str>) -> mlua::Result<mlua::LuaString> {
        let key = Arc::as_ptr(text) as *const u8 as usize;
        if let Some((_, s)) = self.names.get(&key) {
            return Ok(s.clone());
        }
        let s = lua.create_string(&**text)?;
        if self.names.len() < MAX_NAMES {
            self.names.insert(key, (text.clone(), s.clone()));
        }
        Ok(s)
    }
}

impl UserData for LuaCall {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method_mut("get_client_ip", |lua, c, ()| {
            let ip = c.call()?.client_ip();
            c.ip(lua, ip)
        });
        m.add_method_mut("get_ecs", |_, c, ()| {
            Ok(c.call()?.ecs().map(|(ip, len)| format!("{ip}/{len}")))
        });
        m.add_method_mut("get_source_ip", |lua, c, ()| {
            ip_string(lua, c.call()?.client)
        });
        m.add_method_mut("get_qname", |lua, c, ()| c.qname(lua));
        m.add_method_mut("get_qtype", |lua, c, ()| c.qtype(lua));
        m.add_method_mut(
            "lookup_geo_region",
            |lua, c, ip: Option<mlua::LuaString>| {
                let ip = c.ip_arg(ip)?;
                let geo = c.call()?.geo_of(ip).map_err(lua_err)?;
                c.name(lua, &geo.region)
            },
        );
        m.add_method_mut(
            "lookup_geo_country",
            |lua, c, ip: Option<mlua::LuaString>| {
                let ip = c.ip_arg(ip)?;
                let geo = c.call()?.geo_of(ip).map_err(lua_err)?;
                c.name(lua, &geo.country)
            },
        );
        m.add_method_mut("lookup_geo_city", |lua, c, ip: Option<mlua::LuaString>| {
            let ip = c.ip_arg(ip)?;
            let geo = c.call()?.geo_of(ip).map_err(lua_err)?;
            c.name(lua, &geo.city)
        });
        m.add_method_mut("lookup_geo_asn", |_, c, ip: Option<mlua::LuaString>| {
            let ip = c.ip_arg(ip)?;
            Ok(c.call()?.geo_of(ip).map_err(lua_err)?.asn)
        });
        m.add_method_mut(
            "set_answer",
            |_, c, (target, t, ttl): (mlua::LuaString, Option<mlua::LuaString>, Option<u32>)| {
                let t = match &t {
                    Some(t) => Some(rtype(&text(t)?).map_err(lua_err)?),
                    None => None,
                };
                c.call()?
                    .set_answer(&text(&target)?, t, ttl.unwrap_or(300))
                    .map_err(lua_err)
            },
        );
        m.add_method_mut(
            "add_record",
            |_,
             c,
             (name, t, rdata, ttl): (
                mlua::LuaString,
                mlua::LuaString,
                mlua::LuaString,
                Option<u32>,
            )| {
                let t = rtype(&text(&t)?).map_err(lua_err)?;
                c.call()?
                    .add_record(&text(&name)?, t, &text(&rdata)?, ttl.unwrap_or(300))
                    .map_err(lua_err)
            },
        );
        m.add_method_mut("set_rcode", |_, c, rcode: mlua::LuaString| {
            c.call()?.set_rcode(&text(&rcode)?).map_err(lua_err)
        });
        m.add_method_mut("drop", |_, c, ()| {
            c.call()?.drop_query();
            Ok(())
        });
        m.add_method_mut("truncate", |_, c, ()| {
            c.call()?.truncate();
            Ok(())
        });
        m.add_method_mut("forward", |_, c, pool: mlua::LuaString| {
            c.call()?.forward(&text(&pool)?).map_err(lua_err)
        });
        m.add_method_mut(
            "log",
            |_, c, (level, msg): (mlua::LuaString, mlua::LuaString)| {
                c.call()?
                    .log("lua", &text(&level)?, &text(&msg)?)
                    .map_err(lua_err)
            },
        );
        // No injected variables reach the server yet: every lookup is nil.
        m.add_method("get_var", |_, _, _path: mlua::LuaString| {
            Ok(mlua::Value::Nil)
        });
    }
}
