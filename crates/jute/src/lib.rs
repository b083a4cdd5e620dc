//! ZooKeeper's wire records (jute) and their codec.
//!
//! Pure and I/O free: it turns packet bodies into typed requests and replies into bytes, and back.
//! Every decode path returns a [`DecodeError`] on malformed input instead of panicking, which the
//! fuzz target in `fuzz/` checks.

pub mod codec;
pub mod consts;
pub mod error;
pub mod frame;
pub mod records;
pub mod request;
pub mod response;

pub use codec::Reader;
pub use consts::op;
pub use consts::*;
pub use error::{DecodeError, ErrorCode};
pub use records::*;
pub use request::*;
pub use response::*;

#[cfg(test)]
mod tests;
