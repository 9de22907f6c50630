//! Writes `<data-dir>/projections.snapshot` as the server's runner would
//! (`projections::snapshot::save`) at a given position, for benchmarking
//! `replay-tool rebuild` on a generated store.
//!
//! `cargo run --release -p replay-tool --example write_snapshot -- DIR POSITION`

use store::sqlite::SqliteLogReader;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(position)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: write_snapshot DATA_DIR POSITION");
    };
    let until: u64 = position.parse()?;
    let dir = std::path::PathBuf::from(dir);
    let mut reader = SqliteLogReader::open(&dir.join("events.sqlite3"))?;
    let mut model = projections::ReadModel::default();
    let mut after = 0;
    while after < until {
        let mut last = after;
        let read = reader.for_each_between(after, until, 4096, |event| {
            last = event.position;
            if let Ok(decoded) =
                migrations::decode(event.type_name, event.schema_version, event.payload)
            {
                model.apply(event.position, event.stream, &decoded);
            }
            Ok::<_, store::StoreError>(())
        })?;
        if read == 0 {
            break;
        }
        after = last;
    }
    let path = projections::snapshot::snapshot_path(&dir);
    projections::snapshot::save(&path, &model)?;
    eprintln!(
        "wrote {} at position {} (digest {})",
        path.display(),
        model.position,
        hex::encode(model.digest())
    );
    Ok(())
}
