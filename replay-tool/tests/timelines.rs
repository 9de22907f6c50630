//! Snapshot tests of `history` and `as-of` over a fixed story: masked by
//! default, personal data only with `--show-personal-data`.

mod common;

use common::*;
use expect_test::expect_file;

#[test]
fn account_history_tells_the_first_account_masked() {
    let dir = story_data_dir();
    let account = kari_first().to_string();
    let out = stdout_ok(dir.path(), &["history", "--account", &account]);
    expect_file!["snapshots/history_account_masked.txt"].assert_eq(&out);
    for personal in [
        KARI_EMAIL,
        "Kari Nordmann",
        "Nora Nordmann",
        "2019-05-17",
        "$argon2id",
    ] {
        assert!(
            !out.contains(personal),
            "{personal} leaked into the masked history"
        );
    }
}

#[test]
fn application_history_shows_personal_data_only_when_asked() {
    let dir = story_data_dir();
    let application = child_application().to_string();
    let masked = stdout_ok(dir.path(), &["history", "--application", &application]);
    expect_file!["snapshots/history_application_masked.txt"].assert_eq(&masked);
    let shown = stdout_ok(
        dir.path(),
        &[
            "history",
            "--application",
            &application,
            "--show-personal-data",
        ],
    );
    expect_file!["snapshots/history_application_shown.txt"].assert_eq(&shown);
    assert!(shown.contains("Nora Nordmann") && !masked.contains("Nora Nordmann"));
}

#[test]
fn email_history_shows_every_account_the_email_ever_had() {
    let dir = story_data_dir();
    let out = stdout_ok(
        dir.path(),
        &["history", "--email", KARI_EMAIL, "--show-personal-data"],
    );
    expect_file!["snapshots/history_email_shown.txt"].assert_eq(&out);
    assert!(out.contains(&kari_first().to_string()));
    assert!(out.contains(&kari_second().to_string()));
    assert!(!out.contains(&ola().to_string()), "another person's events");
}

#[test]
fn as_of_shows_my_applications_as_they_were_then() {
    let dir = story_data_dir();
    let identity = format!("account:{}", kari_first());
    let before_booking = stdout_ok(
        dir.path(),
        &["as-of", "2026-03-04T00:00:00Z", "--identity", &identity],
    );
    expect_file!["snapshots/as_of_before_booking.txt"].assert_eq(&before_booking);
    let after_booking = stdout_ok(
        dir.path(),
        &[
            "as-of",
            "2026-03-05T09:05:00Z",
            "--identity",
            &identity,
            "--show-personal-data",
        ],
    );
    expect_file!["snapshots/as_of_at_booking_shown.txt"].assert_eq(&after_booking);
}

#[test]
fn as_of_by_email_shows_each_account_that_held_it() {
    let dir = story_data_dir();
    let out = stdout_ok(
        dir.path(),
        &["as-of", "2028-06-01T00:00:00Z", "--email", KARI_EMAIL],
    );
    expect_file!["snapshots/as_of_email_after_purge.txt"].assert_eq(&out);
    let before_registration = stdout_ok(
        dir.path(),
        &["as-of", "2026-01-01T00:00:00Z", "--email", KARI_EMAIL],
    );
    assert!(before_registration.contains("No account held this email by then."));
}

/// The story as today's server seals it reads as the clear one while the
/// keys are kept; once the first account's purge destroyed its person's
/// keys, that account's email and name read as erased, the second
/// account's (a new key) as they were, and the log still verifies.
#[test]
fn a_history_before_and_after_the_purge_erased_the_person() {
    let args = ["history", "--email", KARI_EMAIL, "--show-personal-data"];
    let clear = stdout_ok(story_data_dir().path(), &args);
    let kept = sealed_story_data_dir(Keys::Kept);
    let before = stdout_ok(kept.path(), &args);
    assert!(before.contains(" v1 (sealed): "), "{before}");
    assert_eq!(before.replace(" (sealed)", ""), clear);

    let erased = sealed_story_data_dir(Keys::ErasedAtThePurge);
    let after = stdout_ok(erased.path(), &args);
    expect_file!["snapshots/history_email_after_erasure.txt"].assert_eq(&after);
    assert!(after.contains("<erased>"), "{after}");
    let verified = stdout_ok(erased.path(), &["verify"]);
    assert!(verified.contains("result: OK"), "{verified}");
}
