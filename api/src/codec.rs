//! Binds the events of each `domain` aggregate to their stored form in
//! `migrations`, behind the store's `Codec` trait: what the command loop
//! needs besides the aggregate's `domain::Decider`.

use migrations::DomainEvent;
use store::RecordedEvent;
use store::command::{Codec, CodecFailure, EncodedEvent};

/// The codec of every stream: `migrations` behind the store's `Codec` trait.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventCodec;

macro_rules! codec {
    ($module:ident, $variant:ident) => {
        impl Codec<domain::$module::Event> for EventCodec {
            fn encode(&self, event: &domain::$module::Event) -> EncodedEvent {
                let encoded = migrations::encode(&DomainEvent::$variant(event.clone()));
                EncodedEvent {
                    type_name: encoded.type_name,
                    schema_version: encoded.schema_version,
                    payload: encoded.payload,
                }
            }

            fn decode(
                &self,
                recorded: &RecordedEvent,
            ) -> Result<domain::$module::Event, CodecFailure> {
                match migrations::decode(
                    &recorded.type_name,
                    recorded.schema_version,
                    &recorded.payload,
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
