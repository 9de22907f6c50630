//! Uniqueness reservations: one stream per keyed hash of an email
//! (`email-<hex>`) or of an ID-porten identity (`idporten-<hex>`). The first
//! append to such a stream uses "no stream", so racing registrations of one
//! email give exactly one holder.

use crate::{AccountId, FlowId};

/// Who holds the reservation now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub holder: Option<AccountId>,
    /// The registration flow that took it (for idempotent retries).
    pub flow: Option<FlowId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Take the reservation for `account`. Taking it again from the same flow
    /// is a no-op.
    Reserve {
        account: AccountId,
        flow: Option<FlowId>,
    },
    /// Give it up (account deleted). A no-op unless `account` holds it.
    Release { account: AccountId },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Reserved {
        account: AccountId,
        flow: Option<FlowId>,
    },
    Released {
        account: AccountId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Another account holds it.
    Taken { holder: AccountId },
}

/// The reservation aggregate as a [`Decider`](crate::Decider):
/// [`decide`] and [`evolve`] over [`State`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Reservation;

crate::decider::module_decider!(Reservation);

pub fn evolve(state: &mut State, event: &Event) {
    match event {
        Event::Reserved { account, flow } => {
            state.holder = Some(*account);
            state.flow = *flow;
        }
        Event::Released { .. } => {
            state.holder = None;
            state.flow = None;
        }
    }
}

pub fn decide(state: &State, command: &Command) -> Result<Vec<Event>, Error> {
    match command {
        Command::Reserve { account, flow } => match state.holder {
            None => Ok(vec![Event::Reserved {
                account: *account,
                flow: *flow,
            }]),
            Some(holder) if holder == *account => Ok(vec![]),
            Some(_) if flow.is_some() && state.flow == *flow => Ok(vec![]),
            Some(holder) => Err(Error::Taken { holder }),
        },
        Command::Release { account } => {
            if state.holder == Some(*account) {
                Ok(vec![Event::Released { account: *account }])
            } else {
                Ok(vec![])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Given};
    use uuid::Uuid;

    fn account(n: u128) -> AccountId {
        AccountId(Uuid::from_u128(n))
    }

    fn given(events: impl IntoIterator<Item = Event>) -> Given<Reservation> {
        testing::given(events)
    }

    #[test]
    fn a_free_email_can_be_reserved() {
        given([])
            .when(Command::Reserve {
                account: account(1),
                flow: None,
            })
            .then(vec![Event::Reserved {
                account: account(1),
                flow: None,
            }]);
    }

    #[test]
    fn a_held_email_is_taken_for_another_account() {
        given([Event::Reserved {
            account: account(1),
            flow: None,
        }])
        .when(Command::Reserve {
            account: account(2),
            flow: None,
        })
        .then_error(Error::Taken { holder: account(1) });
    }

    #[test]
    fn a_retry_from_the_same_flow_is_a_no_op() {
        let flow = Some(FlowId(Uuid::from_u128(9)));
        given([Event::Reserved {
            account: account(1),
            flow,
        }])
        .when(Command::Reserve {
            account: account(2),
            flow,
        })
        .then(vec![]);
    }

    #[test]
    fn a_released_email_can_be_reserved_again() {
        given([
            Event::Reserved {
                account: account(1),
                flow: None,
            },
            Event::Released {
                account: account(1),
            },
        ])
        .when(Command::Reserve {
            account: account(2),
            flow: None,
        })
        .accepted();
    }

    #[test]
    fn only_the_holder_releases() {
        given([Event::Reserved {
            account: account(1),
            flow: None,
        }])
        .when(Command::Release {
            account: account(2),
        })
        .then(vec![]);
    }
}
