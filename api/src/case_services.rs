//! The case services (applications): create, submit, book, cancel, refund for the
//! owning login identity; caseworker commands for internal services; the
//! legacy notice and refusals.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use uuid::Uuid;

use domain::application::{
    self, Applicant, Appointment, AppointmentPurpose, DecisionOutcome, Kind, MeetingPointKind,
    Relation,
};
use domain::legacy::{self, LegacyActor, LegacyOwner};
use domain::{AccountId, Actor, ApplicationId, LoginMethod};
use projections::ApplicationView;
use store::command::ExecuteError;

use crate::error::ApiError;
use crate::services::{App, Caller, internal, store_failure};

/// Input of `createApplication`, already typed by the GraphQL layer.
#[derive(Debug, Clone)]
pub struct NewApplication {
    pub kind: Kind,
    pub relation: Relation,
    pub applicant_name: String,
    pub birth_date: NaiveDate,
    pub nationality: String,
}

/// Input of `bookAppointment`.
#[derive(Debug, Clone)]
pub struct NewAppointment {
    pub meeting_point: MeetingPointKind,
    pub location: String,
    pub starts_at: DateTime<Utc>,
    pub purpose: AppointmentPurpose,
}

/// The legacy notice of "applicationOverview".
#[derive(Debug, Clone)]
pub struct LegacyNotice {
    pub count: usize,
    pub references: Vec<String>,
    pub guidance_en: &'static str,
    pub guidance_nb: &'static str,
}

/// The API error for a refusal of the application decider. `NotFound` is
/// the one `NOT_FOUND` body every id that is not the caller's gets.
pub(crate) fn application_error(error: application::Error) -> ApiError {
    if error == application::Error::NotFound {
        return ApiError::not_found();
    }
    let mut api = ApiError::new(error.code(), error.message_en(), error.message_nb());
    if let Some(field) = error.field() {
        api = api.with("field", json!(field));
    }
    if let Some(status) = error.status() {
        api = api.with("status", json!(status.as_str()));
    }
    api
}

fn legacy_refusal(error: legacy::Error) -> ApiError {
    match error {
        legacy::Error::LegacyApplication { .. } => ApiError::new(
            "LEGACY_APPLICATION",
            format!(
                "This application was submitted before April 2022 in the old portal and cannot be handled digitally here. {}",
                legacy::guidance_en()
            ),
            format!(
                "Denne søknaden ble sendt før april 2022 i den gamle portalen og kan ikke behandles digitalt her. {}",
                legacy::guidance_nb()
            ),
        )
        .with("guidance", json!(legacy::guidance_en())),
        legacy::Error::NotFound => ApiError::not_found(),
        other => {
            let mut api = ApiError::new(other.code(), other.message_en(), other.message_nb());
            if let Some(field) = other.field() {
                api = api.with("field", json!(field));
            }
            api
        }
    }
}

/// Which digital action was attempted (for legacy refusals).
#[derive(Debug, Clone, Copy)]
pub(crate) enum DigitalAction {
    Book,
    Upload,
    Refund,
}

impl App {
    /// The legacy owner keys of the caller: the keyed hash of their email for
    /// password accounts, of their pid for ID-porten accounts.
    pub(crate) fn legacy_keys(&self, caller: &Caller) -> Vec<LegacyOwner> {
        self.projections.read(|m| {
            let Some(account) = m.account(caller.account) else {
                return Vec::new();
            };
            let mut keys = Vec::new();
            if let Some(email) = &account.email {
                keys.push(LegacyOwner::EmailHash(self.keyer.email_key(email)));
            }
            if let Some(pid_key) = account.pid_key {
                keys.push(LegacyOwner::PidHash(pid_key));
            }
            keys
        })
    }

    pub async fn create_application(
        &self,
        caller: &Caller,
        input: NewApplication,
    ) -> Result<ApplicationView, ApiError> {
        let at = self.now();
        let applicant = Applicant::parse(
            &input.applicant_name,
            input.birth_date,
            &input.nationality,
            at,
        )
        .map_err(application_error)?;
        let id = ApplicationId(Uuid::now_v7());
        let command = application::Command::Create {
            id,
            owner: caller.identity(),
            kind: input.kind,
            relation: input.relation,
            applicant,
            at,
        };
        self.application_command(caller, id, &command).await
    }

    pub async fn submit_application(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<ApplicationView, ApiError> {
        let id = self.owned_or_legacy(caller, id, None).await?;
        let command = application::Command::Submit {
            actor: caller.identity(),
            at: self.now(),
        };
        self.application_command(caller, id, &command).await
    }

    pub async fn book_appointment(
        &self,
        caller: &Caller,
        id: &str,
        input: NewAppointment,
    ) -> Result<ApplicationView, ApiError> {
        self.appointment_command(caller, id, input, |actor, appointment, at, latest_start| {
            application::Command::BookAppointment {
                actor,
                appointment,
                at,
                latest_start,
            }
        })
        .await
    }

    pub async fn reschedule_appointment(
        &self,
        caller: &Caller,
        id: &str,
        input: NewAppointment,
    ) -> Result<ApplicationView, ApiError> {
        self.appointment_command(caller, id, input, |actor, appointment, at, latest_start| {
            application::Command::RescheduleAppointment {
                actor,
                appointment,
                at,
                latest_start,
            }
        })
        .await
    }

    /// Book or move an appointment: the id resolved for the caller, the
    /// appointment parsed, the booking horizon applied.
    async fn appointment_command(
        &self,
        caller: &Caller,
        id: &str,
        input: NewAppointment,
        command: impl FnOnce(
            domain::LoginIdentity,
            Appointment,
            DateTime<Utc>,
            DateTime<Utc>,
        ) -> application::Command,
    ) -> Result<ApplicationView, ApiError> {
        let id = self
            .owned_or_legacy(caller, id, Some(DigitalAction::Book))
            .await?;
        let appointment = Appointment::new(
            input.meeting_point,
            &input.location,
            input.starts_at,
            input.purpose,
        )
        .map_err(application_error)?;
        let at = self.now();
        let command = command(
            caller.identity(),
            appointment,
            at,
            self.latest_appointment_start(at),
        );
        self.application_command(caller, id, &command).await
    }

    pub async fn cancel_appointment(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<ApplicationView, ApiError> {
        let id = self
            .owned_or_legacy(caller, id, Some(DigitalAction::Book))
            .await?;
        let command = application::Command::CancelAppointment {
            actor: caller.identity(),
            at: self.now(),
        };
        self.application_command(caller, id, &command).await
    }

    pub async fn request_refund(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<ApplicationView, ApiError> {
        let id = self
            .owned_or_legacy(caller, id, Some(DigitalAction::Refund))
            .await?;
        let command = application::Command::RequestRefund {
            actor: caller.identity(),
            at: self.now(),
        };
        self.application_command(caller, id, &command).await
    }

    /// Refuse a digital upload of documents (only legacy records reach here
    /// with guidance; digital upload for current applications happens in the
    /// documents service).
    pub async fn refuse_legacy_upload(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<ApplicationView, ApiError> {
        self.owned_or_legacy(caller, id, Some(DigitalAction::Upload))
            .await?;
        Err(ApiError::new(
            "WRONG_STATE",
            "Documents are handed in at the appointment.",
            "Dokumentene leveres ved oppmøtet.",
        ))
    }

    /// The latest instant an appointment booked at `at` may start: the end
    /// of the operator's booking horizon.
    fn latest_appointment_start(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        at.checked_add_signed(self.settings().booking_horizon)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Resolve an application id the caller names. A legacy reference (or
    /// id) owned by the caller gives `LEGACY_APPLICATION` for digital
    /// actions; anything not the caller's gives `NOT_FOUND`, with one body
    /// and before any input is looked at, so that the answer never tells
    /// another person's application apart from an id that does not exist.
    ///
    /// Ownership is read from the read model: a mutation answers only once
    /// the read model holds its write, so the caller's own new application
    /// is there by the time its id can be used.
    async fn owned_or_legacy(
        &self,
        caller: &Caller,
        raw: &str,
        action: Option<DigitalAction>,
    ) -> Result<ApplicationId, ApiError> {
        let raw = raw.trim();
        if raw.len() > 100 {
            return Err(ApiError::not_found());
        }
        if let Ok(uuid) = Uuid::parse_str(raw) {
            let id = ApplicationId(uuid);
            let owned = self
                .projections
                .read(|m| m.application(id).map(|a| a.owner.account == caller.account));
            match owned {
                Some(true) => return Ok(id),
                Some(false) => return Err(ApiError::not_found()),
                None if self.projections.read(|m| m.legacy_record(raw).is_none()) => {
                    return Err(ApiError::not_found());
                }
                None => {}
            }
        }
        let Ok(reference) = legacy::parse_reference(raw) else {
            return Err(ApiError::not_found());
        };
        let actor = LegacyActor {
            identity: caller.identity(),
            owner_keys: self.legacy_keys(caller),
        };
        let at = self.now();
        let command = match action.unwrap_or(DigitalAction::Book) {
            DigitalAction::Book => legacy::Command::Book { actor, at },
            DigitalAction::Upload => legacy::Command::UploadDocuments { actor, at },
            DigitalAction::Refund => legacy::Command::RequestRefund { actor, at },
        };
        let state = self
            .load::<legacy::Legacy>(&legacy::stream(&reference))
            .await?;
        match legacy::decide(&state, &command) {
            Err(e) => Err(legacy_refusal(e)),
            Ok(_) => Err(ApiError::not_found()),
        }
    }

    async fn application_command(
        &self,
        caller: &Caller,
        id: ApplicationId,
        command: &application::Command,
    ) -> Result<ApplicationView, ApiError> {
        let actor = format!("account:{}", caller.account);
        let executed = self
            .run::<application::Case>(&id.stream(), command, &actor)
            .await
            .map_err(|e| match e {
                ExecuteError::Domain(e) => application_error(e),
                other => store_failure("running an application command", other),
            })?;
        self.settle(&executed).await;
        self.projections
            .read(|m| m.application(id).cloned())
            .ok_or_else(|| {
                internal(
                    "reading an application",
                    "missing from the read model after its write",
                )
            })
    }

    /// One of the caller's applications.
    pub fn application(&self, caller: &Caller, id: &str) -> Option<ApplicationView> {
        let id = ApplicationId(Uuid::parse_str(id.trim()).ok()?);
        self.projections.read(|m| {
            m.application(id)
                .filter(|a| a.owner.account == caller.account)
                .cloned()
        })
    }

    /// A page of the caller's applications, newest first.
    pub fn my_applications(
        &self,
        caller: &Caller,
        first: usize,
        after: Option<&str>,
    ) -> Result<(Vec<ApplicationView>, bool), ApiError> {
        let after = match after {
            None => None,
            Some(cursor) => Some(ApplicationId(Uuid::parse_str(cursor.trim()).map_err(
                |_| {
                    ApiError::invalid_input(
                        "after",
                        "The cursor is not valid.",
                        "Markøren er ugyldig.",
                    )
                },
            )?)),
        };
        Ok(self.projections.read(|m| {
            let (page, more) = m.my_applications(caller.account, first, after);
            (page.into_iter().cloned().collect(), more)
        }))
    }

    /// Every application of the caller (newest first) and the legacy notice.
    pub fn application_overview(
        &self,
        caller: &Caller,
    ) -> (Vec<ApplicationView>, Option<LegacyNotice>) {
        let keys = self.legacy_keys(caller);
        self.projections.read(|m| {
            let (apps, _) = m.my_applications(caller.account, usize::MAX, None);
            let legacy = m.legacy_records(&keys);
            let notice = (!legacy.is_empty()).then(|| LegacyNotice {
                count: legacy.len(),
                references: legacy.iter().map(|r| r.reference.clone()).collect(),
                guidance_en: legacy::guidance_en(),
                guidance_nb: legacy::guidance_nb(),
            });
            (apps.into_iter().cloned().collect(), notice)
        })
    }

    // ----- caseworker side -------------------------------------------------

    async fn caseworker_command(
        &self,
        service: &str,
        id: &str,
        command: impl FnOnce(Actor, DateTime<Utc>) -> application::Command,
    ) -> Result<ApplicationView, ApiError> {
        let id = ApplicationId(Uuid::parse_str(id.trim()).map_err(|_| ApiError::not_found())?);
        let command = command(Actor::Caseworker(service.to_owned()), self.now());
        let executed = self
            .run::<application::Case>(&id.stream(), &command, &format!("service:{service}"))
            .await
            .map_err(|e| match e {
                ExecuteError::Domain(e) => application_error(e),
                other => store_failure("running a caseworker command", other),
            })?;
        self.settle(&executed).await;
        self.projections
            .read(|m| m.application(id).cloned())
            .ok_or_else(ApiError::not_found)
    }

    pub async fn register_documents_received(
        &self,
        service: &str,
        id: &str,
    ) -> Result<ApplicationView, ApiError> {
        self.caseworker_command(service, id, |actor, at| {
            application::Command::RegisterDocumentsReceived { actor, at }
        })
        .await
    }

    pub async fn register_fee_paid(
        &self,
        service: &str,
        id: &str,
        amount_nok: u32,
    ) -> Result<ApplicationView, ApiError> {
        self.caseworker_command(service, id, |actor, at| {
            application::Command::RegisterFeePaid {
                actor,
                amount_nok,
                at,
            }
        })
        .await
    }

    pub async fn make_decision(
        &self,
        service: &str,
        id: &str,
        outcome: DecisionOutcome,
        has_digipost: bool,
    ) -> Result<ApplicationView, ApiError> {
        self.caseworker_command(service, id, |actor, at| {
            application::Command::MakeDecision {
                actor,
                outcome,
                has_digipost,
                at,
            }
        })
        .await
    }

    /// The owner of an application (for mails), if known.
    pub fn application_owner(&self, id: ApplicationId) -> Option<(AccountId, LoginMethod)> {
        self.projections
            .read(|m| m.application(id).map(|a| (a.owner.account, a.owner.method)))
    }
}
