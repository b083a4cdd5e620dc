//! The Raft write path: types, the durable log store, the state machine and the peer network.

pub mod early_ack;
pub mod log_store;
pub mod network;
pub mod peer;
pub mod proposer;
pub mod queue;
pub mod runtime;
pub mod snap_file;
pub mod state_machine;
pub mod types;
