//! The dnspolicy DNS server: UDP/TCP listeners on tokio, the plugin chain
//! (compiled policies; Lua and WASM plug into the same [`plugin::Plugin`]
//! trait), GeoIP, EDNS Client Subnet, a local zone, upstream forwarding and
//! the admin endpoint.
//!
//! The query path: [`server`] receives a packet → parses it (hickory-proto)
//! and validates ECS ([`ecs`]) → builds the [`query::QueryCtx`] (GeoIP only
//! if a plugin reads it) → runs the [`plugin::Chain`] → turns the verdict
//! into a response ([`answer`]) or upstream work ([`upstream`]) → sends.
#![warn(missing_docs)]

pub mod admin;
pub mod answer;
pub mod config;
pub mod ecs;
pub mod geo;
pub mod host;
pub mod lifecycle;
pub mod lua;
pub mod metrics;
pub mod plugin;
pub mod query;
pub mod reload;
pub mod server;
pub mod upstream;
pub mod wasm;
pub mod zone;

pub use config::Config;
pub use server::{ServeError, Server, Shared};
