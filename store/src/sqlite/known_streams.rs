//! The heads of streams the writer met lately, so that an append to a stream
//! it knows needs no lookup of the stream's row and last revision.
//!
//! The cache is right only while the writer's connection is the only one
//! that writes the file. Another process may open the same file and write
//! (SQLite allows it), so at the start of every transaction the writer asks
//! SQLite's `PRAGMA data_version`, which changes when any other connection
//! has committed, and forgets everything when it has. A transaction that
//! does not commit also empties the cache, since its heads were never
//! stored. Bounded: the least recently used stream leaves first.

use hashlink::LruCache;
use rusqlite::Connection;

use super::backend;
use crate::{CurrentRevision, StoreError};

/// Streams remembered unless configured otherwise (about 100 B each).
pub(super) const DEFAULT_CAPACITY: usize = 65_536;

/// What the writer knows of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StreamHead {
    /// The stream's row.
    pub stream_id: i64,
    /// Tombstoned: no more appends.
    pub deleted: bool,
    /// Its last revision.
    pub current: CurrentRevision,
}

/// Stream heads by stream name; see the module documentation.
pub(super) struct KnownStreams {
    heads: LruCache<Box<str>, StreamHead>,
    /// `PRAGMA data_version` when last asked; `None` before the first ask.
    data_version: Option<i64>,
}

impl KnownStreams {
    pub(super) fn new(capacity: usize) -> KnownStreams {
        KnownStreams {
            heads: LruCache::new(capacity.max(1)),
            data_version: None,
        }
    }

    /// The head of `stream`, when known.
    pub(super) fn get(&mut self, stream: &str) -> Option<StreamHead> {
        self.heads.get(stream).copied()
    }

    /// Remember `head` as the head of `stream`.
    pub(super) fn put(&mut self, stream: &str, head: StreamHead) {
        match self.heads.get_mut(stream) {
            Some(known) => *known = head,
            None => {
                self.heads.insert(stream.into(), head);
            }
        }
    }

    /// Forget every stream.
    pub(super) fn clear(&mut self) {
        self.heads.clear();
    }

    /// Streams remembered now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.heads.len()
    }

    /// At the start of a write transaction: forget every stream when another
    /// connection has committed to the file since the last ask (`true`).
    pub(super) fn check_other_writers(
        &mut self,
        connection: &Connection,
    ) -> Result<bool, StoreError> {
        let version: i64 = connection
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .map_err(backend)?;
        let changed = self.data_version.is_some_and(|seen| seen != version);
        if changed {
            self.clear();
        }
        self.data_version = Some(version);
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(stream_id: i64, revision: u64) -> StreamHead {
        StreamHead {
            stream_id,
            deleted: false,
            current: CurrentRevision::Current(revision),
        }
    }

    #[test]
    fn the_least_recently_used_stream_leaves_first() {
        let mut known = KnownStreams::new(2);
        known.put("a", head(1, 0));
        known.put("b", head(2, 0));
        assert_eq!(known.get("a"), Some(head(1, 0)));
        known.put("c", head(3, 0));
        assert_eq!(known.get("b"), None, "b was the least recently used");
        assert_eq!(known.get("a"), Some(head(1, 0)));
        known.put("a", head(1, 5));
        assert_eq!(known.get("a"), Some(head(1, 5)));
        assert_eq!(known.len(), 2);
    }

    #[test]
    fn a_commit_by_another_connection_empties_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("version.db");
        let ours = Connection::open(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        ours.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let mut known = KnownStreams::new(8);
        known.check_other_writers(&ours).unwrap();
        known.put("a", head(1, 0));

        ours.execute("INSERT INTO t VALUES (1)", []).unwrap();
        known.check_other_writers(&ours).unwrap();
        assert_eq!(known.get("a"), Some(head(1, 0)), "our own commits keep it");

        other.execute("INSERT INTO t VALUES (2)", []).unwrap();
        known.check_other_writers(&ours).unwrap();
        assert_eq!(known.get("a"), None, "another writer's commit empties it");
    }
}
