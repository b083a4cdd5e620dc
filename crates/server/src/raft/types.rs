//! The Raft type configuration and the log payload: a batch of client txns.

use concord_jute::codec::{write_i32, write_i64, Reader};
use concord_tree::Txn;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Raft node id (ZooKeeper's `myid`).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// concord's Raft types: the payload of an entry is a [`Batch`] of txns.
    pub TypeConfig:
        D = Batch,
        R = (),
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = super::snap_file::SnapFile,
        AsyncRuntime = super::runtime::ConcordRuntime,
);

/// A Raft log entry of concord.
pub type Entry = openraft::Entry<TypeConfig>;
/// A Raft log id of concord.
pub type LogId = openraft::LogId<NodeId>;
/// A Raft vote of concord.
pub type Vote = openraft::Vote<NodeId>;
/// A storage error of concord's Raft group.
pub type StorageError = openraft::StorageError<NodeId>;
/// The Raft handle of concord.
pub type Raft = openraft::Raft<TypeConfig>;

/// One Raft entry's payload: txns appended together, each tagged with the request id of the
/// server that holds its client's connection, so that server can route the reply when it
/// applies the entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    /// The server that built the batch (informational: each txn's request id names the
    /// server holding its client's connection, see `core::origin_of`).
    pub origin: NodeId,
    /// (request id on the origin server, txn), applied in order.
    /// Shared, so the copies the log cache and apply take of an entry cost a reference count,
    /// not a deep copy of every txn.
    pub items: std::sync::Arc<[(u64, Txn)]>,
    /// An open entry: proposed without txns; the log store fills it from the proposal queue
    /// when openraft appends it (see [`super::queue`]). Never set in a stored or sent entry.
    pub open: bool,
}

impl Batch {
    /// Appends the binary form: origin, count, then (request id, txn) pairs.
    pub fn encode(&self, w: &mut Vec<u8>) {
        debug_assert!(!self.open, "an open entry is filled before it is stored");
        write_i64(w, self.origin as i64);
        write_i32(w, self.items.len() as i32);
        for (id, txn) in self.items.iter() {
            write_i64(w, *id as i64);
            txn.encode(w);
        }
    }

    /// Reads the binary form.
    pub fn decode(buf: &[u8]) -> Result<Batch, concord_jute::DecodeError> {
        let mut r = Reader::new(buf);
        let origin = r.read_i64()? as u64;
        let n = r.read_vec_len(8)?; // an id and a txn each
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let id = r.read_i64()? as u64;
            items.push((id, Txn::decode(&mut r)?));
        }
        Ok(Batch {
            origin,
            items: items.into(),
            open: false,
        })
    }
}

impl Serialize for Batch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut w = Vec::new();
        self.encode(&mut w);
        s.serialize_bytes(&w)
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Batch, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Batch;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an encoded concord batch")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Batch, E> {
                Batch::decode(v).map_err(E::custom)
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Batch, E> {
                self.visit_bytes(&v)
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Encodes a Raft entry for the log file.
pub fn encode_entry(e: &Entry) -> Vec<u8> {
    postcard::to_stdvec(e).expect("entries always serialize")
}

/// Decodes a Raft entry from the log file.
pub fn decode_entry(b: &[u8]) -> Result<Entry, postcard::Error> {
    postcard::from_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_jute::Request;
    use concord_tree::TxnOp;

    #[test]
    fn entries_round_trip_through_postcard() {
        let batch = Batch {
            origin: 3,
            items: vec![(
                9,
                Txn {
                    session: 1,
                    time: 2,
                    auth: vec![],
                    op: TxnOp::Write(Request::Delete {
                        path: "/x".into(),
                        version: -1,
                    }),
                },
            )]
            .into(),
            open: false,
        };
        let e = Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(2, 1), 7),
            payload: openraft::EntryPayload::Normal(batch.clone()),
        };
        let back = decode_entry(&encode_entry(&e)).unwrap();
        assert_eq!(back.log_id, e.log_id);
        match back.payload {
            openraft::EntryPayload::Normal(b) => assert_eq!(b, batch),
            _ => panic!("payload kind changed"),
        }
    }
}
