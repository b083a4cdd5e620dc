//! Deterministic simulation of concord clusters.
//!
//! Real concord servers (the same code as `concord server`) run as turmoil hosts: turmoil's
//! simulated TCP carries both client and peer traffic, each server's Raft log sits on a
//! simulated disk ([`disk`]) that loses unsynced writes in a crash, and time is simulated.
//! Clients speaking the ZooKeeper protocol write, compare-and-set and sync+read a few znodes
//! while the scenario ([`scenario`]) partitions links (both ways and one way), delays and drops
//! messages, and crashes and restarts servers. Afterwards every znode's history is checked for
//! linearizability ([`lincheck`]) and every session's replies for order.
//!
//! All randomness — the faults, the clients' choices, message latency, openraft's election
//! timeouts, simulated fsync times — comes from one seed, so a failing seed can be run again.

pub mod client;
pub mod disk;
pub mod lincheck;
pub mod net;
pub mod scenario;
