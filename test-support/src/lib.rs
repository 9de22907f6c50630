//! What tests and benchmarks share, never linked into a program: the
//! conformance kit every event store adapter runs (`conformance`), the
//! driver of the kill -9 crash test (`crash`), PostgreSQL for tests
//! (`postgres`), headless Chromium for page tests (`browser`), a store with
//! sparse positions that the kit is run on to show that it computes nothing
//! with them (`sparse`), and a seeded generator of realistic event
//! sequences (`workload`).

pub mod browser;
pub mod conformance;
pub mod crash;
pub mod postgres;
pub mod sparse;
pub mod workload;

#[doc(hidden)]
pub use proptest;
#[doc(hidden)]
pub use tokio;
