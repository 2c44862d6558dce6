//! End-to-end tests: a real server on 127.0.0.1 and real DNS clients
//! (hickory-proto messages over UDP/TCP sockets, and `dig` where installed).

mod access;
mod admin;
mod answers;
mod behind_unbound;
mod dnstap;
mod ecs_geo;
mod failsafe;
mod forward;
mod gslb;
mod live_sets;
mod lua;
mod reload;
mod robustness;
mod rpz;
mod status_page;
mod tcp;
mod wasm;
mod wasm_kits;
