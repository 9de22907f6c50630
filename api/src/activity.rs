//! When each session was last used, for the idle timeout, across the nodes
//! of one store. A node remembers what it saw in memory, and every few
//! seconds writes the sessions it saw used since into values beside the log
//! (`session.seen.<bucket>`: session ids and instants only), merged by
//! compare-and-set. Only a session that looks idle to this node costs a
//! read of its bucket: it may have been used on another node meanwhile.
//! Activity reaches the other nodes within one flush interval; a node that
//! dies loses at most that much of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use domain::SessionId;
use store::{EventStore, StoreError};

/// How many values the sessions are spread over.
pub const BUCKETS: u128 = 256;
/// One entry: 16 bytes of session id, 8 of milliseconds since the epoch.
const ENTRY: usize = 24;
/// Most entries one value holds (the newest are kept).
const MAX_ENTRIES: usize = store::MAX_VALUE_BYTES / ENTRY;

/// The name of the value that holds `session`'s last activity.
pub fn value_name(session: SessionId) -> String {
    format!("session.seen.{}", session.0.as_u128() % BUCKETS)
}

/// The sessions' last activity as this node knows it, and what it has yet
/// to tell the others.
pub struct SessionActivity {
    store: Arc<dyn EventStore>,
    /// Longest any session may stay idle: older entries are dropped.
    max_idle: Duration,
    local: Mutex<LastSeen>,
    unshared: Mutex<HashMap<SessionId, DateTime<Utc>>>,
}

impl SessionActivity {
    pub fn new(store: Arc<dyn EventStore>, max_idle: Duration) -> SessionActivity {
        SessionActivity {
            store,
            max_idle,
            local: Mutex::new(LastSeen::default()),
            unshared: Mutex::new(HashMap::new()),
        }
    }

    /// The session was used now (`share`: tell the other nodes).
    pub fn touch(&self, session: SessionId, now: DateTime<Utc>, share: bool) {
        self.local
            .lock()
            .expect("activity lock")
            .touch(session, now, self.max_idle);
        if share {
            self.unshared
                .lock()
                .expect("activity lock")
                .insert(session, now);
        }
    }

    /// When the session was last used, on this node or (if this node saw
    /// nothing since `since`) on any node; `None` when nobody has seen it.
    pub async fn last_seen(
        &self,
        session: SessionId,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let local = self
            .local
            .lock()
            .expect("activity lock")
            .at
            .get(&session)
            .copied();
        if local.is_some_and(|seen| seen >= since) {
            return Ok(local);
        }
        let shared = self
            .store
            .read_value(&value_name(session))
            .await?
            .and_then(|bytes| decode(&bytes).remove(&session));
        Ok(local.max(shared))
    }

    /// This node forgets the session (ended or idle).
    pub fn forget(&self, session: SessionId) {
        self.local
            .lock()
            .expect("activity lock")
            .at
            .remove(&session);
        self.unshared
            .lock()
            .expect("activity lock")
            .remove(&session);
    }

    /// Write what this node saw since the last flush into the store.
    pub async fn flush(&self, now: DateTime<Utc>) {
        let unshared = std::mem::take(&mut *self.unshared.lock().expect("activity lock"));
        let mut buckets: HashMap<String, Vec<(SessionId, DateTime<Utc>)>> = HashMap::new();
        for (session, seen) in unshared {
            buckets
                .entry(value_name(session))
                .or_default()
                .push((session, seen));
        }
        for (name, seen) in buckets {
            if let Err(e) = self.merge(&name, &seen, now).await {
                tracing::warn!(error = %e, "could not share the sessions' activity; trying again");
                let mut unshared = self.unshared.lock().expect("activity lock");
                for (session, at) in seen {
                    let entry = unshared.entry(session).or_insert(at);
                    *entry = (*entry).max(at);
                }
            }
        }
    }

    async fn merge(
        &self,
        name: &str,
        seen: &[(SessionId, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for _ in 0..8 {
            let current = self.store.read_value(name).await?;
            let mut entries = current.as_deref().map(decode).unwrap_or_default();
            for (session, at) in seen {
                let entry = entries.entry(*session).or_insert(*at);
                *entry = (*entry).max(*at);
            }
            entries.retain(|_, at| now - *at <= self.max_idle);
            let value = encode(entries);
            if self
                .store
                .swap_value(name, current.as_deref(), &value)
                .await?
            {
                return Ok(());
            }
        }
        Err(StoreError::Backend(
            "the sessions' activity value keeps changing".to_owned(),
        ))
    }
}

fn encode(entries: HashMap<SessionId, DateTime<Utc>>) -> Vec<u8> {
    let mut entries: Vec<_> = entries.into_iter().collect();
    // The newest first, so that a full value drops the oldest.
    entries.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.0.cmp(&b.0.0)));
    entries.truncate(MAX_ENTRIES);
    let mut bytes = Vec::with_capacity(entries.len() * ENTRY);
    for (session, at) in entries {
        bytes.extend_from_slice(session.0.as_bytes());
        bytes.extend_from_slice(&at.timestamp_millis().to_be_bytes());
    }
    bytes
}

fn decode(bytes: &[u8]) -> HashMap<SessionId, DateTime<Utc>> {
    bytes
        .chunks_exact(ENTRY)
        .filter_map(|entry| {
            let id = Uuid::from_slice(&entry[..16]).ok()?;
            let millis = i64::from_be_bytes(entry[16..].try_into().ok()?);
            Some((SessionId(id), DateTime::from_timestamp_millis(millis)?))
        })
        .collect()
}

/// When each session was last used on this node. Sessions that are
/// abandoned rather than ended leave entries behind; once the map has
/// doubled since the last sweep, entries idle longer than any session may be
/// are dropped (a dropped entry reads as "not used here since it started",
/// and the shared activity is asked, so the answer does not change).
#[derive(Debug, Default)]
struct LastSeen {
    at: HashMap<SessionId, DateTime<Utc>>,
    sweep_above: usize,
}

impl LastSeen {
    /// The map is never swept below this many entries.
    const MIN_SWEEP: usize = 1024;

    fn touch(&mut self, session: SessionId, now: DateTime<Utc>, max_idle: Duration) {
        self.at.insert(session, now);
        if self.at.len() > self.sweep_above.max(Self::MIN_SWEEP) {
            self.at.retain(|_, seen| now - *seen <= max_idle);
            self.sweep_above = 2 * self.at.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(n: u128) -> SessionId {
        SessionId(Uuid::from_u128(n))
    }

    fn instant(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn abandoned_sessions_are_swept_from_the_last_seen_map_and_live_ones_kept() {
        let idle = Duration::minutes(60);
        let start = instant("2026-11-01T08:00:00Z");
        let mut last_seen = LastSeen::default();
        // Ten thousand sessions used once, one a minute, then abandoned.
        for n in 0..10_000u128 {
            last_seen.touch(session(n), start + Duration::minutes(n as i64), idle);
        }
        // Only those used within the last hour of that (plus the ones
        // touched since the last sweep) can still be there.
        assert!(
            last_seen.at.len() < 2 * LastSeen::MIN_SWEEP + 61,
            "{} entries left",
            last_seen.at.len()
        );
        let last = start + Duration::minutes(9_999);
        assert_eq!(last_seen.at.get(&session(9_999)), Some(&last));
        assert!(!last_seen.at.contains_key(&session(0)));
    }

    #[tokio::test]
    async fn activity_on_one_node_is_seen_by_another_once_flushed_and_old_entries_go() {
        let store: Arc<dyn EventStore> = Arc::new(store::memory::MemoryStore::new());
        let idle = Duration::minutes(30);
        let one = SessionActivity::new(store.clone(), idle);
        let two = SessionActivity::new(store.clone(), idle);
        let start = instant("2026-11-01T08:00:00Z");
        let used = start + Duration::minutes(20);
        one.touch(session(7), used, true);
        // Same bucket, used long ago.
        one.touch(session(7 + BUCKETS), start - Duration::hours(2), true);
        assert_eq!(two.last_seen(session(7), start).await.unwrap(), None);
        one.flush(used).await;
        assert_eq!(two.last_seen(session(7), start).await.unwrap(), Some(used));
        assert_eq!(
            two.last_seen(session(7 + BUCKETS), start - Duration::hours(3))
                .await
                .unwrap(),
            None,
            "an entry idle longer than any session may be is not kept"
        );

        // Both nodes write into the same bucket: neither loses the other's.
        let later = used + Duration::minutes(5);
        two.touch(session(7), later, true);
        one.touch(session(7 + 2 * BUCKETS), later, true);
        two.flush(later).await;
        one.flush(later).await;
        let fresh = SessionActivity::new(store.clone(), idle);
        assert_eq!(
            fresh.last_seen(session(7), start).await.unwrap(),
            Some(later)
        );
        assert_eq!(
            fresh
                .last_seen(session(7 + 2 * BUCKETS), start)
                .await
                .unwrap(),
            Some(later)
        );
        // What this node saw itself is answered without the store.
        assert_eq!(two.last_seen(session(7), later).await.unwrap(), Some(later));
    }

    #[test]
    fn a_full_value_keeps_the_newest_entries() {
        let start = instant("2026-11-01T08:00:00Z");
        let entries: HashMap<_, _> = (0..(MAX_ENTRIES as u128 + 10))
            .map(|n| (session(n), start + Duration::seconds(n as i64)))
            .collect();
        let bytes = encode(entries);
        assert!(bytes.len() <= store::MAX_VALUE_BYTES);
        let kept = decode(&bytes);
        assert_eq!(kept.len(), MAX_ENTRIES);
        assert!(!kept.contains_key(&session(0)));
        assert!(kept.contains_key(&session(MAX_ENTRIES as u128 + 9)));
    }
}
