//! The concord data tree: a deterministic state machine over znodes, sessions and ACLs.
//!
//! It knows nothing of sockets or Raft. The server feeds it committed [`Txn`]s in log order via
//! [`DataTree::apply`], which returns each client's reply and the watch triggers; reads go
//! straight to the query methods. Everything apply decides (versions, sequential names, ACL
//! results, session ids) depends only on the tree and the txn, so every replica agrees.

pub mod acl;
pub mod blob;
pub mod path;
pub mod snapshot;
pub mod store;
pub mod tree;
pub mod txn;

pub use tree::{Applied, DataTree, Event, FrozenTree, NodeKind, Outcome, Session};
pub use txn::{Txn, TxnOp};

#[cfg(test)]
mod tests;
