//! Text that deceives and ids that tell: names and places with direction
//! overrides, invisible-only values or markup are refused; appointments lie
//! within the operator's booking horizon; every application id that is not
//! the caller's gets one and the same `NOT_FOUND`.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Server, error_code};
use serde_json::{Value, json};

const PASSWORD: &str = "Sommer2026abc";

/// Names and places that must be refused, with why.
const DECEIVING: [(&str, &str); 3] = [
    ("Bob\u{202E}gnp.exe", "a right-to-left override"),
    ("\u{200b}\u{feff}", "invisible characters only"),
    ("<b>x</b>", "markup"),
];

const BOOK: &str = "mutation($id: ID!, $l: String!, $t: DateTime!) { bookAppointment(applicationId: $id, input: { meetingPoint: POLICE, location: $l, startsAt: $t }) { location startsAt } }";

/// The first error's `extensions.field`.
fn error_field(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("no field in {answer}"))
}

fn in_days(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339()
}

/// Start a registration and verify its code; returns the flow id.
async fn verified_registration(server: &Server, email: &str) -> String {
    let started = server
        .gql(
            None,
            "mutation($e: String!) { startRegistration(email: $e) { flowId } }",
            json!({"e": email}),
        )
        .await;
    let flow = started["data"]["startRegistration"]["flowId"]
        .as_str()
        .unwrap_or_else(|| panic!("startRegistration: {started}"))
        .to_owned();
    let code = server
        .wait_mail(email, "registration-code")
        .await
        .code()
        .expect("a code");
    let verified = server
        .gql(
            None,
            "mutation($f: ID!, $c: String!) { verifyRegistrationCode(flowId: $f, code: $c) }",
            json!({"f": flow, "c": code}),
        )
        .await;
    assert_eq!(
        verified["data"]["verifyRegistrationCode"], true,
        "{verified}"
    );
    flow
}

async fn complete_registration(server: &Server, flow: &str, name: &str) -> Value {
    server
        .gql(
            None,
            "mutation($f: ID!, $p: String!, $n: String!) { completeRegistration(flowId: $f, password: $p, name: $n) { token viewer { name } } }",
            json!({"f": flow, "p": PASSWORD, "n": name}),
        )
        .await
}

#[tokio::test]
async fn a_registration_name_that_deceives_is_refused_and_nothing_is_stored() {
    let server = Server::start(&[]);
    let email = "kari@example.no";
    let flow = verified_registration(&server, email).await;
    for (name, why) in DECEIVING {
        let answer = complete_registration(&server, &flow, name).await;
        assert_eq!(error_code(&answer), "INVALID_INPUT", "{why}: {answer}");
        assert_eq!(error_field(&answer), "name", "{why}: {answer}");
        assert!(answer["data"].is_null(), "{why}: {answer}");
        let login = server.login(email, PASSWORD).await;
        let refused = login.expect_err("no account after a refused name");
        assert_eq!(error_code(&refused), "INVALID_CREDENTIALS", "{why}");
    }

    // The same flow still completes with a real name, in any script.
    let done = complete_registration(&server, &flow, "Åse Ødegård-Nguyễn").await;
    assert_eq!(
        done["data"]["completeRegistration"]["viewer"]["name"], "Åse Ødegård-Nguyễn",
        "{done}"
    );
    assert!(server.login(email, PASSWORD).await.is_ok());
}

#[tokio::test]
async fn refusals_of_deceiving_text_speak_norwegian_when_asked() {
    let server = Server::start(&[]);
    let flow = verified_registration(&server, "ola@example.no").await;
    let answer = server
        .gql_with(
            &[("accept-language", "nb")],
            "mutation($f: ID!, $p: String!, $n: String!) { completeRegistration(flowId: $f, password: $p, name: $n) { token } }",
            json!({"f": flow, "p": PASSWORD, "n": "Bob\u{202E}gnp.exe"}),
        )
        .await;
    assert_eq!(error_code(&answer), "INVALID_INPUT", "{answer}");
    assert_eq!(
        answer["errors"][0]["message"],
        "Navnet kan ikke inneholde tegn som endrer skriveretningen.",
        "{answer}"
    );
}

#[tokio::test]
async fn an_applicant_name_that_deceives_is_refused() {
    let server = Server::start(&[]);
    let token = server.register("eva@example.no", PASSWORD, "Eva").await;
    for (name, why) in DECEIVING {
        let answer = server
            .gql(
                Some(&token),
                "mutation($n: String!) { createApplication(input: { kind: WORK, relation: SELF, applicant: { name: $n, birthDate: \"1990-05-17\", nationality: \"SWE\" } }) { id } }",
                json!({"n": name}),
            )
            .await;
        assert_eq!(error_code(&answer), "INVALID_INPUT", "{why}: {answer}");
        assert_eq!(error_field(&answer), "applicant.name", "{why}: {answer}");
    }
    let list = server
        .gql(
            Some(&token),
            "{ applicationOverview { applications { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        list["data"]["applicationOverview"]["applications"],
        json!([]),
        "{list}"
    );
}

#[tokio::test]
async fn a_location_that_deceives_is_refused_and_never_mailed() {
    let server = Server::start(&[]);
    let token = server.register("per@example.no", PASSWORD, "Per").await;
    let id = server.create_application(&token, "SELF", true).await;
    for (location, why) in DECEIVING {
        let answer = server
            .gql(
                Some(&token),
                BOOK,
                json!({"id": id, "l": location, "t": in_days(30)}),
            )
            .await;
        assert_eq!(error_code(&answer), "INVALID_INPUT", "{why}: {answer}");
        assert_eq!(error_field(&answer), "location", "{why}: {answer}");
    }
    let booked = server
        .gql(
            Some(&token),
            BOOK,
            json!({"id": id, "l": "SUA Oslo", "t": in_days(30)}),
        )
        .await;
    assert_eq!(
        booked["data"]["bookAppointment"]["location"], "SUA Oslo",
        "{booked}"
    );
    let mail = server
        .wait_mail("per@example.no", "appointment-confirmation")
        .await;
    assert!(mail.body.contains("SUA Oslo"));
    for mail in server.mails() {
        assert!(!mail.body.contains('\u{202E}'), "{}", mail.file);
    }
}

#[tokio::test]
async fn appointments_lie_within_the_default_booking_horizon_of_a_year() {
    let server = Server::start(&[]);
    let token = server.register("liv@example.no", PASSWORD, "Liv").await;
    let id = server.create_application(&token, "SELF", true).await;
    for starts_at in ["9999-01-01T10:00:00Z".to_owned(), in_days(366)] {
        let answer = server
            .gql(
                Some(&token),
                BOOK,
                json!({"id": id, "l": "Oslo", "t": starts_at}),
            )
            .await;
        assert_eq!(
            error_code(&answer),
            "INVALID_INPUT",
            "{starts_at}: {answer}"
        );
        assert_eq!(error_field(&answer), "startsAt", "{answer}");
        let latest = (chrono::Utc::now() + chrono::Duration::days(365))
            .format("%-d %B %Y")
            .to_string();
        let message = answer["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(&latest), "{message} names {latest}");
    }
    let booked = server
        .gql(
            Some(&token),
            BOOK,
            json!({"id": id, "l": "Oslo", "t": in_days(30)}),
        )
        .await;
    assert_eq!(
        booked["data"]["bookAppointment"]["location"], "Oslo",
        "{booked}"
    );

    // Moving it is bound the same way.
    let reschedule = "mutation($id: ID!, $t: DateTime!) { rescheduleAppointment(applicationId: $id, input: { meetingPoint: POLICE, location: \"Oslo\", startsAt: $t }) { appointment { startsAt } } }";
    let moved = server
        .gql(
            Some(&token),
            reschedule,
            json!({"id": id, "t": "9999-01-01T10:00:00Z"}),
        )
        .await;
    assert_eq!(error_code(&moved), "INVALID_INPUT", "{moved}");
    assert_eq!(error_field(&moved), "startsAt", "{moved}");
}

#[tokio::test]
async fn the_operator_sets_the_booking_horizon() {
    let server = Server::start(&["--booking-horizon", "30d"]);
    let token = server.register("ada@example.no", PASSWORD, "Ada").await;
    let id = server.create_application(&token, "SELF", true).await;
    let far = server
        .gql(
            Some(&token),
            BOOK,
            json!({"id": id, "l": "Oslo", "t": in_days(31)}),
        )
        .await;
    assert_eq!(error_code(&far), "INVALID_INPUT", "{far}");
    assert_eq!(error_field(&far), "startsAt", "{far}");
    let near = server
        .gql(
            Some(&token),
            BOOK,
            json!({"id": id, "l": "Oslo", "t": in_days(29)}),
        )
        .await;
    assert_eq!(
        near["data"]["bookAppointment"]["location"], "Oslo",
        "{near}"
    );
}

#[tokio::test]
async fn the_booking_horizon_flag_is_documented_and_checked() {
    let help = std::process::Command::new(common::program())
        .args(["serve", "--help"])
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--booking-horizon"), "{help}");
    assert!(help.contains("CASELEDGER_BOOKING_HORIZON"), "{help}");

    let data = tempfile::tempdir().unwrap();
    let refused = std::process::Command::new(common::program())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--booking-horizon",
            "0s",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .expect("run serve");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--booking-horizon"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// Every citizen action on `id`, with the answer of each.
async fn act_on(server: &Server, token: &str, id: &str) -> Vec<(&'static str, Value)> {
    let mut answers = Vec::new();
    for (name, mutation, vars) in [
        (
            "submit",
            "mutation($id: ID!) { submitApplication(id: $id) { id } }",
            json!({"id": id}),
        ),
        (
            "book",
            BOOK,
            json!({"id": id, "l": "Oslo", "t": in_days(10)}),
        ),
        // Bad input too: the answer must not depend on it either.
        (
            "book with a bad place",
            BOOK,
            json!({"id": id, "l": "<b>", "t": in_days(10)}),
        ),
        (
            "book beyond the horizon",
            BOOK,
            json!({"id": id, "l": "Oslo", "t": "9999-01-01T10:00:00Z"}),
        ),
        (
            "cancel",
            "mutation($id: ID!) { cancelAppointment(applicationId: $id) { id } }",
            json!({"id": id}),
        ),
        (
            "refund",
            "mutation($id: ID!) { requestRefund(applicationId: $id) { id } }",
            json!({"id": id}),
        ),
    ] {
        answers.push((name, server.gql(Some(token), mutation, vars).await));
    }
    answers
}

#[tokio::test]
async fn every_id_that_is_not_the_callers_gets_the_same_not_found() {
    let server = Server::start(&[]);
    let file = server.data_path().join("legacy.jsonl");
    std::fs::write(
        &file,
        "{\"reference\": \"UDI-2021-0001\", \"submittedAt\": \"2021-06-01T10:00:00Z\", \"kind\": \"WORK\", \"email\": \"old@example.no\"}\n",
    )
    .unwrap();
    let out = server.cli(&["import-legacy", "--file", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alice = server.register("alice@example.no", PASSWORD, "Alice").await;
    let bob = server.register("bob@example.no", PASSWORD, "Bob").await;
    let old = server.register("old@example.no", PASSWORD, "Old").await;
    // Alice's application: one in the draft state, one submitted (where a
    // booking by its owner would pass every check).
    let alice_draft = server.create_application(&alice, "SELF", false).await;
    let alice_submitted = server.create_application(&alice, "SELF", true).await;
    // The legacy record is its owner's once the read model has it.
    let mut legacy = Value::Null;
    for _ in 0..100 {
        legacy = server
            .gql(
                Some(&old),
                "mutation { requestRefund(applicationId: \"UDI-2021-0001\") { id } }",
                json!({}),
            )
            .await;
        if error_code(&legacy) == "LEGACY_APPLICATION" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(error_code(&legacy), "LEGACY_APPLICATION", "{legacy}");

    let ids = [
        ("another account's draft", alice_draft.clone()),
        (
            "another account's submitted application",
            alice_submitted.clone(),
        ),
        (
            "a random uuid",
            "0190f5c2-7b3e-7a41-9c2d-5e6f7a8b9c0d".to_owned(),
        ),
        ("a malformed id", "not-an-application".to_owned()),
        ("an over-long id", "x".repeat(5_000)),
        (
            "another person's legacy reference",
            "UDI-2021-0001".to_owned(),
        ),
        ("an unknown legacy reference", "UDI-2019-9999".to_owned()),
    ];
    // The whole first error per action (its path and location name the
    // action), and its message and extensions across every action.
    let mut per_action: HashMap<&str, Value> = HashMap::new();
    let mut said_first: Option<(Value, Value)> = None;
    for (what, id) in &ids {
        for (action, answer) in act_on(&server, &bob, id).await {
            assert!(answer["data"].is_null(), "{what}, {action}: {answer}");
            assert_eq!(
                answer["errors"].as_array().map(Vec::len),
                Some(1),
                "{answer}"
            );
            assert_eq!(
                error_code(&answer),
                "NOT_FOUND",
                "{what}, {action}: {answer}"
            );
            let error = answer["errors"][0].clone();
            let first = per_action.entry(action).or_insert_with(|| error.clone());
            assert_eq!(&error, first, "{what}, {action}");
            let said = (error["message"].clone(), error["extensions"].clone());
            let first = said_first.get_or_insert_with(|| said.clone());
            assert_eq!(&said, first, "{what}, {action}");
        }
        let one = server
            .gql(
                Some(&bob),
                "query($id: ID!) { application(id: $id) { id } }",
                json!({"id": id}),
            )
            .await;
        assert!(one["errors"].is_null(), "{what}: {one}");
        assert!(one["data"]["application"].is_null(), "{what}: {one}");
    }

    // Alice's applications are untouched and still hers.
    for id in [&alice_draft, &alice_submitted] {
        let mine = server
            .gql(
                Some(&alice),
                "query($id: ID!) { application(id: $id) { id appointment { location } } }",
                json!({"id": id}),
            )
            .await;
        assert_eq!(mine["data"]["application"]["id"], id.as_str(), "{mine}");
        assert!(mine["data"]["application"]["appointment"].is_null());
    }
    // The owner acts on a just-created application at once.
    let fresh = server.create_application(&bob, "SELF", true).await;
    let booked = server
        .gql(
            Some(&bob),
            BOOK,
            json!({"id": fresh, "l": "Oslo", "t": in_days(10)}),
        )
        .await;
    assert_eq!(
        booked["data"]["bookAppointment"]["location"], "Oslo",
        "{booked}"
    );
}
