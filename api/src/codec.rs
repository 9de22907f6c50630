//! Binds the events of each `domain` aggregate to their stored form in
//! `migrations`, behind the store's `Codec` trait: what the command loop
//! needs besides the aggregate's `domain::Decider`. Personal data is sealed
//! under its subject's data key (`migrations::sealed`, `keys::KeyRing`).

use std::sync::Arc;

use keys::KeyRing;
use migrations::DomainEvent;
use migrations::sealed::Opener;
use store::command::{Codec, CodecFailure, EncodedEvent};
use store::{EventStore, RecordedEvent, StoreError};

/// The codec of every stream: `migrations` behind the store's `Codec` trait,
/// sealing and opening with the server's key ring.
#[derive(Debug, Clone)]
pub struct EventCodec {
    ring: Arc<KeyRing>,
}

impl EventCodec {
    /// A codec sealing with `ring`.
    pub fn new(ring: Arc<KeyRing>) -> EventCodec {
        EventCodec { ring }
    }

    /// The key ring it seals and opens with.
    pub fn ring(&self) -> &Arc<KeyRing> {
        &self.ring
    }

    fn subjects(&self, events: impl Iterator<Item = DomainEvent>) -> Vec<String> {
        events
            .filter_map(|event| {
                migrations::sealed::personal(&event)
                    .map(|(subject, _)| self.ring.subject_name(subject))
            })
            .collect()
    }
}

macro_rules! codec {
    ($module:ident, $variant:ident) => {
        #[async_trait::async_trait]
        impl Codec<domain::$module::Event> for EventCodec {
            fn encode(
                &self,
                id: uuid::Uuid,
                event: &domain::$module::Event,
            ) -> Result<EncodedEvent, CodecFailure> {
                let encoded = migrations::sealed::encode_sealed(
                    &DomainEvent::$variant(event.clone()),
                    id,
                    self.ring.as_ref(),
                )?;
                Ok(EncodedEvent {
                    type_name: encoded.type_name,
                    schema_version: encoded.schema_version,
                    payload: encoded.payload,
                })
            }

            fn decode(
                &self,
                recorded: &RecordedEvent,
            ) -> Result<domain::$module::Event, CodecFailure> {
                match migrations::sealed::decode_opened(
                    &recorded.type_name,
                    recorded.schema_version,
                    &recorded.payload,
                    recorded.id,
                    Some(self.ring.as_ref() as &dyn Opener),
                )? {
                    DomainEvent::$variant(event) => Ok(event),
                    other => {
                        Err(
                            format!("{} event in a {} stream", kind(&other), stringify!($module))
                                .into(),
                        )
                    }
                }
            }

            async fn prepare_encode(
                &self,
                store: &dyn EventStore,
                events: &[domain::$module::Event],
            ) -> Result<(), StoreError> {
                let subjects =
                    self.subjects(events.iter().map(|e| DomainEvent::$variant(e.clone())));
                if subjects.is_empty() {
                    return Ok(());
                }
                self.ring.prepare_seal(store, &subjects).await
            }

            fn new_keys(&self, events: &[store::NewEvent]) -> Vec<store::StoredKey> {
                let used: Vec<uuid::Uuid> = events
                    .iter()
                    .filter_map(|e| migrations::sealed::sealed_key(e.schema_version, &e.payload))
                    .collect();
                self.ring.unstored(&used)
            }

            fn keys_stored(&self, keys: &[store::StoredKey]) {
                self.ring.stored(keys)
            }

            async fn prepare_decode(
                &self,
                store: &dyn EventStore,
                events: &[RecordedEvent],
            ) -> Result<(), StoreError> {
                let sealed: Vec<&RecordedEvent> = events
                    .iter()
                    .filter(|e| e.schema_version & migrations::sealed::SEALED != 0)
                    .collect();
                if sealed.is_empty() {
                    return Ok(());
                }
                self.ring.load_for(store, &sealed).await
            }
        }
    };
}

fn kind(event: &DomainEvent) -> &'static str {
    match event {
        DomainEvent::Account(_) => "account",
        DomainEvent::Flow(_) => "flow",
        DomainEvent::Reservation(_) => "reservation",
        DomainEvent::Application(_) => "application",
        DomainEvent::Legacy(_) => "legacy",
        DomainEvent::Address(_) => "address",
    }
}

codec!(account, Account);
codec!(flow, Flow);
codec!(reservation, Reservation);
codec!(application, Application);
codec!(address, Address);
codec!(legacy, Legacy);
