//! Read models fed from the global log: accounts and their directory,
//! sessions, the inactivity index, My applications and legacy notices.
//!
//! A [`ReadModel`] is a pure fold of decoded events in global order (a
//! position guard makes re-application a no-op). [`Projections`] runs it
//! live over `EventStore::subscribe_all` and lets a caller wait until a
//! given position is applied (read-your-writes).

pub mod model;
mod model_applications;
pub mod runner;

pub use model::{AccountView, ApplicationView, ReadModel, SessionView};
pub use runner::{Projections, WaitError};
