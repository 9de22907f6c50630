//! The key table beside the log: one stream per data key
//! (`<namespace>~key/<id>`, one event holding the subject and the wrapped
//! material), tombstoned when the key is destroyed, and an index stream
//! (`<namespace>~keys`) with one event per key put (its id and subject,
//! never its material), through which keys are listed and a subject's keys
//! found.
//!
//! A key is indexed before its stream is written, so a key the store holds
//! is always found by `destroy_keys`; an index entry whose stream was never
//! written (a put cut short) lists nothing. A tombstone makes the key
//! unreadable at once; its bytes leave the disk only when every node has
//! scavenged the chunk that holds them (docs/adr/0010-kurrentdb-adapter.md).

use store::{StoreError, StoredKey};
use uuid::Uuid;

/// The type of a key stream's event.
pub const KEY_EVENT_TYPE: &str = "DataKey";
/// The type of an index event.
pub const INDEX_EVENT_TYPE: &str = "DataKeyPut";

/// A key stream's event: the subject's length (2 bytes, big-endian), the
/// subject, the wrapped material.
pub fn encode_key(key: &StoredKey) -> Vec<u8> {
    let subject = key.subject.as_bytes();
    let mut data = Vec::with_capacity(2 + subject.len() + key.wrapped.len());
    data.extend_from_slice(&(subject.len() as u16).to_be_bytes());
    data.extend_from_slice(subject);
    data.extend_from_slice(&key.wrapped);
    data
}

/// The key a key stream's event holds.
pub fn decode_key(id: Uuid, data: &[u8]) -> Result<StoredKey, StoreError> {
    let bad = || StoreError::Backend(format!("the stored data key {id} is malformed"));
    let (length, rest) = data.split_first_chunk::<2>().ok_or_else(bad)?;
    let length = usize::from(u16::from_be_bytes(*length));
    if rest.len() < length {
        return Err(bad());
    }
    let (subject, wrapped) = rest.split_at(length);
    Ok(StoredKey {
        id,
        subject: String::from_utf8(subject.to_vec()).map_err(|_| bad())?,
        wrapped: wrapped.to_vec(),
    })
}

/// An index event: the id (16 bytes), then the subject.
pub fn encode_index_entry(id: Uuid, subject: &str) -> Vec<u8> {
    let mut data = Vec::with_capacity(16 + subject.len());
    data.extend_from_slice(id.as_bytes());
    data.extend_from_slice(subject.as_bytes());
    data
}

/// The id and subject of an index event.
pub fn decode_index_entry(data: &[u8]) -> Result<(Uuid, String), StoreError> {
    let bad = || StoreError::Backend("a malformed entry in the data key index".to_owned());
    let (id, subject) = data.split_first_chunk::<16>().ok_or_else(bad)?;
    let subject = String::from_utf8(subject.to_vec()).map_err(|_| bad())?;
    Ok((Uuid::from_bytes(*id), subject))
}

/// The index's entries, each id once (the first time it was put), by id.
pub fn indexed(entries: Vec<(Uuid, String)>) -> Vec<(Uuid, String)> {
    let mut entries = entries;
    // A stable sort keeps the first entry of an id first.
    entries.sort_by_key(|(id, _)| *id);
    entries.dedup_by_key(|(id, _)| *id);
    entries
}

/// The ids of the index after `after`, in order.
pub fn ids_after(index: &[(Uuid, String)], after: Option<Uuid>) -> impl Iterator<Item = Uuid> + '_ {
    index
        .iter()
        .map(|(id, _)| *id)
        .filter(move |id| after.is_none_or(|after| *id > after))
}

/// The ids `subject`'s keys were indexed under.
pub fn ids_of<'a>(
    index: &'a [(Uuid, String)],
    subject: &'a str,
) -> impl Iterator<Item = Uuid> + 'a {
    index
        .iter()
        .filter(move |(_, indexed)| indexed == subject)
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u128, subject: &str, wrapped: &[u8]) -> StoredKey {
        StoredKey {
            id: Uuid::from_u128(n),
            subject: subject.to_owned(),
            wrapped: wrapped.to_vec(),
        }
    }

    #[test]
    fn a_key_round_trips_through_its_event() {
        for stored in [
            key(1, "subject-a", &[7; 40]),
            key(
                2,
                &"s".repeat(store::MAX_KEY_SUBJECT),
                &[1; store::MAX_WRAPPED_KEY],
            ),
            key(3, "å", &[0]),
        ] {
            let decoded = decode_key(stored.id, &encode_key(&stored)).unwrap();
            assert_eq!(decoded, stored);
        }
    }

    #[test]
    fn malformed_key_events_are_backend_errors() {
        let id = Uuid::from_u128(1);
        for bad in [&[][..], &[0], &[0, 5, b'a'], &[0, 1, 0xff, 1]] {
            assert!(
                matches!(decode_key(id, bad), Err(StoreError::Backend(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn index_entries_hold_the_id_and_subject_but_no_material() {
        let entry = encode_index_entry(Uuid::from_u128(9), "subject-a");
        assert_eq!(entry.len(), 16 + "subject-a".len());
        assert_eq!(
            decode_index_entry(&entry).unwrap(),
            (Uuid::from_u128(9), "subject-a".to_owned())
        );
        assert!(decode_index_entry(&entry[..10]).is_err());
    }

    #[test]
    fn the_index_lists_each_id_once_by_id_and_pages_after_one() {
        let entries = vec![
            (Uuid::from_u128(3), "b".to_owned()),
            (Uuid::from_u128(1), "a".to_owned()),
            // A put retried after a crash indexes its id again.
            (Uuid::from_u128(3), "b".to_owned()),
            (Uuid::from_u128(2), "a".to_owned()),
        ];
        let index = indexed(entries);
        assert_eq!(
            index.iter().map(|(id, _)| id.as_u128()).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(
            ids_after(&index, None)
                .map(|id| id.as_u128())
                .collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(
            ids_after(&index, Some(Uuid::from_u128(1)))
                .map(|id| id.as_u128())
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(ids_after(&index, Some(Uuid::from_u128(3))).count(), 0);
        assert_eq!(
            ids_of(&index, "a")
                .map(|id| id.as_u128())
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(ids_of(&index, "c").count(), 0);
    }
}
