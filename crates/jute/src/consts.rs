//! Numeric constants of the ZooKeeper client protocol (opcodes, xids, flags, event types, states).

/// Request type codes (`ZooDefs.OpCode`).
pub mod op {
    /// Watch notification (only in replies).
    pub const NOTIFICATION: i32 = 0;
    /// create
    pub const CREATE: i32 = 1;
    /// delete
    pub const DELETE: i32 = 2;
    /// exists
    pub const EXISTS: i32 = 3;
    /// getData
    pub const GET_DATA: i32 = 4;
    /// setData
    pub const SET_DATA: i32 = 5;
    /// getACL
    pub const GET_ACL: i32 = 6;
    /// setACL
    pub const SET_ACL: i32 = 7;
    /// getChildren
    pub const GET_CHILDREN: i32 = 8;
    /// sync
    pub const SYNC: i32 = 9;
    /// ping
    pub const PING: i32 = 11;
    /// getChildren2
    pub const GET_CHILDREN2: i32 = 12;
    /// check (version check inside multi)
    pub const CHECK: i32 = 13;
    /// multi
    pub const MULTI: i32 = 14;
    /// create2
    pub const CREATE2: i32 = 15;
    /// reconfig
    pub const RECONFIG: i32 = 16;
    /// checkWatches
    pub const CHECK_WATCHES: i32 = 17;
    /// removeWatches
    pub const REMOVE_WATCHES: i32 = 18;
    /// createContainer
    pub const CREATE_CONTAINER: i32 = 19;
    /// deleteContainer
    pub const DELETE_CONTAINER: i32 = 20;
    /// createTTL
    pub const CREATE_TTL: i32 = 21;
    /// multiRead
    pub const MULTI_READ: i32 = 22;
    /// auth
    pub const AUTH: i32 = 100;
    /// setWatches
    pub const SET_WATCHES: i32 = 101;
    /// sasl
    pub const SASL: i32 = 102;
    /// getEphemerals
    pub const GET_EPHEMERALS: i32 = 103;
    /// getAllChildrenNumber
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    /// setWatches2
    pub const SET_WATCHES2: i32 = 105;
    /// addWatch
    pub const ADD_WATCH: i32 = 106;
    /// whoAmI
    pub const WHO_AM_I: i32 = 107;
    /// createSession
    pub const CREATE_SESSION: i32 = -10;
    /// closeSession
    pub const CLOSE_SESSION: i32 = -11;
    /// error (multi result type for a failed op)
    pub const ERROR: i32 = -1;
}

/// Reserved xids.
pub mod xid {
    /// A watch event.
    pub const NOTIFICATION: i32 = -1;
    /// A ping.
    pub const PING: i32 = -2;
    /// An auth packet.
    pub const AUTH: i32 = -4;
    /// A setWatches packet sent by the client after reconnecting.
    pub const SET_WATCHES: i32 = -8;
}

/// Create mode flags (`CreateMode`).
pub mod create_mode {
    /// Persistent node.
    pub const PERSISTENT: i32 = 0;
    /// Ephemeral node.
    pub const EPHEMERAL: i32 = 1;
    /// Persistent sequential node.
    pub const PERSISTENT_SEQUENTIAL: i32 = 2;
    /// Ephemeral sequential node.
    pub const EPHEMERAL_SEQUENTIAL: i32 = 3;
    /// Container node.
    pub const CONTAINER: i32 = 4;
    /// Persistent node with a TTL.
    pub const PERSISTENT_WITH_TTL: i32 = 5;
    /// Persistent sequential node with a TTL.
    pub const PERSISTENT_SEQUENTIAL_WITH_TTL: i32 = 6;
}

/// Watch event types (`Watcher.Event.EventType`).
pub mod event {
    /// No node event (session state change).
    pub const NONE: i32 = -1;
    /// A node was created.
    pub const NODE_CREATED: i32 = 1;
    /// A node was deleted.
    pub const NODE_DELETED: i32 = 2;
    /// A node's data changed.
    pub const NODE_DATA_CHANGED: i32 = 3;
    /// A node's children changed.
    pub const NODE_CHILDREN_CHANGED: i32 = 4;
    /// A data watch was removed.
    pub const DATA_WATCH_REMOVED: i32 = 5;
    /// A child watch was removed.
    pub const CHILD_WATCH_REMOVED: i32 = 6;
    /// A persistent watch was removed.
    pub const PERSISTENT_WATCH_REMOVED: i32 = 7;
}

/// Session states carried in watch events (`Watcher.Event.KeeperState`).
pub mod state {
    /// Disconnected.
    pub const DISCONNECTED: i32 = 0;
    /// Connected.
    pub const SYNC_CONNECTED: i32 = 3;
    /// Authentication failed.
    pub const AUTH_FAILED: i32 = 4;
    /// Connected to a read-only server.
    pub const CONNECTED_READ_ONLY: i32 = 5;
    /// SASL authenticated.
    pub const SASL_AUTHENTICATED: i32 = 6;
    /// Session expired.
    pub const EXPIRED: i32 = -112;
    /// Session closed.
    pub const CLOSED: i32 = 7;
}

/// Watcher types for removeWatches / checkWatches (`Watcher.WatcherType`).
pub mod watcher_type {
    /// Child watches.
    pub const CHILDREN: i32 = 1;
    /// Data (and exist) watches.
    pub const DATA: i32 = 2;
    /// Any watch.
    pub const ANY: i32 = 3;
    /// Persistent watches.
    pub const PERSISTENT: i32 = 4;
    /// Persistent recursive watches.
    pub const PERSISTENT_RECURSIVE: i32 = 5;
}

/// addWatch modes (`AddWatchMode`).
pub mod add_watch_mode {
    /// A persistent watch on one node.
    pub const PERSISTENT: i32 = 0;
    /// A persistent watch on a node and all its descendants.
    pub const PERSISTENT_RECURSIVE: i32 = 1;
}

/// ACL permission bits (`ZooDefs.Perms`).
pub mod perms {
    /// Read data and list children.
    pub const READ: i32 = 1;
    /// Set data.
    pub const WRITE: i32 = 2;
    /// Create children.
    pub const CREATE: i32 = 4;
    /// Delete children.
    pub const DELETE: i32 = 8;
    /// Set ACLs.
    pub const ADMIN: i32 = 16;
    /// Every permission.
    pub const ALL: i32 = 31;
}

/// Default jute.maxbuffer: the largest packet accepted.
pub const DEFAULT_MAX_BUFFER: usize = 0xfffff;

/// ephemeralOwner value that marks a container node.
pub const CONTAINER_EPHEMERAL_OWNER: i64 = i64::MIN;

/// High byte of ephemeralOwner that marks a TTL node.
pub const TTL_MASK: i64 = 0xFF00_0000_0000_0000u64 as i64;

/// Largest TTL that fits in a TTL node's ephemeralOwner.
pub const MAX_TTL: i64 = 0x00FF_FFFF_FFFF;
