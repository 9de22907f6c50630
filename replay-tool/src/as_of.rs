//! `replay-tool as-of T`: a login identity's "My applications" exactly as
//! they were at instant T, from the read models folded over the prefix of
//! the log recorded at or before T (commit order is position order, so the
//! fold stops at the first event recorded after T).

use std::fmt::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use domain::application::{Appointment, DecisionOutcome};
use domain::{AccountId, Email, LoginMethod};
use migrations::DomainEvent;
use migrations::json::Disclosure;
use projections::ReadModel;
use projections::model::AccountStatus;

use crate::log::{self, ScanError};
use crate::render::{instant, personal};

/// Whose applications to show.
#[derive(Debug, Clone)]
pub enum Who {
    Account(AccountId),
    /// Every account that held this email's reservation at or before T.
    Email(Email),
}

/// The read models at `at`, and what the fold met on the way.
pub struct Folded {
    pub model: ReadModel,
    /// Events recorded at or before `at`.
    pub events: u64,
    /// Of those, events that did not decode and were skipped.
    pub undecodable: u64,
    /// Reservation events (account, reserved?) of the watched stream.
    pub reservations: Vec<(AccountId, bool, DateTime<Utc>)>,
}

/// Fold the log's prefix recorded at or before `at`, watching the
/// reservation stream `watch` if given.
pub fn fold_until(
    reader: &mut log::Log,
    at: DateTime<Utc>,
    watch: Option<&str>,
) -> anyhow::Result<Folded> {
    let head = reader.head()?;
    let limit = at.timestamp_micros();
    let bar = log::progress(head, "replaying");
    let mut folded = Folded {
        model: ReadModel::default(),
        events: 0,
        undecodable: 0,
        reservations: Vec::new(),
    };
    let scanned = log::scan(reader, 0, head, &bar, |event| {
        if event.recorded_at_micros > limit {
            return Err(Stop);
        }
        folded.events += 1;
        match crate::log::decode(
            event.type_name,
            event.schema_version,
            event.payload,
            event.id_bytes,
        ) {
            Ok(decoded) => {
                if watch == Some(event.stream)
                    && let DomainEvent::Reservation(reservation) = &decoded
                {
                    let (account, reserved) = match reservation {
                        domain::reservation::Event::Reserved { account, .. } => (*account, true),
                        domain::reservation::Event::Released { account } => (*account, false),
                    };
                    let when = event.recorded_at().unwrap_or(at);
                    folded.reservations.push((account, reserved, when));
                }
                folded.model.apply(event.position, event.stream, &decoded);
            }
            // The live read models skip such an event too (and log it).
            Err(_) => folded.undecodable += 1,
        }
        Ok(())
    });
    bar.finish_and_clear();
    match scanned {
        Ok(_) | Err(ScanError::Visit(Stop)) => Ok(folded),
        Err(ScanError::Store(error)) => {
            Err(anyhow::Error::new(error).context("reading the event log"))
        }
    }
}

/// The fold reached the first event recorded after the instant.
#[derive(Debug)]
struct Stop;

/// Run `as-of` and print the identity's applications at `at`.
pub fn run(
    source: &log::Source,
    at: DateTime<Utc>,
    who: &Who,
    disclosure: Disclosure,
) -> anyhow::Result<ExitCode> {
    let mut reader = log::open(source)?;
    reader.install_key_ring(source)?;
    let watch = match who {
        Who::Account(_) => None,
        Who::Email(email) => {
            let keyer = log::keyer(source)?;
            Some(keys::email_stream(&keyer.email_key(email)))
        }
    };
    let folded = fold_until(&mut reader, at, watch.as_deref())?;
    print!("{}", render(&folded, at, who, disclosure));
    Ok(ExitCode::SUCCESS)
}

/// The text `as-of` prints.
pub fn render(folded: &Folded, at: DateTime<Utc>, who: &Who, disclosure: Disclosure) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "As of {}", instant(&at));
    let _ = writeln!(
        out,
        "log replayed: {} event(s) recorded at or before that instant, up to position {}",
        folded.events, folded.model.position
    );
    if folded.undecodable > 0 {
        let _ = writeln!(
            out,
            "WARNING: {} event(s) did not decode and were skipped, as the live read models skip them; run `replay-tool verify`",
            folded.undecodable
        );
    }
    let _ = writeln!(out, "{}", crate::render::disclosure_line(disclosure));
    let accounts: Vec<AccountId> = match who {
        Who::Account(id) => vec![*id],
        Who::Email(email) => {
            let _ = writeln!(
                out,
                "email {}: {} reservation event(s) by then",
                personal(email.as_str(), disclosure),
                folded.reservations.len()
            );
            for (account, reserved, when) in &folded.reservations {
                let _ = writeln!(
                    out,
                    "  {} {} account {account}",
                    instant(when),
                    if *reserved {
                        "reserved for"
                    } else {
                        "released from"
                    }
                );
            }
            let mut ids = Vec::new();
            for (account, reserved, _) in &folded.reservations {
                if *reserved && !ids.contains(account) {
                    ids.push(*account);
                }
            }
            ids
        }
    };
    if accounts.is_empty() {
        let _ = writeln!(out, "\nNo account held this email by then.");
    }
    for id in accounts {
        let _ = writeln!(out);
        account_block(&mut out, &folded.model, id, disclosure);
    }
    out
}

fn account_block(out: &mut String, model: &ReadModel, id: AccountId, disclosure: Disclosure) {
    let Some(account) = model.account(id) else {
        let _ = writeln!(out, "account:{id} did not exist yet.");
        return;
    };
    let _ = writeln!(
        out,
        "account:{id} ({} login, {})",
        match account.method {
            LoginMethod::Password => "password",
            LoginMethod::IdPorten => "ID-porten",
        },
        match account.status {
            AccountStatus::Active => "active",
            AccountStatus::Deleted => "deleted",
        }
    );
    let mut line = format!("  created {}", instant(&account.created_at));
    if let Some(last) = account.last_login_at {
        let _ = write!(line, ", last login {}", instant(&last));
    }
    if let Some(email) = &account.email {
        let _ = write!(line, ", email {}", personal(email.as_str(), disclosure));
    }
    let _ = write!(line, ", name {}", personal(&account.name, disclosure));
    let _ = writeln!(out, "{line}");
    let (applications, _) = model.my_applications(id, usize::MAX, None);
    let _ = writeln!(
        out,
        "My applications: {} (newest first)",
        applications.len()
    );
    for (number, app) in applications.iter().enumerate() {
        let birth = app.applicant.birth_date.format("%Y-%m-%d").to_string();
        let _ = writeln!(
            out,
            "  {}. application {}: {}, relation {}, applicant {} (born {}, {})",
            number + 1,
            app.id,
            app.kind.as_str(),
            app.relation.as_str(),
            personal(app.applicant.name.as_str(), disclosure),
            personal(&birth, disclosure),
            personal(app.applicant.nationality.as_str(), disclosure),
        );
        let mut status = format!(
            "     status {}, created {}",
            app.status.as_str(),
            instant(&app.created_at)
        );
        if let Some(submitted) = app.submitted_at {
            let _ = write!(status, ", submitted {}", instant(&submitted));
        }
        if let Some(received) = app.documents_received_at {
            let _ = write!(status, ", documents received {}", instant(&received));
        }
        if let Some(paid) = app.fee_paid_nok {
            let _ = write!(status, ", fee paid {paid} NOK");
        }
        if let Some(refund) = app.refund_requested_at {
            let _ = write!(status, ", refund requested {}", instant(&refund));
        }
        let _ = writeln!(out, "{status}");
        if let Some(appointment) = &app.appointment {
            let _ = writeln!(out, "     appointment: {}", appointment_text(appointment));
        }
        if let Some(photo) = &app.photo_appointment {
            let _ = writeln!(out, "     photo appointment: {}", appointment_text(photo));
        }
        if let Some(decision) = app.decision {
            let _ = writeln!(
                out,
                "     decision: {} on {}",
                match decision.outcome {
                    DecisionOutcome::Granted => "granted",
                    DecisionOutcome::Refused => "refused",
                },
                instant(&decision.at)
            );
        }
        let _ = writeln!(out, "     next step: {}", app.next_step_en());
    }
}

fn appointment_text(appointment: &Appointment) -> String {
    format!(
        "{} at {:?}, {} ({})",
        appointment.meeting_point.as_str(),
        appointment.location,
        instant(&appointment.starts_at),
        appointment.purpose.as_str()
    )
}
