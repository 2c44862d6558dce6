//! Seeing what the server does, off the query path: [`dnstap`] query logs
//! (Frame Streams + protobuf) and the sampled [`decisions`] log (JSON
//! lines), each through a bounded queue that drops rather than waits.
//!
//! Depends on nothing else in the runtime.

pub mod decisions;
pub mod dnstap;
