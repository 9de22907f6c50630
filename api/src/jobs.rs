//! Batch jobs run from the command line, safely beside a running server:
//! the two-year inactivity purge and the legacy import.

use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use domain::application::Kind;
use domain::legacy::{self, LegacyOwner, LegacyRecord};
use domain::{AccountId, Email, account, reservation};
use store::command::ExecuteError;

use crate::server::{ServeConfig, build_app};
use crate::stores::StoreConfig;

/// The services' configuration of a job over `place`.
fn serve_config(place: &StoreConfig) -> ServeConfig {
    ServeConfig {
        store: place.clone(),
        ..ServeConfig::new(place.data_dir.clone())
    }
}
use crate::services::App;
use keys::Keyer;

const JOB_CATCH_UP: Duration = Duration::from_secs(600);

/// A progress bar of `len` steps named `what` (on stderr, hidden when it
/// is not a terminal).
pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

async fn open_app(place: &StoreConfig) -> anyhow::Result<App> {
    let (keyer, store) = place.open().await?;
    let app = build_app(store, keyer, &serve_config(place));
    app.projections()
        .wait_caught_up(JOB_CATCH_UP)
        .await
        .context("reading the log")?;
    Ok(app)
}

/// Write the data dir's snapshot of the read models anew (when it has one),
/// so that it holds nothing of the accounts just deleted.
fn rewrite_snapshot(app: &App, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let path = projections::snapshot::snapshot_path(data_dir);
    if !path.exists() {
        return Ok(());
    }
    app.projections()
        .read(|model| projections::snapshot::save(&path, model))
        .with_context(|| format!("rewriting {}", path.display()))
}

/// What a purge run did (or, dry, would do).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeSummary {
    pub scanned: usize,
    pub warned: usize,
    pub deleted: usize,
    pub released: usize,
    pub skipped: usize,
    /// Deleted accounts not yet erased: their deletion mail is not sent yet
    /// (no server is running); the next run erases them.
    pub awaiting_mail: usize,
}

/// `caseledger purge-inactive`.
pub async fn purge_inactive(
    place: &StoreConfig,
    as_of: DateTime<Utc>,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let app = open_app(place).await?;
    let summary = run_purge(&app, as_of, dry_run).await?;
    if !dry_run && summary.deleted + summary.released > 0 {
        rewrite_snapshot(&app, &place.data_dir)?;
    }
    let verb = if dry_run { "would be " } else { "" };
    println!(
        "purge-inactive as of {}{}: scanned {}, warned {}{}, deleted {}{}, emails released {}{}, skipped {}",
        as_of.to_rfc3339(),
        if dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        },
        summary.scanned,
        verb,
        summary.warned,
        verb,
        summary.deleted,
        verb,
        summary.released,
        summary.skipped,
    );
    if summary.awaiting_mail > 0 {
        println!(
            "{} deleted account(s) keep their email and name sealed until their deletion mail \
             is sent (a server sends it); run purge-inactive again then to erase them",
            summary.awaiting_mail
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The purge over the read models of `app`.
pub async fn run_purge(
    app: &App,
    as_of: DateTime<Utc>,
    dry_run: bool,
) -> anyhow::Result<PurgeSummary> {
    let (due, warn, unreleased) = app.projections().read(|m| {
        let due = m.due_for_purge(as_of);
        let warn: Vec<AccountId> = m
            .due_for_warning(as_of)
            .into_iter()
            .filter(|id| !due.contains(id) && m.account(*id).is_some_and(|a| a.warned_at.is_none()))
            .collect();
        (due, warn, m.deleted_unreleased())
    });
    let mut summary = PurgeSummary {
        scanned: due.len() + warn.len() + unreleased.len(),
        ..PurgeSummary::default()
    };
    if dry_run {
        for id in &due {
            println!("would delete account {id}");
        }
        for id in &warn {
            println!("would warn account {id}");
        }
        summary.deleted = due.len();
        summary.warned = warn.len();
        summary.released = due.len() + unreleased.len();
        return Ok(summary);
    }
    let actor = "job:purge-inactive";
    let bar = progress(summary.scanned as u64, "purge");
    // Deletions an earlier run left half done come first.
    let mut to_erase = unreleased;
    for id in due {
        let command = account::Command::PurgeInactive { as_of };
        match app
            .run::<account::Account>(&id.stream(), &command, actor)
            .await
        {
            Ok(executed) if !executed.events.is_empty() => {
                summary.deleted += 1;
                to_erase.push(id);
            }
            Ok(_) | Err(ExecuteError::Domain(_)) => summary.skipped += 1,
            Err(e) => return Err(anyhow::anyhow!("deleting account {id}: {e}")),
        }
        bar.inc(1);
    }
    for id in warn {
        let command = account::Command::WarnOfPurge { as_of };
        match app
            .run::<account::Account>(&id.stream(), &command, actor)
            .await
        {
            Ok(executed) if !executed.events.is_empty() => summary.warned += 1,
            Ok(_) | Err(ExecuteError::Domain(_)) => summary.skipped += 1,
            Err(e) => return Err(anyhow::anyhow!("warning account {id}: {e}")),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if !to_erase.is_empty() {
        // Each deleted person is told by mail, at the address only their
        // data keys still open: erase once the outbox has sent those mails.
        let deleted_up_to = app.store.head_position().await?;
        if mails_sent_up_to(app, deleted_up_to).await? {
            for id in to_erase {
                if erase(app, id, actor).await? {
                    summary.released += 1;
                }
            }
        } else {
            summary.awaiting_mail = to_erase.len();
        }
    }
    let head = app.store.head_position().await?;
    app.wait_for(head).await;
    Ok(summary)
}

/// How long a purge waits for the outbox to send the deletion mails before
/// it erases the people they go to.
const MAIL_WAIT: Duration = Duration::from_secs(30);

/// Wait (up to [`MAIL_WAIT`]) until the cluster's outbox has handled every
/// mail owed up to `position`.
async fn mails_sent_up_to(app: &App, position: u64) -> anyhow::Result<bool> {
    let deadline = tokio::time::Instant::now() + MAIL_WAIT;
    app.wait_for(position).await;
    loop {
        let checkpoint = crate::outbox::read_checkpoint(app.store.as_ref()).await?;
        let first_pending = app
            .projections()
            .read(|model| model.mail_outbox(checkpoint).first_pending);
        if first_pending.is_none_or(|pending| pending > position) {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Erase a deleted account: destroy its person's data keys (their email and
/// name then read as erased in every event, for good), then release its
/// email. True when the email was still held.
async fn erase(app: &App, id: AccountId, actor: &str) -> anyhow::Result<bool> {
    let state = app
        .load::<account::Account>(&id.stream())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The address as the read models hold it (its events may read as
    // erased already, after a run stopped between the two steps).
    let email = state.email.filter(|email| !email.is_erased()).or_else(|| {
        app.projections()
            .read(|model| model.account(id).and_then(|a| a.email.clone()))
    });
    let Some(email) = email else {
        return Ok(false);
    };
    app.codec
        .ring()
        .destroy(
            app.store.as_ref(),
            migrations::sealed::Subject::Email(&email),
        )
        .await
        .map_err(|e| anyhow::anyhow!("destroying the data keys of account {id}: {e}"))?;
    let stream = keys::email_stream(&app.keyer.email_key(&email));
    let command = reservation::Command::Release { account: id };
    let executed = app
        .run::<reservation::Reservation>(&stream, &command, actor)
        .await
        .map_err(|e| anyhow::anyhow!("releasing the email of account {id}: {e}"))?;
    Ok(!executed.events.is_empty())
}

/// One line of the legacy file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LegacyLine {
    reference: String,
    submitted_at: String,
    kind: String,
    email: Option<String>,
    pid: Option<String>,
}

/// Longest accepted line of the legacy file.
const MAX_LINE_BYTES: usize = 4096;

/// Check one line; the error says what is wrong with it.
fn parse_legacy_line(keyer: &Keyer, line: &str) -> Result<LegacyRecord, String> {
    if line.len() > MAX_LINE_BYTES {
        return Err(format!("the line is longer than {MAX_LINE_BYTES} bytes"));
    }
    let raw: LegacyLine =
        serde_json::from_str(line).map_err(|e| format!("not a valid record: {e}"))?;
    let submitted_at = DateTime::parse_from_rfc3339(raw.submitted_at.trim())
        .map_err(|_| {
            format!(
                "submittedAt {:?} is not an RFC 3339 instant",
                raw.submitted_at
            )
        })?
        .with_timezone(&Utc);
    let kind = Kind::parse(raw.kind.trim()).ok_or_else(|| {
        format!(
            "kind {:?} is not one of WORK, FAMILY, STUDY, VISIT, PROTECTION, CITIZENSHIP",
            raw.kind
        )
    })?;
    let owner = match (raw.email, raw.pid) {
        (Some(email), None) => {
            let email = Email::parse(&email).map_err(|e| format!("email: {e}"))?;
            LegacyOwner::EmailHash(keyer.email_key(&email))
        }
        (None, Some(pid)) => {
            let pid = pid.trim();
            if pid.len() != 11 || !pid.chars().all(|c| c.is_ascii_digit()) {
                return Err("pid must be an 11-digit national identity number".into());
            }
            LegacyOwner::PidHash(keyer.pid_key(pid))
        }
        (Some(_), Some(_)) => return Err("give either email or pid, not both".into()),
        (None, None) => return Err("email or pid is missing".into()),
    };
    LegacyRecord::new(&raw.reference, submitted_at, kind, owner).map_err(|e| e.message_en())
}

/// `caseledger import-legacy`: all lines are checked first; a file with any
/// bad line imports nothing.
pub async fn import_legacy(place: &StoreConfig, file: &Path) -> anyhow::Result<ExitCode> {
    let (keyer, store) = place.open().await?;
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
    );
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("reading line {number} of {}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match parse_legacy_line(&keyer, &line) {
            Ok(record) => records.push((number, record)),
            Err(e) => errors.push(format!("line {number}: {e}")),
        }
    }
    let mut seen = std::collections::HashMap::new();
    for (number, record) in &records {
        if let Some(first) = seen.insert(record.reference.clone(), *number) {
            errors.push(format!(
                "line {number}: reference {} already appears on line {first}",
                record.reference
            ));
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| {
            e.split(':')
                .next()
                .and_then(|l| l.trim_start_matches("line ").parse::<usize>().ok())
                .unwrap_or(0)
        });
        for e in &errors {
            eprintln!("{}: {e}", file.display());
        }
        eprintln!(
            "import-legacy: {} bad line(s) in {}; nothing was imported",
            errors.len(),
            file.display()
        );
        return Ok(ExitCode::from(2));
    }
    let app = build_app(store, keyer, &serve_config(place));
    let bar = progress(records.len() as u64, "import");
    let (mut imported, mut present, mut conflicts) = (0usize, 0usize, Vec::new());
    let at = Utc::now();
    for (number, record) in records {
        let stream = legacy::stream(&record.reference);
        let reference = record.reference.clone();
        let command = legacy::Command::Import { record, at };
        match app
            .run::<legacy::Legacy>(&stream, &command, "job:import-legacy")
            .await
        {
            Ok(executed) if executed.events.is_empty() => present += 1,
            Ok(_) => imported += 1,
            Err(ExecuteError::Domain(e)) => {
                conflicts.push(format!("line {number}: {reference}: {}", e.message_en()))
            }
            Err(e) => return Err(anyhow::anyhow!("importing line {number}: {e}")),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for c in &conflicts {
        eprintln!("{}: {c}", file.display());
    }
    println!(
        "import-legacy {}: imported {imported}, already present {present}, conflicting {}",
        file.display(),
        conflicts.len()
    );
    Ok(if conflicts.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyer() -> Keyer {
        Keyer::new([9; 32])
    }

    #[test]
    fn a_good_line_parses() {
        let line = r#"{"reference": "UDI-2021-1", "submittedAt": "2021-06-01T10:00:00Z", "kind": "WORK", "email": "Kari@Example.no"}"#;
        let record = parse_legacy_line(&keyer(), line).unwrap();
        let email = Email::parse("kari@example.no").unwrap();
        assert_eq!(
            record.owner,
            LegacyOwner::EmailHash(keyer().email_key(&email))
        );
    }

    #[test]
    fn a_record_on_or_after_the_cutoff_is_refused() {
        let line = r#"{"reference": "R1", "submittedAt": "2022-03-31T22:00:00Z", "kind": "WORK", "pid": "01010112345"}"#;
        assert!(parse_legacy_line(&keyer(), line).is_err());
        let line = r#"{"reference": "R1", "submittedAt": "2022-03-31T21:59:59Z", "kind": "WORK", "pid": "01010112345"}"#;
        assert!(parse_legacy_line(&keyer(), line).is_ok());
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        for (line, needle) in [
            ("not json", "not a valid record"),
            (
                r#"{"reference": "R", "submittedAt": "yesterday", "kind": "WORK", "pid": "01010112345"}"#,
                "submittedAt",
            ),
            (
                r#"{"reference": "R", "submittedAt": "2021-01-01T00:00:00Z", "kind": "JOB", "pid": "01010112345"}"#,
                "kind",
            ),
            (
                r#"{"reference": "R", "submittedAt": "2021-01-01T00:00:00Z", "kind": "WORK"}"#,
                "missing",
            ),
            (
                r#"{"reference": "R", "submittedAt": "2021-01-01T00:00:00Z", "kind": "WORK", "pid": "123"}"#,
                "11-digit",
            ),
        ] {
            let error = parse_legacy_line(&keyer(), line).unwrap_err();
            assert!(error.contains(needle), "{line}: {error}");
        }
    }
}
