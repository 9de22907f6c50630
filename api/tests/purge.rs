//! The two-year inactivity purge as a job: warnings 30 days before, deletion
//! after two calendar years, idempotent, and resumable when a run was killed
//! between deleting an account and releasing its email.

use std::time::Duration;

use api::codec::EventCodec;
use api::jobs::{PurgeSummary, run_purge};
use api::server::{ServeConfig, build_app, open_store};
use api::services::App;
use chrono::{DateTime, Utc};
use domain::flow::FlowKind;
use domain::{AccountId, account};
use keys::Keyer;
use store::command;

async fn app(dir: &std::path::Path) -> App {
    let keyer = Keyer::load_or_create(dir).unwrap();
    let store = open_store(dir, true).unwrap();
    mails_go_out(store.clone());
    let app = build_app(store, keyer, &ServeConfig::new(dir.to_path_buf()));
    app.projections()
        .wait_caught_up(Duration::from_secs(10))
        .await
        .unwrap();
    app
}

/// Stand in for the server's outbox (no server runs here): every mail the
/// log owes counts as sent at once, as the purge waits for the deletion
/// mails before it erases the people they go to.
fn mails_go_out(store: std::sync::Arc<dyn store::EventStore>) {
    tokio::spawn(async move {
        loop {
            let Ok(head) = store.head_position().await else {
                return;
            };
            let current = store
                .read_value(api::outbox::CHECKPOINT_VALUE)
                .await
                .ok()
                .flatten();
            let _ = store
                .swap_value(
                    api::outbox::CHECKPOINT_VALUE,
                    current.as_deref(),
                    head.to_string().as_bytes(),
                )
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

/// Register `email` through the services (code read back from the flow).
async fn register(app: &App, dir: &std::path::Path, email: &str) -> AccountId {
    let keyer = Keyer::load_or_create(dir).unwrap();
    let store = open_store(dir, true).unwrap();
    let started = app.start_registration(email).await.unwrap();
    let (state, _) = command::load::<domain::flow::Flow, _>(
        store.as_ref(),
        &codec(dir),
        &started.flow_id.stream(),
    )
    .await
    .unwrap();
    let code = keyer.code(started.flow_id, &state.code.unwrap().nonce);
    app.verify_code(FlowKind::Registration, &started.flow_id.to_string(), &code)
        .await
        .unwrap();
    app.complete_registration(
        &started.flow_id.to_string(),
        "Sommer2026abc",
        "Purge Person",
    )
    .await
    .unwrap()
    .account
    .id
}

/// The codec of the data dir's store (its secret's key ring).
fn codec(dir: &std::path::Path) -> EventCodec {
    let keyer = Keyer::load_or_create(dir).unwrap();
    EventCodec::new(std::sync::Arc::new(keys::KeyRing::new(keyer)))
}

fn years_on(days: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::days(days)
}

#[tokio::test]
async fn accounts_in_the_last_thirty_days_are_warned_once() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    register(&app, dir.path(), "warn@example.no").await;
    let as_of = years_on(730 - 10);
    let first = run_purge(&app, as_of, false).await.unwrap();
    assert_eq!((first.warned, first.deleted), (1, 0));
    let second = run_purge(&app, as_of, false).await.unwrap();
    assert_eq!((second.warned, second.deleted), (0, 0), "warned once");
    let too_early = run_purge(&app, years_on(600), false).await.unwrap();
    assert_eq!(too_early, PurgeSummary::default());
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    let id = register(&app, dir.path(), "dry@example.no").await;
    let as_of = years_on(800);
    let dry = run_purge(&app, as_of, true).await.unwrap();
    assert_eq!(dry.deleted, 1);
    let state = app.projections().read(|m| m.account(id).map(|a| a.status));
    assert_eq!(state, Some(projections::model::AccountStatus::Active));
    let real = run_purge(&app, as_of, false).await.unwrap();
    assert_eq!(real.deleted, 1);
}

/// A run killed after deleting accounts but before releasing their emails
/// ends, once run again, in the state of one uninterrupted run.
#[tokio::test]
async fn a_purge_killed_halfway_ends_like_an_uninterrupted_one_when_run_again() {
    let as_of = years_on(800);
    let emails: Vec<String> = (0..6).map(|i| format!("person{i}@example.no")).collect();

    // The uninterrupted run.
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = app(whole_dir.path()).await;
    for email in &emails {
        register(&whole, whole_dir.path(), email).await;
    }
    let summary = run_purge(&whole, as_of, false).await.unwrap();
    assert_eq!((summary.deleted, summary.released), (6, 6));

    // The interrupted run: half the accounts were deleted, no email released.
    let broken_dir = tempfile::tempdir().unwrap();
    let broken = app(broken_dir.path()).await;
    let mut ids = Vec::new();
    for email in &emails {
        ids.push(register(&broken, broken_dir.path(), email).await);
    }
    let store = open_store(broken_dir.path(), true).unwrap();
    for id in &ids[..3] {
        let metadata = store::EventMetadata {
            actor: "job:purge-inactive".into(),
            correlation_id: uuid::Uuid::now_v7(),
            causation_id: None,
            occurred_at: as_of,
        };
        command::execute::<domain::account::Account, _>(
            store.as_ref(),
            &codec(broken_dir.path()),
            &id.stream(),
            &account::Command::PurgeInactive { as_of },
            &metadata,
            command::ExecuteOptions::default(),
        )
        .await
        .unwrap();
    }
    drop(store);
    // "Run again" in a fresh process over the same data dir.
    let again = app(broken_dir.path()).await;
    let resumed = run_purge(&again, as_of, false).await.unwrap();
    assert_eq!((resumed.deleted, resumed.released), (3, 6));
    let nothing = run_purge(&again, as_of, false).await.unwrap();
    assert_eq!(
        (nothing.deleted, nothing.released, nothing.warned),
        (0, 0, 0)
    );

    // Both end with every account deleted and every email free again.
    for app in [&whole, &again] {
        for email in &emails {
            let parsed = domain::Email::parse(email).unwrap();
            assert!(
                app.projections()
                    .read(|m| m.account_by_email(&parsed).is_none())
            );
            assert!(
                app.start_registration(email).await.is_ok(),
                "{email} can register again"
            );
        }
        assert!(
            app.projections()
                .read(|m| m.due_for_purge(as_of).is_empty())
        );
        assert!(
            app.projections()
                .read(|m| m.deleted_unreleased().is_empty())
        );
    }
}
