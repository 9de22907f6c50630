//! Given/when/then over any [`Decider`]: the one harness of the aggregates'
//! tests. `given::<D>(events).when(command).then(expected_events)` folds the
//! events, decides, asserts, and hands back the state for the next step.

use std::fmt::Debug;

use crate::Decider;

/// The events a test starts from, folded into `D`'s state.
pub fn given<D: Decider>(events: impl IntoIterator<Item = D::Event>) -> Given<D> {
    let mut state = D::State::default();
    for event in events {
        D::evolve(&mut state, &event);
    }
    Given { state }
}

/// A state to decide on: what [`given`] folded, or what a step left.
pub struct Given<D: Decider> {
    state: D::State,
}

impl<D: Decider> Given<D> {
    /// Decide `command` on this state.
    pub fn when(self, command: D::Command) -> When<D> {
        let outcome = D::decide(&self.state, &command);
        When {
            before: self.state,
            outcome,
        }
    }

    /// The state itself.
    pub fn state(self) -> D::State {
        self.state
    }
}

impl<D: Decider> Clone for Given<D>
where
    D::State: Clone,
{
    fn clone(&self) -> Self {
        Given {
            state: self.state.clone(),
        }
    }
}

/// A decision taken, with the state it was taken on.
pub struct When<D: Decider> {
    before: D::State,
    outcome: Result<Vec<D::Event>, D::Error>,
}

impl<D: Decider> When<D>
where
    D::Event: PartialEq + Debug,
    D::Error: PartialEq + Debug,
{
    /// Asserts that exactly `expected` was decided; the state after them
    /// is the next step's.
    #[track_caller]
    pub fn then(self, expected: Vec<D::Event>) -> Given<D> {
        assert_eq!(self.outcome, Ok(expected));
        self.accepted()
    }

    /// Asserts the refusal `expected`; the unchanged state is the next step's.
    #[track_caller]
    pub fn then_error(self, expected: D::Error) -> Given<D> {
        assert_eq!(self.outcome, Err(expected));
        Given { state: self.before }
    }

    /// Asserts that the command was accepted, whatever it decided; the
    /// state after its events is the next step's.
    #[track_caller]
    pub fn accepted(self) -> Given<D> {
        let mut state = self.before;
        for event in accepted_events(self.outcome) {
            D::evolve(&mut state, &event);
        }
        Given { state }
    }

    /// The events decided, asserting that the command was accepted.
    #[track_caller]
    pub fn events(self) -> Vec<D::Event> {
        accepted_events(self.outcome)
    }

    /// The refusal, asserting that the command was refused.
    #[track_caller]
    pub fn error(self) -> D::Error {
        match self.outcome {
            Ok(events) => panic!("expected a refusal, decided {events:?}"),
            Err(error) => error,
        }
    }

    /// The outcome as it is, for assertions the others do not express.
    pub fn outcome(&self) -> Result<&[D::Event], &D::Error> {
        self.outcome.as_deref()
    }
}

#[track_caller]
fn accepted_events<E, Error: Debug>(outcome: Result<Vec<E>, Error>) -> Vec<E> {
    match outcome {
        Ok(events) => events,
        Err(error) => panic!("expected the command to be accepted, refused with {error:?}"),
    }
}
