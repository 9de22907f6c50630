//! `replay-tool export --format jsonl`: one JSON object per event, in
//! position order, personal data masked unless shown on purpose.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use migrations::json::Disclosure;
use serde_json::{Value, json};
use store::sqlite::EventRef;

use crate::log;
use crate::render::instant;

/// The export line of one event.
pub fn line(event: &EventRef<'_>, disclosure: Disclosure) -> anyhow::Result<Value> {
    let bad = || {
        format!(
            "event at position {} (stream {}, type {} v{}); run `replay-tool verify`",
            event.position, event.stream, event.type_name, event.schema_version
        )
    };
    let metadata = event.metadata().with_context(bad)?;
    let data = crate::log::decode(
        event.type_name,
        event.schema_version,
        event.payload,
        event.id_bytes,
    )
    .with_context(bad)?;
    Ok(json!({
        "position": event.position,
        "stream": event.stream,
        "revision": event.revision,
        "id": event.id().with_context(bad)?.to_string(),
        "type": event.type_name,
        "schemaVersion": event.schema_version,
        "recordedAt": instant(&event.recorded_at().with_context(bad)?),
        "metadata": {
            "actor": metadata.actor,
            "correlationId": metadata.correlation_id.to_string(),
            "causationId": metadata.causation_id.map(|id| id.to_string()),
            "occurredAt": instant(&metadata.occurred_at),
        },
        "data": migrations::json::to_json_with(&data, disclosure),
    }))
}

/// Write every event up to the head when the export starts to `output`
/// (stdout when `None`).
pub fn run(
    source: &log::Source,
    output: Option<&Path>,
    disclosure: Disclosure,
) -> anyhow::Result<ExitCode> {
    let mut reader = log::open(source)?;
    reader.install_key_ring(source)?;
    let head = reader.head()?;
    let sink: Box<dyn Write> = match output {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = std::io::BufWriter::with_capacity(1 << 16, sink);
    let bar = log::progress(head, "export");
    let written = log::scan_all(&mut reader, 0, head, &bar, |event| {
        serde_json::to_writer(&mut sink, &line(event, disclosure)?)?;
        sink.write_all(b"\n")?;
        Ok(())
    })?;
    sink.flush().context("writing the export")?;
    bar.finish_and_clear();
    if let Some(path) = output {
        eprintln!("exported {written} events to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
