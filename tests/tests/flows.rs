//! Every flow of the seed FAQ, driven over HTTP as the frontend does.

mod common;

use std::time::Duration;

use common::{Server, error_code};
use serde_json::{Value, json};

const PASSWORD: &str = "Sommer2026abc";
const ISSUER: &str = "https://idporten.test.example";

async fn me(server: &Server, token: &str) -> Value {
    server
        .gql(
            Some(token),
            "{ me { id email name loginMethod } }",
            json!({}),
        )
        .await["data"]["me"]
        .clone()
}

/// An ID-porten identity created through the service layer (the HTTP login
/// is exercised by the OpenID Connect tests), on the server's data dir.
async fn idporten_session(server: &Server, pid: &str, name: &str) -> String {
    let data = server.data_path().to_path_buf();
    let keyer = keys::Keyer::load_or_create(&data).unwrap();
    let store = api::server::open_store(&data, true).unwrap();
    let app = api::server::build_app(store, keyer, &api::server::ServeConfig::new(data.clone()));
    app.projections()
        .wait_caught_up(Duration::from_secs(30))
        .await
        .unwrap();
    let session = app
        .login_idporten(ISSUER, pid, "idporten-loa-high", name)
        .await
        .unwrap();
    for _ in 0..100 {
        if !me(server, &session.token).await.is_null() {
            return session.token;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server never saw the ID-porten session");
}

#[tokio::test]
async fn registration_with_the_code_from_the_outbox_then_logout_and_login() {
    let server = Server::start(&[]);
    let token = server
        .register("Kari@Example.no", PASSWORD, "Kari Nordmann")
        .await;
    let viewer = me(&server, &token).await;
    assert_eq!(viewer["email"], "kari@example.no");
    assert_eq!(viewer["name"], "Kari Nordmann");
    assert_eq!(viewer["loginMethod"], "PASSWORD");

    let out = server
        .gql(Some(&token), "mutation { logout }", json!({}))
        .await;
    assert_eq!(out["data"]["logout"], true);
    assert!(me(&server, &token).await.is_null(), "the session ended");

    let wrong = server
        .login("kari@example.no", "Wrong2026abc")
        .await
        .unwrap_err();
    assert_eq!(error_code(&wrong), "INVALID_CREDENTIALS");
    let unknown = server
        .login("nobody@example.no", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(error_code(&unknown), "INVALID_CREDENTIALS");
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );

    let again = server.login("KARI@example.no", PASSWORD).await.unwrap();
    assert_eq!(me(&server, &again).await["email"], "kari@example.no");
}

#[tokio::test]
async fn an_email_with_an_active_account_cannot_register_again_and_is_told_so_by_mail() {
    let server = Server::start(&[]);
    server.register("kari@example.no", PASSWORD, "Kari").await;
    let again = server
        .gql(
            None,
            "mutation { startRegistration(email: \"kari@example.no\") { flowId expiresAt } }",
            json!({}),
        )
        .await;
    // The API answers as for a free address; only the mailbox learns more.
    assert!(again["errors"].is_null(), "{again}");
    assert!(again["data"]["startRegistration"]["flowId"].is_string());
    let mail = server.wait_mail("kari@example.no", "account-exists").await;
    assert_eq!(mail.code(), None, "no code for a taken address");
    assert!(mail.body.contains("An account is already registered"));
}

#[tokio::test]
async fn a_malformed_email_is_invalid_input_naming_the_field() {
    let server = Server::start(&[]);
    let answer = server
        .gql(
            None,
            "mutation { startRegistration(email: \"not-an-email\") { flowId } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&answer), "INVALID_INPUT");
    assert_eq!(answer["errors"][0]["extensions"]["field"], "email");
}

#[tokio::test]
async fn a_password_breaking_several_rules_gets_every_rule() {
    let server = Server::start(&[]);
    let started = server
        .gql(
            None,
            "mutation { startRegistration(email: \"ola@example.no\") { flowId } }",
            json!({}),
        )
        .await;
    let flow = started["data"]["startRegistration"]["flowId"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = server
        .wait_mail("ola@example.no", "registration-code")
        .await
        .code()
        .unwrap();
    server
        .gql(
            None,
            "mutation($f: ID!, $c: String!) { verifyRegistrationCode(flowId: $f, code: $c) }",
            json!({"f": flow, "c": code}),
        )
        .await;
    let complete = "mutation($f: ID!, $p: String!) { completeRegistration(flowId: $f, password: $p, name: \"Ola\") { token } }";
    let answer = server
        .gql(None, complete, json!({"f": flow, "p": "blåbær@"}))
        .await;
    assert_eq!(error_code(&answer), "PASSWORD_POLICY");
    let violations: Vec<&str> = answer["errors"][0]["extensions"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        violations,
        [
            "TOO_SHORT",
            "MISSING_UPPERCASE",
            "MISSING_DIGIT",
            "FORBIDDEN_CHARACTER"
        ]
    );
    // Nothing was stored: the same flow completes with a good password.
    let ok = server
        .gql(None, complete, json!({"f": flow, "p": PASSWORD}))
        .await;
    assert!(
        ok["data"]["completeRegistration"]["token"].is_string(),
        "{ok}"
    );
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let server = Server::start(&["--code-ttl", "1s"]);
    let started = server
        .gql(
            None,
            "mutation { startRegistration(email: \"per@example.no\") { flowId } }",
            json!({}),
        )
        .await;
    let flow = started["data"]["startRegistration"]["flowId"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = server
        .wait_mail("per@example.no", "registration-code")
        .await
        .code()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answer = server
        .gql(
            None,
            "mutation($f: ID!, $c: String!) { verifyRegistrationCode(flowId: $f, code: $c) }",
            json!({"f": flow, "c": code}),
        )
        .await;
    assert_eq!(error_code(&answer), "CODE_EXPIRED");
}

#[tokio::test]
async fn five_wrong_codes_kill_the_flow() {
    let server = Server::start(&[]);
    let started = server
        .gql(
            None,
            "mutation { startRegistration(email: \"lise@example.no\") { flowId } }",
            json!({}),
        )
        .await;
    let flow = started["data"]["startRegistration"]["flowId"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = server
        .wait_mail("lise@example.no", "registration-code")
        .await
        .code()
        .unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let verify = "mutation($f: ID!, $c: String!) { verifyRegistrationCode(flowId: $f, code: $c) }";
    for left in (0..5).rev() {
        let answer = server
            .gql(None, verify, json!({"f": flow, "c": wrong}))
            .await;
        assert_eq!(error_code(&answer), "CODE_INVALID");
        assert_eq!(answer["errors"][0]["extensions"]["attemptsLeft"], left);
    }
    let answer = server
        .gql(None, verify, json!({"f": flow, "c": code}))
        .await;
    assert_eq!(error_code(&answer), "TOO_MANY_ATTEMPTS");
}

#[tokio::test]
async fn resend_sends_a_new_code_and_the_old_one_stops_working() {
    let server = Server::start(&[]);
    let started = server
        .gql(
            None,
            "mutation { startRegistration(email: \"anne@example.no\") { flowId } }",
            json!({}),
        )
        .await;
    let flow = started["data"]["startRegistration"]["flowId"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = server
        .wait_mail("anne@example.no", "registration-code")
        .await
        .code()
        .unwrap();
    let resend = server
        .gql(
            None,
            "mutation($f: ID!) { resendCode(flowId: $f) { flowId } }",
            json!({"f": flow}),
        )
        .await;
    // A cool-down protects the mailbox.
    assert_eq!(error_code(&resend), "TOO_MANY_ATTEMPTS");
    assert!(
        resend["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_i64()
            .unwrap()
            > 0
    );
    let unknown = server
        .gql(
            None,
            "mutation { resendCode(flowId: \"00000000-0000-7000-8000-000000000000\") { flowId } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&unknown), "FLOW_NOT_FOUND");
    let _ = first;
}

#[tokio::test]
async fn recovery_for_an_unknown_email_answers_like_a_known_one_and_mails_the_notice() {
    let server = Server::start(&[]);
    server.register("known@example.no", PASSWORD, "Known").await;
    let query = "mutation($e: String!) { startPasswordRecovery(email: $e) { flowId expiresAt } }";
    let known = server
        .gql(None, query, json!({"e": "known@example.no"}))
        .await;
    let unknown = server
        .gql(None, query, json!({"e": "unknown@example.no"}))
        .await;
    assert!(known["errors"].is_null() && unknown["errors"].is_null());
    let shape = |v: &Value| {
        let data = &v["data"]["startPasswordRecovery"];
        (
            data["flowId"].as_str().unwrap().len(),
            data["expiresAt"].as_str().unwrap().len(),
        )
    };
    assert_eq!(shape(&known), shape(&unknown));
    let notice = server.wait_mail("unknown@example.no", "no-account").await;
    assert!(notice.code().is_none());
    assert!(
        notice.body.contains("no account") || notice.body.contains("No account"),
        "{}",
        notice.body
    );
    let code_mail = server.wait_mail("known@example.no", "recovery-code").await;
    assert!(code_mail.code().is_some());
}

#[tokio::test]
async fn completing_recovery_changes_the_password_and_ends_every_session() {
    let server = Server::start(&[]);
    let first = server.register("mona@example.no", PASSWORD, "Mona").await;
    let second = server.login("mona@example.no", PASSWORD).await.unwrap();
    let started = server
        .gql(
            None,
            "mutation { startPasswordRecovery(email: \"mona@example.no\") { flowId } }",
            json!({}),
        )
        .await;
    let flow = started["data"]["startPasswordRecovery"]["flowId"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = server
        .wait_mail("mona@example.no", "recovery-code")
        .await
        .code()
        .unwrap();
    let verified = server
        .gql(
            None,
            "mutation($f: ID!, $c: String!) { verifyRecoveryCode(flowId: $f, code: $c) }",
            json!({"f": flow, "c": code}),
        )
        .await;
    assert_eq!(verified["data"]["verifyRecoveryCode"], true, "{verified}");
    let done = server
        .gql(
            None,
            "mutation($f: ID!, $p: String!) { completePasswordRecovery(flowId: $f, newPassword: $p) }",
            json!({"f": flow, "p": "Vinter2027xyz"}),
        )
        .await;
    assert_eq!(done["data"]["completePasswordRecovery"], true, "{done}");
    assert!(me(&server, &first).await.is_null());
    assert!(me(&server, &second).await.is_null());
    assert_eq!(
        error_code(&server.login("mona@example.no", PASSWORD).await.unwrap_err()),
        "INVALID_CREDENTIALS"
    );
    assert!(
        server
            .login("mona@example.no", "Vinter2027xyz")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn repeated_wrong_passwords_are_throttled() {
    let server = Server::start(&[]);
    server.register("tor@example.no", PASSWORD, "Tor").await;
    for _ in 0..5 {
        let answer = server
            .login("tor@example.no", "Wrong2026abc")
            .await
            .unwrap_err();
        assert_eq!(error_code(&answer), "INVALID_CREDENTIALS");
    }
    let answer = server.login("tor@example.no", PASSWORD).await.unwrap_err();
    assert_eq!(error_code(&answer), "TOO_MANY_ATTEMPTS");
    assert!(
        answer["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_i64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn one_identity_never_sees_another_identitys_applications() {
    let server = Server::start(&[]);
    let a = server.register("a@example.no", PASSWORD, "Alice").await;
    let b = server.register("b@example.no", PASSWORD, "Bob").await;
    let a_app = server.create_application(&a, "SELF", true).await;
    let b_app = server.create_application(&b, "SELF", false).await;

    let one = server
        .gql(
            Some(&b),
            "query($id: ID!) { application(id: $id) { id } }",
            json!({"id": a_app}),
        )
        .await;
    assert!(one["data"]["application"].is_null(), "{one}");
    let list = server
        .gql(Some(&b), "{ myApplications { edges { node { id } } } applicationOverview { applications { id } legacy { count } } }", json!({}))
        .await;
    let ids: Vec<&str> = list["data"]["myApplications"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b_app.as_str()]);
    assert_eq!(
        list["data"]["applicationOverview"]["applications"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let future = (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339();
    for (mutation, vars) in [
        (
            "mutation($id: ID!) { submitApplication(id: $id) { id } }",
            json!({"id": a_app}),
        ),
        (
            "mutation($id: ID!, $t: DateTime!) { bookAppointment(applicationId: $id, input: { meetingPoint: POLICE, location: \"Oslo\", startsAt: $t }) { location } }",
            json!({"id": a_app, "t": future}),
        ),
        (
            "mutation($id: ID!) { cancelAppointment(applicationId: $id) { id } }",
            json!({"id": a_app}),
        ),
        (
            "mutation($id: ID!) { requestRefund(applicationId: $id) { id } }",
            json!({"id": a_app}),
        ),
    ] {
        let answer = server.gql(Some(&b), mutation, vars).await;
        assert_eq!(error_code(&answer), "NOT_FOUND", "{mutation}: {answer}");
    }
    // A's application is untouched.
    let mine = server
        .gql(
            Some(&a),
            "query($id: ID!) { application(id: $id) { status appointment { location } } }",
            json!({"id": a_app}),
        )
        .await;
    assert_eq!(mine["data"]["application"]["status"], "SUBMITTED");
    assert!(mine["data"]["application"]["appointment"].is_null());
}

#[tokio::test]
async fn a_query_text_sent_again_answers_each_caller_with_its_own_variables() {
    let server = Server::start(&[]);
    let a = server.register("a@example.no", PASSWORD, "Alice").await;
    let b = server.register("b@example.no", PASSWORD, "Bob").await;
    let a_app = server.create_application(&a, "SELF", true).await;
    let b_app = server.create_application(&b, "SELF", false).await;
    let query = "query($id: ID!) { application(id: $id) { id status } }";

    let before = server
        .metric("caseledger_graphql_parsed_query_hits_total")
        .await;
    let a_own = server.gql(Some(&a), query, json!({"id": a_app})).await;
    let b_other = server.gql(Some(&b), query, json!({"id": a_app})).await;
    let b_own = server.gql(Some(&b), query, json!({"id": b_app})).await;
    assert_eq!(a_own["data"]["application"]["id"], a_app.as_str());
    assert!(b_other["data"]["application"].is_null(), "{b_other}");
    assert_eq!(b_own["data"]["application"]["id"], b_app.as_str());
    assert_eq!(
        server
            .metric("caseledger_graphql_parsed_query_hits_total")
            .await
            - before,
        2,
        "parsed once, then taken from the cache twice"
    );
}

#[tokio::test]
async fn queries_without_a_session_are_unauthenticated() {
    let server = Server::start(&[]);
    let answer = server
        .gql(None, "{ myApplications { edges { cursor } } }", json!({}))
        .await;
    assert_eq!(error_code(&answer), "UNAUTHENTICATED");
    let me = server.gql(None, "{ me { id } }", json!({})).await;
    assert!(me["data"]["me"].is_null());
    let forged = server
        .gql(Some("not-a-real-token"), "{ me { id } }", json!({}))
        .await;
    assert!(forged["data"]["me"].is_null());
}

#[tokio::test]
async fn the_application_lifecycle_with_booking_mail_and_caseworker_steps() {
    let server = Server::start(&["--service-token", "caseworker-secret"]);
    let token = server.register("eva@example.no", PASSWORD, "Eva").await;
    let id = server
        .create_application(&token, "FAMILY_MEMBER", false)
        .await;
    let future = (chrono::Utc::now() + chrono::Duration::days(14)).to_rfc3339();
    let book = "mutation($id: ID!, $t: DateTime!, $p: AppointmentPurpose) { bookAppointment(applicationId: $id, input: { meetingPoint: POLICE, location: \"Oslo politidistrikt\", startsAt: $t, purpose: $p }) { meetingPoint location startsAt purpose } }";
    let early = server
        .gql(Some(&token), book, json!({"id": id, "t": future}))
        .await;
    assert_eq!(error_code(&early), "WRONG_STATE");
    assert_eq!(early["errors"][0]["extensions"]["status"], "DRAFT");
    server
        .gql(
            Some(&token),
            "mutation($id: ID!) { submitApplication(id: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    let past = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let answer = server
        .gql(Some(&token), book, json!({"id": id, "t": past}))
        .await;
    assert_eq!(error_code(&answer), "INVALID_INPUT");
    let booked = server
        .gql(Some(&token), book, json!({"id": id, "t": future}))
        .await;
    assert_eq!(
        booked["data"]["bookAppointment"]["location"], "Oslo politidistrikt",
        "{booked}"
    );
    let twice = server
        .gql(Some(&token), book, json!({"id": id, "t": future}))
        .await;
    assert_eq!(error_code(&twice), "WRONG_STATE");
    let mail = server
        .wait_mail("eva@example.no", "appointment-confirmation")
        .await;
    assert!(mail.body.contains("Oslo politidistrikt"));
    assert!(mail.body.to_lowercase().contains("cover letter"));

    let refund = server
        .gql(
            Some(&token),
            "mutation($id: ID!) { requestRefund(applicationId: $id) { refundRequested } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_code(&refund), "WRONG_STATE");

    // Caseworker steps need the service credential, never a citizen session.
    let docs = "mutation($id: ID!) { registerDocumentsReceived(applicationId: $id) { status } }";
    let as_citizen = server.gql(Some(&token), docs, json!({"id": id})).await;
    assert_eq!(error_code(&as_citizen), "UNAUTHENTICATED");
    let service = [("x-service-token", "caseworker-secret")];
    let fee = server
        .gql_with(&service, "mutation($id: ID!) { registerFeePaid(applicationId: $id, amountNok: 6300) { feePaid } }", json!({"id": id}))
        .await;
    assert_eq!(fee["data"]["registerFeePaid"]["feePaid"], true, "{fee}");
    let received = server.gql_with(&service, docs, json!({"id": id})).await;
    assert_eq!(
        received["data"]["registerDocumentsReceived"]["status"],
        "DOCUMENTS_RECEIVED"
    );
    let photo_early = server
        .gql(
            Some(&token),
            book,
            json!({"id": id, "t": future, "p": "RESIDENCE_CARD_PHOTO"}),
        )
        .await;
    assert_eq!(error_code(&photo_early), "WRONG_STATE");
    let decided = server
        .gql_with(
            &service,
            "mutation($id: ID!) { makeDecision(applicationId: $id, outcome: GRANTED, hasDigipost: true) { status decision { outcome channel } } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        decided["data"]["makeDecision"]["decision"]["channel"], "DIGIPOST",
        "{decided}"
    );
    let photo = server
        .gql(
            Some(&token),
            book,
            json!({"id": id, "t": future, "p": "RESIDENCE_CARD_PHOTO"}),
        )
        .await;
    assert_eq!(
        photo["data"]["bookAppointment"]["purpose"], "RESIDENCE_CARD_PHOTO",
        "{photo}"
    );
    let refund = server
        .gql(
            Some(&token),
            "mutation($id: ID!) { requestRefund(applicationId: $id) { refundRequested } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(refund["data"]["requestRefund"]["refundRequested"], true);
    let again = server
        .gql(
            Some(&token),
            "mutation($id: ID!) { requestRefund(applicationId: $id) { refundRequested } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_code(&again), "WRONG_STATE");
}

#[tokio::test]
async fn my_applications_pages_newest_first() {
    let server = Server::start(&[]);
    let token = server.register("page@example.no", PASSWORD, "Page").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(server.create_application(&token, "SELF", false).await);
    }
    ids.reverse();
    let query = "query($a: String) { myApplications(first: 2, after: $a) { edges { node { id } cursor } pageInfo { hasNextPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = server.gql(Some(&token), query, json!({"a": after})).await;
        let conn = &page["data"]["myApplications"];
        for edge in conn["edges"].as_array().unwrap() {
            seen.push(edge["node"]["id"].as_str().unwrap().to_owned());
        }
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn an_employer_application_from_an_idporten_identity_is_refused() {
    let server = Server::start(&[]);
    let token = idporten_session(&server, "01017012345", "Ola Nordmann").await;
    assert_eq!(me(&server, &token).await["loginMethod"], "IDPORTEN");
    let answer = server
        .gql(
            Some(&token),
            "mutation { createApplication(input: { kind: WORK, relation: EMPLOYEE, applicant: { name: \"Worker\", birthDate: \"1990-01-01\", nationality: \"POL\" } }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&answer), "LOGIN_METHOD_NOT_ALLOWED");
    // For a family member it is allowed, and only this identity sees it.
    let id = server
        .create_application(&token, "FAMILY_MEMBER", false)
        .await;
    let password = server
        .register("ola@example.no", PASSWORD, "Ola Nordmann")
        .await;
    let other = server
        .gql(
            Some(&password),
            "query($id: ID!) { application(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert!(
        other["data"]["application"].is_null(),
        "the same person logged in another way sees nothing"
    );
}

#[tokio::test]
async fn legacy_applications_show_a_notice_and_refuse_digital_actions_with_guidance() {
    let server = Server::start(&[]);
    let file = server.data_path().join("legacy.jsonl");
    std::fs::write(
        &file,
        concat!(
            "{\"reference\": \"UDI-2021-0001\", \"submittedAt\": \"2021-06-01T10:00:00Z\", \"kind\": \"WORK\", \"email\": \"Old@Example.no\"}\n",
            "{\"reference\": \"UDI-2020-0002\", \"submittedAt\": \"2020-01-15T10:00:00Z\", \"kind\": \"FAMILY\", \"email\": \"old@example.no\"}\n",
            "{\"reference\": \"UDI-2021-0003\", \"submittedAt\": \"2021-03-01T10:00:00Z\", \"kind\": \"STUDY\", \"pid\": \"01017012345\"}\n",
        ),
    )
    .unwrap();
    let out = server.cli(&["import-legacy", "--file", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = server
        .register("old@example.no", PASSWORD, "Old Timer")
        .await;
    let overview =
        "{ applicationOverview { applications { id } legacy { count references guidance } } }";
    let mut answer = Value::Null;
    for _ in 0..100 {
        answer = server.gql(Some(&token), overview, json!({})).await;
        if !answer["data"]["applicationOverview"]["legacy"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let legacy = &answer["data"]["applicationOverview"]["legacy"];
    assert_eq!(legacy["count"], 2, "{answer}");
    assert_eq!(
        legacy["references"],
        json!(["UDI-2020-0002", "UDI-2021-0001"])
    );
    assert!(legacy["guidance"].as_str().unwrap().contains("police"));
    let my = server
        .gql(
            Some(&token),
            "{ myApplications { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        my["data"]["myApplications"]["edges"],
        json!([]),
        "legacy never in My applications"
    );

    let future = (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339();
    let book = server
        .gql(
            Some(&token),
            "mutation($t: DateTime!) { bookAppointment(applicationId: \"UDI-2021-0001\", input: { meetingPoint: POLICE, location: \"Oslo\", startsAt: $t }) { location } }",
            json!({"t": future}),
        )
        .await;
    assert_eq!(error_code(&book), "LEGACY_APPLICATION");
    assert!(
        book["errors"][0]["extensions"]["guidance"]
            .as_str()
            .unwrap()
            .contains("police")
    );
    // Someone else's legacy reference is just not found.
    let other = server.register("new@example.no", PASSWORD, "New").await;
    let refund = server
        .gql(
            Some(&other),
            "mutation { requestRefund(applicationId: \"UDI-2021-0001\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&refund), "NOT_FOUND");
    // The pid-owned record shows for the ID-porten identity of that pid.
    let idporten = idporten_session(&server, "01017012345", "Pid Person").await;
    let answer = server.gql(Some(&idporten), overview, json!({})).await;
    assert_eq!(
        answer["data"]["applicationOverview"]["legacy"]["references"],
        json!(["UDI-2021-0003"])
    );
}

#[tokio::test]
async fn legacy_import_refuses_a_file_with_bad_lines_and_names_each_line() {
    let server = Server::start(&[]);
    let file = server.data_path().join("bad.jsonl");
    std::fs::write(
        &file,
        concat!(
            "{\"reference\": \"R-1\", \"submittedAt\": \"2021-06-01T10:00:00Z\", \"kind\": \"WORK\", \"email\": \"a@example.no\"}\n",
            "{\"reference\": \"R-2\", \"submittedAt\": \"2022-04-01T10:00:00Z\", \"kind\": \"WORK\", \"email\": \"a@example.no\"}\n",
            "garbage\n",
        ),
    )
    .unwrap();
    let out = server.cli(&["import-legacy", "--file", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("line 3"),
        "{stderr}"
    );
    assert!(!stderr.contains("line 1:"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    // A second, good import is idempotent.
    std::fs::write(
        &file,
        "{\"reference\": \"R-1\", \"submittedAt\": \"2021-06-01T10:00:00Z\", \"kind\": \"WORK\", \"email\": \"a@example.no\"}\n",
    )
    .unwrap();
    let first = server.cli(&["import-legacy", "--file", file.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("imported 1"),
        "{first:?}"
    );
    let second = server.cli(&["import-legacy", "--file", file.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("imported 0, already present 1"),
        "{second:?}"
    );
}

#[tokio::test]
async fn the_purge_deletes_inactive_accounts_and_the_email_can_register_again() {
    let server = Server::start(&["--service-token", "svc"]);
    let token = server.register("gone@example.no", PASSWORD, "Gone").await;
    let old_app = server.create_application(&token, "SELF", true).await;
    let in_two_years = (chrono::Utc::now() + chrono::Duration::days(2 * 366)).to_rfc3339();

    let dry = server.cli(&["purge-inactive", "--as-of", &in_two_years, "--dry-run"]);
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(dry_out.contains("deleted would be 1"), "{dry_out}");
    assert!(
        me(&server, &token).await.is_object(),
        "a dry run changes nothing"
    );

    let run = server.cli(&["purge-inactive", "--as-of", &in_two_years]);
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && out.contains("deleted 1"),
        "{out} {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let again = server.cli(&["purge-inactive", "--as-of", &in_two_years]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("deleted 0"),
        "a second run does nothing"
    );

    // The server notices the job's writes: the session is gone.
    let mut ended = false;
    for _ in 0..100 {
        if me(&server, &token).await.is_null() {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ended, "the session ended with the account");
    assert_eq!(
        error_code(&server.login("gone@example.no", PASSWORD).await.unwrap_err()),
        "INVALID_CREDENTIALS"
    );
    server.wait_mail("gone@example.no", "account-deleted").await;

    // Recovery now says no account is registered with this email.
    server
        .gql(
            None,
            "mutation { startPasswordRecovery(email: \"gone@example.no\") { flowId } }",
            json!({}),
        )
        .await;
    server.wait_mail("gone@example.no", "no-account").await;

    // The email registers again as a new, empty account.
    let fresh = server
        .register("gone@example.no", PASSWORD, "Gone Again")
        .await;
    let viewer = me(&server, &fresh).await;
    let list = server
        .gql(
            Some(&fresh),
            "{ myApplications { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(list["data"]["myApplications"]["edges"], json!([]));
    assert_eq!(viewer["name"], "Gone Again");
    // The old application stays in the system.
    let kept = server
        .gql_with(
            &[("x-service-token", "svc")],
            "mutation($id: ID!) { registerFeePaid(applicationId: $id, amountNok: 100) { status } }",
            json!({"id": old_app}),
        )
        .await;
    assert_eq!(
        kept["data"]["registerFeePaid"]["status"], "SUBMITTED",
        "{kept}"
    );
}

#[tokio::test]
async fn errors_speak_norwegian_when_asked() {
    let server = Server::start(&[]);
    let answer = server
        .gql_with(
            &[("accept-language", "nb-NO,nb;q=0.9,en;q=0.5")],
            "mutation { login(email: \"x@example.no\", password: \"Whatever1\") { token } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&answer), "INVALID_CREDENTIALS");
    assert_eq!(
        answer["errors"][0]["message"],
        "E-postadressen eller passordet er feil."
    );
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_header() {
    let server = Server::start(&[]);
    server
        .register("cookie@example.no", PASSWORD, "Cookie")
        .await;
    let response = server
        .client
        .post(format!("{}/graphql", server.url))
        .json(&json!({"query": "mutation { login(email: \"cookie@example.no\", password: \"Sommer2026abc\") { token } }"}))
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("caseledger_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly")
            && session.contains("Secure")
            && session.contains("SameSite=Strict")
    );
    let csrf = cookies
        .iter()
        .find(|c| c.starts_with("caseledger_csrf="))
        .unwrap();
    let value = |c: &str| {
        c.split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned()
    };
    let cookie_header = format!(
        "caseledger_session={}; caseledger_csrf={}",
        value(session),
        value(csrf)
    );
    let without = server
        .gql_with(&[("cookie", &cookie_header)], "{ me { email } }", json!({}))
        .await;
    assert!(
        without["data"]["me"].is_null(),
        "a cookie alone is not enough"
    );
    let with = server
        .gql_with(
            &[("cookie", &cookie_header), ("x-csrf-token", &value(csrf))],
            "{ me { email } }",
            json!({}),
        )
        .await;
    assert_eq!(with["data"]["me"]["email"], "cookie@example.no");
}

#[tokio::test]
async fn health_readiness_metrics_graphiql_and_body_limit() {
    let server = Server::start(&[]);
    let get = |path: &str| server.client.get(format!("{}{path}", server.url)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let mut ready = false;
    for _ in 0..100 {
        if get("/readyz").await.unwrap().status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready);
    let metrics = server.metrics().await;
    assert!(metrics.contains("caseledger_projection_position"));
    let graphiql = get("/graphql").await.unwrap().text().await.unwrap();
    assert!(graphiql.contains("GraphQL console"), "{graphiql}");
    assert!(
        !graphiql.contains("https://") && !graphiql.contains("http://"),
        "the console loads nothing from other hosts"
    );
    let script = get("/graphql/console.js").await.unwrap();
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(script.text().await.unwrap().contains("fetch(\"/graphql\""));
    let huge = "x".repeat(200_000);
    // Its own connection: the server closes a connection whose body it
    // refused unread, and a pooled connection may not see that in time.
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", server.url))
        .header("content-type", "application/json")
        .body(format!("{{\"query\": \"{huge}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let policy = server
        .gql(
            None,
            "{ passwordPolicy { kind minLength requiresUppercase rules } }",
            json!({}),
        )
        .await;
    assert_eq!(policy["data"]["passwordPolicy"]["kind"], "seed");
    assert_eq!(policy["data"]["passwordPolicy"]["minLength"], 8);
}

#[tokio::test]
async fn the_schema_command_prints_the_contract() {
    let out = std::process::Command::new(common::program())
        .arg("schema")
        .output()
        .unwrap();
    let sdl = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "myApplications(first: Int = 20, after: String): ApplicationConnection!",
        "startRegistration(email: String!): FlowStarted!",
        "enum LoginMethod",
        "IDPORTEN",
        "VISA_CENTRE",
        "scalar Date",
    ] {
        assert!(sdl.contains(needle), "missing {needle:?}");
    }
}

#[tokio::test]
async fn a_malformed_request_is_invalid_input() {
    let server = Server::start(&[]);
    let token = server.register("shape@example.no", PASSWORD, "Shape").await;
    let bad_enum = server
        .gql(
            Some(&token),
            "mutation { createApplication(input: { kind: HOLIDAY, relation: SELF, applicant: { name: \"X\", birthDate: \"1990-01-01\", nationality: \"SWE\" } }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&bad_enum), "INVALID_INPUT");
    let bad_date = server
        .gql(
            Some(&token),
            "mutation { createApplication(input: { kind: WORK, relation: SELF, applicant: { name: \"X\", birthDate: \"1990-02-30\", nationality: \"SWE\" } }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&bad_date), "INVALID_INPUT");
    assert_eq!(
        bad_date["errors"][0]["extensions"]["field"],
        "applicant.birthDate"
    );
    let bad_country = server
        .gql(
            Some(&token),
            "mutation { createApplication(input: { kind: WORK, relation: SELF, applicant: { name: \"X\", birthDate: \"1990-02-03\", nationality: \"XYZ\" } }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&bad_country), "INVALID_INPUT");
    assert_eq!(
        bad_country["errors"][0]["extensions"]["field"],
        "applicant.nationality"
    );
    let empty_name = server
        .gql(
            Some(&token),
            "mutation { createApplication(input: { kind: WORK, relation: SELF, applicant: { name: \"  \", birthDate: \"1990-02-03\", nationality: \"SWE\" } }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&empty_name), "INVALID_INPUT");
    let list = server
        .gql(
            Some(&token),
            "{ myApplications { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        list["data"]["myApplications"]["edges"],
        json!([]),
        "nothing stored by refused mutations"
    );
}
