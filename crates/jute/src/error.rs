//! ZooKeeper error codes and decode errors.

use std::fmt;

/// A ZooKeeper error code (`KeeperException.Code`), as carried in a ReplyHeader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorCode {
    /// Everything is OK.
    Ok = 0,
    /// A system error.
    SystemError = -1,
    /// A runtime inconsistency (also: a multi op after the failing one).
    RuntimeInconsistency = -2,
    /// A data inconsistency.
    DataInconsistency = -3,
    /// Connection to the server was lost.
    ConnectionLoss = -4,
    /// Error while marshalling or unmarshalling data.
    MarshallingError = -5,
    /// Operation is unimplemented.
    Unimplemented = -6,
    /// Operation timeout.
    OperationTimeout = -7,
    /// Invalid arguments.
    BadArguments = -8,
    /// Unknown session (internal).
    UnknownSession = -12,
    /// No quorum of the new config is connected.
    NewConfigNoQuorum = -13,
    /// Another reconfiguration is in progress.
    ReconfigInProgress = -14,
    /// API errors start here.
    ApiError = -100,
    /// Node does not exist.
    NoNode = -101,
    /// Not authenticated.
    NoAuth = -102,
    /// Version conflict.
    BadVersion = -103,
    /// Ephemeral nodes may not have children.
    NoChildrenForEphemerals = -108,
    /// The node already exists.
    NodeExists = -110,
    /// The node has children.
    NotEmpty = -111,
    /// The session has been expired by the server.
    SessionExpired = -112,
    /// Invalid callback specified.
    InvalidCallback = -113,
    /// Invalid ACL specified.
    InvalidAcl = -114,
    /// Client authentication failed.
    AuthFailed = -115,
    /// Session moved to another server.
    SessionMoved = -118,
    /// State-changing request passed to a read-only server.
    NotReadOnly = -119,
    /// Attempt to create an ephemeral node on a local session.
    EphemeralOnLocalSession = -120,
    /// Attempt to remove a non-existing watcher.
    NoWatcher = -121,
    /// Request not completed within max allowed time.
    RequestTimeout = -122,
    /// Attempted reconfiguration while it is disabled.
    ReconfigDisabled = -123,
    /// The session was closed because it requires SASL authentication.
    SessionClosedRequireSaslAuth = -124,
    /// Quota exceeded.
    QuotaExceeded = -125,
    /// Operation was throttled.
    ThrottledOp = -127,
}

impl ErrorCode {
    /// The wire value.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Maps a wire value back to a code; unknown values give `None`.
    pub fn from_code(c: i32) -> Option<ErrorCode> {
        use ErrorCode::*;
        Some(match c {
            0 => Ok,
            -1 => SystemError,
            -2 => RuntimeInconsistency,
            -3 => DataInconsistency,
            -4 => ConnectionLoss,
            -5 => MarshallingError,
            -6 => Unimplemented,
            -7 => OperationTimeout,
            -8 => BadArguments,
            -12 => UnknownSession,
            -13 => NewConfigNoQuorum,
            -14 => ReconfigInProgress,
            -100 => ApiError,
            -101 => NoNode,
            -102 => NoAuth,
            -103 => BadVersion,
            -108 => NoChildrenForEphemerals,
            -110 => NodeExists,
            -111 => NotEmpty,
            -112 => SessionExpired,
            -113 => InvalidCallback,
            -114 => InvalidAcl,
            -115 => AuthFailed,
            -118 => SessionMoved,
            -119 => NotReadOnly,
            -120 => EphemeralOnLocalSession,
            -121 => NoWatcher,
            -122 => RequestTimeout,
            -123 => ReconfigDisabled,
            -124 => SessionClosedRequireSaslAuth,
            -125 => QuotaExceeded,
            -127 => ThrottledOp,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}({})", self, *self as i32)
    }
}

impl std::error::Error for ErrorCode {}

/// Why a packet could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The packet ended inside a record.
    Truncated,
    /// A length prefix was negative (other than -1) or absurd.
    BadLength(i32),
    /// A ustring was not valid UTF-8.
    InvalidUtf8,
    /// The request type is not one this server knows.
    UnknownOpCode(i32),
    /// A field held a value outside its domain.
    BadValue(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "record truncated"),
            DecodeError::BadLength(n) => write!(f, "bad length prefix {n}"),
            DecodeError::InvalidUtf8 => write!(f, "string is not valid UTF-8"),
            DecodeError::UnknownOpCode(op) => write!(f, "unknown opcode {op}"),
            DecodeError::BadValue(what) => write!(f, "bad value for {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}
