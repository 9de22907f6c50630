//! The pure model of caseledger: commands, events, decide/evolve and the
//! policies of the seed FAQ. No IO, no async, no clock, no randomness: time,
//! ids and random values arrive as inputs, so a replay gives the same state.

pub mod account;
pub mod address;
pub mod application;
mod decider;
pub mod email;
pub mod flow;
pub mod ids;
pub mod legacy;
pub mod password;
pub mod reservation;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod text;
pub mod time;

pub use decider::Decider;

/// What a piece of personal data reads as once its data key was destroyed
/// (an erased email or name): never a valid email nor name, so never
/// confused with one.
pub const ERASED: &str = "<erased>";
pub use email::Email;
pub use ids::{AccountId, ApplicationId, FlowId, SessionId};

/// How a login identity authenticates. Each identity is its own account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoginMethod {
    /// Email and password.
    Password,
    /// ID-porten (OpenID Connect), keyed by (issuer, pid).
    IdPorten,
}

/// The login identity acting: one account, logged in one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoginIdentity {
    pub account: AccountId,
    pub method: LoginMethod,
}

/// Who causes a command: a citizen's login identity, a caseworker system,
/// a batch job, or the system itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Citizen(LoginIdentity),
    /// An internal service acting for a caseworker (never a citizen session).
    Caseworker(String),
    Job(String),
    System,
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
