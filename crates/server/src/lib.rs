//! The concord server: connections, sessions, watches, the Raft write path, storage and config.

pub mod config;
pub mod raft;
