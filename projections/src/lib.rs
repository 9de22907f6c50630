//! Read models fed from the global log: accounts and their directory,
//! sessions, the inactivity index, My applications and legacy notices.
//!
//! A [`ReadModel`] is a pure fold of decoded events in global order (a
//! position guard makes re-application a no-op). [`Projections`] runs it
//! live over `EventStore::subscribe_all`, lets a caller wait until a
//! given position is applied (read-your-writes) and tells listeners which
//! applications changed. [`snapshot`] persists the
//! state and its checkpoint together in the data dir, gives the digest of a
//! state and rebuilds from zero.

mod email_directory;
mod expiry;
mod inactivity;
pub mod model;
mod model_applications;
mod model_mail;
mod render;
pub mod runner;
mod slots;
pub mod snapshot;
mod table;

pub use model::{AccountView, ApplicationView, ReadModel, SessionView, StreamKey};
pub use model_mail::MailOutboxState;
pub use runner::{
    APPLICATION_CHANGES_BUFFER, ApplicationChanged, Projections, SnapshotMode, WaitError,
};
