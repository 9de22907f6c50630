//! A plain-text rendering of every read model, sorted, for snapshot tests and
//! for comparing two models by eye. Personal data appears as stored: this is
//! for tests and local tools, never for logs.

use std::fmt::Write;

use domain::application::Application;
use domain::{AccountId, LoginMethod};

use crate::ReadModel;
use crate::model::{AccountStatus, AccountView};

fn short(id: &impl std::fmt::Display) -> String {
    let text = id.to_string();
    text[text.len().saturating_sub(4)..].to_owned()
}

fn hex8(bytes: &[u8; 32]) -> String {
    hex::encode(&bytes[..4])
}

fn method(m: LoginMethod) -> &'static str {
    match m {
        LoginMethod::Password => "password",
        LoginMethod::IdPorten => "idporten",
    }
}

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl ReadModel {
    /// Every read model as sorted text (ids shortened to their last four
    /// hex digits, digests and keys to their first four bytes).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "position {}", self.position);

        let mut accounts: Vec<&AccountView> = self.accounts.values().collect();
        accounts.sort_by_key(|a| a.id);
        let _ = writeln!(out, "accounts {}", accounts.len());
        for a in &accounts {
            let _ = write!(
                out,
                "  account …{} {} {}",
                short(&a.id),
                method(a.method),
                match a.status {
                    AccountStatus::Active => "active",
                    AccountStatus::Deleted => "deleted",
                }
            );
            if let Some(email) = &a.email {
                let _ = write!(out, " email={}", email.as_str());
            }
            let _ = write!(out, " name={:?} created={}", a.name, time(&a.created_at));
            if let Some(t) = &a.last_login_at {
                let _ = write!(out, " last_login={}", time(t));
            }
            if let Some(t) = &a.warned_at {
                let _ = write!(out, " warned={}", time(t));
            }
            if let Some(k) = &a.pid_key {
                let _ = write!(out, " pid_key={}", hex8(k));
            }
            let sessions = self
                .account_sessions
                .get(&a.id)
                .map_or(0, |listed| listed.as_slice().len());
            let _ = writeln!(out, " sessions={sessions}");
        }

        let mut emails: Vec<(&str, AccountId)> = accounts
            .iter()
            .filter_map(|a| {
                let email = a.email.as_ref()?.as_str();
                self.filed_under(email).map(|id| (email, id))
            })
            .collect();
        emails.sort();
        emails.dedup();
        let _ = writeln!(out, "email directory {}", emails.len());
        for (email, id) in emails {
            let _ = writeln!(out, "  {email} -> …{}", short(&id));
        }

        let mut subjects: Vec<_> = self.idporten_directory.iter().collect();
        subjects.sort();
        let _ = writeln!(out, "idporten directory {}", subjects.len());
        for (subject, id) in subjects {
            let _ = writeln!(out, "  {} -> …{}", hex8(subject), short(id));
        }

        let mut sessions: Vec<_> = self.sessions.iter().collect();
        sessions.sort_by_key(|(digest, _)| **digest);
        let _ = writeln!(out, "sessions {}", sessions.len());
        for (digest, s) in sessions {
            let _ = writeln!(
                out,
                "  {} account …{} session …{} {} started={} expires={} idle={}s",
                hex8(digest),
                short(&s.account),
                short(&s.id),
                method(s.method),
                time(&s.started_at),
                time(&s.expires_at),
                s.idle_timeout_seconds
            );
        }

        let inactive = self.inactive_while(|_| true);
        let _ = writeln!(out, "inactivity (oldest first) {}", inactive.len());
        for (last, id) in inactive {
            let _ = writeln!(out, "  {} …{}", time(&last), short(&id));
        }

        let unreleased = self.deleted_unreleased();
        let _ = writeln!(out, "deleted, email not released {}", unreleased.len());
        for id in unreleased {
            let _ = writeln!(out, "  …{}", short(&id));
        }

        let _ = writeln!(out, "my applications (newest first)");
        let mut owners: Vec<_> = self
            .applications
            .all
            .values()
            .filter_map(|s| s.application.as_ref())
            .map(|a| a.owner.account)
            .collect();
        owners.sort();
        owners.dedup();
        for owner in owners {
            let (apps, _) = self.my_applications(owner, usize::MAX, None);
            let _ = writeln!(out, "  owner …{} {}", short(&owner), apps.len());
            for app in apps {
                render_application(&mut out, app);
            }
        }

        let mut legacy: Vec<_> = self.applications.legacy_by_reference.values().collect();
        legacy.sort_by(|a, b| a.reference.cmp(&b.reference));
        let _ = writeln!(out, "legacy records {}", legacy.len());
        for r in legacy {
            let owner = match &r.owner {
                domain::legacy::LegacyOwner::EmailHash(h) => format!("email:{}", hex8(h)),
                domain::legacy::LegacyOwner::PidHash(h) => format!("pid:{}", hex8(h)),
            };
            let _ = writeln!(
                out,
                "  {} {} submitted={} owner={owner}",
                r.reference,
                r.kind.as_str(),
                time(&r.submitted_at)
            );
        }
        let _ = writeln!(out, "mails owed {}", self.mail_owed.len());
        if !self.mail_owed.is_empty() {
            let positions: Vec<String> = self.mail_owed.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "  at {}", positions.join(" "));
        }
        out
    }
}

fn render_application(out: &mut String, app: &Application) {
    let _ = write!(
        out,
        "    application …{} {} {} {} applicant={:?} born={} {} created={} updated={}",
        short(&app.id),
        method(app.owner.method),
        app.kind.as_str(),
        app.relation.as_str(),
        app.applicant.name.as_str(),
        app.applicant.birth_date,
        app.applicant.nationality.as_str(),
        time(&app.created_at),
        time(&app.updated_at),
    );
    if let Some(t) = &app.submitted_at {
        let _ = write!(out, " submitted={}", time(t));
    }
    for (label, appointment) in [
        ("appointment", &app.appointment),
        ("photo", &app.photo_appointment),
    ] {
        if let Some(a) = appointment {
            let _ = write!(
                out,
                " {label}={}@{:?}@{}",
                a.meeting_point.as_str(),
                a.location,
                time(&a.starts_at)
            );
        }
    }
    if let Some(t) = &app.documents_received_at {
        let _ = write!(out, " documents={}", time(t));
    }
    if let Some(n) = app.fee_paid_nok {
        let _ = write!(out, " fee={n}");
    }
    if let Some(t) = &app.fee_paid_at {
        let _ = write!(out, " fee_at={}", time(t));
    }
    if let Some(t) = &app.refund_requested_at {
        let _ = write!(out, " refund={}", time(t));
    }
    if let Some(d) = &app.decision {
        let _ = write!(
            out,
            " decision={:?}/{:?}@{}",
            d.outcome,
            d.channel,
            time(&d.at)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "      {}: {}", app.status.as_str(), app.next_step_en());
}
