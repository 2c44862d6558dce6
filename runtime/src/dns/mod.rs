//! DNS itself, apart from policy: what the query path needs to read a
//! query and write an answer. [`query`] is the per-query context plugins
//! see (fields filled lazily, GeoIP only if read, the honest ECS scope);
//! [`ecs`] validates EDNS Client Subnet on the wire (RFC 7871); [`answer`]
//! turns a verdict into a response; [`zone`] is the local zone (master
//! files through hickory-proto); [`upstream`] exchanges with upstream pools;
//! [`wire`] reads the common query and writes its answer without
//! hickory's `Message` (the fast path).
//!
//! Depends on [`crate::geo`] and the compiler's values and verdicts; never
//! on plugins or the server.

pub mod answer;
pub mod ecs;
pub mod query;
pub mod upstream;
pub mod wire;
pub mod zone;
pub mod zone_text;
