//! The services behind the API (`App`, its settings and the command loop's
//! use) and the account flows: registration, recovery, login, sessions and
//! ID-porten accounts. Each operation parses its input, runs the pure
//! deciders through the command loop, waits until the read models have seen
//! the write (read-your-writes), and maps refusals to `ApiError`. The case
//! services are in `case_services`.

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use domain::account::{self, LoginOutcome, NewSession};
use domain::address::{self, Source};
use domain::flow::{self, FlowKind, IssuedCode};
use domain::password::{Password, PasswordPolicyKind};
use domain::text::PersonName;
use domain::{AccountId, Email, FlowId, LoginMethod, SessionId, reservation};
use projections::{AccountView, Projections, SessionView};
use store::command::{self, Codec, ExecuteError, ExecuteOptions, Executed};
use store::{EventMetadata, EventStore, ExpectedRevision};

use crate::activity::SessionActivity;
use crate::codec::EventCodec;
use crate::error::ApiError;
use crate::password_hashing::{HashError, PasswordHasher};
use keys::Keyer;

/// The longest ID-porten sessions may stay idle.
pub const IDPORTEN_MAX_IDLE: Duration = Duration::minutes(30);

/// Tunables of the services.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long an emailed code is valid.
    pub code_ttl: Duration,
    pub password_policy: PasswordPolicyKind,
    /// Idle timeout of password sessions (ID-porten: at most 30 minutes).
    pub session_idle: Duration,
    /// Absolute lifetime of a session.
    pub session_lifetime: Duration,
    /// How long a mutation waits for the read models to see its write.
    pub read_your_writes_timeout: std::time::Duration,
    /// Codes and notices one email address may be sent over a window,
    /// whoever asks for them.
    pub recipient_mail_limit: address::MailLimit,
    /// How far ahead of now an appointment may start.
    pub booking_horizon: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            code_ttl: Duration::minutes(10),
            password_policy: PasswordPolicyKind::Seed,
            session_idle: Duration::minutes(60),
            session_lifetime: Duration::hours(12),
            read_your_writes_timeout: std::time::Duration::from_secs(5),
            recipient_mail_limit: address::MailLimit {
                max: 6,
                window: Duration::hours(1),
            },
            booking_horizon: Duration::days(365),
        }
    }
}

/// Who is calling, once their session is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub account: AccountId,
    pub method: LoginMethod,
    pub session: SessionId,
}

impl Caller {
    pub fn identity(&self) -> domain::LoginIdentity {
        domain::LoginIdentity {
            account: self.account,
            method: self.method,
        }
    }

    fn actor(&self) -> String {
        format!("account:{}", self.account)
    }
}

/// A started flow, as the API answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowStarted {
    pub flow_id: FlowId,
    pub expires_at: DateTime<Utc>,
}

/// A new session: the token is shown once and never stored.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub account: AccountView,
}

/// A password login: the session, and the device cookie that lets this
/// browser through the throttling of its address later.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    pub session: IssuedSession,
    pub device_token: String,
}

/// The services over one store.
#[derive(Clone)]
pub struct App {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) projections: Projections,
    pub(crate) hasher: PasswordHasher,
    pub(crate) keyer: Keyer,
    /// Seals and opens personal data with the data keys of the store.
    pub(crate) codec: EventCodec,
    pub(crate) settings: Settings,
    activity: Arc<SessionActivity>,
}

/// A store or codec failure: logged in full, reported as `INTERNAL`.
pub(crate) fn internal(context: &str, error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "{context}");
    ApiError::internal()
}

pub(crate) fn store_failure<E>(context: &str, error: ExecuteError<E>) -> ApiError {
    match error {
        ExecuteError::Domain(_) => internal(context, "unmapped domain refusal"),
        ExecuteError::TooManyConflicts { .. } => ApiError::overloaded(),
        ExecuteError::Store(error) => store_error(context, error),
        other => internal(context, other),
    }
}

/// A failure of the store itself: unreachable is `UNAVAILABLE` (503, the
/// client may try again), anything else `INTERNAL`.
pub(crate) fn store_error(context: &str, error: store::StoreError) -> ApiError {
    match error {
        store::StoreError::Backend(_)
        | store::StoreError::Unavailable(_)
        | store::StoreError::Closed => {
            tracing::error!(%error, "{context}: the store is unavailable");
            ApiError::unavailable()
        }
        other => internal(context, other),
    }
}

fn hash_failure(error: HashError) -> ApiError {
    match error {
        HashError::Overloaded => ApiError::overloaded(),
        HashError::TooLong => ApiError::invalid_input(
            "password",
            "The password is too long.",
            "Passordet er for langt.",
        ),
        other => internal("password hashing failed", other),
    }
}

impl App {
    pub fn new(
        store: Arc<dyn EventStore>,
        projections: Projections,
        hasher: PasswordHasher,
        keyer: Keyer,
        ring: Arc<keys::KeyRing>,
        settings: Settings,
    ) -> App {
        let activity = Arc::new(SessionActivity::new(store.clone(), settings.session_idle));
        App {
            activity,
            store,
            projections,
            hasher,
            keyer,
            codec: EventCodec::new(ring),
            settings,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    pub fn projections(&self) -> &Projections {
        &self.projections
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn metadata(&self, actor: &str) -> EventMetadata {
        EventMetadata {
            actor: actor.into(),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            occurred_at: self.now(),
        }
    }

    /// Run one command through the command loop.
    pub(crate) async fn run<D>(
        &self,
        stream: &str,
        command: &D::Command,
        actor: &str,
    ) -> Result<Executed<D::Event>, ExecuteError<D::Error>>
    where
        D: domain::Decider,
        EventCodec: Codec<D::Event>,
    {
        self.run_loaded::<D>(stream, command, actor, None).await
    }

    /// [`App::run`], deciding first on `loaded` when the caller has just
    /// folded the stream with [`App::load_versioned`]: one read instead of two.
    pub(crate) async fn run_loaded<D>(
        &self,
        stream: &str,
        command: &D::Command,
        actor: &str,
        loaded: Option<(D::State, ExpectedRevision)>,
    ) -> Result<Executed<D::Event>, ExecuteError<D::Error>>
    where
        D: domain::Decider,
        EventCodec: Codec<D::Event>,
    {
        let executed = command::execute_loaded::<D, EventCodec>(
            self.store.as_ref(),
            &self.codec,
            stream,
            command,
            &self.metadata(actor),
            ExecuteOptions::default(),
            loaded,
        )
        .await?;
        if let Some(append) = executed.append {
            crate::positions::wrote(append.position);
        }
        Ok(executed)
    }

    /// Fold a stream into its state.
    pub(crate) async fn load<D>(&self, stream: &str) -> Result<D::State, ApiError>
    where
        D: domain::Decider,
        EventCodec: Codec<D::Event>,
    {
        self.load_versioned::<D>(stream)
            .await
            .map(|(state, _)| state)
    }

    /// Fold a stream into its state and the revision the next append expects.
    pub(crate) async fn load_versioned<D>(
        &self,
        stream: &str,
    ) -> Result<(D::State, ExpectedRevision), ApiError>
    where
        D: domain::Decider,
        EventCodec: Codec<D::Event>,
    {
        command::load::<D, EventCodec>(self.store.as_ref(), &self.codec, stream)
            .await
            .map_err(|e| store_failure("loading a stream failed", e))
    }

    /// Wait until the read models include `executed`'s write.
    pub(crate) async fn settle<E>(&self, executed: &Executed<E>) {
        if let Some(append) = executed.append {
            self.wait_for(append.position).await;
        }
    }

    pub(crate) async fn wait_for(&self, position: u64) {
        if let Err(e) = self
            .projections
            .wait_for(position, self.settings.read_your_writes_timeout)
            .await
        {
            tracing::warn!(error = %e, "read models lag behind a write");
        }
    }

    fn issue_code(&self, flow: FlowId, at: DateTime<Utc>) -> IssuedCode {
        let nonce: [u8; 16] = rand::random();
        let code = self.keyer.code(flow, &nonce);
        IssuedCode {
            nonce,
            digest: self.keyer.code_digest(flow, &code),
            expires_at: at + self.settings.code_ttl,
        }
    }

    fn parse_email(raw: &str) -> Result<Email, ApiError> {
        // An address a person types may not hide text direction changes or
        // invisible characters (it is shown in mails and in the portal).
        if raw
            .chars()
            .any(|c| domain::text::is_bidi_control(c) || domain::text::is_format(c))
        {
            return Err(ApiError::invalid_input(
                "email",
                "The email address contains invisible or direction-changing characters.",
                "E-postadressen inneholder usynlige eller retningsendrende tegn.",
            ));
        }
        Email::parse(raw).map_err(|e| {
            let nb = match e {
                domain::email::EmailError::Empty => "E-postadressen mangler.",
                domain::email::EmailError::TooLong => "E-postadressen er for lang.",
                domain::email::EmailError::Malformed => {
                    "Dette er ikke en gyldig e-postadresse (navn@domene.no)."
                }
            };
            ApiError::invalid_input("email", e.to_string(), nb)
        })
    }

    fn parse_flow_id(raw: &str) -> Result<FlowId, ApiError> {
        Uuid::parse_str(raw.trim())
            .map(FlowId)
            .map_err(|_| ApiError::flow_not_found())
    }

    /// The holder of the reservation of `email`, if any.
    async fn email_holder(&self, email: &Email) -> Result<Option<AccountId>, ApiError> {
        let stream = keys::email_stream(&self.keyer.email_key(email));
        Ok(self.load::<reservation::Reservation>(&stream).await?.holder)
    }

    // ----- registration and recovery -------------------------------------

    /// Start a registration. Answers the same whether or not an account
    /// has this email: a free address gets the code, a taken one a mail
    /// saying that it has an account and how to recover its password.
    pub async fn start_registration(&self, email: &str) -> Result<FlowStarted, ApiError> {
        let email = Self::parse_email(email)?;
        self.take_mail_quota(&email).await?;
        let holder = self.email_holder(&email).await?;
        self.start_flow(FlowKind::Registration, email, holder).await
    }

    /// Start a password recovery. Answers the same whether or not an account
    /// has this email; the mail says which.
    pub async fn start_password_recovery(&self, email: &str) -> Result<FlowStarted, ApiError> {
        let email = Self::parse_email(email)?;
        self.take_mail_quota(&email).await?;
        let holder = self.email_holder(&email).await?;
        self.start_flow(FlowKind::Recovery, email, holder).await
    }

    /// Count one mail to `email` against its limit, across every request,
    /// client and node (the count is a stream of the store).
    async fn take_mail_quota(&self, email: &Email) -> Result<(), ApiError> {
        let stream = keys::address_stream(&self.keyer.email_key(email));
        let command = address::Command::SendMail {
            limit: self.settings.recipient_mail_limit,
            at: self.now(),
        };
        match self
            .run::<address::Address>(&stream, &command, "anonymous")
            .await
        {
            Ok(_) => Ok(()),
            Err(ExecuteError::Domain(address::Error::MailLimitReached {
                retry_after_seconds,
            })) => Err(mail_limit_reached(retry_after_seconds)),
            Err(e) => Err(store_failure("counting a mail to an address", e)),
        }
    }

    async fn start_flow(
        &self,
        kind: FlowKind,
        email: Email,
        account: Option<AccountId>,
    ) -> Result<FlowStarted, ApiError> {
        let flow_id = FlowId(Uuid::now_v7());
        let at = self.now();
        let code = self.issue_code(flow_id, at);
        let command = flow::Command::Start {
            kind,
            email,
            account,
            code,
            at,
        };
        let executed = self
            .run::<flow::Flow>(&flow_id.stream(), &command, "anonymous")
            .await
            .map_err(flow_error)?;
        self.settle(&executed).await;
        Ok(FlowStarted {
            flow_id,
            expires_at: code.expires_at,
        })
    }

    /// Send a fresh code for a flow (cool-down, cap and the address's
    /// limit apply).
    pub async fn resend_code(&self, flow_id: &str) -> Result<FlowStarted, ApiError> {
        let flow_id = Self::parse_flow_id(flow_id)?;
        let at = self.now();
        let code = self.issue_code(flow_id, at);
        let command = flow::Command::Resend { code, at };
        let (state, expected) = self.load_versioned::<flow::Flow>(&flow_id.stream()).await?;
        // The flow's own refusals first: a resend it refuses costs the
        // address nothing.
        flow::decide(&state, &command).map_err(flow_refusal)?;
        let email = state.email.clone().ok_or_else(ApiError::flow_not_found)?;
        self.take_mail_quota(&email).await?;
        let executed = self
            .run_loaded::<flow::Flow>(
                &flow_id.stream(),
                &command,
                "anonymous",
                Some((state, expected)),
            )
            .await
            .map_err(flow_error)?;
        self.settle(&executed).await;
        Ok(FlowStarted {
            flow_id,
            expires_at: code.expires_at,
        })
    }

    /// Check a code typed for a flow of `kind`.
    pub async fn verify_code(
        &self,
        kind: FlowKind,
        flow_id: &str,
        code: &str,
    ) -> Result<bool, ApiError> {
        let flow_id = Self::parse_flow_id(flow_id)?;
        let trimmed = code.trim();
        if trimmed.len() > 32 {
            return Err(ApiError::invalid_input(
                "code",
                "The code is the six digits from the email.",
                "Koden er de seks sifrene fra e-posten.",
            ));
        }
        let state = self.load::<flow::Flow>(&flow_id.stream()).await?;
        if state.kind != Some(kind) {
            return Err(ApiError::flow_not_found());
        }
        let at = self.now();
        let command = flow::Command::Verify {
            submitted_digest: self.keyer.code_digest(flow_id, trimmed),
            at,
        };
        let executed = self
            .run::<flow::Flow>(&flow_id.stream(), &command, "anonymous")
            .await
            .map_err(flow_error)?;
        self.settle(&executed).await;
        match executed.events.first() {
            Some(flow::Event::CodeVerified { .. }) => Ok(true),
            Some(flow::Event::CodeRejected { attempts_left, .. }) => Err(ApiError::new(
                "CODE_INVALID",
                "The code is wrong. Check the email and try again.",
                "Koden er feil. Sjekk e-posten og prøv igjen.",
            )
            .with("attemptsLeft", json!(attempts_left))),
            _ => Err(internal("verifying a code", "no event decided")),
        }
    }

    /// A verified flow of `kind`, or the error to give.
    async fn verified_flow(
        &self,
        kind: FlowKind,
        flow_id: FlowId,
    ) -> Result<flow::State, ApiError> {
        let state = self.load::<flow::Flow>(&flow_id.stream()).await?;
        if state.kind != Some(kind) {
            return Err(ApiError::flow_not_found());
        }
        // The decider gives the precise refusal (not verified, expired, dead).
        let probe = flow::Command::Complete {
            account: AccountId(Uuid::nil()),
            at: self.now(),
        };
        flow::decide(&state, &probe).map_err(flow_refusal)?;
        Ok(state)
    }

    fn check_password(&self, raw: &str, email: &Email) -> Result<Password, ApiError> {
        let policy = &self.settings.password_policy;
        Password::parse(raw, policy, Some(email.as_str())).map_err(|violations| {
            let en: Vec<String> = violations.iter().map(|v| v.message_en(policy)).collect();
            let nb: Vec<String> = violations.iter().map(|v| v.message_nb(policy)).collect();
            ApiError::new(
                "PASSWORD_POLICY",
                format!("The password does not meet the rules: {}", en.join(" ")),
                format!("Passordet oppfyller ikke reglene: {}", nb.join(" ")),
            )
            .with("field", json!("password"))
            .with("violations", json!(contract_violation_codes(&violations)))
        })
    }

    fn parse_name(raw: &str) -> Result<PersonName, ApiError> {
        PersonName::parse(raw).map_err(|e| {
            ApiError::invalid_input(
                "name",
                format!("The name {e}."),
                match e {
                    domain::text::TextError::Empty => "Navnet kan ikke være tomt.".to_owned(),
                    domain::text::TextError::TooLong { max } => {
                        format!("Navnet kan ha høyst {max} tegn.")
                    }
                    domain::text::TextError::ControlCharacter => {
                        "Navnet inneholder ugyldige tegn.".to_owned()
                    }
                    domain::text::TextError::BidiControl => {
                        "Navnet kan ikke inneholde tegn som endrer skriveretningen.".to_owned()
                    }
                    domain::text::TextError::Invisible => {
                        "Navnet må inneholde minst ett synlig tegn.".to_owned()
                    }
                    domain::text::TextError::Markup => {
                        "Navnet kan ikke inneholde tegnene < eller >.".to_owned()
                    }
                },
            )
        })
    }

    /// Finish a registration: the account is created and a session starts.
    pub async fn complete_registration(
        &self,
        flow_id: &str,
        password: &str,
        name: &str,
    ) -> Result<IssuedSession, ApiError> {
        let flow_id = Self::parse_flow_id(flow_id)?;
        let state = self.verified_flow(FlowKind::Registration, flow_id).await?;
        let email = state.email.clone().ok_or_else(ApiError::flow_not_found)?;
        let name = Self::parse_name(name);
        let password = self.check_password(password, &email);
        let (name, password) = match (name, password) {
            (Ok(n), Ok(p)) => (n, p),
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        let phc = self
            .hasher
            .hash(password.as_str())
            .await
            .map_err(hash_failure)?;

        // Reserve the email; a retry from the same flow finds its own account.
        let reservation_stream = keys::email_stream(&self.keyer.email_key(&email));
        let candidate = AccountId(Uuid::now_v7());
        let reserve = reservation::Command::Reserve {
            account: candidate,
            flow: Some(flow_id),
        };
        match self
            .run::<reservation::Reservation>(&reservation_stream, &reserve, "anonymous")
            .await
        {
            Ok(_) => {}
            Err(ExecuteError::Domain(reservation::Error::Taken { .. })) => {
                return Err(email_taken());
            }
            Err(e) => return Err(store_failure("reserving an email", e)),
        }
        let account = self
            .load::<reservation::Reservation>(&reservation_stream)
            .await?
            .holder
            .ok_or_else(|| internal("reserving an email", "reservation vanished"))?;
        let at = self.now();
        let register = account::Command::RegisterWithPassword {
            email,
            name,
            password_phc: phc,
            at,
        };
        let actor = format!("account:{account}");
        match self
            .run::<account::Account>(&account.stream(), &register, &actor)
            .await
        {
            Ok(_) | Err(ExecuteError::Domain(account::Error::AlreadyExists)) => {}
            Err(e) => return Err(store_failure("registering an account", e)),
        }
        let complete = flow::Command::Complete { account, at };
        self.run::<flow::Flow>(&flow_id.stream(), &complete, &actor)
            .await
            .map_err(flow_error)?;
        self.start_session(account, LoginMethod::Password, None, None)
            .await
    }

    /// Finish a recovery: the password changes and every session ends.
    pub async fn complete_password_recovery(
        &self,
        flow_id: &str,
        new_password: &str,
    ) -> Result<bool, ApiError> {
        let flow_id = Self::parse_flow_id(flow_id)?;
        let state = self.verified_flow(FlowKind::Recovery, flow_id).await?;
        let (Some(email), Some(account)) = (state.email.clone(), state.account) else {
            return Err(ApiError::flow_not_found());
        };
        let password = self.check_password(new_password, &email)?;
        let phc = self
            .hasher
            .hash(password.as_str())
            .await
            .map_err(hash_failure)?;
        let at = self.now();
        let actor = format!("account:{account}");
        let change = account::Command::ChangePassword {
            password_phc: phc,
            at,
        };
        let executed = match self
            .run::<account::Account>(&account.stream(), &change, &actor)
            .await
        {
            Ok(executed) => executed,
            Err(ExecuteError::Domain(_)) => return Err(ApiError::flow_not_found()),
            Err(e) => return Err(store_failure("changing a password", e)),
        };
        self.run::<flow::Flow>(
            &flow_id.stream(),
            &flow::Command::Complete { account, at },
            &actor,
        )
        .await
        .map_err(flow_error)?;
        self.settle(&executed).await;
        Ok(true)
    }

    // ----- login and sessions --------------------------------------------

    /// Log in with email and password. `device_token` is the device cookie
    /// of a browser that logged in with this address before.
    ///
    /// Every step is the same whether or not an account has the email: the
    /// throttle of the address is read, a password hash is checked (a dummy
    /// one without an account), and a failure is recorded on the address,
    /// so neither the answer nor its time tells the two apart.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        device_token: Option<&str>,
    ) -> Result<LoggedIn, ApiError> {
        if password.len() > domain::password::MAX_PASSWORD_BYTES {
            return Err(ApiError::invalid_credentials());
        }
        let Ok(email) = Email::parse(email) else {
            let _ = self.hasher.verify_dummy(password).await;
            return Err(ApiError::invalid_credentials());
        };
        let key = self.keyer.email_key(&email);
        let address_stream = keys::address_stream(&key);
        let source = device_token
            .and_then(|token| self.keyer.device_of(&key, token))
            .map_or(Source::Untrusted, Source::Device);
        let (guard, guard_revision) = self
            .load_versioned::<address::Address>(&address_stream)
            .await?;
        if let Some(wait) = guard.login_delay(source, self.now()) {
            return Err(ApiError::too_many_attempts(Some(
                (wait.num_milliseconds() + 999) / 1000,
            )));
        }
        let holder = self
            .load::<reservation::Reservation>(&keys::email_stream(&key))
            .await?
            .holder;
        let account = match holder {
            Some(account) => Some((
                account,
                self.load_versioned::<account::Account>(&account.stream())
                    .await?,
            )),
            None => None,
        };
        let phc = account.as_ref().and_then(|(_, (state, _))| {
            (state.status == account::Status::Active)
                .then(|| state.password_phc.clone())
                .flatten()
        });
        let typed = domain::password::normalise_for_verification(password);
        let verdict = match &phc {
            Some(phc) => Some(
                self.hasher
                    .verify(&typed, phc)
                    .await
                    .map_err(hash_failure)?,
            ),
            None => {
                self.hasher
                    .verify_dummy(&typed)
                    .await
                    .map_err(hash_failure)?;
                None
            }
        };
        let needs_rehash = match (verdict, account) {
            (Some(verdict), Some(account)) if verdict.ok => Some((verdict.needs_rehash, account)),
            _ => None,
        };
        let had_failures = guard.failures(source).count > 0;
        let Some((needs_rehash, (account, loaded))) = needs_rehash else {
            let command = address::Command::RecordLoginFailure {
                source,
                at: self.now(),
            };
            self.run_loaded::<address::Address>(
                &address_stream,
                &command,
                "anonymous",
                Some((guard, guard_revision)),
            )
            .await
            .map_err(address_error)?;
            return Err(ApiError::invalid_credentials());
        };
        if had_failures {
            let command = address::Command::RecordLoginSuccess {
                source,
                at: self.now(),
            };
            self.run_loaded::<address::Address>(
                &address_stream,
                &command,
                &format!("account:{account}"),
                Some((guard, guard_revision)),
            )
            .await
            .map_err(address_error)?;
        }
        let rehash = if needs_rehash {
            Some(self.hasher.hash(&typed).await.map_err(hash_failure)?)
        } else {
            None
        };
        let session = self
            .start_session(account, LoginMethod::Password, rehash, Some(loaded))
            .await?;
        let device = match source {
            Source::Device(device) => device,
            Source::Untrusted => rand::random(),
        };
        Ok(LoggedIn {
            session,
            device_token: self.keyer.device_token(&key, &device),
        })
    }

    /// Start a session for an account whose credentials were checked,
    /// deciding first on the account's state when the caller has just
    /// loaded it (`loaded`).
    pub(crate) async fn start_session(
        &self,
        account: AccountId,
        method: LoginMethod,
        rehash: Option<String>,
        loaded: Option<(account::State, ExpectedRevision)>,
    ) -> Result<IssuedSession, ApiError> {
        let token_bytes: [u8; 32] = rand::random();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token_bytes);
        let at = self.now();
        let idle = match method {
            LoginMethod::Password => self.settings.session_idle,
            LoginMethod::IdPorten => self.settings.session_idle.min(IDPORTEN_MAX_IDLE),
        };
        let session = NewSession {
            id: SessionId(Uuid::now_v7()),
            token_digest: keys::token_digest(&token),
            expires_at: at + self.settings.session_lifetime,
            idle_timeout_seconds: idle.num_seconds().clamp(1, u32::MAX as i64) as u32,
        };
        let command = account::Command::Login {
            outcome: LoginOutcome::Success { session, rehash },
            at,
        };
        let stream = account.stream();
        let actor = format!("account:{account}");
        let executed = self
            .run_loaded::<account::Account>(&stream, &command, &actor, loaded)
            .await
            .map_err(account_error)?;
        self.settle(&executed).await;
        // Every node knows when a session started: nothing to share yet.
        self.activity.touch(session.id, at, false);
        let view = self
            .projections
            .read(|m| m.account(account).cloned())
            .ok_or_else(|| internal("starting a session", "account missing from read model"))?;
        Ok(IssuedSession {
            token,
            expires_at: session.expires_at,
            account: view,
        })
    }

    /// The caller behind a session token, if the session is live. Touches
    /// the session (idle timeout); activity on any node counts.
    pub async fn authenticate(&self, token: &str) -> Option<Caller> {
        if token.is_empty() || token.len() > 128 {
            return None;
        }
        let digest = keys::token_digest(token);
        let session: SessionView = self.projections.read(|m| m.session(&digest).copied())?;
        let now = self.now();
        if now >= session.expires_at {
            return None;
        }
        let idle = Duration::seconds(i64::from(session.idle_timeout_seconds));
        let seen = match self.activity.last_seen(session.id, now - idle).await {
            Ok(seen) => seen.unwrap_or(session.started_at).max(session.started_at),
            Err(error) => {
                tracing::warn!(%error, "the sessions' shared activity could not be read");
                session.started_at
            }
        };
        if now - seen > idle {
            self.activity.forget(session.id);
            return None;
        }
        self.activity.touch(session.id, now, true);
        Some(Caller {
            account: session.account,
            method: session.method,
            session: session.id,
        })
    }

    /// Until when the session whose token has `token_digest` is live for
    /// sure, looking without counting as a use of it (an open subscription
    /// does not keep a session alive); `Ok(None)` once it has ended (logout,
    /// expiry, idle timeout). `Err` when the sessions' shared activity
    /// could not be read: ask again later.
    pub async fn session_live_until(
        &self,
        token_digest: &[u8; 32],
    ) -> Result<Option<DateTime<Utc>>, store::StoreError> {
        let Some(session) = self.projections.read(|m| m.session(token_digest).copied()) else {
            return Ok(None);
        };
        let now = self.now();
        if now >= session.expires_at {
            return Ok(None);
        }
        let idle = Duration::seconds(i64::from(session.idle_timeout_seconds));
        let seen = self
            .activity
            .last_seen(session.id, now - idle)
            .await?
            .unwrap_or(session.started_at)
            .max(session.started_at);
        if now - seen > idle {
            return Ok(None);
        }
        Ok(Some((seen + idle).min(session.expires_at)))
    }

    /// Tell the other nodes which sessions this node saw used since the
    /// last call (see [`crate::activity`]).
    pub async fn share_session_activity(&self) {
        self.activity.flush(self.now()).await;
    }

    /// How often [`App::share_session_activity`] should run: a quarter of
    /// the shortest idle timeout, between 100 ms and 5 s.
    pub fn activity_flush_interval(&self) -> std::time::Duration {
        let shortest = self.settings.session_idle.min(IDPORTEN_MAX_IDLE) / 4;
        shortest.to_std().unwrap_or_default().clamp(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(5),
        )
    }

    /// End the caller's session.
    pub async fn logout(&self, caller: &Caller) -> Result<bool, ApiError> {
        let command = account::Command::Logout {
            session: caller.session,
            at: self.now(),
        };
        let executed = self
            .run::<account::Account>(&caller.account.stream(), &command, &caller.actor())
            .await
            .map_err(account_error)?;
        self.settle(&executed).await;
        self.activity.forget(caller.session);
        Ok(true)
    }

    /// The caller's account.
    pub fn viewer(&self, caller: &Caller) -> Option<AccountView> {
        self.projections
            .read(|m| m.account(caller.account).cloned())
    }

    // ----- ID-porten -----------------------------------------------------

    /// Create or reuse the account of a verified ID-porten login and start a
    /// session. Only `idporten-loa-high` is accepted.
    pub async fn login_idporten(
        &self,
        issuer: &str,
        pid: &str,
        acr: &str,
        name: &str,
    ) -> Result<IssuedSession, ApiError> {
        if acr != "idporten-loa-high" {
            return Err(insufficient_level());
        }
        let pid = pid.trim();
        if pid.is_empty() || pid.len() > 64 {
            return Err(ApiError::new(
                "INSUFFICIENT_LEVEL",
                "Your ID-porten login did not include a Norwegian national identity number, which this service needs.",
                "Innloggingen fra ID-porten manglet fødselsnummer eller d-nummer, som denne tjenesten trenger.",
            ));
        }
        let name = Self::parse_name(name)?;
        let subject = self.keyer.idporten_key(issuer, pid);
        let stream = keys::idporten_stream(&subject);
        let candidate = AccountId(Uuid::now_v7());
        let reserve = reservation::Command::Reserve {
            account: candidate,
            flow: None,
        };
        let account = match self
            .run::<reservation::Reservation>(&stream, &reserve, "idporten")
            .await
        {
            Ok(_) => candidate,
            Err(ExecuteError::Domain(reservation::Error::Taken { holder })) => holder,
            Err(e) => return Err(store_failure("reserving an ID-porten identity", e)),
        };
        let create = account::Command::CreateIdPorten {
            subject,
            pid_key: self.keyer.pid_key(pid),
            name,
            at: self.now(),
        };
        match self
            .run::<account::Account>(&account.stream(), &create, &format!("account:{account}"))
            .await
        {
            Ok(_) | Err(ExecuteError::Domain(account::Error::AlreadyExists)) => {}
            Err(e) => return Err(store_failure("creating an ID-porten account", e)),
        }
        self.start_session(account, LoginMethod::IdPorten, None, None)
            .await
    }
}

pub(crate) fn insufficient_level() -> ApiError {
    ApiError::new(
        "INSUFFICIENT_LEVEL",
        "This service needs the high security level of ID-porten (BankID, Buypass or Commfides). MinID is not enough. Log in with one of those, or with email and password.",
        "Denne tjenesten krever høyt sikkerhetsnivå i ID-porten (BankID, Buypass eller Commfides). MinID er ikke nok. Logg inn med en av disse, eller med e-post og passord.",
    )
}

/// The contract's violation codes: a password containing the email counts
/// as guessable, reported like a common password; each code once, in order.
fn contract_violation_codes(
    violations: &[domain::password::PasswordViolation],
) -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = Vec::new();
    for v in violations {
        let code = match v {
            domain::password::PasswordViolation::ContainsEmail => "COMMON_PASSWORD",
            other => other.code(),
        };
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

fn mail_limit_reached(retry_after_seconds: i64) -> ApiError {
    ApiError::new(
        "TOO_MANY_ATTEMPTS",
        "Too many emails have been sent to this address lately. Please wait a while before you ask for another.",
        "Det er sendt for mange e-poster til denne adressen i det siste. Vent en stund før du ber om en ny.",
    )
    .with("retryAfterSeconds", json!(retry_after_seconds.max(1)))
}

fn address_error(error: ExecuteError<address::Error>) -> ApiError {
    match error {
        ExecuteError::Domain(address::Error::Throttled {
            retry_after_seconds,
        }) => ApiError::too_many_attempts(Some(retry_after_seconds)),
        ExecuteError::Domain(address::Error::MailLimitReached {
            retry_after_seconds,
        }) => mail_limit_reached(retry_after_seconds),
        other => store_failure("recording a login attempt", other),
    }
}

fn email_taken() -> ApiError {
    ApiError::new(
        "EMAIL_TAKEN",
        "An account is already registered with this email address. Log in, or use \"Forgot password\".",
        "Det er allerede registrert en konto med denne e-postadressen. Logg inn, eller bruk «Glemt passord».",
    )
    .with("field", json!("email"))
}

fn flow_refusal(error: flow::Error) -> ApiError {
    match error {
        flow::Error::NotFound | flow::Error::AlreadyStarted => ApiError::flow_not_found(),
        flow::Error::Expired => ApiError::new(
            "CODE_EXPIRED",
            "The code has expired. Ask for a new code.",
            "Koden er utløpt. Be om en ny kode.",
        ),
        flow::Error::TooManyAttempts => ApiError::new(
            "TOO_MANY_ATTEMPTS",
            "Too many wrong codes. Please start again.",
            "For mange feil koder. Start på nytt.",
        ),
        flow::Error::ResendTooSoon {
            retry_after_seconds,
        } => ApiError::too_many_attempts(Some(retry_after_seconds)),
        flow::Error::ResendLimitReached => ApiError::new(
            "TOO_MANY_ATTEMPTS",
            "No more codes can be sent for this attempt. Please start again.",
            "Det kan ikke sendes flere koder for dette forsøket. Start på nytt.",
        ),
        flow::Error::NotVerified => ApiError::new(
            "CODE_INVALID",
            "Enter the code from the email first.",
            "Skriv inn koden fra e-posten først.",
        )
        .with("reason", json!("NOT_VERIFIED")),
        flow::Error::AlreadyVerified => ApiError::new(
            "CODE_INVALID",
            "This code has already been used. Continue with the next step.",
            "Denne koden er allerede brukt. Gå videre til neste steg.",
        )
        .with("reason", json!("ALREADY_USED")),
    }
}

fn flow_error(error: ExecuteError<flow::Error>) -> ApiError {
    match error {
        ExecuteError::Domain(e) => flow_refusal(e),
        other => store_failure("running a flow command", other),
    }
}

fn account_error(error: ExecuteError<account::Error>) -> ApiError {
    match error {
        ExecuteError::Domain(account::Error::Throttled {
            retry_after_seconds,
        }) => ApiError::too_many_attempts(Some(retry_after_seconds)),
        ExecuteError::Domain(account::Error::NotFound) => ApiError::unauthenticated(),
        ExecuteError::Domain(e) => internal("account command refused", format!("{e:?}")),
        other => store_failure("running an account command", other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_with_hidden_characters_is_refused_at_input() {
        for raw in ["kari\u{202e}@example.no", "ka\u{200b}ri@example.no"] {
            let error = App::parse_email(raw).unwrap_err();
            assert_eq!(error.code, "INVALID_INPUT", "{raw:?}");
        }
        assert!(App::parse_email("kari@example.no").is_ok());
    }

    #[test]
    fn an_unreachable_store_is_unavailable_and_a_broken_one_internal() {
        let down = store_error(
            "test",
            store::StoreError::Backend("connection refused".into()),
        );
        assert_eq!(down.code, crate::error::UNAVAILABLE);
        let closed = store_failure::<()>("test", ExecuteError::Store(store::StoreError::Closed));
        assert_eq!(closed.code, crate::error::UNAVAILABLE);
        let odd = store_error("test", store::StoreError::EmptyAppend);
        assert_eq!(odd.code, "INTERNAL");
    }
}
