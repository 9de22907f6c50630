//! Binds the pure deciders of `domain` to the store's command loop and the
//! codec of `migrations`.

use migrations::DomainEvent;
use store::RecordedEvent;
use store::command::{Codec, CodecFailure, Decider, EncodedEvent};

/// The codec of every stream: `migrations` behind the store's `Codec` trait.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventCodec;

macro_rules! decider {
    ($marker:ident, $module:ident, $variant:ident) => {
        #[doc = concat!("The `domain::", stringify!($module), "` decider.")]
        pub struct $marker;

        impl Decider for $marker {
            type State = domain::$module::State;
            type Command = domain::$module::Command;
            type Event = domain::$module::Event;
            type Error = domain::$module::Error;

            fn evolve(state: &mut Self::State, event: &Self::Event) {
                domain::$module::evolve(state, event)
            }

            fn decide(
                state: &Self::State,
                command: &Self::Command,
            ) -> Result<Vec<Self::Event>, Self::Error> {
                domain::$module::decide(state, command)
            }
        }

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

decider!(AccountDecider, account, Account);
decider!(FlowDecider, flow, Flow);
decider!(ReservationDecider, reservation, Reservation);
decider!(ApplicationDecider, application, Application);
decider!(AddressDecider, address, Address);
decider!(LegacyDecider, legacy, Legacy);
