//! The port's rules every adapter applies the same way: input validation of
//! an append and the expected-revision check.

use std::collections::HashSet;

use crate::{CurrentRevision, ExpectedRevision, NewEvent, StoreError};

/// Refuse appends the port never accepts, before any adapter work.
pub fn validate_append(stream: &str, events: &[NewEvent]) -> Result<(), StoreError> {
    if stream.is_empty() {
        return Err(StoreError::InvalidInput("empty stream name".to_owned()));
    }
    if events.is_empty() {
        return Err(StoreError::EmptyAppend);
    }
    if events.len() > 1 {
        let mut seen = HashSet::with_capacity(events.len());
        if !events.iter().all(|event| seen.insert(event.id)) {
            return Err(StoreError::InvalidInput(format!(
                "an append to {stream} carries the same event id twice"
            )));
        }
    }
    Ok(())
}

/// Refuse a stream name the port never accepts.
pub fn validate_stream(stream: &str) -> Result<(), StoreError> {
    if stream.is_empty() {
        return Err(StoreError::InvalidInput("empty stream name".to_owned()));
    }
    Ok(())
}

/// Does `current` satisfy `expected`? `Err` is the conflict to report.
pub fn check_expected(
    stream: &str,
    expected: ExpectedRevision,
    current: CurrentRevision,
) -> Result<(), StoreError> {
    let ok = match (expected, current) {
        (ExpectedRevision::Any, _) => true,
        (ExpectedRevision::NoStream, CurrentRevision::NoStream) => true,
        (ExpectedRevision::StreamExists, CurrentRevision::Current(_)) => true,
        (ExpectedRevision::Exact(want), CurrentRevision::Current(have)) => want == have,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            stream: stream.to_owned(),
            expected,
            actual: current,
        })
    }
}

/// Refuse a value beside the log the port never accepts.
pub fn validate_value(name: &str, value: &[u8]) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > crate::MAX_VALUE_NAME {
        return Err(StoreError::InvalidInput(format!(
            "a value's name must have 1 to {} bytes",
            crate::MAX_VALUE_NAME
        )));
    }
    if value.len() > crate::MAX_VALUE_BYTES {
        return Err(StoreError::InvalidInput(format!(
            "a value may have at most {} bytes",
            crate::MAX_VALUE_BYTES
        )));
    }
    Ok(())
}

/// Refuse a data key the port never accepts.
pub fn validate_key(key: &crate::StoredKey) -> Result<(), StoreError> {
    validate_key_subject(&key.subject)?;
    if key.wrapped.is_empty() || key.wrapped.len() > crate::MAX_WRAPPED_KEY {
        return Err(StoreError::InvalidInput(format!(
            "a wrapped data key holds 1 to {} bytes",
            crate::MAX_WRAPPED_KEY
        )));
    }
    Ok(())
}

/// Refuse a data key subject the port never accepts.
pub fn validate_key_subject(subject: &str) -> Result<(), StoreError> {
    if subject.is_empty() || subject.len() > crate::MAX_KEY_SUBJECT || subject.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "a data key subject holds 1 to {} bytes and no NUL",
            crate::MAX_KEY_SUBJECT
        )));
    }
    Ok(())
}

/// The error for a key id already used with other content.
pub fn key_mismatch(id: uuid::Uuid) -> StoreError {
    StoreError::InvalidInput(format!("data key {id} exists with other content"))
}
