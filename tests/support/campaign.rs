//! The randomised HTTP campaign: proptest strategies for GraphQL documents
//! built from the schema (valid and invalid arguments, aliases, fragments,
//! variables of wrong types, deep nesting, unknown fields, huge and unicode
//! strings, nulls) and for malformed requests (random bytes, truncated or
//! misshapen JSON, wrong content types, huge bodies, batches, odd methods
//! and paths), and the driver that sends them to a running server from
//! several clients and checks that nothing answers 5xx, nothing stalls and
//! `/healthz` stays fast between batches.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

use crate::common::Server;

/// Longest wait for one answer before it counts as a stall.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest `/healthz` answer allowed between batches.
pub const HEALTHZ_LIMIT: Duration = Duration::from_millis(500);

/// What a campaign sends: how many requests, from how many clients, in
/// batches of what size, from which seed.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub seed: u64,
    pub requests: usize,
    pub clients: usize,
    pub batch: usize,
}

impl Settings {
    /// `CAMPAIGN_SEED` (else a fresh one) and `CAMPAIGN_CASES` (else
    /// `default_requests`) from the environment.
    pub fn from_env(default_requests: usize) -> Settings {
        let seed = std::env::var("CAMPAIGN_SEED")
            .ok()
            .map(|s| s.trim().parse().expect("CAMPAIGN_SEED is a u64"))
            .unwrap_or_else(|| {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                nanos ^ u64::from(std::process::id()).rotate_left(32)
            });
        let requests = std::env::var("CAMPAIGN_CASES")
            .ok()
            .map(|s| s.trim().parse().expect("CAMPAIGN_CASES is a count"))
            .unwrap_or(default_requests);
        Settings {
            seed,
            requests,
            clients: 8,
            batch: 2000,
        }
    }
}

/// A seeded runner: the same seed gives the same requests.
pub fn runner(seed: u64) -> TestRunner {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes(),
        );
    }
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// One value of `strategy` from `runner`.
pub fn draw<S: Strategy>(strategy: &S, runner: &mut TestRunner) -> S::Value {
    strategy
        .new_tree(runner)
        .expect("the campaign's strategies never reject")
        .current()
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// Which credentials a request carries.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// The campaign account's live session.
    Session,
    /// Any other header value.
    Header(String),
    /// A session cookie of any value.
    Cookie(String),
}

/// One HTTP request to send.
#[derive(Debug, Clone)]
pub struct Probe {
    pub kind: &'static str,
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub accept_language: Option<String>,
    pub auth: Auth,
    pub body: Vec<u8>,
}

impl Probe {
    /// A short description for a failure report.
    pub fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned();
        format!(
            "{} {} {} (content-type {:?}, auth {:?}, {} body bytes): {body}",
            self.kind,
            self.method,
            self.path,
            self.content_type,
            match &self.auth {
                Auth::Header(h) => format!("header {:.40}", h),
                Auth::Cookie(c) => format!("cookie {:.40}", c),
                other => format!("{other:?}"),
            },
            self.body.len()
        )
    }
}

/// Ids and emails that exist on the server (so some arguments hit real
/// data), learnt at the start of the campaign.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub application_ids: Vec<String>,
    pub flow_ids: Vec<String>,
    pub emails: Vec<String>,
}

/// A root field: name, arguments and their kinds, object type returned.
type RootField = (
    &'static str,
    &'static [(&'static str, Arg)],
    Option<&'static str>,
);

const ROOT_QUERIES: &[RootField] = &[
    ("me", &[], Some("Viewer")),
    ("passwordPolicy", &[], Some("PasswordPolicy")),
    (
        "myApplications",
        &[("first", Arg::Int), ("after", Arg::Text)],
        Some("ApplicationConnection"),
    ),
    (
        "application",
        &[("id", Arg::ApplicationId)],
        Some("Application"),
    ),
    ("applicationOverview", &[], Some("ApplicationOverview")),
];

/// The mutations; password hashing ones are drawn less often (below).
const ROOT_MUTATIONS: &[RootField] = &[
    (
        "startRegistration",
        &[("email", Arg::Email)],
        Some("FlowStarted"),
    ),
    (
        "verifyRegistrationCode",
        &[("flowId", Arg::FlowId), ("code", Arg::Code)],
        None,
    ),
    (
        "resendCode",
        &[("flowId", Arg::FlowId)],
        Some("FlowStarted"),
    ),
    (
        "startPasswordRecovery",
        &[("email", Arg::Email)],
        Some("FlowStarted"),
    ),
    (
        "verifyRecoveryCode",
        &[("flowId", Arg::FlowId), ("code", Arg::Code)],
        None,
    ),
    ("logout", &[], None),
    (
        "createApplication",
        &[("input", Arg::CreateInput)],
        Some("Application"),
    ),
    (
        "submitApplication",
        &[("id", Arg::ApplicationId)],
        Some("Application"),
    ),
    (
        "bookAppointment",
        &[
            ("applicationId", Arg::ApplicationId),
            ("input", Arg::BookInput),
        ],
        Some("Appointment"),
    ),
    (
        "rescheduleAppointment",
        &[
            ("applicationId", Arg::ApplicationId),
            ("input", Arg::BookInput),
        ],
        Some("Application"),
    ),
    (
        "cancelAppointment",
        &[("applicationId", Arg::ApplicationId)],
        Some("Application"),
    ),
    (
        "requestRefund",
        &[("applicationId", Arg::ApplicationId)],
        Some("Application"),
    ),
    (
        "registerDocumentsReceived",
        &[("applicationId", Arg::ApplicationId)],
        Some("Application"),
    ),
    (
        "registerFeePaid",
        &[
            ("applicationId", Arg::ApplicationId),
            ("amountNok", Arg::Int),
        ],
        Some("Application"),
    ),
    (
        "makeDecision",
        &[
            ("applicationId", Arg::ApplicationId),
            ("outcome", Arg::Enum(&["GRANTED", "REFUSED"])),
            ("hasDigipost", Arg::Bool),
        ],
        Some("Application"),
    ),
];

/// Mutations that hash a password (costly by design): drawn rarely, so
/// the campaign spends its time on the rest of the code.
const HASHING_MUTATIONS: &[RootField] = &[
    (
        "completeRegistration",
        &[
            ("flowId", Arg::FlowId),
            ("password", Arg::Password),
            ("name", Arg::Text),
        ],
        Some("Session"),
    ),
    (
        "completePasswordRecovery",
        &[("flowId", Arg::FlowId), ("newPassword", Arg::Password)],
        None,
    ),
    (
        "login",
        &[("email", Arg::Email), ("password", Arg::Password)],
        Some("Session"),
    ),
];

/// Selectable fields of each object type: (name, object type if any).
fn object_fields(type_name: &str) -> &'static [(&'static str, Option<&'static str>)] {
    match type_name {
        "Viewer" => &[
            ("id", None),
            ("loginMethod", None),
            ("name", None),
            ("email", None),
        ],
        "PasswordPolicy" => &[
            ("kind", None),
            ("minLength", None),
            ("maxLength", None),
            ("requiresUppercase", None),
            ("allowedCharacters", None),
            ("checksCommonPasswords", None),
            ("rules", None),
        ],
        "ApplicationConnection" => &[
            ("edges", Some("ApplicationEdge")),
            ("pageInfo", Some("PageInfo")),
            ("totalCount", None),
        ],
        "ApplicationEdge" => &[("node", Some("Application")), ("cursor", None)],
        "PageInfo" => &[("hasNextPage", None), ("endCursor", None)],
        "Application" => &[
            ("id", None),
            ("kind", None),
            ("relation", None),
            ("applicantName", None),
            ("applicantBirthDate", None),
            ("applicantNationality", None),
            ("status", None),
            ("nextStep", None),
            ("createdAt", None),
            ("submittedAt", None),
            ("appointment", Some("Appointment")),
            ("feePaid", None),
            ("refundRequested", None),
            ("decision", Some("Decision")),
        ],
        "Appointment" => &[
            ("meetingPoint", None),
            ("location", None),
            ("startsAt", None),
            ("purpose", None),
        ],
        "Decision" => &[("outcome", None), ("channel", None), ("decidedAt", None)],
        "ApplicationOverview" => &[
            ("applications", Some("Application")),
            ("legacy", Some("LegacyNotice")),
        ],
        "LegacyNotice" => &[("count", None), ("references", None), ("guidance", None)],
        "FlowStarted" => &[("flowId", None), ("expiresAt", None)],
        "Session" => &[
            ("token", None),
            ("expiresAt", None),
            ("viewer", Some("Viewer")),
        ],
        _ => &[],
    }
}

const TYPE_NAMES: &[&str] = &[
    "QueryRoot",
    "MutationRoot",
    "Viewer",
    "Application",
    "Session",
    "FlowStarted",
    "ApplicationConnection",
    "Nope",
    "String",
];

/// The kind of value an argument takes.
#[derive(Debug, Clone, Copy)]
enum Arg {
    Text,
    Int,
    Bool,
    Email,
    Password,
    Code,
    FlowId,
    ApplicationId,
    Enum(&'static [&'static str]),
    CreateInput,
    BookInput,
}

/// A GraphQL string literal of `text`.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// Strings: plain, unicode of any plane, control and bidi characters,
/// escapes, long and huge.
fn any_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 .@_-]{0,24}",
        3 => "\\PC{0,40}",
        1 => proptest::collection::vec(any::<char>(), 0..20).prop_map(|c| c.into_iter().collect()),
        1 => "[\u{202e}\u{200b}\u{feff}\u{0}\u{7}\\\\\"\n\t]{1,8}",
        1 => (1usize..5000, "[a-zø]").prop_map(|(n, c)| c.repeat(n)),
        1 => (20_000usize..70_000).prop_map(|n| "x".repeat(n)),
    ]
    .boxed()
}

fn email(known: &Known) -> BoxedStrategy<String> {
    let emails = if known.emails.is_empty() {
        vec!["someone@example.com".to_owned()]
    } else {
        known.emails.clone()
    };
    prop_oneof![
        3 => "[a-z]{1,10}(\\.[a-z]{1,6})?@(example|test)\\.(com|no)",
        1 => proptest::sample::select(emails),
        1 => "[A-Z ]{0,3}[a-z]{1,8}@[a-z]{1,8}\\.[a-z]{2}[ ]{0,2}",
        2 => any_text(),
    ]
    .boxed()
}

fn password() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[A-Z][a-z]{4,10}[0-9]{2,4}",
        1 => "[a-z]{0,12}",
        1 => any_text(),
    ]
    .boxed()
}

fn uuid_text() -> BoxedStrategy<String> {
    any::<u128>()
        .prop_map(|n| {
            let hex = format!("{n:032x}");
            format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            )
        })
        .boxed()
}

fn id_from(pool: &[String]) -> BoxedStrategy<String> {
    let pool = if pool.is_empty() {
        vec!["0190c0de-0000-7000-8000-000000000001".to_owned()]
    } else {
        pool.to_vec()
    };
    prop_oneof![
        2 => proptest::sample::select(pool),
        2 => uuid_text(),
        1 => any_text(),
    ]
    .boxed()
}

/// A GraphQL literal of any kind, nested to `depth`.
fn any_literal() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        "-?[0-9]{10,60}",
        any::<f64>().prop_map(|f| if f.is_finite() {
            format!("{f:e}")
        } else {
            "1e999".to_owned()
        }),
        any_text().prop_map(|s| quoted(&s)),
        "[A-Z_]{1,12}",
        (0u8..4).prop_map(|v| format!("$v{v}")),
        "\"\"\"[a-z \\n]{0,30}\"\"\"",
    ];
    leaf.prop_recursive(4, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6)
                .prop_map(|v| format!("[{}]", v.join(", "))),
            proptest::collection::vec(("[a-zA-Z]{1,10}", inner), 0..5).prop_map(|fields| {
                let fields: Vec<String> = fields
                    .into_iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                format!("{{{}}}", fields.join(", "))
            }),
        ]
    })
    .boxed()
}

fn date() -> BoxedStrategy<String> {
    prop_oneof![
        (1900u32..2030, 1u32..13, 1u32..29).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        (0u32..99999, 0u32..20, 0u32..40).prop_map(|(y, m, d)| format!("{y}-{m}-{d}")),
        any_text(),
    ]
    .boxed()
}

fn datetime() -> BoxedStrategy<String> {
    prop_oneof![
        (2024u32..2029, 1u32..13, 1u32..29, 0u32..24)
            .prop_map(|(y, m, d, h)| format!("{y:04}-{m:02}-{d:02}T{h:02}:00:00Z")),
        (0i64..400_000, 1u32..13).prop_map(|(y, m)| format!("{y}-{m:02}-01T00:00:00+14:00")),
        any_text(),
    ]
    .boxed()
}

fn one_of(values: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        4 => proptest::sample::select(values).prop_map(str::to_owned),
        1 => "[A-Z_]{1,14}",
    ]
    .boxed()
}

/// Object literal of `fields` (each present, missing, or replaced).
fn object_literal(fields: Vec<(&'static str, BoxedStrategy<String>)>) -> BoxedStrategy<String> {
    let parts: Vec<BoxedStrategy<Option<String>>> = fields
        .into_iter()
        .map(|(name, value)| {
            prop_oneof![
                8 => value.prop_map(move |v| Some(format!("{name}: {v}"))),
                1 => Just(None),
                1 => any_literal().prop_map(move |v| Some(format!("{name}: {v}"))),
            ]
            .boxed()
        })
        .collect();
    (
        parts,
        proptest::option::weighted(0.1, ("[a-z]{1,8}", any_literal())),
    )
        .prop_map(|(parts, extra)| {
            let mut fields: Vec<String> = parts.into_iter().flatten().collect();
            if let Some((k, v)) = extra {
                fields.push(format!("{k}: {v}"));
            }
            format!("{{{}}}", fields.join(", "))
        })
        .boxed()
}

/// A value for an argument of kind `arg`: mostly of the right type.
fn arg_value(arg: Arg, known: &Known) -> BoxedStrategy<String> {
    let right: BoxedStrategy<String> = match arg {
        Arg::Text => any_text().prop_map(|s| quoted(&s)).boxed(),
        Arg::Int => prop_oneof![
            (-5i64..200).prop_map(|n| n.to_string()),
            any::<i32>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
        ]
        .boxed(),
        Arg::Bool => prop_oneof![Just("true".to_owned()), Just("false".to_owned())].boxed(),
        Arg::Email => email(known).prop_map(|s| quoted(&s)).boxed(),
        Arg::Password => password().prop_map(|s| quoted(&s)).boxed(),
        Arg::Code => prop_oneof!["[0-9]{6}", "[0-9]{0,9}", any_text()]
            .prop_map(|s| quoted(&s))
            .boxed(),
        Arg::FlowId => id_from(&known.flow_ids).prop_map(|s| quoted(&s)).boxed(),
        Arg::ApplicationId => id_from(&known.application_ids)
            .prop_map(|s| quoted(&s))
            .boxed(),
        Arg::Enum(values) => one_of(values),
        Arg::CreateInput => object_literal(vec![
            (
                "kind",
                one_of(&[
                    "WORK",
                    "FAMILY",
                    "STUDY",
                    "VISIT",
                    "PROTECTION",
                    "CITIZENSHIP",
                ]),
            ),
            (
                "relation",
                one_of(&["SELF", "FAMILY_MEMBER", "EMPLOYEE", "OTHER"]),
            ),
            (
                "applicant",
                object_literal(vec![
                    ("name", any_text().prop_map(|s| quoted(&s)).boxed()),
                    ("birthDate", date().prop_map(|s| quoted(&s)).boxed()),
                    (
                        "nationality",
                        prop_oneof!["[A-Z]{3}", "[a-zA-Z]{0,5}", any_text()]
                            .prop_map(|s| quoted(&s))
                            .boxed(),
                    ),
                ]),
            ),
        ]),
        Arg::BookInput => object_literal(vec![
            (
                "meetingPoint",
                one_of(&["POLICE", "SUA", "EMBASSY", "VISA_CENTRE"]),
            ),
            ("location", any_text().prop_map(|s| quoted(&s)).boxed()),
            ("startsAt", datetime().prop_map(|s| quoted(&s)).boxed()),
            ("purpose", one_of(&["APPLICATION", "RESIDENCE_CARD_PHOTO"])),
        ]),
    };
    prop_oneof![
        12 => right,
        2 => any_literal(),
        1 => Just("null".to_owned()),
        2 => (0u8..4).prop_map(|v| format!("$v{v}")),
    ]
    .boxed()
}

/// `(name: value, ...)`, sometimes missing one, sometimes with an extra.
fn arguments(args: &'static [(&'static str, Arg)], known: &Known) -> BoxedStrategy<String> {
    let values: Vec<BoxedStrategy<Option<String>>> = args
        .iter()
        .map(|(name, arg)| {
            let name = *name;
            prop_oneof![
                12 => arg_value(*arg, known).prop_map(move |v| Some(format!("{name}: {v}"))),
                1 => Just(None),
            ]
            .boxed()
        })
        .collect();
    (
        values,
        proptest::option::weighted(0.08, ("[a-zA-Z]{1,10}", any_literal())),
    )
        .prop_map(|(values, extra)| {
            let mut all: Vec<String> = values.into_iter().flatten().collect();
            if let Some((k, v)) = extra {
                all.push(format!("{k}: {v}"));
            }
            if all.is_empty() {
                String::new()
            } else {
                format!("({})", all.join(", "))
            }
        })
        .boxed()
}

fn directive() -> BoxedStrategy<String> {
    prop_oneof![
        12 => Just(String::new()),
        1 => any::<bool>().prop_map(|b| format!(" @include(if: {b})")),
        1 => any::<bool>().prop_map(|b| format!(" @skip(if: {b})")),
        1 => (0u8..4).prop_map(|v| format!(" @skip(if: $v{v})")),
        1 => "[a-z]{1,8}".prop_map(|d| format!(" @{d}")),
    ]
    .boxed()
}

fn alias() -> BoxedStrategy<String> {
    prop_oneof![
        5 => Just(String::new()),
        1 => "[a-zA-Z_][a-zA-Z0-9_]{0,8}".prop_map(|a| format!("{a}: ")),
    ]
    .boxed()
}

/// A selection set of object type `type_name`, `depth` levels deep at
/// most: known fields (aliased, with directives), `__typename`, unknown
/// fields, fragment spreads and inline fragments.
fn selection_set(type_name: &'static str, depth: u32) -> BoxedStrategy<String> {
    let fields = object_fields(type_name);
    let mut choices: Vec<(u32, BoxedStrategy<String>)> = fields
        .iter()
        .map(|&(name, object)| {
            let sub = match (object, depth) {
                (Some(object), d) if d > 0 => prop_oneof![
                    9 => selection_set(object, d - 1).prop_map(Some),
                    1 => Just(None),
                ]
                .boxed(),
                (Some(_), _) => Just(Some("{ __typename }".to_owned())).boxed(),
                (None, _) => prop_oneof![
                    15 => Just(None),
                    1 => Just(Some("{ id }".to_owned())),
                ]
                .boxed(),
            };
            let field = (alias(), sub, directive())
                .prop_map(move |(alias, sub, directive)| match sub {
                    Some(sub) => format!("{alias}{name}{directive} {sub}"),
                    None => format!("{alias}{name}{directive}"),
                })
                .boxed();
            (4, field)
        })
        .collect();
    choices.push((1, Just("__typename".to_owned()).boxed()));
    choices.push((1, "[a-z][a-zA-Z]{0,12}".boxed()));
    choices.push((1, Just("...Parts".to_owned()).boxed()));
    choices.push((
        1,
        proptest::sample::select(TYPE_NAMES)
            .prop_map(move |on| format!("... on {on} {{ __typename }}"))
            .boxed(),
    ));
    let one = proptest::strategy::Union::new_weighted(choices);
    proptest::collection::vec(one, 1..5)
        .prop_map(|items| format!("{{ {} }}", items.join(" ")))
        .boxed()
}

/// One root field with its arguments and selection.
fn root_field(fields: &'static [RootField], known: &Known) -> BoxedStrategy<String> {
    let choices: Vec<BoxedStrategy<String>> = fields
        .iter()
        .map(|&(name, args, object)| {
            let sub = match object {
                Some(object) => prop_oneof![
                    12 => selection_set(object, 3).prop_map(|s| format!(" {s}")),
                    1 => Just(String::new()),
                ]
                .boxed(),
                None => prop_oneof![
                    12 => Just(String::new()),
                    1 => Just(" { id }".to_owned()),
                ]
                .boxed(),
            };
            (alias(), arguments(args, known), directive(), sub)
                .prop_map(move |(alias, args, directive, sub)| {
                    format!("{alias}{name}{args}{directive}{sub}")
                })
                .boxed()
        })
        .collect();
    proptest::strategy::Union::new(choices).boxed()
}

/// Variable definitions for `$v0`..`$v3` of any type, some left out.
fn variable_definitions() -> BoxedStrategy<String> {
    const TYPES: &[&str] = &[
        "String",
        "String!",
        "ID",
        "ID!",
        "Int",
        "Int!",
        "Boolean!",
        "[String!]",
        "Date",
        "DateTime!",
        "CreateApplicationInput!",
        "BookAppointmentInput",
        "Relation!",
        "Nope",
        "[[Int]]",
    ];
    proptest::collection::vec(
        proptest::option::of((
            proptest::sample::select(TYPES),
            proptest::option::weighted(0.1, any_literal()),
        )),
        4,
    )
    .prop_map(|defs| {
        let defs: Vec<String> = defs
            .into_iter()
            .enumerate()
            .filter_map(|(i, def)| {
                def.map(|(ty, default)| match default {
                    Some(d) => format!("$v{i}: {ty} = {d}"),
                    None => format!("$v{i}: {ty}"),
                })
            })
            .collect();
        if defs.is_empty() {
            String::new()
        } else {
            format!("({})", defs.join(", "))
        }
    })
    .boxed()
}

/// A GraphQL document from the schema, and the operation name to ask for.
pub fn document(known: &Known) -> BoxedStrategy<(String, Option<String>)> {
    let queries = proptest::collection::vec(root_field(ROOT_QUERIES, known), 1..4);
    let mutations = prop_oneof![
        20 => proptest::collection::vec(root_field(ROOT_MUTATIONS, known), 1..3),
        1 => proptest::collection::vec(root_field(HASHING_MUTATIONS, known), 1..2),
    ];
    let operation = prop_oneof![
        5 => (Just("query"), queries.clone()),
        4 => (Just("mutation"), mutations),
        1 => (Just("subscription"), queries.clone()),
        1 => (Just(""), queries),
    ];
    let fragment = prop_oneof![
        4 => Just(String::new()),
        2 => selection_set("Application", 1)
            .prop_map(|s| format!("\nfragment Parts on Application {s}")),
        1 => Just("\nfragment Parts on QueryRoot { ...Loop } fragment Loop on QueryRoot { ...Parts }".to_owned()),
        1 => selection_set("Viewer", 0).prop_map(|s| format!("\nfragment Parts on Viewer {s}")),
        1 => Just("\nfragment Parts on Nope { x }".to_owned()),
    ];
    let name = proptest::option::weighted(0.3, "[A-Z][a-zA-Z]{0,10}");
    // Which operation the request asks for: none, its own, another.
    let ask = prop_oneof![
        5 => Just(Ask::None),
        2 => Just(Ask::Own),
        1 => "[A-Za-z]{1,10}".prop_map(Ask::Other),
    ];
    (operation, variable_definitions(), fragment, name, ask)
        .prop_map(|((kind, fields), variables, fragment, name, ask)| {
            let body = format!("{{ {} }}", fields.join(" "));
            let head = match (kind, &name) {
                ("", _) => String::new(),
                (kind, Some(name)) => format!("{kind} {name}{variables} "),
                (kind, None) => format!("{kind}{variables} "),
            };
            let ask = match ask {
                Ask::None => None,
                Ask::Own => name,
                Ask::Other(other) => Some(other),
            };
            (format!("{head}{body}{fragment}"), ask)
        })
        .boxed()
}

/// The `operationName` a request gives.
#[derive(Debug, Clone)]
enum Ask {
    None,
    Own,
    Other(String),
}

/// Documents built to stress the parser and validator: very deep
/// selections and lists, many aliases, long names, many operations.
pub fn stress_document() -> BoxedStrategy<String> {
    prop_oneof![
        (1usize..3000).prop_map(|n| format!("{{{}{}}}", "me {".repeat(n), "}".repeat(n))),
        (1usize..3000).prop_map(|n| format!(
            "{{ application(id: {}\"x\"{}) {{ id }} }}",
            "[".repeat(n),
            "]".repeat(n)
        )),
        (1usize..3000).prop_map(|n| format!(
            "{{ myApplications {{ edges {{ node {{ {} }} }} }} }}",
            "appointment { location } ".repeat(n)
        )),
        (1usize..1500).prop_map(|n| {
            let fields: Vec<String> = (0..n).map(|i| format!("a{i}: passwordPolicy {{ rules }}")).collect();
            format!("{{ {} }}", fields.join(" "))
        }),
        (1usize..800).prop_map(|n| {
            let fields: Vec<String> = (0..n).map(|i| format!("m{i}: myApplications(first: 100) {{ edges {{ node {{ id status appointment {{ location }} }} }} }}")).collect();
            format!("{{ {} }}", fields.join(" "))
        }),
        (1usize..400).prop_map(|n| {
            let ops: Vec<String> = (0..n).map(|i| format!("query Q{i} {{ me {{ id }} }}")).collect();
            ops.join("\n")
        }),
        (1usize..2000).prop_map(|n| format!("{{ {} }}", "...F ".repeat(n)) + "\nfragment F on QueryRoot { me { id } }"),
        (1usize..60_000).prop_map(|n| format!("{{ {} }}", "x".repeat(n))),
        (1usize..2000).prop_map(|n| format!("query({}) {{ me {{ id }} }}", (0..n).map(|i| format!("$a{i}: Int")).collect::<Vec<_>>().join(", "))),
        "[{}()\\[\\]:$@!.=|&a-z0-9 \"\\n]{0,300}",
        any_text(),
    ]
    .boxed()
}

/// JSON of any shape, nested a few levels.
fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any_text().prop_map(Value::String),
        uuid_text().prop_map(Value::String),
        "[A-Z_]{1,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A variable set: values for `$v0`..`$v3` (of any type), other names, or
/// not an object at all.
fn variables() -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        2 => Just(None),
        6 => proptest::collection::btree_map(
            prop_oneof![4 => (0u8..4).prop_map(|v| format!("v{v}")), 1 => "[a-z]{1,6}"],
            any_json(),
            0..5
        )
        .prop_map(|m| Some(Value::Object(m.into_iter().collect()))),
        1 => any_json().prop_map(Some),
    ]
    .boxed()
}

/// An argument of a valid document: a literal, or a variable of a GraphQL
/// type with its JSON value.
#[derive(Debug, Clone)]
enum ValidArg {
    Literal(String),
    Variable(&'static str, Value),
}

/// A value of the right type for `arg` (which the server may still refuse:
/// a malformed email, an unknown id, a date out of range).
fn valid_arg(arg: Arg, known: &Known) -> BoxedStrategy<ValidArg> {
    let (text, ty): (BoxedStrategy<String>, &'static str) = match arg {
        Arg::Text => (any_text(), "String!"),
        Arg::Email => (email(known), "String!"),
        Arg::Password => (password(), "String!"),
        Arg::Code => (prop_oneof!["[0-9]{6}", any_text()].boxed(), "String!"),
        Arg::FlowId => (id_from(&known.flow_ids), "ID!"),
        Arg::ApplicationId => (id_from(&known.application_ids), "ID!"),
        Arg::Int => {
            return prop_oneof![(-5i32..200), any::<i32>()]
                .prop_flat_map(|n| {
                    prop_oneof![
                        Just(ValidArg::Literal(n.to_string())),
                        Just(ValidArg::Variable("Int", json!(n))),
                    ]
                })
                .boxed();
        }
        Arg::Bool => {
            return any::<bool>()
                .prop_flat_map(|b| {
                    prop_oneof![
                        Just(ValidArg::Literal(b.to_string())),
                        Just(ValidArg::Variable("Boolean!", json!(b))),
                    ]
                })
                .boxed();
        }
        Arg::Enum(values) => {
            return proptest::sample::select(values)
                .prop_map(|v| ValidArg::Literal(v.to_owned()))
                .boxed();
        }
        Arg::CreateInput => {
            return (
                proptest::sample::select(&["WORK", "FAMILY", "STUDY", "VISIT", "PROTECTION", "CITIZENSHIP"][..]),
                proptest::sample::select(&["SELF", "FAMILY_MEMBER", "EMPLOYEE", "OTHER"][..]),
                prop_oneof![3 => "[A-ZÆØÅ][a-zæøå]{1,10} [A-ZÆØÅ][a-zæøå]{1,12}", 1 => any_text()],
                date(),
                prop_oneof![3 => "(SWE|NOR|POL|USA|ERI|SYR)", 1 => "[A-Z]{3}", 1 => any_text()],
            )
                .prop_map(|(kind, relation, name, birth, nationality)| {
                    ValidArg::Variable(
                        "CreateApplicationInput!",
                        json!({
                            "kind": kind,
                            "relation": relation,
                            "applicant": { "name": name, "birthDate": birth, "nationality": nationality },
                        }),
                    )
                })
                .boxed();
        }
        Arg::BookInput => {
            return (
                proptest::sample::select(&["POLICE", "SUA", "EMBASSY", "VISA_CENTRE"][..]),
                prop_oneof![3 => "[A-Z][a-z]{2,10}( [a-z]{2,8})?", 1 => any_text()],
                prop_oneof![
                    3 => (2027u32..2028, 1u32..13, 1u32..29, 8u32..16)
                        .prop_map(|(y, m, d, h)| format!("{y:04}-{m:02}-{d:02}T{h:02}:00:00Z")),
                    1 => datetime(),
                ],
                proptest::option::of(proptest::sample::select(&["APPLICATION", "RESIDENCE_CARD_PHOTO"][..])),
            )
                .prop_map(|(point, location, starts_at, purpose)| {
                    let mut input = json!({ "meetingPoint": point, "location": location, "startsAt": starts_at });
                    if let Some(purpose) = purpose {
                        input["purpose"] = json!(purpose);
                    }
                    ValidArg::Variable("BookAppointmentInput!", input)
                })
                .boxed();
        }
    };
    (text, any::<bool>())
        .prop_map(move |(text, variable)| {
            if variable {
                ValidArg::Variable(ty, Value::String(text))
            } else {
                ValidArg::Literal(quoted(&text))
            }
        })
        .boxed()
}

/// A selection set of known fields only, of object type `type_name`.
fn valid_selection(type_name: &'static str, depth: u32) -> BoxedStrategy<String> {
    let fields: Vec<BoxedStrategy<String>> = object_fields(type_name)
        .iter()
        .map(|&(name, object)| match object {
            Some(object) if depth > 0 => valid_selection(object, depth - 1)
                .prop_map(move |sub| format!("{name} {sub}"))
                .boxed(),
            Some(_) => Just(format!("{name} {{ __typename }}")).boxed(),
            None => Just(name.to_owned()).boxed(),
        })
        .collect();
    let item = prop_oneof![
        12 => proptest::strategy::Union::new(fields),
        1 => Just("__typename".to_owned()),
        1 => Just(format!("... on {type_name} {{ __typename }}")),
    ];
    let directive = prop_oneof![
        8 => Just(String::new()),
        1 => any::<bool>().prop_map(|b| format!(" @include(if: {b})")),
        1 => any::<bool>().prop_map(|b| format!(" @skip(if: {b})")),
    ];
    proptest::collection::vec((item, directive), 1..5)
        .prop_map(|items| {
            let items: Vec<String> = items
                .into_iter()
                .map(|(item, directive)| {
                    if item.starts_with("...") {
                        return item;
                    }
                    match item.split_once(' ') {
                        Some((head, rest)) => format!("{head}{directive} {rest}"),
                        None => format!("{item}{directive}"),
                    }
                })
                .collect();
            format!("{{ {} }}", items.join(" "))
        })
        .boxed()
}

/// A root field of a valid document: name, arguments, selection.
type ValidField = (&'static str, Vec<(&'static str, ValidArg)>, String);

/// One root field of a valid document.
fn valid_root_field(fields: &'static [RootField], known: &Known) -> BoxedStrategy<ValidField> {
    let choices: Vec<_> = fields
        .iter()
        .map(|&(name, args, object)| {
            let args: Vec<_> = args
                .iter()
                .map(|&(arg_name, arg)| valid_arg(arg, known).prop_map(move |v| (arg_name, v)))
                .collect();
            let selection = match object {
                Some(object) => valid_selection(object, 3)
                    .prop_map(|s| format!(" {s}"))
                    .boxed(),
                None => Just(String::new()).boxed(),
            };
            (args, selection)
                .prop_map(move |(args, selection)| (name, args, selection))
                .boxed()
        })
        .collect();
    proptest::strategy::Union::new(choices).boxed()
}

/// A document that passes validation (each root field aliased apart, every
/// variable declared, typed and used) with its variables: these reach the
/// resolvers and services.
pub fn valid_document(known: &Known) -> BoxedStrategy<(String, Value)> {
    let queries = proptest::collection::vec(valid_root_field(ROOT_QUERIES, known), 1..4);
    let mutations = prop_oneof![
        30 => proptest::collection::vec(valid_root_field(ROOT_MUTATIONS, known), 1..3),
        1 => proptest::collection::vec(valid_root_field(HASHING_MUTATIONS, known), 1..2),
    ];
    let operation = prop_oneof![
        3 => (Just("query"), queries),
        2 => (Just("mutation"), mutations),
    ];
    (operation, proptest::option::of("[A-Z][a-zA-Z]{0,10}"))
        .prop_map(|((kind, fields), name)| {
            let mut definitions = Vec::new();
            let mut variables = serde_json::Map::new();
            let mut selections = Vec::new();
            for (i, (field, args, selection)) in fields.into_iter().enumerate() {
                let args: Vec<String> = args
                    .into_iter()
                    .map(|(arg_name, value)| match value {
                        ValidArg::Literal(text) => format!("{arg_name}: {text}"),
                        ValidArg::Variable(ty, value) => {
                            let var = format!("v{}", definitions.len());
                            definitions.push(format!("${var}: {ty}"));
                            variables.insert(var.clone(), value);
                            format!("{arg_name}: ${var}")
                        }
                    })
                    .collect();
                let args = if args.is_empty() {
                    String::new()
                } else {
                    format!("({})", args.join(", "))
                };
                selections.push(format!("f{i}: {field}{args}{selection}"));
            }
            let definitions = if definitions.is_empty() {
                String::new()
            } else {
                format!("({})", definitions.join(", "))
            };
            let name = name.unwrap_or_default();
            (
                format!("{kind} {name}{definitions} {{ {} }}", selections.join(" ")),
                Value::Object(variables),
            )
        })
        .boxed()
}

/// A GraphQL request object: the document, variables, operation name, and
/// sometimes fields of the wrong type or extra fields.
fn request_object(known: &Known) -> BoxedStrategy<Value> {
    let document = prop_oneof![
        6 => document(known).prop_flat_map(|d| (Just(d), variables())),
        2 => stress_document().prop_flat_map(|d| (Just((d, None)), variables())),
        // Valid documents mostly go as they are.
        6 => valid_document(known).prop_map(|(d, v)| ((d, None), Some(v))),
    ];
    (
        document,
        proptest::option::weighted(0.05, any_json()),
        prop_oneof![3 => Just(10u8), 1 => 0u8..20],
    )
        .prop_map(|(((query, operation), variables), extra, shape)| {
            let mut object = serde_json::Map::new();
            match shape {
                0 => {}
                1 => {
                    object.insert("query".into(), json!([query]));
                }
                2 => {
                    object.insert("query".into(), json!(query.len()));
                }
                _ => {
                    object.insert("query".into(), Value::String(query));
                }
            }
            match (shape, variables) {
                (3, Some(v)) => {
                    object.insert("variables".into(), Value::String(v.to_string()));
                }
                (_, Some(v)) => {
                    object.insert("variables".into(), v);
                }
                (_, None) => {}
            }
            if let Some(operation) = operation {
                object.insert("operationName".into(), Value::String(operation));
            }
            if let Some(extra) = extra {
                object.insert(
                    if shape % 2 == 0 {
                        "extensions"
                    } else {
                        "operationName"
                    }
                    .into(),
                    extra,
                );
            }
            Value::Object(object)
        })
        .boxed()
}

fn graphql_media_type() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        20 => Just(Some("application/json".to_owned())),
        1 => Just(Some("application/json; charset=utf-8".to_owned())),
        1 => Just(Some("application/graphql-response+json".to_owned())),
        1 => Just(Some("application/graphql".to_owned())),
    ]
    .boxed()
}

fn odd_media_type() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("text/plain".to_owned())),
        Just(Some("application/x-www-form-urlencoded".to_owned())),
        Just(Some("multipart/form-data; boundary=xyz".to_owned())),
        Just(Some("multipart/form-data".to_owned())),
        Just(Some("application/json; charset=latin1".to_owned())),
        Just(Some("application/xml".to_owned())),
        "[ -~]{0,40}".prop_map(Some),
    ]
    .boxed()
}

fn auth() -> BoxedStrategy<Auth> {
    prop_oneof![
        8 => Just(Auth::None),
        8 => Just(Auth::Session),
        1 => "[ -~]{0,60}".prop_map(|t| Auth::Header(format!("Bearer {t}"))),
        1 => "[A-Za-z0-9_-]{43}".prop_map(|t| Auth::Header(format!("Bearer {t}"))),
        1 => "[ -~]{0,40}".prop_map(Auth::Header),
        1 => (1usize..8000).prop_map(|n| Auth::Header(format!("Bearer {}", "A".repeat(n)))),
        1 => "[!-~&&[^;,]]{0,60}".prop_map(Auth::Cookie),
    ]
    .boxed()
}

fn accept_language() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        6 => Just(None),
        2 => Just(Some("nb".to_owned())),
        1 => Just(Some("nb-NO,nb;q=0.9,en;q=0.5".to_owned())),
        1 => "[ -~]{0,40}".prop_map(Some),
    ]
    .boxed()
}

fn odd_method() -> BoxedStrategy<String> {
    prop_oneof![
        Just("GET".to_owned()),
        Just("PUT".to_owned()),
        Just("DELETE".to_owned()),
        Just("PATCH".to_owned()),
        Just("OPTIONS".to_owned()),
        Just("HEAD".to_owned()),
        Just("TRACE".to_owned()),
        "[A-Z]{1,10}",
    ]
    .boxed()
}

fn odd_path() -> BoxedStrategy<String> {
    prop_oneof![
        Just("/graphql".to_owned()),
        Just("/graphql/".to_owned()),
        Just("/GRAPHQL".to_owned()),
        Just("/".to_owned()),
        Just("/healthz".to_owned()),
        Just("/metrics".to_owned()),
        Just("/auth/idporten/login".to_owned()),
        Just("/auth/idporten/callback?code=x&state=y".to_owned()),
        Just("/auth/idporten/logout".to_owned()),
        Just("/%2e%2e/%2e%2e/etc/passwd".to_owned()),
        Just("//graphql".to_owned()),
        "/graphql\\?query=[a-z{}]{0,30}",
        "(/[a-zA-Z0-9._~%-]{0,20}){1,6}",
        (1usize..6000).prop_map(|n| format!("/{}", "a".repeat(n))),
    ]
    .boxed()
}

/// Any request of the campaign.
pub fn probe(known: &Known) -> BoxedStrategy<Probe> {
    let gql = (
        request_object(known),
        auth(),
        graphql_media_type(),
        accept_language(),
    )
        .prop_map(|(object, auth, content_type, accept_language)| Probe {
            kind: "graphql",
            method: "POST".to_owned(),
            path: "/graphql".to_owned(),
            content_type,
            accept_language,
            auth,
            body: serde_json::to_vec(&object).expect("JSON serialises"),
        });
    let batch = (
        proptest::collection::vec(request_object(known), 0..12),
        auth(),
    )
        .prop_map(|(objects, auth)| Probe {
            kind: "batch",
            method: "POST".to_owned(),
            path: "/graphql".to_owned(),
            content_type: Some("application/json".to_owned()),
            accept_language: None,
            auth,
            body: serde_json::to_vec(&objects).expect("JSON serialises"),
        });
    let post = |kind: &'static str, body: BoxedStrategy<Vec<u8>>| {
        (
            body,
            auth(),
            prop_oneof![4 => graphql_media_type(), 1 => odd_media_type()],
        )
            .prop_map(move |(body, auth, content_type)| Probe {
                kind,
                method: "POST".to_owned(),
                path: "/graphql".to_owned(),
                content_type,
                accept_language: None,
                auth,
                body,
            })
    };
    let random_bytes = post(
        "random-bytes",
        proptest::collection::vec(any::<u8>(), 0..2000).boxed(),
    );
    let truncated = post(
        "truncated-json",
        (request_object(known), any::<prop::sample::Index>())
            .prop_map(|(object, at)| {
                let mut bytes = serde_json::to_vec(&object).expect("JSON serialises");
                bytes.truncate(at.index(bytes.len()));
                bytes
            })
            .boxed(),
    );
    let wrong_shape = post(
        "wrong-shape",
        any_json()
            .prop_map(|v| serde_json::to_vec(&v).expect("JSON serialises"))
            .boxed(),
    );
    let deep_json = post(
        "deep-json",
        (1usize..20_000, any::<bool>())
            .prop_map(|(n, object)| {
                if object {
                    format!("{}1{}", "{\"query\":".repeat(n), "}".repeat(n)).into_bytes()
                } else {
                    format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()
                }
            })
            .boxed(),
    );
    let huge = post(
        "huge-body",
        (64 * 1024usize..200 * 1024, any::<bool>())
            .prop_map(|(n, valid)| {
                if valid {
                    serde_json::to_vec(&json!({
                        "query": "query($s: String) { passwordPolicy { kind } }",
                        "variables": { "s": "y".repeat(n) },
                    }))
                    .expect("JSON serialises")
                } else {
                    vec![b'{'; n]
                }
            })
            .boxed(),
    );
    let wrong_content_type = (request_object(known), odd_media_type(), auth()).prop_map(
        |(object, content_type, auth)| Probe {
            kind: "wrong-content-type",
            method: "POST".to_owned(),
            path: "/graphql".to_owned(),
            content_type,
            accept_language: None,
            auth,
            body: serde_json::to_vec(&object).expect("JSON serialises"),
        },
    );
    let odd = (
        odd_method(),
        odd_path(),
        prop_oneof![
            Just(Vec::new()),
            proptest::collection::vec(any::<u8>(), 0..200)
        ],
        odd_media_type(),
    )
        .prop_map(|(method, path, body, content_type)| Probe {
            kind: "odd-request",
            method,
            path,
            content_type,
            accept_language: None,
            auth: Auth::None,
            body,
        });
    prop_oneof![
        60 => gql,
        6 => batch,
        6 => random_bytes,
        5 => truncated,
        5 => wrong_shape,
        2 => deep_json,
        2 => huge,
        6 => wrong_content_type,
        8 => odd,
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

/// What a campaign saw.
#[derive(Debug, Default)]
pub struct Report {
    pub sent: usize,
    /// Requests with a GraphQL answer that carried data.
    pub served: usize,
    pub by_status: BTreeMap<String, usize>,
    pub by_kind: BTreeMap<&'static str, usize>,
    pub by_error_code: BTreeMap<String, usize>,
    pub latencies_us: Vec<u64>,
    pub healthz_max: Duration,
    pub relogins: usize,
    pub failures: Vec<String>,
    pub wall: Duration,
}

impl Report {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies_us.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        Duration::from_micros(self.latencies_us[i])
    }

    /// The summary printed at the end.
    pub fn summary(&self, settings: &Settings) -> String {
        let mut out = format!(
            "campaign seed {} (replay: CAMPAIGN_SEED={} CAMPAIGN_CASES={})\n\
             requests sent: {} by {} clients in {:.1} s ({:.0} requests/s)\n",
            settings.seed,
            settings.seed,
            settings.requests,
            self.sent,
            settings.clients,
            self.wall.as_secs_f64(),
            self.sent as f64 / self.wall.as_secs_f64().max(1e-9),
        );
        out += &format!(
            "by status class: {:?}; {} answered with data\n",
            self.by_status, self.served
        );
        out += &format!("by request kind: {:?}\n", self.by_kind);
        out += &format!("by GraphQL error code: {:?}\n", self.by_error_code);
        out += &format!(
            "latency p50 {:?}, p99 {:?}, max {:?}; /healthz max {:?} between batches; {} re-logins\n",
            self.percentile(0.5),
            self.percentile(0.99),
            self.percentile(1.0),
            self.healthz_max,
            self.relogins,
        );
        out += &format!("failures: {}\n", self.failures.len());
        // The first few, and the last (a dead server is found last).
        let shown = self.failures.len().min(10);
        for failure in self.failures[..shown]
            .iter()
            .chain(self.failures[shown..].last())
        {
            out += &format!("  {failure}\n");
        }
        out
    }
}

/// The campaign account's credentials and live session.
pub struct Account {
    pub email: String,
    pub password: String,
    pub token: String,
}

/// Register the campaign account, learn some real ids, and return them.
pub async fn prepare(server: &Server) -> (Account, Known) {
    let email = "campaign.owner@example.com".to_owned();
    let password = "Kampanje2024x".to_owned();
    let token = server.register(&email, &password, "Kari Kampanje").await;
    let mut known = Known::default();
    for (i, relation) in ["SELF", "FAMILY_MEMBER", "OTHER"].iter().enumerate() {
        known
            .application_ids
            .push(server.create_application(&token, relation, i != 2).await);
    }
    for i in 0..3 {
        let other = format!("campaign.flow{i}@example.com");
        let started = server
            .gql(
                None,
                "mutation($e: String!) { startRegistration(email: $e) { flowId } }",
                json!({ "e": other }),
            )
            .await;
        if let Some(flow) = started["data"]["startRegistration"]["flowId"].as_str() {
            known.flow_ids.push(flow.to_owned());
        }
        known.emails.push(other);
    }
    (
        Account {
            email,
            password,
            token,
        },
        known,
    )
}

/// What came back: the status, the error codes, and whether any GraphQL
/// answer carried data (the document passed validation and reached the
/// resolvers).
struct Answer {
    status: u16,
    codes: Vec<String>,
    served: bool,
}

/// The outcome of one request.
struct Outcome {
    index: usize,
    kind: &'static str,
    latency: Duration,
    result: Result<Answer, String>,
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    probe: &Probe,
) -> Result<Answer, String> {
    let method = reqwest::Method::from_bytes(probe.method.as_bytes())
        .map_err(|e| format!("method {:?}: {e}", probe.method))?;
    let mut request = client
        .request(method, format!("{url}{}", probe.path))
        .timeout(REQUEST_TIMEOUT)
        .body(probe.body.clone());
    if let Some(content_type) = &probe.content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(language) = &probe.accept_language {
        request = request.header("accept-language", language);
    }
    match &probe.auth {
        Auth::None => {}
        Auth::Session => request = request.header("authorization", format!("Bearer {token}")),
        Auth::Header(value) => request = request.header("authorization", value),
        Auth::Cookie(value) => {
            request = request.header("cookie", format!("caseledger_session={value}"))
        }
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("no answer: {e:?}"))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("status {status}, body cut: {e:?}"))?;
    let mut codes = Vec::new();
    let mut served = false;
    if let Ok(answer) = serde_json::from_slice::<Value>(&body) {
        let answers = match answer {
            Value::Array(items) => items,
            one => vec![one],
        };
        for answer in &answers {
            served |= answer["data"].is_object();
            if let Some(errors) = answer["errors"].as_array() {
                for error in errors {
                    codes.push(
                        error["extensions"]["code"]
                            .as_str()
                            .unwrap_or("(no code)")
                            .to_owned(),
                    );
                }
            }
        }
    }
    Ok(Answer {
        status,
        codes,
        served,
    })
}

/// Whether the session still works; if not, log in again.
async fn keep_session(server: &Server, account: &mut Account, report: &mut Report) {
    let me = server
        .gql(Some(&account.token), "{ me { id } }", json!({}))
        .await;
    if me["data"]["me"].is_null() {
        match server.login(&account.email, &account.password).await {
            Ok(token) => {
                account.token = token;
                report.relogins += 1;
            }
            Err(answer) => report.failures.push(format!(
                "the campaign account cannot log in again: {answer}"
            )),
        }
    }
}

/// Send `settings.requests` generated requests to `server` and check the
/// answers; the report lists every failure.
pub async fn run(server: &Server, settings: Settings) -> Report {
    let started = Instant::now();
    let (mut account, known) = prepare(server).await;
    let strategy = probe(&known);
    let mut runner = runner(settings.seed);
    let client = reqwest::Client::builder()
        // A connection per request: a connection the server closes after
        // one answer (as it may after a refused body) is never reused, so
        // a request without an answer is the server's fault.
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client");
    let mut report = Report::default();
    let mut next = 0;
    while next < settings.requests && report.failures.len() < 50 {
        let count = settings.batch.min(settings.requests - next);
        let probes: Vec<(usize, Probe)> = (next..next + count)
            .map(|i| (i, draw(&strategy, &mut runner)))
            .collect();
        next += count;
        let probes = std::sync::Arc::new(probes);
        let mut tasks = Vec::new();
        for client_index in 0..settings.clients {
            let probes = probes.clone();
            let client = client.clone();
            let url = server.url.clone();
            let token = account.token.clone();
            let clients = settings.clients;
            tasks.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for (index, probe) in probes.iter().skip(client_index).step_by(clients) {
                    let start = Instant::now();
                    let result = send(&client, &url, &token, probe).await;
                    outcomes.push(Outcome {
                        index: *index,
                        kind: probe.kind,
                        latency: start.elapsed(),
                        result,
                    });
                }
                outcomes
            }));
        }
        for task in tasks {
            let outcomes = task.await.expect("a client task");
            for outcome in outcomes {
                report.sent += 1;
                *report.by_kind.entry(outcome.kind).or_default() += 1;
                report.latencies_us.push(outcome.latency.as_micros() as u64);
                let probe = &probes[outcome.index - (next - count)].1;
                match outcome.result {
                    Ok(Answer {
                        status,
                        codes,
                        served,
                    }) => {
                        report.served += usize::from(served);
                        *report
                            .by_status
                            .entry(format!("{}xx", status / 100))
                            .or_default() += 1;
                        for code in codes {
                            *report.by_error_code.entry(code).or_default() += 1;
                        }
                        if status >= 500 {
                            report.failures.push(format!(
                                "request #{}: status {status}: {}",
                                outcome.index,
                                probe.describe()
                            ));
                        }
                    }
                    Err(error) => {
                        *report.by_status.entry("no answer".to_owned()).or_default() += 1;
                        report.failures.push(format!(
                            "request #{}: {error}: {}",
                            outcome.index,
                            probe.describe()
                        ));
                    }
                }
            }
        }
        let start = Instant::now();
        let healthz = client
            .get(format!("{}/healthz", server.url))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let took = start.elapsed();
        report.healthz_max = report.healthz_max.max(took);
        match healthz {
            Ok(response) if response.status().is_success() && took <= HEALTHZ_LIMIT => {}
            Ok(response) => report.failures.push(format!(
                "/healthz after {next} requests: {} in {took:?}",
                response.status()
            )),
            Err(e) => {
                let log = server.log();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                report.failures.push(format!(
                    "/healthz after {next} requests: no answer ({e}); the server log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
                break;
            }
        }
        keep_session(server, &mut account, &mut report).await;
    }
    let log = server.log();
    let fatal = ["panicked", "overflowed its stack", "fatal runtime error"];
    for line in log
        .lines()
        .filter(|l| fatal.iter().any(|f| l.contains(f)))
        .take(5)
    {
        report
            .failures
            .push(format!("the server log has a panic: {line}"));
    }
    report.latencies_us.sort_unstable();
    report.wall = started.elapsed();
    report
}
