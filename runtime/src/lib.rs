//! The dnspolicy DNS server: listeners on tokio, the plugin chain (compiled
//! policies, Lua and WASM behind one [`plugin::Plugin`] trait), GeoIP, EDNS
//! Client Subnet, a local zone, upstream forwarding, hot reload and the
//! admin endpoint.
//!
//! The query path: [`server`] receives a packet → parses it and validates
//! ECS ([`dns::ecs`]) → builds the [`dns::query::QueryCtx`] (GeoIP from
//! [`geo`] only if a plugin reads it) → runs the [`plugin::Chain`] → turns
//! the verdict into a response ([`dns::answer`]) or upstream work
//! ([`dns::upstream`]) → sends. [`reload`] rebuilds the chain off that path
//! and swaps it atomically; [`admin`] serves metrics and state.
//!
//! [`access`] (ACL, rate and connection limits) is asked first, before a
//! packet is parsed.
//!
//! What may depend on what: `server` → `plugin`, `dns`, `reload`, `admin`,
//! `access`; `plugin` → `dns`, `geo`; `dns` → `geo`; `config` → `access`
//! (its option types); `dns` → `observe` (dnstap of forwarded queries); `dns` → `gslb` (the pools' health for `{pool.NAME.healthy}`); `source` → `plugin`, `server` (reload; off the query path); `import` → `dns` (zone files); `access`, `geo` and `gslb` on nothing here; `observe` only on the compiler's context table. Everything may use the compiler crate; it never uses this one.
#![warn(missing_docs)]

pub mod access;
pub mod admin;
pub mod config;
pub mod dns;
pub mod geo;
pub mod gslb;
pub mod http;
pub mod import;
pub mod observe;
pub mod plugin;
pub mod reload;
pub mod server;
pub mod source;

pub use config::Config;
pub use server::{ServeError, Server, Shared};
