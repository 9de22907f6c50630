//! The command loop, written once for every [`domain::Decider`]: load the
//! stream, evolve the state, decide, append with the expected revision, and
//! retry a bounded number of times when another writer got there first.

use domain::Decider;
use uuid::Uuid;

use crate::{
    AppendResult, Direction, EventMetadata, EventStore, ExpectedRevision, NewEvent, RecordedEvent,
    StoreError, StoredKey, StreamStart,
};

/// An event turned into its stored form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    pub type_name: &'static str,
    pub schema_version: u16,
    pub payload: Vec<u8>,
}

/// Boxed error of a codec, kept opaque to the store.
pub type CodecFailure = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Maps domain events to stored bytes and back (implemented in `migrations`).
///
/// A codec that seals personal data (see `migrations::sealed`) needs its
/// data keys at hand: the command loop calls [`Codec::prepare_encode`]
/// before encoding, appends the encoded events with [`Codec::new_keys`]
/// (the keys they need stored, in the append's transaction), tells
/// [`Codec::keys_stored`] once that append is in, and calls
/// [`Codec::prepare_decode`] before decoding what it read.
#[async_trait::async_trait]
pub trait Codec<E: Sync>: Send + Sync {
    /// The stored form of `event`, to be appended with id `id`.
    fn encode(&self, id: Uuid, event: &E) -> Result<EncodedEvent, CodecFailure>;
    fn decode(&self, recorded: &RecordedEvent) -> Result<E, CodecFailure>;

    /// Make ready what encoding `events` needs (the keys of their subjects).
    async fn prepare_encode(
        &self,
        _store: &dyn EventStore,
        _events: &[E],
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// What encoding `events` created that the store must hold with them
    /// (new data keys): appended with them
    /// ([`EventStore::append_with_keys`]).
    fn new_keys(&self, _events: &[NewEvent]) -> Vec<StoredKey> {
        Vec::new()
    }

    /// `keys` (from [`Codec::new_keys`]) are in the store now.
    fn keys_stored(&self, _keys: &[StoredKey]) {}

    /// Make ready what decoding `events` needs.
    async fn prepare_decode(
        &self,
        _store: &dyn EventStore,
        _events: &[RecordedEvent],
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E> {
    /// The decider refused.
    #[error("refused by the domain")]
    Domain(E),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("an event for {stream} does not encode: {source}")]
    Encode {
        stream: String,
        source: CodecFailure,
    },
    #[error("event {revision} of {stream} does not decode: {source}")]
    Decode {
        stream: String,
        revision: u64,
        source: CodecFailure,
    },
    /// Every attempt met a concurrent writer.
    #[error("gave up on {stream} after {attempts} conflicting attempts")]
    TooManyConflicts { stream: String, attempts: u32 },
}

/// The outcome of a command that was accepted.
#[derive(Debug)]
pub struct Executed<E> {
    /// The events decided (possibly none).
    pub events: Vec<E>,
    /// Where they were written; `None` when no event was decided.
    pub append: Option<AppendResult>,
}

/// Tuning of [`execute`].
#[derive(Debug, Clone, Copy)]
pub struct ExecuteOptions {
    /// Attempts in all, including the first (at least 1).
    pub max_attempts: u32,
}

impl Default for ExecuteOptions {
    fn default() -> Self {
        ExecuteOptions { max_attempts: 5 }
    }
}

const PAGE: usize = 512;

/// Fold a stream into its state. Returns the state and the expected revision
/// the next append must carry.
pub async fn load<D: Decider, C: Codec<D::Event> + ?Sized>(
    store: &dyn EventStore,
    codec: &C,
    stream: &str,
) -> Result<(D::State, ExpectedRevision), ExecuteError<D::Error>> {
    let mut state = D::State::default();
    let mut expected = ExpectedRevision::NoStream;
    let mut next = 0u64;
    loop {
        let page = store
            .read_stream(
                stream,
                StreamStart::Revision(next),
                Direction::Forwards,
                PAGE,
            )
            .await?;
        let len = page.len();
        codec.prepare_decode(store, &page).await?;
        for recorded in &page {
            let event = codec
                .decode(recorded)
                .map_err(|source| ExecuteError::Decode {
                    stream: stream.to_owned(),
                    revision: recorded.revision,
                    source,
                })?;
            D::evolve(&mut state, &event);
            expected = ExpectedRevision::Exact(recorded.revision);
            next = recorded.revision + 1;
        }
        if len < PAGE {
            return Ok((state, expected));
        }
    }
}

/// Run `command` against `stream`: load -> evolve -> decide -> append with the
/// expected revision, retrying on conflict up to `options.max_attempts`.
pub async fn execute<D: Decider, C: Codec<D::Event> + ?Sized>(
    store: &dyn EventStore,
    codec: &C,
    stream: &str,
    command: &D::Command,
    metadata: &EventMetadata,
    options: ExecuteOptions,
) -> Result<Executed<D::Event>, ExecuteError<D::Error>> {
    execute_loaded::<D, C>(store, codec, stream, command, metadata, options, None).await
}

/// [`execute`], whose first attempt decides on `loaded`, a state and
/// expected revision the caller has just folded with [`load`], instead of
/// reading the stream again. The append still carries that revision, so a
/// write in between is a conflict, and the retry reloads the stream.
pub async fn execute_loaded<D: Decider, C: Codec<D::Event> + ?Sized>(
    store: &dyn EventStore,
    codec: &C,
    stream: &str,
    command: &D::Command,
    metadata: &EventMetadata,
    options: ExecuteOptions,
    mut loaded: Option<(D::State, ExpectedRevision)>,
) -> Result<Executed<D::Event>, ExecuteError<D::Error>> {
    let attempts = options.max_attempts.max(1);
    for _ in 0..attempts {
        let (state, expected) = match loaded.take() {
            Some(loaded) => loaded,
            None => load::<D, C>(store, codec, stream).await?,
        };
        let events = D::decide(&state, command).map_err(ExecuteError::Domain)?;
        if events.is_empty() {
            return Ok(Executed {
                events,
                append: None,
            });
        }
        codec.prepare_encode(store, &events).await?;
        let new_events = events
            .iter()
            .map(|event| {
                let id = Uuid::now_v7();
                let encoded = codec
                    .encode(id, event)
                    .map_err(|source| ExecuteError::Encode {
                        stream: stream.to_owned(),
                        source,
                    })?;
                Ok(NewEvent {
                    id,
                    type_name: encoded.type_name.to_owned(),
                    schema_version: encoded.schema_version,
                    metadata: metadata.clone(),
                    payload: encoded.payload,
                })
            })
            .collect::<Result<Vec<_>, ExecuteError<D::Error>>>()?;
        let keys = codec.new_keys(&new_events);
        let appended = if keys.is_empty() {
            store.append(stream, expected, new_events).await
        } else {
            store
                .append_with_keys(stream, expected, new_events, keys.clone())
                .await
        };
        match appended {
            Ok(append) => {
                codec.keys_stored(&keys);
                return Ok(Executed {
                    events,
                    append: Some(append),
                });
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ExecuteError::TooManyConflicts {
        stream: stream.to_owned(),
        attempts,
    })
}
