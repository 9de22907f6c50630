//! Read access to an event log: the embedded file of a data dir, opened
//! read-only, or any store through the port (`--store postgres://…`, and
//! `esdb://…` / `kurrentdb://…` when built with the `kurrentdb` feature);
//! paged scans of the global log with a progress bar, and the server secret
//! for keyed stream names. Nothing here writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use store::sqlite::{EventRef, PayloadRef, SqliteLogReader};
use store::{Direction, EventStore, RecordedEvent, StoreError, StreamStart};

/// The embedded store's file inside a data dir (as `caseledger serve` names it).
pub const STORE_FILE: &str = "events.sqlite3";

/// Events read per page of the global log.
pub const PAGE: usize = 4096;

/// The store file of `data_dir`.
pub fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join(STORE_FILE)
}

/// Where the log is: `--store` (`sqlite:<path>`, `postgres://…`), else
/// the embedded store of the data dir.
#[derive(Debug, Clone)]
pub struct Source {
    pub data_dir: PathBuf,
    pub store: Option<String>,
    pub secret_file: Option<PathBuf>,
}

/// Open the log read-only. Never creates anything.
pub fn open(source: &Source) -> anyhow::Result<Log> {
    let raw = source.store.as_deref().map(str::trim).unwrap_or("");
    if store::location::is_postgres_url(raw) {
        return PortLog::postgres(raw).map(Log::Port);
    }
    if store::location::is_kurrentdb_url(raw) {
        #[cfg(feature = "kurrentdb")]
        return PortLog::kurrentdb(raw).map(Log::Port);
        #[cfg(not(feature = "kurrentdb"))]
        anyhow::bail!(
            "--store esdb://… / kurrentdb://…: this replay-tool was built without KurrentDB support; build it with `cargo build --release -p replay-tool --features kurrentdb`"
        );
    }
    let path = match raw.strip_prefix("sqlite:") {
        Some(path) => PathBuf::from(path.strip_prefix("//").unwrap_or(path)),
        None if raw.is_empty() => store_path(&source.data_dir),
        None => anyhow::bail!("--store takes sqlite:<path> or postgres://user@host:port/db"),
    };
    SqliteLogReader::open(&path)
        .map(Log::File)
        .with_context(|| format!("opening the event store {} read-only", path.display()))
}

/// The key ring the commands of this process open sealed personal data
/// with ([`Log::install_key_ring`]); without it sealed fields read as erased.
static RING: std::sync::OnceLock<keys::KeyRing> = std::sync::OnceLock::new();

/// Decode stored bytes, opening sealed personal data with the installed
/// key ring.
pub fn decode(
    type_name: &str,
    version: u16,
    payload: &[u8],
    id_bytes: &[u8],
) -> Result<migrations::DomainEvent, migrations::CodecError> {
    let id = uuid::Uuid::from_slice(id_bytes).unwrap_or_default();
    let opener = RING
        .get()
        .map(|ring| ring as &dyn migrations::sealed::Opener);
    migrations::sealed::decode_opened(type_name, version, payload, id, opener)
}

/// The keyed hashing of the server secret, read (never created).
pub fn keyer(source: &Source) -> anyhow::Result<keys::Keyer> {
    let path = source
        .secret_file
        .clone()
        .unwrap_or_else(|| source.data_dir.join(keys::SECRET_FILE));
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
    reader: &mut Log,
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
    reader: &mut Log,
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
    reader: &mut Log,
    after: u64,
    until: u64,
    bar: &ProgressBar,
    visit: impl FnMut(&EventRef<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    scan(reader, after, until, bar, visit).map_err(ScanError::into_anyhow)
}

/// An event log read-only: the embedded file, or a store through the port.
pub enum Log {
    File(SqliteLogReader),
    Port(PortLog),
}

/// A store read through the port. Streams are numbered by first
/// appearance in the log, as the file numbers them by creation.
pub struct PortLog {
    runtime: tokio::runtime::Runtime,
    store: Arc<dyn EventStore>,
    numbers: HashMap<Arc<str>, u64>,
    names: Vec<Arc<str>>,
}

impl PortLog {
    /// A store opened by `connect` on a runtime of its own.
    fn open<S, F>(connect: impl FnOnce() -> F, what: &'static str) -> anyhow::Result<PortLog>
    where
        S: EventStore,
        F: std::future::Future<Output = Result<S, store::StoreError>>,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the runtime")?;
        let store = runtime.block_on(connect()).context(what)?;
        Ok(PortLog {
            runtime,
            store: Arc::new(store),
            numbers: HashMap::new(),
            names: Vec::new(),
        })
    }

    fn postgres(url: &str) -> anyhow::Result<PortLog> {
        Self::open(
            || {
                store_postgres::PostgresStore::connect(
                    url,
                    store_postgres::PostgresOptions::default(),
                )
            },
            "opening the PostgreSQL event store",
        )
    }

    /// A KurrentDB namespace through the port; connecting only reads.
    #[cfg(feature = "kurrentdb")]
    fn kurrentdb(url: &str) -> anyhow::Result<PortLog> {
        Self::open(
            || store_kurrentdb::KurrentStore::connect(url),
            "opening the KurrentDB event store",
        )
    }

    fn number(&mut self, name: &Arc<str>) -> u64 {
        if let Some(number) = self.numbers.get(name) {
            return *number;
        }
        self.names.push(Arc::clone(name));
        let number = self.names.len() as u64;
        self.numbers.insert(Arc::clone(name), number);
        number
    }

    /// Visit the events with `after < position <= until`, at most `limit`.
    fn each<E: From<StoreError>>(
        &mut self,
        after: u64,
        until: u64,
        limit: usize,
        mut visit: impl FnMut(&EventRef<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let page: Vec<RecordedEvent> = self.runtime.block_on(self.store.read_all(after, limit))?;
        // Read after the events: it holds at least their positions.
        let links = self
            .runtime
            .block_on(self.store.read_chain(after, page.len()))?;
        let mut visited = 0;
        for (index, event) in page.iter().take_while(|e| e.position <= until).enumerate() {
            let number = self.number(&event.stream);
            let metadata = store::encode_metadata(&event.metadata);
            let chain = links
                .get(index)
                .filter(|link| link.position == event.position)
                .map_or(&[][..], |link| &link.link[..]);
            visit(&EventRef {
                position: event.position,
                stream: &event.stream,
                stream_number: number,
                revision: event.revision,
                type_name: &event.type_name,
                schema_version: event.schema_version,
                id_bytes: event.id.as_bytes(),
                recorded_at_micros: event.recorded_at.timestamp_micros(),
                metadata_bytes: &metadata,
                payload: &event.payload,
                chain,
            })?;
            visited += 1;
        }
        Ok(visited)
    }
}

impl Log {
    /// The data keys of the log's key table, held to open sealed personal
    /// data (`None` without the server secret: sealed fields then read as
    /// erased, and a note says so).
    pub fn key_ring(&mut self, source: &Source) -> anyhow::Result<Option<keys::KeyRing>> {
        let keyer = match keyer(source) {
            Ok(keyer) => keyer,
            Err(error) => {
                eprintln!(
                    "note: without the server secret ({error:#}), sealed personal data reads as erased"
                );
                return Ok(None);
            }
        };
        let ring = keys::KeyRing::new(keyer);
        match self {
            Log::File(reader) => ring
                .hold(&reader.data_keys()?)
                .context("unwrapping the data keys")?,
            Log::Port(log) => {
                log.runtime
                    .block_on(ring.load_all(log.store.as_ref()))
                    .context("reading the data keys")?;
            }
        }
        ring.treat_missing_as_destroyed();
        Ok(Some(ring))
    }

    /// Hold the log's data keys for [`decode`] (read them after the head
    /// the command works to, so that every key up to it is there).
    pub fn install_key_ring(&mut self, source: &Source) -> anyhow::Result<()> {
        if RING.get().is_none()
            && let Some(ring) = self.key_ring(source)?
        {
            let _ = RING.set(ring);
        }
        Ok(())
    }

    /// Position of the last event.
    pub fn head(&mut self) -> Result<u64, StoreError> {
        match self {
            Log::File(reader) => reader.head(),
            Log::Port(log) => log.runtime.block_on(log.store.head_position()),
        }
    }

    /// Whether the log holds the hash chain (a file of schema version 2 or
    /// older does not, until the server opens it).
    pub fn has_chain(&self) -> bool {
        match self {
            Log::File(reader) => reader.has_chain(),
            Log::Port(_) => true,
        }
    }

    /// The position and stored link of the last event; `None` when the log
    /// is empty (or has no chain).
    pub fn chain_head(&mut self) -> Result<Option<store::chain::ChainLink>, StoreError> {
        match self {
            Log::File(reader) => reader.chain_head(),
            Log::Port(log) => {
                let head = log.runtime.block_on(log.store.head_position())?;
                if head == 0 {
                    return Ok(None);
                }
                let links = log.runtime.block_on(log.store.read_chain(head - 1, 1))?;
                Ok(links.into_iter().next())
            }
        }
    }

    /// Leave stream names out of scans (the file only; faster).
    pub fn skip_stream_names(&mut self, skip: bool) {
        if let Log::File(reader) = self {
            reader.skip_stream_names(skip);
        }
    }

    /// The name of the stream numbered `number`.
    pub fn stream_name(&mut self, number: u64) -> Result<String, StoreError> {
        match self {
            Log::File(reader) => reader.stream_name(number),
            Log::Port(log) => usize::try_from(number)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|n| log.names.get(n))
                .map(|name| name.to_string())
                .ok_or_else(|| StoreError::Backend(format!("no stream numbered {number}"))),
        }
    }

    /// Every stream numbered above `after`, with its name.
    pub fn for_each_stream_after(
        &mut self,
        after: u64,
        mut visit: impl FnMut(u64, &str),
    ) -> Result<(), StoreError> {
        match self {
            Log::File(reader) => reader.for_each_stream_after(after, visit),
            Log::Port(log) => {
                // Through the port the names come from a scan of the log.
                let head = log.runtime.block_on(log.store.head_position())?;
                let mut from = 0;
                while from < head {
                    let mut last = from;
                    let visited = log.each::<StoreError>(from, head, PAGE, |event| {
                        last = event.position;
                        Ok(())
                    })?;
                    if visited == 0 {
                        break;
                    }
                    from = last;
                }
                for (index, name) in log.names.iter().enumerate() {
                    let number = index as u64 + 1;
                    if number > after {
                        visit(number, name);
                    }
                }
                Ok(())
            }
        }
    }

    /// Visit every event with `after < position <= until`, at most `limit`.
    pub fn for_each_between<E: From<StoreError>>(
        &mut self,
        after: u64,
        until: u64,
        limit: usize,
        visit: impl FnMut(&EventRef<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        match self {
            Log::File(reader) => reader.for_each_between(after, until, limit, visit),
            Log::Port(log) => log.each(after, until, limit, visit),
        }
    }

    /// [`Log::for_each_between`] with only what a fold needs.
    pub fn for_each_payload_between<E: From<StoreError>>(
        &mut self,
        after: u64,
        until: u64,
        limit: usize,
        mut visit: impl FnMut(&PayloadRef<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        match self {
            Log::File(reader) => reader.for_each_payload_between(after, until, limit, visit),
            Log::Port(log) => log.each(after, until, limit, |event| {
                visit(&PayloadRef {
                    position: event.position,
                    stream: event.stream,
                    stream_number: event.stream_number,
                    type_name: event.type_name,
                    schema_version: event.schema_version,
                    payload: event.payload,
                    id_bytes: event.id_bytes,
                })
            }),
        }
    }

    /// Read one stream.
    pub fn read_stream(
        &mut self,
        stream: &str,
        start: StreamStart,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        match self {
            Log::File(reader) => reader.read_stream(stream, start, direction, limit),
            Log::Port(log) => log
                .runtime
                .block_on(log.store.read_stream(stream, start, direction, limit)),
        }
    }
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

    #[cfg(not(feature = "kurrentdb"))]
    #[test]
    fn without_the_feature_a_kurrentdb_url_says_how_to_build() {
        let source = Source {
            data_dir: PathBuf::from("/nonexistent"),
            store: Some("esdb://auditor:pw@node:2113".to_owned()),
            secret_file: None,
        };
        let error = open(&source).err().expect("refused").to_string();
        assert!(error.contains("--features kurrentdb"), "{error}");
        assert!(!error.contains("pw"), "{error}");
    }
}
