//! The `caseledger` server and jobs: GraphQL over HTTP, sessions, the mail
//! outbox, rate limits, and the batch jobs, over the pure domain and the
//! event store. `server::run(listener, config, shutdown)` is the entry point;
//! `main.rs` is a shim.

pub mod activity;
pub mod case_services;
pub mod cli;
pub mod codec;
pub mod cookies;
pub mod data_dir;
pub mod error;
pub mod graphql;
pub mod idporten;
pub mod jobs;
pub mod lease;
pub mod limits;
pub mod mail;
pub mod nesting;
pub mod outbox;
pub mod password_hashing;
pub mod portal;
pub mod positions;
pub mod query_cache;
pub mod query_guard;
pub mod seal_log;
pub mod server;
pub mod services;
pub mod stores;
pub mod subscription;
