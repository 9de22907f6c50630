//! The GraphQL schema of the contract: thin resolvers that parse input, call
//! the services and map their answers. No business rule lives here.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_graphql::{
    Context, Enum, ID, InputObject, Object, Scalar, ScalarType, Schema, SimpleObject, Value,
};
use chrono::{DateTime, NaiveDate, Utc};

use domain::application::{self as app_domain, DecisionOutcome as DomainOutcome};
use domain::flow::FlowKind;
use projections::{AccountView, ApplicationView};

use crate::case_services::{NewApplication, NewAppointment};
use crate::error::{ApiError, Lang};
use crate::limits::Limits;
use crate::services::{App, Caller, IssuedSession};
use crate::subscription::SubscriptionRoot;

/// The schema type served at `/graphql` (subscriptions at `/graphql/ws`).
pub type CaseledgerSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// What the HTTP layer knows about one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub caller: Option<Caller>,
    pub lang: Lang,
    /// The internal service name when a valid service credential was shown.
    pub service: Option<String>,
    pub client_ip: IpAddr,
    /// Set a session cookie on login (browser requests).
    pub cookies: bool,
    /// The device cookie the browser showed, if any.
    pub device_token: Option<String>,
    /// Operations that send mail or hash a password, done so far by this
    /// request (aliases make one request many).
    pub costly: Arc<AtomicU32>,
}

impl RequestContext {
    /// A request with no session, cookies or device.
    pub fn anonymous(client_ip: IpAddr, lang: Lang) -> RequestContext {
        RequestContext {
            caller: None,
            lang,
            service: None,
            client_ip,
            cookies: false,
            device_token: None,
            costly: Arc::default(),
        }
    }
}

/// Build the schema over the services.
pub fn schema(app: Option<App>, limits: Option<Arc<Limits>>) -> CaseledgerSchema {
    let mut builder = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .limit_depth(12)
        .limit_complexity(2_000)
        .limit_recursive_depth(32);
    if let Some(app) = app {
        builder = builder.data(app);
    }
    if let Some(limits) = limits {
        builder = builder.data(limits);
    }
    builder.finish()
}

fn request<'a>(ctx: &'a Context<'_>) -> &'a RequestContext {
    ctx.data_unchecked::<RequestContext>()
}

fn lang(ctx: &Context<'_>) -> Lang {
    request(ctx).lang
}

fn services<'a>(ctx: &'a Context<'_>) -> &'a App {
    ctx.data_unchecked::<App>()
}

fn fail(ctx: &Context<'_>, error: ApiError) -> async_graphql::Error {
    error.into_graphql(lang(ctx))
}

fn caller(ctx: &Context<'_>) -> async_graphql::Result<Caller> {
    request(ctx)
        .caller
        .ok_or_else(|| fail(ctx, ApiError::unauthenticated()))
}

/// Count one costly operation (`mail` or `password`) of this request
/// against the per-request cap and the client address's rate.
fn limit(ctx: &Context<'_>, bucket: &str) -> async_graphql::Result<()> {
    if let Some(limits) = ctx.data_opt::<Arc<Limits>>() {
        let done = request(ctx).costly.fetch_add(1, Ordering::Relaxed) + 1;
        let cap = limits.costly_per_request();
        if cap > 0 && done > cap {
            return Err(fail(
                ctx,
                ApiError::new(
                    "TOO_MANY_ATTEMPTS",
                    format!("One request may send mail or check a password at most {cap} times. Send the operations one by one."),
                    format!("Én forespørsel kan sende e-post eller sjekke passord høyst {cap} ganger. Send operasjonene én og én."),
                )
                .with("limit", serde_json::json!(cap)),
            ));
        }
        limits
            .check(bucket, request(ctx).client_ip)
            .map_err(|wait| fail(ctx, ApiError::too_many_attempts(Some(wait))))?;
    }
    Ok(())
}

/// A calendar date, `YYYY-MM-DD`. Input is checked by the resolvers, so a
/// bad date is an `INVALID_INPUT` naming its field.
#[derive(Debug, Clone)]
pub struct Date(pub Result<NaiveDate, String>);

#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> async_graphql::InputValueResult<Self> {
        match value {
            Value::String(s) => Ok(Date(
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| s),
            )),
            other => Ok(Date(Err(other.to_string()))),
        }
    }

    fn to_value(&self) -> Value {
        match &self.0 {
            Ok(d) => Value::String(d.format("%Y-%m-%d").to_string()),
            Err(raw) => Value::String(raw.clone()),
        }
    }
}

/// An instant, RFC 3339 (`2026-05-01T10:00:00Z`). Input is checked by the
/// resolvers, so a bad instant is an `INVALID_INPUT` naming its field.
#[derive(Debug, Clone)]
pub struct Instant(pub Result<DateTime<Utc>, String>);

impl From<DateTime<Utc>> for Instant {
    fn from(t: DateTime<Utc>) -> Self {
        Instant(Ok(t))
    }
}

#[Scalar(name = "DateTime")]
impl ScalarType for Instant {
    fn parse(value: Value) -> async_graphql::InputValueResult<Self> {
        match value {
            Value::String(s) => Ok(Instant(
                DateTime::parse_from_rfc3339(s.trim())
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| s),
            )),
            other => Ok(Instant(Err(other.to_string()))),
        }
    }

    fn to_value(&self) -> Value {
        match &self.0 {
            Ok(t) => Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            Err(raw) => Value::String(raw.clone()),
        }
    }
}

fn date_input(
    ctx: &Context<'_>,
    field: &'static str,
    date: &Date,
) -> async_graphql::Result<NaiveDate> {
    date.0.clone().map_err(|_| {
        fail(
            ctx,
            ApiError::invalid_input(
                field,
                "The date must be a real date written YYYY-MM-DD.",
                "Datoen må være en gyldig dato skrevet ÅÅÅÅ-MM-DD.",
            ),
        )
    })
}

fn instant_input(
    ctx: &Context<'_>,
    field: &'static str,
    t: &Instant,
) -> async_graphql::Result<DateTime<Utc>> {
    t.0.clone().map_err(|_| {
        fail(
            ctx,
            ApiError::invalid_input(
                field,
                "The time must be written as RFC 3339, e.g. 2026-05-01T10:00:00Z.",
                "Tidspunktet må skrives som RFC 3339, f.eks. 2026-05-01T10:00:00Z.",
            ),
        )
    })
}

macro_rules! mirror_enum {
    ($(#[$meta:meta])* $name:ident => $domain:path { $($variant:ident $(as $gql:literal)? => $dv:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
        pub enum $name {
            $($(#[graphql(name = $gql)])? $variant),+
        }

        impl From<$name> for $domain {
            fn from(v: $name) -> Self {
                match v { $($name::$variant => <$domain>::$dv),+ }
            }
        }

        impl From<$domain> for $name {
            fn from(v: $domain) -> Self {
                match v { $(<$domain>::$dv => $name::$variant),+ }
            }
        }
    };
}

mirror_enum!(
    /// How the identity logs in.
    LoginMethod => domain::LoginMethod { Password => Password, Idporten as "IDPORTEN" => IdPorten }
);
mirror_enum!(
    /// What is applied for.
    ApplicationKind => app_domain::Kind {
        Work => Work, Family => Family, Study => Study, Visit => Visit,
        Protection => Protection, Citizenship => Citizenship
    }
);
mirror_enum!(
    /// Who the application is for, seen from the person applying.
    Relation => app_domain::Relation {
        Myself as "SELF" => Myself, FamilyMember => FamilyMember, Employee => Employee, Other => Other
    }
);
mirror_enum!(
    /// Where the case stands.
    ApplicationStatus => app_domain::Status {
        Draft => Draft, Submitted => Submitted, AppointmentBooked => AppointmentBooked,
        DocumentsReceived => DocumentsReceived, Decided => Decided
    }
);
mirror_enum!(
    /// Kinds of meeting points.
    MeetingPointKind => app_domain::MeetingPointKind {
        Police => Police, Sua as "SUA" => Sua, Embassy => Embassy, VisaCentre => VisaCentre
    }
);
mirror_enum!(
    /// Why the appointment is booked.
    AppointmentPurpose => app_domain::AppointmentPurpose {
        Application => Application, ResidenceCardPhoto => ResidenceCardPhoto
    }
);
mirror_enum!(
    /// The outcome of a case.
    DecisionOutcome => DomainOutcome { Granted => Granted, Refused => Refused }
);
mirror_enum!(
    /// How the decision reaches the person.
    DeliveryChannel => app_domain::DeliveryChannel { Digipost => Digipost, Post => Post }
);

/// The logged-in identity.
pub struct Viewer(AccountView);

#[Object]
impl Viewer {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn login_method(&self) -> LoginMethod {
        self.0.method.into()
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn email(&self) -> Option<&str> {
        self.0.email.as_ref().map(|e| e.as_str())
    }
}

/// A started registration or recovery.
#[derive(SimpleObject)]
pub struct FlowStarted {
    flow_id: ID,
    expires_at: Instant,
}

impl From<crate::services::FlowStarted> for FlowStarted {
    fn from(f: crate::services::FlowStarted) -> Self {
        FlowStarted {
            flow_id: ID(f.flow_id.to_string()),
            expires_at: f.expires_at.into(),
        }
    }
}

/// A new session. The token is shown only here.
pub struct Session(IssuedSession);

#[Object]
impl Session {
    async fn token(&self) -> &str {
        &self.0.token
    }
    async fn expires_at(&self) -> Instant {
        self.0.expires_at.into()
    }
    async fn viewer(&self) -> Viewer {
        Viewer(self.0.account.clone())
    }
}

/// The password rules in force, for the form to show.
#[derive(SimpleObject)]
pub struct PasswordPolicy {
    kind: String,
    min_length: i32,
    max_length: i32,
    requires_uppercase: bool,
    requires_lowercase: bool,
    requires_digit: bool,
    allowed_characters: String,
    checks_common_passwords: bool,
    /// Every rule, in words, in the request's language.
    rules: Vec<String>,
    /// The code of each rule of `rules`, in the same order (`TOO_SHORT`,
    /// `MISSING_DIGIT`, ...; `CONTAINS_EMAIL` is reported in `violations`
    /// as `COMMON_PASSWORD`), so a form can tick them off while typing.
    rule_codes: Vec<String>,
}

/// A booked appointment.
pub struct Appointment(app_domain::Appointment);

#[Object]
impl Appointment {
    async fn meeting_point(&self) -> MeetingPointKind {
        self.0.meeting_point.into()
    }
    async fn location(&self) -> &str {
        &self.0.location
    }
    async fn starts_at(&self) -> Instant {
        self.0.starts_at.into()
    }
    async fn purpose(&self) -> AppointmentPurpose {
        self.0.purpose.into()
    }
}

/// A decision made on the case.
#[derive(SimpleObject)]
pub struct Decision {
    outcome: DecisionOutcome,
    channel: DeliveryChannel,
    decided_at: Instant,
}

/// One application, as its owner sees it.
pub struct Application(pub(crate) ApplicationView);

#[Object]
impl Application {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn kind(&self) -> ApplicationKind {
        self.0.kind.into()
    }
    async fn relation(&self) -> Relation {
        self.0.relation.into()
    }
    async fn applicant_name(&self) -> &str {
        self.0.applicant.name.as_str()
    }
    async fn applicant_birth_date(&self) -> Date {
        Date(Ok(self.0.applicant.birth_date))
    }
    async fn applicant_nationality(&self) -> &str {
        self.0.applicant.nationality.as_str()
    }
    async fn status(&self) -> ApplicationStatus {
        self.0.status.into()
    }
    /// What the person should do next, in the request's language.
    async fn next_step(&self, ctx: &Context<'_>) -> &'static str {
        match lang(ctx) {
            Lang::En => self.0.next_step_en(),
            Lang::Nb => self.0.next_step_nb(),
        }
    }
    async fn created_at(&self) -> Instant {
        self.0.created_at.into()
    }
    async fn submitted_at(&self) -> Option<Instant> {
        self.0.submitted_at.map(Into::into)
    }
    /// The appointment that is coming up (the photo one after a grant).
    async fn appointment(&self) -> Option<Appointment> {
        self.0.current_appointment().cloned().map(Appointment)
    }
    async fn fee_paid(&self) -> bool {
        self.0.fee_paid()
    }
    async fn refund_requested(&self) -> bool {
        self.0.refund_requested()
    }
    async fn decision(&self) -> Option<Decision> {
        self.0.decision.map(|d| Decision {
            outcome: d.outcome.into(),
            channel: d.channel.into(),
            decided_at: d.at.into(),
        })
    }
}

/// Paging information.
#[derive(SimpleObject)]
pub struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

/// One edge of a page.
#[derive(SimpleObject)]
pub struct ApplicationEdge {
    node: Application,
    cursor: String,
}

/// A page of applications, newest first.
#[derive(SimpleObject)]
pub struct ApplicationConnection {
    edges: Vec<ApplicationEdge>,
    page_info: PageInfo,
    total_count: i32,
}

/// The caller's pre-April 2022 applications in the old portal.
#[derive(SimpleObject)]
pub struct LegacyNotice {
    count: i32,
    references: Vec<String>,
    guidance: String,
}

/// Everything the caller has applied for.
#[derive(SimpleObject)]
pub struct ApplicationOverview {
    applications: Vec<Application>,
    legacy: Option<LegacyNotice>,
}

/// Input of `createApplication`.
#[derive(InputObject)]
pub struct PersonInput {
    name: String,
    birth_date: Date,
    /// ISO 3166-1 alpha-3.
    nationality: String,
}

/// Input of `createApplication`.
#[derive(InputObject)]
pub struct CreateApplicationInput {
    kind: ApplicationKind,
    relation: Relation,
    applicant: PersonInput,
}

/// Input of `bookAppointment`.
#[derive(InputObject)]
pub struct BookAppointmentInput {
    meeting_point: MeetingPointKind,
    location: String,
    starts_at: Instant,
    #[graphql(default_with = "Some(AppointmentPurpose::Application)")]
    purpose: Option<AppointmentPurpose>,
}

impl BookAppointmentInput {
    fn parse(self, ctx: &Context<'_>) -> async_graphql::Result<NewAppointment> {
        Ok(NewAppointment {
            starts_at: instant_input(ctx, "startsAt", &self.starts_at)?,
            meeting_point: self.meeting_point.into(),
            location: self.location,
            purpose: self
                .purpose
                .unwrap_or(AppointmentPurpose::Application)
                .into(),
        })
    }
}

/// Longest accepted id or free-text argument at the GraphQL edge.
const MAX_ARGUMENT: usize = 1_024;

fn bounded(ctx: &Context<'_>, field: &'static str, value: &str) -> async_graphql::Result<()> {
    if value.len() > MAX_ARGUMENT {
        return Err(fail(
            ctx,
            ApiError::invalid_input(
                field,
                "This field is too long.",
                "Dette feltet er for langt.",
            ),
        ));
    }
    Ok(())
}

/// An application id too long to be anyone's gets the same `NOT_FOUND` as any
/// other id that is not the caller's.
fn bounded_application_id(ctx: &Context<'_>, value: &str) -> async_graphql::Result<()> {
    if value.len() > MAX_ARGUMENT {
        return Err(fail(ctx, ApiError::not_found()));
    }
    Ok(())
}

/// Queries.
pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The logged-in identity; null without a session.
    async fn me(&self, ctx: &Context<'_>) -> Option<Viewer> {
        let caller = request(ctx).caller?;
        services(ctx).viewer(&caller).map(Viewer)
    }

    /// The password rules in force.
    async fn password_policy(&self, ctx: &Context<'_>) -> PasswordPolicy {
        let policy = services(ctx).settings().password_policy;
        let d = policy.describe();
        let in_force: Vec<_> = domain::password::PasswordViolation::ALL
            .iter()
            .filter(|v| match v {
                domain::password::PasswordViolation::MissingUppercase => d.requires_uppercase,
                domain::password::PasswordViolation::MissingLowercase => d.requires_lowercase,
                domain::password::PasswordViolation::MissingDigit => d.requires_digit,
                domain::password::PasswordViolation::CommonPassword
                | domain::password::PasswordViolation::ContainsEmail => d.checks_common_passwords,
                _ => true,
            })
            .collect();
        let rules = in_force
            .iter()
            .map(|v| match lang(ctx) {
                Lang::En => v.message_en(&policy),
                Lang::Nb => v.message_nb(&policy),
            })
            .collect();
        let rule_codes = in_force.iter().map(|v| v.code().to_owned()).collect();
        PasswordPolicy {
            kind: d.kind.to_owned(),
            min_length: d.min_length as i32,
            max_length: d.max_length as i32,
            requires_uppercase: d.requires_uppercase,
            requires_lowercase: d.requires_lowercase,
            requires_digit: d.requires_digit,
            allowed_characters: d.allowed_characters.to_owned(),
            checks_common_passwords: d.checks_common_passwords,
            rules,
            rule_codes,
        }
    }

    /// The caller's applications, newest first.
    async fn my_applications(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ApplicationConnection> {
        let caller = caller(ctx)?;
        let first = first.unwrap_or(20);
        if !(0..=100).contains(&first) {
            return Err(fail(
                ctx,
                ApiError::invalid_input(
                    "first",
                    "first must be between 0 and 100.",
                    "first må være mellom 0 og 100.",
                ),
            ));
        }
        if let Some(after) = &after {
            bounded(ctx, "after", after)?;
        }
        let app = services(ctx);
        let (page, more) = app
            .my_applications(&caller, first as usize, after.as_deref())
            .map_err(|e| fail(ctx, e))?;
        let total = app
            .projections()
            .read(|m| m.application_count(caller.account));
        let end_cursor = page.last().map(|a| a.id.to_string());
        Ok(ApplicationConnection {
            edges: page
                .into_iter()
                .map(|a| ApplicationEdge {
                    cursor: a.id.to_string(),
                    node: Application(a),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: more,
                end_cursor,
            },
            total_count: total as i32,
        })
    }

    /// One application; null unless it belongs to the caller.
    async fn application(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<Application>> {
        let caller = caller(ctx)?;
        if id.len() > MAX_ARGUMENT {
            return Ok(None);
        }
        Ok(services(ctx).application(&caller, &id).map(Application))
    }

    /// Every application of the caller, and the legacy notice.
    async fn application_overview(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<ApplicationOverview> {
        let caller = caller(ctx)?;
        let (apps, notice) = services(ctx).application_overview(&caller);
        Ok(ApplicationOverview {
            applications: apps.into_iter().map(Application).collect(),
            legacy: notice.map(|n| LegacyNotice {
                count: n.count as i32,
                references: n.references,
                guidance: match lang(ctx) {
                    Lang::En => n.guidance_en.to_owned(),
                    Lang::Nb => n.guidance_nb.to_owned(),
                },
            }),
        })
    }
}

/// Mutations.
pub struct MutationRoot;

fn session_cookie(ctx: &Context<'_>, session: &IssuedSession) {
    if request(ctx).cookies {
        let (session_cookie, csrf_cookie) = crate::cookies::session_cookies(
            &services(ctx).keyer,
            &session.token,
            session.expires_at,
        );
        ctx.append_http_header("Set-Cookie", session_cookie);
        ctx.append_http_header("Set-Cookie", csrf_cookie);
    }
}

#[Object]
impl MutationRoot {
    /// Start a registration: a code is emailed.
    async fn start_registration(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> async_graphql::Result<FlowStarted> {
        bounded(ctx, "email", &email)?;
        limit(ctx, "mail")?;
        services(ctx)
            .start_registration(&email)
            .await
            .map(Into::into)
            .map_err(|e| fail(ctx, e))
    }

    /// Check the emailed registration code.
    async fn verify_registration_code(
        &self,
        ctx: &Context<'_>,
        flow_id: ID,
        code: String,
    ) -> async_graphql::Result<bool> {
        bounded(ctx, "flowId", &flow_id)?;
        bounded(ctx, "code", &code)?;
        services(ctx)
            .verify_code(FlowKind::Registration, &flow_id, &code)
            .await
            .map_err(|e| fail(ctx, e))
    }

    /// Choose the password and name: the account is created and logged in.
    async fn complete_registration(
        &self,
        ctx: &Context<'_>,
        flow_id: ID,
        password: String,
        name: String,
    ) -> async_graphql::Result<Session> {
        bounded(ctx, "flowId", &flow_id)?;
        bounded(ctx, "name", &name)?;
        limit(ctx, "password")?;
        let session = services(ctx)
            .complete_registration(&flow_id, &password, &name)
            .await
            .map_err(|e| fail(ctx, e))?;
        session_cookie(ctx, &session);
        Ok(Session(session))
    }

    /// Send a new code for a registration or recovery.
    async fn resend_code(
        &self,
        ctx: &Context<'_>,
        flow_id: ID,
    ) -> async_graphql::Result<FlowStarted> {
        bounded(ctx, "flowId", &flow_id)?;
        limit(ctx, "mail")?;
        services(ctx)
            .resend_code(&flow_id)
            .await
            .map(Into::into)
            .map_err(|e| fail(ctx, e))
    }

    /// Start a password reset. Answers the same for unknown addresses.
    async fn start_password_recovery(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> async_graphql::Result<FlowStarted> {
        bounded(ctx, "email", &email)?;
        limit(ctx, "mail")?;
        services(ctx)
            .start_password_recovery(&email)
            .await
            .map(Into::into)
            .map_err(|e| fail(ctx, e))
    }

    /// Check the emailed recovery code.
    async fn verify_recovery_code(
        &self,
        ctx: &Context<'_>,
        flow_id: ID,
        code: String,
    ) -> async_graphql::Result<bool> {
        bounded(ctx, "flowId", &flow_id)?;
        bounded(ctx, "code", &code)?;
        services(ctx)
            .verify_code(FlowKind::Recovery, &flow_id, &code)
            .await
            .map_err(|e| fail(ctx, e))
    }

    /// Set the new password; every session of the account ends.
    async fn complete_password_recovery(
        &self,
        ctx: &Context<'_>,
        flow_id: ID,
        new_password: String,
    ) -> async_graphql::Result<bool> {
        bounded(ctx, "flowId", &flow_id)?;
        limit(ctx, "password")?;
        services(ctx)
            .complete_password_recovery(&flow_id, &new_password)
            .await
            .map_err(|e| fail(ctx, e))
    }

    /// Log in with email and password.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> async_graphql::Result<Session> {
        bounded(ctx, "email", &email)?;
        limit(ctx, "password")?;
        let logged_in = services(ctx)
            .login(&email, &password, request(ctx).device_token.as_deref())
            .await
            .map_err(|e| fail(ctx, e))?;
        session_cookie(ctx, &logged_in.session);
        if request(ctx).cookies {
            ctx.append_http_header(
                "Set-Cookie",
                crate::cookies::device_cookie(&logged_in.device_token),
            );
        }
        Ok(Session(logged_in.session))
    }

    /// End the current session.
    async fn logout(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let caller = caller(ctx)?;
        let done = services(ctx)
            .logout(&caller)
            .await
            .map_err(|e| fail(ctx, e))?;
        if request(ctx).cookies {
            ctx.append_http_header("Set-Cookie", crate::cookies::cleared_session_cookie());
        }
        Ok(done)
    }

    /// Start an application (a draft) owned by the caller.
    async fn create_application(
        &self,
        ctx: &Context<'_>,
        input: CreateApplicationInput,
    ) -> async_graphql::Result<Application> {
        let caller = caller(ctx)?;
        bounded(ctx, "applicant.name", &input.applicant.name)?;
        bounded(ctx, "applicant.nationality", &input.applicant.nationality)?;
        services(ctx)
            .create_application(
                &caller,
                NewApplication {
                    kind: input.kind.into(),
                    relation: input.relation.into(),
                    applicant_name: input.applicant.name,
                    birth_date: date_input(
                        ctx,
                        "applicant.birthDate",
                        &input.applicant.birth_date,
                    )?,
                    nationality: input.applicant.nationality,
                },
            )
            .await
            .map(Application)
            .map_err(|e| fail(ctx, e))
    }

    /// Send the application in.
    async fn submit_application(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Application> {
        let caller = caller(ctx)?;
        bounded_application_id(ctx, &id)?;
        services(ctx)
            .submit_application(&caller, &id)
            .await
            .map(Application)
            .map_err(|e| fail(ctx, e))
    }

    /// Book an appointment at a meeting point (a confirmation is emailed).
    async fn book_appointment(
        &self,
        ctx: &Context<'_>,
        application_id: ID,
        input: BookAppointmentInput,
    ) -> async_graphql::Result<Appointment> {
        let caller = caller(ctx)?;
        bounded_application_id(ctx, &application_id)?;
        bounded(ctx, "location", &input.location)?;
        let purpose: app_domain::AppointmentPurpose = input
            .purpose
            .unwrap_or(AppointmentPurpose::Application)
            .into();
        let application = services(ctx)
            .book_appointment(&caller, &application_id, input.parse(ctx)?)
            .await
            .map_err(|e| fail(ctx, e))?;
        let booked = match purpose {
            app_domain::AppointmentPurpose::Application => application.appointment,
            app_domain::AppointmentPurpose::ResidenceCardPhoto => application.photo_appointment,
        };
        booked
            .map(Appointment)
            .ok_or_else(|| fail(ctx, ApiError::internal()))
    }

    /// Move a booked appointment.
    async fn reschedule_appointment(
        &self,
        ctx: &Context<'_>,
        application_id: ID,
        input: BookAppointmentInput,
    ) -> async_graphql::Result<Application> {
        let caller = caller(ctx)?;
        bounded_application_id(ctx, &application_id)?;
        bounded(ctx, "location", &input.location)?;
        services(ctx)
            .reschedule_appointment(&caller, &application_id, input.parse(ctx)?)
            .await
            .map(Application)
            .map_err(|e| fail(ctx, e))
    }

    /// Cancel the booked appointment.
    async fn cancel_appointment(
        &self,
        ctx: &Context<'_>,
        application_id: ID,
    ) -> async_graphql::Result<Application> {
        let caller = caller(ctx)?;
        bounded_application_id(ctx, &application_id)?;
        services(ctx)
            .cancel_appointment(&caller, &application_id)
            .await
            .map(Application)
            .map_err(|e| fail(ctx, e))
    }

    /// Ask for the paid fee back.
    async fn request_refund(
        &self,
        ctx: &Context<'_>,
        application_id: ID,
    ) -> async_graphql::Result<Application> {
        let caller = caller(ctx)?;
        bounded_application_id(ctx, &application_id)?;
        services(ctx)
            .request_refund(&caller, &application_id)
            .await
            .map(Application)
            .map_err(|e| fail(ctx, e))
    }

    /// Caseworker service: the documents were handed in.
    async fn register_documents_received(
        &self,
        ctx: &Context<'_>,
        application_id: ID,
    ) -> async_graphql::Result<Application> {
        let service = caseworker(ctx)?;
        bounded(ctx, "applicationId", &application_id)?;
        services(ctx)
            .register_documents_received(&service, &application_id)
            .await
            .map(Application)
            .map_err(|e| fail(ctx, e))
    }

    /// Caseworker service: the fee was paid.
    async fn register_fee_paid(
        &self,
        ctx: &Context<'_>,
        application_id: ID,
        amount_nok: i32,
    ) -> async_graphql::Result<Application> {
        let service = caseworker(ctx)?;
        bounded(ctx, "applicationId", &application_id)?;
        let amount = u32::try_from(amount_nok).map_err(|_| {
            fail(
                ctx,
                ApiError::invalid_input(
                    "amountNok",
                    "The amount must be positive.",
                    "Beløpet må være positivt.",
                ),
            )
        })?;
        services(ctx)
            .register_fee_paid(&service, &application_id, amount)
            .await
            .map(Application)
            .map_err(|e| fail(ctx, e))
    }

    /// Caseworker service: the decision.
    async fn make_decision(
        &self,
        ctx: &Context<'_>,
        application_id: ID,
        outcome: DecisionOutcome,
        has_digipost: bool,
    ) -> async_graphql::Result<Application> {
        let service = caseworker(ctx)?;
        bounded(ctx, "applicationId", &application_id)?;
        services(ctx)
            .make_decision(&service, &application_id, outcome.into(), has_digipost)
            .await
            .map(Application)
            .map_err(|e| fail(ctx, e))
    }
}

fn caseworker(ctx: &Context<'_>) -> async_graphql::Result<String> {
    request(ctx).service.clone().ok_or_else(|| {
        fail(
            ctx,
            ApiError::new(
                "UNAUTHENTICATED",
                "Only the caseworker systems may do this, with their service credential.",
                "Bare saksbehandlingssystemene kan gjøre dette, med sin tjenestenøkkel.",
            ),
        )
    })
}
