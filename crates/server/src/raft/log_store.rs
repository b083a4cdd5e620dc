//! Durable Raft log store (being written).
