//! `replay-tool verify`: every event decodes through the upcasters (payload,
//! metadata, id, instant), stream revisions are contiguous from 0 and global
//! positions strictly increase. Prints a report; names the first bad event.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Instant;

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
}

impl Verifier {
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
        match &self.first_problem {
            None => {
                let _ = writeln!(
                    out,
                    "result: OK (every event decodes, stream revisions are contiguous from 0, positions strictly increase)"
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

/// Run `verify` over the data dir's log up to its head when it starts.
pub fn run(source: &log::Source) -> anyhow::Result<ExitCode> {
    let mut reader = log::open(source)?;
    let head = reader.head()?;
    let started = Instant::now();
    let bar = log::progress(head, "verify");
    let mut verifier = Verifier::default();
    // Names are looked up only for the report: loading every stream's name
    // would cost more than the checks.
    reader.skip_stream_names(true);
    log::scan_all(&mut reader, 0, head, &bar, |event| {
        verifier.check(event);
        Ok(())
    })?;
    bar.finish_and_clear();
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
    match verifier.first_problem() {
        None => Ok(ExitCode::SUCCESS),
        Some(first) => {
            eprintln!("replay-tool: verify failed at {}", describe(first));
            Ok(ExitCode::from(1))
        }
    }
}
