//! The read models over small, hand-written histories, rendered as text and
//! compared with expect-test snapshots (`UPDATE_EXPECT=1` to refresh).

mod common;

use common::{account, application, small_history, t};
use domain::legacy::LegacyOwner;
use expect_test::expect;
use projections::ReadModel;
use projections::snapshot::rebuild;

fn model_of(n: usize) -> ReadModel {
    rebuild(small_history().into_iter().take(n))
}

#[test]
fn empty_model_renders_nothing_but_headers() {
    expect![[r#"
        position 0
        accounts 0
        email directory 0
        idporten directory 0
        sessions 0
        inactivity (oldest first) 0
        deleted, email not released 0
        my applications (newest first)
        legacy records 0
        mails owed 0
    "#]]
    .assert_eq(&ReadModel::default().render());
}

#[test]
fn registrations_and_logins_fill_directories_sessions_and_inactivity() {
    expect![[r#"
        position 8
        accounts 3
          account …a001 password active email=kari@example.no name="Kari Nordmann" created=2024-03-01T09:00:00Z last_login=2024-03-01T09:03:00Z sessions=1
          account …a002 password active email=ola@example.no name="Ola Nordmann" created=2024-03-01T09:01:00Z last_login=2024-03-01T09:05:00Z sessions=0
          account …a003 idporten active name="Aisha Khan" created=2024-03-01T09:02:00Z last_login=2024-03-01T09:04:00Z pid_key=08080808 sessions=1
        email directory 2
          kari@example.no -> …a001
          ola@example.no -> …a002
        idporten directory 1
          07070707 -> …a003
        sessions 2
          01010101 account …a001 session …c001 password started=2024-03-01T09:03:00Z expires=2024-03-01T21:03:00Z idle=3600s
          02020202 account …a003 session …c002 idporten started=2024-03-01T09:04:00Z expires=2024-03-01T21:04:00Z idle=3600s
        inactivity (oldest first) 2
          2024-03-01T09:03:00Z …a001
          2024-03-01T09:05:00Z …a002
        deleted, email not released 0
        my applications (newest first)
        legacy records 0
        mails owed 0
    "#]]
    .assert_eq(&model_of(8).render());
}

#[test]
fn the_whole_small_history() {
    expect![[r#"
        position 19
        accounts 3
          account …a001 password active email=kari@example.no name="Kari Nordmann" created=2024-03-01T09:00:00Z last_login=2024-03-01T09:03:00Z sessions=1
          account …a002 password deleted email=ola@example.no name="Ola Nordmann" created=2024-03-01T09:01:00Z last_login=2024-03-01T09:05:00Z warned=2026-04-10T09:00:00Z sessions=0
          account …a003 idporten active name="Aisha Khan" created=2024-03-01T09:02:00Z last_login=2024-03-01T09:04:00Z pid_key=08080808 sessions=1
        email directory 1
          kari@example.no -> …a001
        idporten directory 1
          07070707 -> …a003
        sessions 2
          01010101 account …a001 session …c001 password started=2024-03-01T09:03:00Z expires=2024-03-01T21:03:00Z idle=3600s
          02020202 account …a003 session …c002 idporten started=2024-03-01T09:04:00Z expires=2024-03-01T21:04:00Z idle=3600s
        inactivity (oldest first) 1
          2024-03-01T09:03:00Z …a001
        deleted, email not released 1
          …a002
        my applications (newest first)
          owner …a001 2
            application …b002 password FAMILY FAMILY_MEMBER applicant="Liten Nordmann" born=1990-05-17 POL created=2024-03-01T09:11:00Z updated=2024-03-01T09:11:00Z
              DRAFT: Finish the application form and submit it.
            application …b001 password WORK SELF applicant="Kari Nordmann" born=1990-05-17 POL created=2024-03-01T09:10:00Z updated=2024-03-31T09:00:00Z submitted=2024-03-01T09:12:00Z appointment=POLICE@"Oslo politidistrikt, Grønland"@2024-03-08T09:00:00Z documents=2024-03-08T09:00:00Z fee=6300 fee_at=2024-03-01T09:13:00Z decision=Granted/Digipost@2024-03-31T09:00:00Z
              DECIDED: Your application was granted. Book an appointment with the police to have your photo taken for the residence card.
          owner …a003 1
            application …b003 idporten STUDY SELF applicant="Aisha Khan" born=1990-05-17 POL created=2024-04-01T09:00:00Z updated=2024-04-01T09:00:00Z
              DRAFT: Finish the application form and submit it.
        legacy records 1
          UDI-0000001 VISIT submitted=2021-06-01T10:00:00Z owner=pid:08080808
        mails owed 3
          at 13 18 19
    "#]]
    .assert_eq(&model_of(usize::MAX).render());
}

#[test]
fn my_applications_are_newest_first_and_paged_by_cursor() {
    let model = model_of(usize::MAX);
    let kari = account(1);
    let (page, more) = model.my_applications(kari, 1, None);
    assert_eq!(
        page.iter().map(|a| a.id).collect::<Vec<_>>(),
        [application(2)]
    );
    assert!(more);
    let (page, more) = model.my_applications(kari, 1, Some(application(2)));
    assert_eq!(
        page.iter().map(|a| a.id).collect::<Vec<_>>(),
        [application(1)]
    );
    assert!(!more);
    let (page, more) = model.my_applications(kari, 10, Some(application(1)));
    assert!(page.is_empty() && !more);
    // A cursor of someone else's application gives nothing.
    let (page, more) = model.my_applications(kari, 10, Some(application(3)));
    assert!(page.is_empty() && !more);
    assert_eq!(model.application_count(kari), 2);
    assert_eq!(model.application_count(account(3)), 1);
}

#[test]
fn status_and_next_step_follow_the_case() {
    let model = model_of(usize::MAX);
    let decided = model.application(application(1)).unwrap();
    assert_eq!(decided.status.as_str(), "DECIDED");
    assert!(decided.next_step_en().contains("granted"));
    let draft = model.application(application(2)).unwrap();
    assert_eq!(draft.status.as_str(), "DRAFT");
}

#[test]
fn legacy_notice_is_found_by_pid_key_and_not_by_another_key() {
    let model = model_of(usize::MAX);
    let records = model.legacy_records(&[LegacyOwner::PidHash([8; 32])]);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].reference, "UDI-0000001");
    assert!(
        model
            .legacy_records(&[LegacyOwner::EmailHash([8; 32])])
            .is_empty()
    );
    assert!(model.legacy_record("UDI-0000001").is_some());
}

#[test]
fn directories_find_accounts_by_email_and_subject_and_forget_deleted_ones() {
    let before_deletion = model_of(18);
    let ola = domain::Email::parse("ola@example.no").unwrap();
    assert_eq!(
        before_deletion.account_by_email(&ola).map(|a| a.id),
        Some(account(2))
    );
    let model = model_of(usize::MAX);
    assert!(model.account_by_email(&ola).is_none());
    assert_eq!(model.deleted_unreleased(), [account(2)]);
    assert_eq!(
        model.account_by_idporten(&[7; 32]).map(|a| a.id),
        Some(account(3))
    );
    assert_eq!(model.session(&[1; 32]).map(|s| s.account), Some(account(1)));
    assert!(model.session(&[3; 32]).is_none());
}

#[test]
fn who_is_due_as_of_an_instant_comes_from_the_inactivity_index() {
    let model = model_of(17);
    // Kari logged in at t(3), Ola at t(5); ID-porten accounts are never purged.
    assert!(model.due_for_purge(t(60 * 24 * 365 * 2)).is_empty());
    let two_years_on = t(60 * 24 * (365 * 2 + 2));
    assert_eq!(model.due_for_purge(two_years_on), [account(1), account(2)]);
    let warning_window = t(60 * 24 * (365 * 2 - 20));
    assert_eq!(
        model.due_for_warning(warning_window),
        [account(1), account(2)]
    );
    assert!(model.due_for_warning(t(60 * 24 * 365)).is_empty());
}

#[test]
fn applying_an_event_twice_changes_nothing() {
    let history = small_history();
    let mut model = ReadModel::default();
    for (position, stream, event) in &history {
        model.apply(*position, stream, event);
        model.apply(*position, stream, event);
    }
    for (position, stream, event) in &history {
        model.apply(*position, stream, event);
    }
    assert_eq!(model.digest(), rebuild(history).digest());
}

#[test]
fn sessions_expired_for_over_a_day_are_forgotten_at_the_next_login() {
    use domain::account::{Event as A, NewSession};
    let mut model = model_of(usize::MAX);
    assert!(model.session(&[1; 32]).is_some());
    let login = |n: u8, at| {
        migrations::DomainEvent::Account(A::SessionStarted {
            session: NewSession {
                id: domain::SessionId(uuid::Uuid::from_u128(0xd000 + u128::from(n))),
                token_digest: [n; 32],
                expires_at: at + chrono::Duration::hours(12),
                idle_timeout_seconds: 3600,
            },
            at,
        })
    };
    // Kari's session (started t(3)) expired at t(3) + 12 h; a login a day
    // and a half later still keeps it, one after two days forgets it.
    let kari = account(1).stream();
    model.apply(100, &kari, &login(41, t(60 * 36)));
    assert!(model.session(&[1; 32]).is_some());
    model.apply(101, &kari, &login(42, t(60 * 48)));
    assert!(model.session(&[1; 32]).is_none());
    assert!(model.session(&[2; 32]).is_none(), "any account's");
    assert!(model.session(&[42; 32]).is_some());
    assert_eq!(
        model.account(account(1)).unwrap().last_login_at,
        Some(t(60 * 48))
    );
}

#[test]
fn the_mail_outbox_splits_owed_mails_at_the_checkpoint() {
    use domain::application::{Appointment, AppointmentPurpose, Event as P, MeetingPointKind};
    use domain::flow::{Event as F, FlowKind, IssuedCode};
    use migrations::DomainEvent;
    let mut model = model_of(usize::MAX);
    // A code mail, then a booking by the ID-porten account (no email: no mail).
    let flow = domain::FlowId(uuid::Uuid::from_u128(0xf001)).stream();
    model.apply(
        20,
        &flow,
        &DomainEvent::Flow(F::Started {
            kind: FlowKind::Registration,
            email: domain::Email::parse("new@example.no").unwrap(),
            account: None,
            code: IssuedCode {
                nonce: [1; 16],
                digest: [2; 32],
                expires_at: t(60 * 24 * 900),
            },
            at: t(60 * 24 * 890),
        }),
    );
    model.apply(
        21,
        &application(3).stream(),
        &DomainEvent::Application(P::AppointmentBooked {
            appointment: Appointment {
                meeting_point: MeetingPointKind::Police,
                location: "Bergen".into(),
                starts_at: t(60 * 24 * 900),
                purpose: AppointmentPurpose::Application,
            },
            at: t(60 * 24 * 891),
        }),
    );
    let nothing_sent = model.mail_outbox(0);
    assert_eq!(
        (nothing_sent.owed, nothing_sent.sent, nothing_sent.pending),
        (4, 0, 4)
    );
    assert_eq!(nothing_sent.first_pending, Some(13));
    let state = model.mail_outbox(18);
    assert_eq!(
        (state.sent, state.pending, state.first_pending),
        (2, 2, Some(19))
    );
    let all_sent = model.mail_outbox(21);
    assert_eq!((all_sent.pending, all_sent.first_pending), (0, None));
}
