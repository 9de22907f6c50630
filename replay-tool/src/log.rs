//! Read access to a data dir's event log: the read-only opener, paged scans
//! of the global log with a progress bar, and the server secret for keyed
//! stream names. Nothing here writes to the data dir.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use store::StoreError;
use store::sqlite::{EventRef, PayloadRef, SqliteLogReader};

/// The embedded store's file inside a data dir (as `caseledger serve` names it).
pub const STORE_FILE: &str = "events.sqlite3";

/// Events read per page of the global log.
pub const PAGE: usize = 4096;

/// The store file of `data_dir`.
pub fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join(STORE_FILE)
}

/// Open the data dir's event store read-only. Never creates anything.
pub fn open(data_dir: &Path) -> anyhow::Result<SqliteLogReader> {
    let path = store_path(data_dir);
    SqliteLogReader::open(&path)
        .with_context(|| format!("opening the event store {} read-only", path.display()))
}

/// The keyed hashing of the data dir's server secret, read (never created).
pub fn keyer(data_dir: &Path) -> anyhow::Result<keys::Keyer> {
    let path = data_dir.join(keys::SECRET_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading the server secret {} (needed to find an email's reservation stream)",
            path.display()
        )
    })?;
    let bytes = decode_hex(text.trim())
        .with_context(|| format!("{} does not hold 32 hex-encoded bytes", path.display()))?;
    Ok(keys::Keyer::new(bytes))
}

fn decode_hex(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(text)?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected 32 bytes"))
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {human_pos}/{human_len} events ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// An error of a scan: the store failed, or the visitor gave up.
#[derive(Debug)]
pub enum ScanError<E> {
    Store(StoreError),
    Visit(E),
}

impl ScanError<anyhow::Error> {
    /// The error as `anyhow`, a store failure with its context.
    fn into_anyhow(self) -> anyhow::Error {
        match self {
            ScanError::Store(error) => anyhow::Error::new(error).context("reading the event log"),
            ScanError::Visit(error) => error,
        }
    }
}

impl<E> From<StoreError> for ScanError<E> {
    fn from(error: StoreError) -> Self {
        ScanError::Store(error)
    }
}

/// Visit every event with `after < position <= until` in position order, a
/// page at a time, advancing `bar`. Returns the number of events visited.
pub fn scan<E>(
    reader: &mut SqliteLogReader,
    after: u64,
    until: u64,
    bar: &ProgressBar,
    mut visit: impl FnMut(&EventRef<'_>) -> Result<(), E>,
) -> Result<u64, ScanError<E>> {
    paged(after, until, bar, |from, last| {
        reader.for_each_between(from, until, PAGE, |event| {
            *last = event.position;
            visit(event).map_err(ScanError::Visit)
        })
    })
}

/// [`scan`] over only what a fold of the read models needs of each event
/// (see `SqliteLogReader::for_each_payload_between`), with `anyhow` errors.
pub fn scan_payloads(
    reader: &mut SqliteLogReader,
    after: u64,
    until: u64,
    bar: &ProgressBar,
    mut visit: impl FnMut(&PayloadRef<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    paged(after, until, bar, |from, last| {
        reader.for_each_payload_between(from, until, PAGE, |event| {
            *last = event.position;
            visit(event).map_err(ScanError::Visit)
        })
    })
    .map_err(ScanError::into_anyhow)
}

/// Run `page(from, &mut last)` from `after` until a page comes back empty or
/// `until` is reached; each page reports how many events it visited and
/// sets `last` to the position of the last one.
fn paged<E>(
    after: u64,
    until: u64,
    bar: &ProgressBar,
    mut page: impl FnMut(u64, &mut u64) -> Result<usize, ScanError<E>>,
) -> Result<u64, ScanError<E>> {
    let mut from = after;
    let mut total = 0u64;
    while from < until {
        let mut last = from;
        let visited = page(from, &mut last)?;
        if visited == 0 {
            break;
        }
        total += visited as u64;
        bar.inc(visited as u64);
        from = last;
    }
    Ok(total)
}

/// [`scan`] for visitors that fail with `anyhow`.
pub fn scan_all(
    reader: &mut SqliteLogReader,
    after: u64,
    until: u64,
    bar: &ProgressBar,
    visit: impl FnMut(&EventRef<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    scan(reader, after, until, bar, visit).map_err(ScanError::into_anyhow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_read_as_hex() {
        let secret = decode_hex(&"0a".repeat(32)).unwrap();
        assert_eq!(secret, [10; 32]);
        assert!(decode_hex("0a").is_err());
        assert!(decode_hex(&"zz".repeat(32)).is_err());
    }
}
