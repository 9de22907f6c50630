//! The shape every aggregate of the domain has: a state folded from its
//! events, and a pure decision over that state.

/// A pure decision model over one stream, implemented on a unit marker type
/// per aggregate (`domain::account::Account`, `domain::flow::Flow`, …).
///
/// `decide` never changes state; `evolve` never fails and never checks
/// rules, so any stored history folds.
pub trait Decider {
    /// State folded from the stream's events; `Default` is "no events yet".
    type State: Default;
    /// What a caller asks for.
    type Command;
    /// What happened.
    type Event: Send + Sync;
    /// A business refusal.
    type Error;

    /// Decide what happens when `command` meets `state`.
    fn decide(
        state: &Self::State,
        command: &Self::Command,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    /// Apply one event to `state`.
    fn evolve(state: &mut Self::State, event: &Self::Event);
}

/// Implement [`Decider`] for `$marker` with the calling module's `State`,
/// `Command`, `Event` and `Error` types and its free `decide` and `evolve`
/// functions.
macro_rules! module_decider {
    ($marker:ident) => {
        impl $crate::Decider for $marker {
            type State = State;
            type Command = Command;
            type Event = Event;
            type Error = Error;

            fn decide(state: &State, command: &Command) -> Result<Vec<Event>, Error> {
                decide(state, command)
            }

            fn evolve(state: &mut State, event: &Event) {
                evolve(state, event)
            }
        }
    };
}
pub(crate) use module_decider;
