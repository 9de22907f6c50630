//! Racing registrations of one email on the embedded store give exactly one
//! account: the email reservation stream is appended with "no stream".

use std::sync::Arc;
use std::time::Duration;

use api::services::{App, Settings};
use domain::FlowId;
use domain::flow::FlowKind;
use keys::Keyer;
use store::command;

const RACERS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_racing_registrations_of_one_email_give_one_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = api::server::open_store(dir.path(), true).unwrap();
    let keyer = Keyer::new([5; 32]);
    let ring = std::sync::Arc::new(keys::KeyRing::new(keyer.clone()));
    let projections = projections::Projections::start_with(
        store.clone(),
        projections::ReadModel::default(),
        None,
        Some(ring.clone()),
    );
    let hasher = api::password_hashing::PasswordHasher::with_limits(
        api::password_hashing::HashParams::owasp(),
        api::password_hashing::default_max_concurrent(),
        RACERS,
    );
    let app = App::new(
        store.clone(),
        projections,
        hasher,
        keyer.clone(),
        ring.clone(),
        Settings {
            recipient_mail_limit: domain::address::MailLimit {
                max: 1000,
                window: chrono::Duration::hours(1),
            },
            ..Settings::default()
        },
    );

    // Every racer gets a verified flow for the same email (none is taken yet).
    let mut flows = Vec::new();
    for _ in 0..RACERS {
        let started = app.start_registration("race@example.no").await.unwrap();
        let (state, _) = command::load::<domain::flow::Flow, _>(
            store.as_ref(),
            &api::codec::EventCodec::new(ring.clone()),
            &started.flow_id.stream(),
        )
        .await
        .unwrap();
        let code = keyer.code(started.flow_id, &state.code.unwrap().nonce);
        assert!(
            app.verify_code(FlowKind::Registration, &started.flow_id.to_string(), &code)
                .await
                .unwrap()
        );
        flows.push(started.flow_id);
    }

    let app = Arc::new(app);
    let racers: Vec<_> = flows
        .into_iter()
        .map(|flow: FlowId| {
            let app = app.clone();
            tokio::spawn(async move {
                app.complete_registration(&flow.to_string(), "Sommer2026abc", "Racer")
                    .await
                    .map(|s| s.account.id)
                    .map_err(|e| e.code)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut taken = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(account) => winners.push(account),
            Err("EMAIL_TAKEN") => taken += 1,
            Err(other) => panic!("unexpected refusal {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one registration wins");
    assert_eq!(taken, RACERS - 1);

    // The directory and a login agree on the one account.
    app.projections()
        .wait_for(
            store.head_position().await.unwrap(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let email = domain::Email::parse("race@example.no").unwrap();
    let listed = app
        .projections()
        .read(|m| m.account_by_email(&email).map(|a| a.id));
    assert_eq!(listed, Some(winners[0]));
    let logged_in = app
        .login("race@example.no", "Sommer2026abc", None)
        .await
        .unwrap();
    assert_eq!(logged_in.session.account.id, winners[0]);
}
