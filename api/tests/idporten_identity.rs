//! ID-porten identities at the service layer: only level high is accepted,
//! the account is keyed by (issuer, pid) and reused, and it is never linked
//! to a password account.

use std::time::Duration;

use api::server::{ServeConfig, build_app, open_store};
use domain::LoginMethod;
use keys::Keyer;

const ISSUER: &str = "https://idporten.example";

async fn app(dir: &std::path::Path) -> api::services::App {
    let app = build_app(
        open_store(dir, true).unwrap(),
        Keyer::load_or_create(dir).unwrap(),
        &ServeConfig::new(dir.to_path_buf()),
    );
    app.projections()
        .wait_caught_up(Duration::from_secs(10))
        .await
        .unwrap();
    app
}

#[tokio::test]
async fn only_the_high_level_is_accepted_with_a_reason_a_person_understands() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    let refused = app
        .login_idporten(ISSUER, "01017012345", "idporten-loa-substantial", "Ola")
        .await
        .unwrap_err();
    assert_eq!(refused.code, "INSUFFICIENT_LEVEL");
    assert!(refused.en.contains("MinID") && refused.nb.contains("MinID"));
    let missing_pid = app
        .login_idporten(ISSUER, "", "idporten-loa-high", "Ola")
        .await
        .unwrap_err();
    assert_eq!(missing_pid.code, "INSUFFICIENT_LEVEL");
}

#[tokio::test]
async fn the_same_issuer_and_pid_reuse_one_account_and_another_pid_gets_another() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    let first = app
        .login_idporten(ISSUER, "01017012345", "idporten-loa-high", "Ola")
        .await
        .unwrap();
    let second = app
        .login_idporten(ISSUER, "01017012345", "idporten-loa-high", "Ola")
        .await
        .unwrap();
    assert_eq!(first.account.id, second.account.id);
    assert_eq!(first.account.method, LoginMethod::IdPorten);
    assert!(
        first.account.email.is_none(),
        "never linked to a password account"
    );
    let other = app
        .login_idporten(ISSUER, "02027012345", "idporten-loa-high", "Kari")
        .await
        .unwrap();
    assert_ne!(other.account.id, first.account.id);
    let other_issuer = app
        .login_idporten(
            "https://other.example",
            "01017012345",
            "idporten-loa-high",
            "Ola",
        )
        .await
        .unwrap();
    assert_ne!(other_issuer.account.id, first.account.id);
}
