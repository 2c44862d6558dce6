//! Other policy formats as dnspolicy policies: [`rpz`] (Response Policy
//! Zones). An import writes ordinary policy text, which then goes through
//! the checker like any hand-written file.
//!
//! Depends on [`crate::dns`] (zone-file reading) only.

pub mod rpz;
