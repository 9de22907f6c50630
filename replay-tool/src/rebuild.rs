//! `replay-tool rebuild`: fold every read model from zero over the log, as
//! the live runner does (events that do not decode are skipped), compare the
//! digest at the live snapshot's position with the snapshot's own digest,
//! then go on to the head and report its digest. Never writes a snapshot.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use projections::{ReadModel, StreamKey};

use crate::log;

/// A fold of the log from zero.
pub struct Fold {
    pub model: ReadModel,
    /// Events read.
    pub events: u64,
    /// Positions of events that did not decode (skipped, as live).
    pub undecodable: Vec<u64>,
    /// Time spent reading, decoding and applying events (digests excluded).
    pub folding: std::time::Duration,
    /// Opens sealed personal data, as the live runner does.
    pub ring: Option<keys::KeyRing>,
}

impl Fold {
    fn new(ring: Option<keys::KeyRing>) -> Fold {
        Fold {
            model: ReadModel::default(),
            events: 0,
            undecodable: Vec::new(),
            folding: std::time::Duration::ZERO,
            ring,
        }
    }

    /// Apply every event with `after < position <= until`; `keys` holds
    /// the key of every stream by its number.
    fn advance(
        &mut self,
        reader: &mut log::Log,
        keys: &[Option<StreamKey>],
        after: u64,
        until: u64,
        what: &str,
    ) -> anyhow::Result<()> {
        let bar = log::progress(until.saturating_sub(after), what);
        let started = Instant::now();
        let Fold {
            model,
            events,
            undecodable,
            folding,
            ring,
        } = self;
        let opener = ring
            .as_ref()
            .map(|ring| ring as &dyn migrations::sealed::Opener);
        *events += log::scan_payloads(reader, after, until, &bar, |event| {
            let Some(key) = usize::try_from(event.stream_number)
                .ok()
                .and_then(|number| keys.get(number).copied().flatten())
            else {
                anyhow::bail!(
                    "the event at position {} names stream number {}, which the log does not hold",
                    event.position,
                    event.stream_number
                );
            };
            let id = uuid::Uuid::from_slice(event.id_bytes).unwrap_or_default();
            match migrations::sealed::decode_opened(
                event.type_name,
                event.schema_version,
                event.payload,
                id,
                opener,
            ) {
                Ok(decoded) => model.apply_keyed(event.position, key, &decoded),
                Err(_) => undecodable.push(event.position),
            }
            Ok(())
        })?;
        *folding += started.elapsed();
        bar.finish_and_clear();
        Ok(())
    }
}

/// The key of every stream of the log by its number (`None` for a number
/// no stream has, as the names would say). Each name is read and parsed
/// once, not once per event; a fold then reads the events without their
/// names.
fn stream_keys(reader: &mut log::Log) -> anyhow::Result<Vec<Option<StreamKey>>> {
    let mut keys = Vec::new();
    reader
        .for_each_stream_after(0, |number, name| {
            let Ok(number) = usize::try_from(number) else {
                return;
            };
            if keys.len() <= number {
                keys.resize(number + 1, None);
            }
            keys[number] = Some(StreamKey::of(name));
        })
        .context("reading the stream names")?;
    Ok(keys)
}

/// Run `rebuild` over the data dir: exit 1 when the rebuilt digest differs
/// from the live snapshot's.
pub fn run(source: &log::Source) -> anyhow::Result<ExitCode> {
    let mut reader = log::open(source)?;
    let snapshot_path = projections::snapshot::snapshot_path(&source.data_dir);
    // Read the snapshot before the head, so the head is at or past it.
    let snapshot = projections::snapshot::read_digest(&snapshot_path)
        .with_context(|| format!("reading the snapshot {}", snapshot_path.display()))?;
    let head = reader.head()?;
    let started = Instant::now();
    // Read after the head: every stream of an event up to it is in there.
    let keys = stream_keys(&mut reader)?;
    reader.skip_stream_names(true);
    // Read after the head too: the key of every event up to it is there.
    let ring = reader.key_ring(source)?;
    let mut fold = Fold::new(ring);
    // Reading the names is part of reading the log.
    fold.folding = started.elapsed();
    let mut matched = true;
    // Events read to the snapshot, and the digest there.
    let mut at_snapshot = None;
    match &snapshot {
        None => println!(
            "snapshot: none at {} (nothing to compare; rebuilding to the head)",
            snapshot_path.display()
        ),
        Some(live) => {
            println!(
                "snapshot: {} at position {}, digest {}",
                snapshot_path.display(),
                live.position,
                hex::encode(live.digest)
            );
            anyhow::ensure!(
                live.position <= head,
                "the snapshot is at position {} but the log ends at {head}: it does not belong to this log",
                live.position
            );
            fold.advance(
                &mut reader,
                &keys,
                0,
                live.position,
                "rebuilding to the snapshot",
            )?;
            let rebuilt = fold.model.digest();
            matched = rebuilt == live.digest;

            at_snapshot = Some((fold.events, rebuilt));
            println!(
                "rebuilt from zero to position {}: digest {} ({})",
                fold.model.position,
                hex::encode(rebuilt),
                if matched {
                    "MATCHES the snapshot"
                } else {
                    "MISMATCH"
                }
            );
        }
    }
    let from = snapshot.as_ref().map_or(0, |live| live.position);
    fold.advance(&mut reader, &keys, from, head, "rebuilding to the head")?;
    // No event after the snapshot: the model is the one just digested.
    let head_digest = match at_snapshot {
        Some((events, digest)) if events == fold.events => digest,
        _ => fold.model.digest(),
    };
    let seconds = started.elapsed().as_secs_f64();
    println!("head: position {head}, digest {}", hex::encode(head_digest));
    if !fold.undecodable.is_empty() {
        println!(
            "skipped {} event(s) that do not decode, as the live read models do (first at position {}); run `replay-tool verify`",
            fold.undecodable.len(),
            fold.undecodable[0]
        );
    }
    let folding = fold.folding.as_secs_f64();
    println!(
        "time: {seconds:.3} s for {} events ({:.0} events/s); folding the events {folding:.3} s \
         ({:.0} events/s), the rest computing digests",
        fold.events,
        fold.events as f64 / seconds.max(1e-9),
        fold.events as f64 / folding.max(1e-9)
    );
    if matched {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "replay-tool: the read models rebuilt from the log differ from the live snapshot"
        );
        Ok(ExitCode::from(1))
    }
}
