//! `replay-tool history`: the timeline of an account, an application or an
//! email, for a person to read: when, what, by whom (actor and correlation
//! from the metadata) and the event's fields, personal data masked unless
//! shown on purpose.
//!
//! An account's history is its own stream, the applications it created, the
//! flows that created or recovered it, and the reservation events that name
//! it. An email's history is its reservation stream (found by the keyed hash
//! under the server secret), every flow started for that email, and the
//! history of every account that ever held it. Finding them takes one pass
//! over the log to discover the streams and one to gather their events.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use domain::{AccountId, ApplicationId, Email};
use migrations::DomainEvent;
use migrations::json::Disclosure;
use store::sqlite::EventRef;
use store::{Direction, RecordedEvent, StreamStart};

use crate::log;
use crate::render::{describe, fields, instant};

/// Whose history to tell.
#[derive(Debug, Clone)]
pub enum Subject {
    Account(AccountId),
    Application(ApplicationId),
    Email(Email),
}

/// Run `history` and print the timeline.
pub fn run(
    source: &log::Source,
    subject: &Subject,
    disclosure: Disclosure,
) -> anyhow::Result<ExitCode> {
    let mut reader = log::open(source)?;
    reader.install_key_ring(source)?;
    let text = match subject {
        Subject::Application(id) => application_history(&mut reader, *id, disclosure)?,
        Subject::Account(id) => {
            let mut search = Search::for_account(*id);
            search.run(&mut reader)?;
            let title = format!("History of account {id}");
            timeline(
                &title,
                &search.events,
                disclosure,
                &search.accounts_summary(),
            )
        }
        Subject::Email(email) => {
            let keyer = log::keyer(source)?;
            let stream = keys::email_stream(&keyer.email_key(email));
            let mut search = Search::for_email(email.clone(), stream.clone());
            search.run(&mut reader)?;
            let title = format!(
                "History of the email {} (reservation stream {stream})",
                crate::render::personal(email.as_str(), disclosure)
            );
            timeline(
                &title,
                &search.events,
                disclosure,
                &search.accounts_summary(),
            )
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn application_history(
    reader: &mut log::Log,
    id: ApplicationId,
    disclosure: Disclosure,
) -> anyhow::Result<String> {
    let stream = id.stream();
    let mut events = Vec::new();
    loop {
        let from = events.last().map_or(0, |e: &RecordedEvent| e.revision + 1);
        let page = reader
            .read_stream(
                &stream,
                StreamStart::Revision(from),
                Direction::Forwards,
                log::PAGE,
            )
            .with_context(|| format!("reading {stream}"))?;
        let done = page.len() < log::PAGE;
        events.extend(page);
        if done {
            break;
        }
    }
    let owner = events
        .first()
        .and_then(|first| decode(first).ok())
        .and_then(|event| match event {
            DomainEvent::Application(domain::application::Event::Created { owner, .. }) => {
                Some(format!("owner: account {owner}\n"))
            }
            _ => None,
        })
        .unwrap_or_default();
    Ok(timeline(
        &format!("History of application {id}"),
        &events,
        disclosure,
        &owner,
    ))
}

fn decode(event: &RecordedEvent) -> Result<DomainEvent, migrations::CodecError> {
    crate::log::decode(
        &event.type_name,
        event.schema_version,
        &event.payload,
        event.id.as_bytes(),
    )
}

/// The two passes of an account or email history.
struct Search {
    email: Option<(Email, String)>,
    /// Accounts whose history is told, in the order they were found.
    accounts: Vec<AccountId>,
    known: HashSet<AccountId>,
    /// Streams whose every event belongs to the history.
    streams: HashSet<String>,
    /// Events gathered one by one (reservation events naming an account).
    events: Vec<RecordedEvent>,
    picked: HashSet<u64>,
}

/// Only these types can tie a stream to an account or an email.
const LINKING_TYPES: [&str; 5] = [
    "ApplicationCreated",
    "IdentityReserved",
    "IdentityReleased",
    "FlowStarted",
    "FlowCompleted",
];

impl Search {
    fn for_account(id: AccountId) -> Search {
        let mut search = Search::empty(None);
        search.add_account(id);
        search
    }

    fn for_email(email: Email, stream: String) -> Search {
        let mut search = Search::empty(Some((email, stream.clone())));
        search.streams.insert(stream);
        search
    }

    fn empty(email: Option<(Email, String)>) -> Search {
        Search {
            email,
            accounts: Vec::new(),
            known: HashSet::new(),
            streams: HashSet::new(),
            events: Vec::new(),
            picked: HashSet::new(),
        }
    }

    fn add_account(&mut self, id: AccountId) {
        if self.known.insert(id) {
            self.accounts.push(id);
            self.streams.insert(id.stream());
        }
    }

    fn run(&mut self, reader: &mut log::Log) -> anyhow::Result<()> {
        let head = reader.head()?;
        let bar = log::progress(head, "finding the streams");
        log::scan_all(reader, 0, head, &bar, |event| self.discover(event))?;
        bar.finish_and_clear();
        let bar = log::progress(head, "reading their events");
        log::scan_all(reader, 0, head, &bar, |event| {
            if self.streams.contains(event.stream) && !self.picked.contains(&event.position) {
                self.events.push(event.to_recorded()?);
            }
            Ok(())
        })?;
        bar.finish_and_clear();
        self.events.sort_by_key(|event| event.position);
        Ok(())
    }

    fn discover(&mut self, event: &EventRef<'_>) -> anyhow::Result<()> {
        if !LINKING_TYPES.contains(&event.type_name) {
            return Ok(());
        }
        // An event that does not decode links nothing; `verify` names it.
        let Ok(decoded) = crate::log::decode(
            event.type_name,
            event.schema_version,
            event.payload,
            event.id_bytes,
        ) else {
            return Ok(());
        };
        let in_email_stream = self
            .email
            .as_ref()
            .is_some_and(|(_, stream)| stream == event.stream);
        match decoded {
            DomainEvent::Reservation(domain::reservation::Event::Reserved { account, flow }) => {
                if in_email_stream {
                    self.add_account(account);
                }
                if self.known.contains(&account) {
                    if let Some(flow) = flow {
                        self.streams.insert(flow.stream());
                    }
                    self.pick(event)?;
                }
            }
            DomainEvent::Reservation(domain::reservation::Event::Released { account })
                if self.known.contains(&account) =>
            {
                self.pick(event)?;
            }
            DomainEvent::Application(domain::application::Event::Created { owner, .. })
                if self.known.contains(&owner) =>
            {
                self.streams.insert(event.stream.to_owned());
            }
            DomainEvent::Flow(domain::flow::Event::Started { email, account, .. }) => {
                let for_email = self
                    .email
                    .as_ref()
                    .is_some_and(|(wanted, _)| *wanted == email);
                if for_email || account.is_some_and(|a| self.known.contains(&a)) {
                    self.streams.insert(event.stream.to_owned());
                }
            }
            DomainEvent::Flow(domain::flow::Event::Completed { account, .. })
                if self.known.contains(&account) =>
            {
                self.streams.insert(event.stream.to_owned());
            }
            _ => {}
        }
        Ok(())
    }

    /// Keep one event of a stream that is not wholly part of the history.
    fn pick(&mut self, event: &EventRef<'_>) -> anyhow::Result<()> {
        if !self.streams.contains(event.stream) && self.picked.insert(event.position) {
            self.events.push(event.to_recorded()?);
        }
        Ok(())
    }

    fn accounts_summary(&self) -> String {
        if self.email.is_none() {
            return String::new();
        }
        let mut out = format!("accounts that held this email: {}\n", self.accounts.len());
        for account in &self.accounts {
            let _ = writeln!(out, "  account {account}");
        }
        out
    }
}

/// The timeline text of `events` (in position order).
fn timeline(title: &str, events: &[RecordedEvent], disclosure: Disclosure, extra: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{title}");
    let _ = writeln!(out, "{}", crate::render::disclosure_line(disclosure));
    out.push_str(extra);
    let mut streams: BTreeMap<&str, usize> = BTreeMap::new();
    for event in events {
        *streams.entry(&*event.stream).or_default() += 1;
    }
    let _ = writeln!(
        out,
        "events: {} in {} stream(s)",
        events.len(),
        streams.len()
    );
    for (stream, count) in &streams {
        let _ = writeln!(out, "  {stream}: {count}");
    }
    if events.is_empty() {
        let _ = writeln!(out, "\nNothing in the log concerns it.");
        return out;
    }
    for event in events {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{}  #{}  {} r{}  {} v{}{}: {}",
            instant(&event.recorded_at),
            event.position,
            event.stream,
            event.revision,
            event.type_name,
            event.schema_version & !migrations::sealed::SEALED,
            if event.schema_version & migrations::sealed::SEALED != 0 {
                " (sealed)"
            } else {
                ""
            },
            describe(&event.type_name),
        );
        let metadata = &event.metadata;
        let mut by = format!(
            "    by {}, correlation {}",
            metadata.actor, metadata.correlation_id
        );
        if let Some(causation) = metadata.causation_id {
            let _ = write!(by, ", causation {causation}");
        }
        if (metadata.occurred_at - event.recorded_at)
            .num_seconds()
            .abs()
            >= 1
        {
            let _ = write!(by, ", occurred {}", instant(&metadata.occurred_at));
        }
        let _ = writeln!(out, "{by}");
        match decode(event) {
            Ok(decoded) => {
                let _ = writeln!(
                    out,
                    "    {}",
                    fields(&migrations::json::to_json_with(&decoded, disclosure))
                );
            }
            Err(error) => {
                let _ = writeln!(out, "    DOES NOT DECODE: {error}");
            }
        }
    }
    out
}
