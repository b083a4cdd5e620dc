//! The concord server: connections, sessions, watches, the Raft write path, storage and config.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod core;
pub mod fourlw;
pub mod net;
pub mod raft;
pub mod reconfig;
pub mod rng;
pub mod server;
pub mod watch;

pub use server::{run, start, ServerHandle};
