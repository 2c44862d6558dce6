//! Plugin sets shared by a fleet of edges through etcd: [`client`] (etcd's
//! JSON gateway over the reqwest client the OCI source already builds),
//! [`fleet`] (the key layout; push, rollback, promote, status) and
//! [`watch`] (what `serve --source etcd://…/NAME` runs: the watch, the
//! swap, the ACK/NACK under a lease, the set persisted for offline starts).
//!
//! Why the gateway and not a gRPC crate: every etcd 3.4+ member serves it
//! on its client port, and it needs no `protoc`, tonic or prost, nor a
//! second HTTP stack (see docs/fleet.md).

pub mod client;
pub mod fleet;
pub mod oci_ref;
pub mod watch;
