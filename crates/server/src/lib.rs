//! concord server
