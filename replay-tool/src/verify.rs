//! `replay-tool verify`: every event decodes through the upcasters (payload,
//! metadata, id, instant), stream revisions are contiguous from 0, global
//! positions strictly increase, and every event's stored hash-chain link is
//! the one its bytes and its place in the log give; with a saved head, the
//! log still holds it. Prints a report; names the first bad event.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use store::chain::{ChainLink, Link};
use store::sqlite::EventRef;

use crate::log;

/// Commit instants outside 1970..=9999 mean a corrupt row (checked without
/// building a calendar date for each event).
const MIN_RECORDED_MICROS: i64 = 0;
const MAX_RECORDED_MICROS: i64 = 253_402_300_799_999_999;

/// One thing wrong with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub position: u64,
    /// The stream's number in the store; its name is looked up for the report.
    pub stream_number: u64,
    pub stream: String,
    pub type_name: String,
    pub schema_version: u16,
    pub what: String,
}

/// The running checks over the log, one event at a time.
#[derive(Debug, Default)]
pub struct Verifier {
    last_position: u64,
    /// Next expected revision by stream number (0: nothing seen yet).
    next_revision: Vec<u64>,
    streams: u64,
    events: u64,
    /// Type name -> (schema version, count).
    types: HashMap<String, Vec<(u16, u64)>>,
    /// (type name, version, count) of recent types, searched before `types`.
    recent: Vec<(String, u16, u64)>,
    problems: u64,
    first_problem: Option<Problem>,
    /// The chain's link before the next event and that event's expected
    /// position; `None` when the log has no chain.
    chain: Option<(Link, u64)>,
    /// The saved head the log must still hold, and the link found there.
    expect_head: Option<(ChainLink, Option<Link>)>,
    /// Why the saved head is not in the log, once known.
    head_problem: Option<String>,
}

impl Verifier {
    /// Also check the hash chain from its first link.
    pub fn with_chain(mut self) -> Verifier {
        self.chain = Some((store::chain::genesis(), 1));
        self
    }

    /// Also check that the log still holds `head` (saved by `head`).
    pub fn expecting_head(mut self, head: ChainLink) -> Verifier {
        self.expect_head = Some((head, None));
        self
    }

    /// Check one event (events arrive in position order).
    pub fn check(&mut self, event: &EventRef<'_>) {
        self.events += 1;
        self.count_type(event.type_name, event.schema_version);
        if event.position <= self.last_position {
            self.problem(
                event,
                format!(
                    "position does not increase (the previous event is at {})",
                    self.last_position
                ),
            );
        }
        self.last_position = self.last_position.max(event.position);
        self.check_revision(event);
        if let Err(error) = event.id() {
            self.problem(event, error.to_string());
        }
        if !(MIN_RECORDED_MICROS..=MAX_RECORDED_MICROS).contains(&event.recorded_at_micros) {
            let what = format!("recorded_at {} is out of range", event.recorded_at_micros);
            self.problem(event, what);
        }
        if let Err(error) = event.check_metadata() {
            self.problem(event, error.to_string());
        }
        if let Err(error) = migrations::decode(event.type_name, event.schema_version, event.payload)
        {
            self.problem(event, format!("payload does not decode: {error}"));
        }
        // Last: a more specific problem of the same event is named first.
        self.check_chain(event);
    }

    /// The stored link must be the hash of the link before it and of this
    /// event's place and bytes. The next event is checked against the
    /// stored link, so one changed event is named alone.
    fn check_chain(&mut self, event: &EventRef<'_>) {
        let Some((previous, expected_position)) = self.chain else {
            return;
        };
        let computed = store::chain::link(&previous, &event.chained());
        let stored = store::chain::stored_link(event.chain);
        if stored != Some(computed) {
            let what = if event.position > expected_position {
                format!(
                    "the hash chain breaks: positions {expected_position} to {} are missing (events removed)",
                    event.position - 1
                )
            } else if stored.is_none() {
                "the hash chain breaks: the event has no valid stored link".to_owned()
            } else {
                "the hash chain breaks: the stored link does not match the event's bytes and place \
                 (this event was changed, moved or inserted, or the one before it removed)"
                    .to_owned()
            };
            self.problem(event, what);
        }
        let link = stored.unwrap_or(computed);
        self.chain = Some((link, event.position.saturating_add(1)));
        if let Some((head, found)) = &mut self.expect_head
            && head.position == event.position
        {
            *found = Some(link);
        }
    }

    /// After the scan: whether the saved head is in the log with its link.
    pub fn finish(&mut self) {
        let Some((head, found)) = &self.expect_head else {
            return;
        };
        let hex = hex::encode(head.link);
        self.head_problem = if self.chain.is_none() {
            Some("the log has no hash chain to check the saved head against".to_owned())
        } else if head.position == 0 {
            (head.link != store::chain::genesis())
                .then(|| "the saved head at position 0 has a link no log starts with".to_owned())
        } else {
            match found {
                Some(link) if *link == head.link => None,
                Some(link) => Some(format!(
                    "the event at position {} has link {} instead of the saved {hex}: the log was rewritten up to there",
                    head.position,
                    hex::encode(link)
                )),
                None if head.position > self.last_position => Some(format!(
                    "the log ends at position {}, before the saved head at position {}: events were cut from its tail",
                    self.last_position, head.position
                )),
                None => Some(format!(
                    "the log no longer holds position {} of the saved head: events were removed",
                    head.position
                )),
            }
        };
    }

    /// Why the saved head is not in the log, if it is not.
    pub fn head_problem(&self) -> Option<&str> {
        self.head_problem.as_deref()
    }

    fn check_revision(&mut self, event: &EventRef<'_>) {
        let Ok(index) = usize::try_from(event.stream_number) else {
            self.problem(event, "stream number out of range".to_owned());
            return;
        };
        if self.next_revision.len() <= index {
            self.next_revision.resize(index + 1, 0);
        }
        let expected = self.next_revision[index];
        if expected == 0 {
            self.streams += 1;
        }
        if event.revision != expected {
            let what = if expected == 0 {
                format!(
                    "the stream's first event has revision {} (revisions start at 0)",
                    event.revision
                )
            } else {
                format!(
                    "revision {} follows revision {} (revisions must be contiguous)",
                    event.revision,
                    expected - 1
                )
            };
            self.problem(event, what);
        }
        self.next_revision[index] = event.revision.saturating_add(1);
    }

    fn count_type(&mut self, type_name: &str, version: u16) {
        // A log holds a handful of types: a short linear search of recent
        // ones is cheaper than hashing every name.
        if let Some((_, _, count)) = self
            .recent
            .iter_mut()
            .find(|(name, v, _)| *v == version && name == type_name)
        {
            *count += 1;
            return;
        }
        if self.recent.len() < 32 {
            self.recent.push((type_name.to_owned(), version, 1));
            return;
        }
        let versions = match self.types.get_mut(type_name) {
            Some(versions) => versions,
            None => self.types.entry(type_name.to_owned()).or_default(),
        };
        match versions.iter_mut().find(|(v, _)| *v == version) {
            Some((_, count)) => *count += 1,
            None => versions.push((version, 1)),
        }
    }

    fn problem(&mut self, event: &EventRef<'_>, what: String) {
        self.problems += 1;
        if self.first_problem.is_none() {
            self.first_problem = Some(Problem {
                position: event.position,
                stream_number: event.stream_number,
                stream: String::new(),
                type_name: event.type_name.to_owned(),
                schema_version: event.schema_version,
                what,
            });
        }
    }

    /// The first problem found, if any.
    pub fn first_problem(&self) -> Option<&Problem> {
        self.first_problem.as_ref()
    }

    /// Events checked.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The report, without timings.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "events: {}\nstreams: {}\nlast position: {}",
            self.events, self.streams, self.last_position
        );
        let mut counts: HashMap<(&str, u16), u64> = HashMap::new();
        for (name, versions) in &self.types {
            for (version, count) in versions {
                *counts.entry((name.as_str(), *version)).or_default() += count;
            }
        }
        for (name, version, count) in &self.recent {
            *counts.entry((name.as_str(), *version)).or_default() += count;
        }
        let mut types: Vec<_> = counts
            .into_iter()
            .map(|((name, version), count)| (name, version, count))
            .collect();
        types.sort();
        let _ = writeln!(out, "types:");
        for (name, version, count) in types {
            let _ = writeln!(out, "  {name} v{version}: {count}");
        }
        let _ = writeln!(
            out,
            "chain: {}",
            if self.chain.is_some() {
                "checked (SHA-256 over every event's bytes and place)"
            } else {
                "absent (a store of an older schema; the server adds it when it next opens the store)"
            }
        );
        if let Some((head, _)) = &self.expect_head {
            let _ = writeln!(
                out,
                "expected head: position {}, link {}: {}",
                head.position,
                hex::encode(head.link),
                match &self.head_problem {
                    None => "held by the log".to_owned(),
                    Some(why) => format!("NOT held: {why}"),
                }
            );
        }
        match &self.first_problem {
            None if self.head_problem.is_some() => {
                let _ = writeln!(out, "result: FAILED, the saved head is not in the log");
            }
            None => {
                let _ = writeln!(
                    out,
                    "result: OK (every event decodes, stream revisions are contiguous from 0, positions strictly increase{})",
                    if self.chain.is_some() {
                        ", the hash chain holds"
                    } else {
                        ""
                    }
                );
            }
            Some(first) => {
                let _ = writeln!(
                    out,
                    "result: FAILED, {} problem(s); first bad event: {}",
                    self.problems,
                    describe(first)
                );
            }
        }
        out
    }
}

fn describe(problem: &Problem) -> String {
    format!(
        "position {}, stream {}, type {} v{}: {}",
        problem.position, problem.stream, problem.type_name, problem.schema_version, problem.what
    )
}

/// Run `verify` over the data dir's log up to its head when it starts;
/// with `expect_head`, also check that the log holds that saved head.
pub fn run(source: &log::Source, expect_head: Option<&Path>) -> anyhow::Result<ExitCode> {
    let expect_head = expect_head.map(crate::head::read).transpose()?;
    let mut reader = log::open(source)?;
    let head = reader.head()?;
    let started = Instant::now();
    let bar = log::progress(head, "verify");
    let mut verifier = Verifier::default();
    if reader.has_chain() {
        verifier = verifier.with_chain();
    }
    if let Some(saved) = expect_head {
        verifier = verifier.expecting_head(saved);
    }
    // Without a chain to check, names are looked up only for the report:
    // loading every stream's name would cost more than the other checks.
    reader.skip_stream_names(!reader.has_chain());
    log::scan_all(&mut reader, 0, head, &bar, |event| {
        verifier.check(event);
        Ok(())
    })?;
    bar.finish_and_clear();
    verifier.finish();
    if let Some(first) = verifier.first_problem.as_mut() {
        first.stream = reader
            .stream_name(first.stream_number)
            .unwrap_or_else(|error| format!("#{} (name unreadable: {error})", first.stream_number));
    }
    let seconds = started.elapsed().as_secs_f64();
    print!("{}", verifier.report());
    println!(
        "time: {seconds:.3} s ({:.0} events/s)",
        verifier.events() as f64 / seconds.max(1e-9)
    );
    match (verifier.first_problem(), verifier.head_problem()) {
        (None, None) => Ok(ExitCode::SUCCESS),
        (Some(first), _) => {
            eprintln!("replay-tool: verify failed at {}", describe(first));
            Ok(ExitCode::from(1))
        }
        (None, Some(why)) => {
            eprintln!("replay-tool: verify failed: the saved head is not in the log: {why}");
            Ok(ExitCode::from(1))
        }
    }
}
