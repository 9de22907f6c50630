//! `replay-tool`, the auditors' CLI: verify, tell and export the event log
//! of a data dir, read-only and safe while the server runs.

mod as_of;
mod export;
mod head;
mod history;
mod log;
mod rebuild;
mod render;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use domain::{AccountId, ApplicationId, Email};
use migrations::json::Disclosure;
use uuid::Uuid;

/// mimalloc: decoding millions of events allocates and frees millions of
/// small strings; the system allocator is the slower of the two at that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The auditors' CLI: replays the event log of a caseledger data dir.
#[derive(Debug, Parser)]
#[command(
    name = "replay-tool",
    version,
    about,
    after_help = "\
Examples:
  replay-tool --data-dir /var/lib/caseledger verify
  replay-tool head --out head.txt; replay-tool verify --expect-head head.txt
  replay-tool history --account 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b
  replay-tool history --email kari@example.no --show-personal-data
  replay-tool as-of 2026-03-05T12:00:00Z --identity account:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b
  CASELEDGER_DATA_DIR=./data replay-tool export --format jsonl --output events.jsonl

Exit status: 0 when all is well; 1 when verify finds a bad event or rebuild a
digest mismatch; 2 when the tool cannot run (bad arguments, no store, I/O).

The store is opened read-only: the tool never creates, migrates or writes
anything in the data dir, and may run while the server serves."
)]
struct Cli {
    /// The server's data dir (holds events.sqlite3 and secret.key).
    #[arg(
        long,
        env = "CASELEDGER_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    data_dir: PathBuf,
    /// The event store when it is not the data dir's own:
    /// `sqlite:<path>` or `postgres://user@host:port/db` (read only).
    #[arg(long, env = "CASELEDGER_STORE", hide_env_values = true, global = true)]
    store: Option<String>,
    /// The server secret when it is not `<data-dir>/secret.key` (needed to
    /// find an email's streams).
    #[arg(long, env = "CASELEDGER_SECRET_FILE", global = true)]
    secret_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that every event decodes (through the upcasters), that stream
    /// revisions are contiguous from 0, that global positions strictly
    /// increase and that the hash chain holds; print a report. Exit 1
    /// naming the first bad event.
    #[command(after_help = "\
Examples:
  replay-tool --data-dir ./data verify
  CASELEDGER_DATA_DIR=./data replay-tool verify && echo intact
  replay-tool verify --expect-head /safe/place/head-2026-03-05.txt

The report lists events, streams, every (type, schema version) with its count
and the time taken. The log is read up to its head when verify starts.

Every event's stored link is recomputed from the link before it, its place
(position, stream, revision) and every stored byte (id, type, schema version,
recorded_at, metadata, payload): a changed byte anywhere in an event, or an
event removed, inserted or moved, is named by its position. A cut tail leaves
a shorter chain that still holds: only a head saved earlier with `head --out`
and given as --expect-head finds it. Keep head files away from the store.")]
    Verify(VerifyArgs),
    /// Write the position and hash-chain link of the log's last event (its
    /// head) for a later `verify --expect-head`.
    #[command(after_help = "\
Examples:
  replay-tool head --out /safe/place/head-2026-03-05.txt
  replay-tool --store postgres://auditor@db/caseledger head --out head.txt

Run verify first: a head anchors the log as it is now. Keep the file where
whoever can write the store cannot.")]
    Head(HeadArgs),
    /// Print the timeline of an account, an application or an email: when,
    /// what, by whom (actor, correlation), with the event's fields.
    #[command(after_help = "\
Examples:
  replay-tool history --account 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b
  replay-tool history --application 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c
  replay-tool history --email kari@example.no
  replay-tool history --email kari@example.no --show-personal-data

An account's history holds its own stream, the applications it created, the
flows that registered or recovered it and its reservation events. An email's
history holds its reservation stream (found through the keyed hash under
<data-dir>/secret.key), every flow started for it and the history of every
account that ever held it. Emails, names, birth dates and nationalities are
masked unless --show-personal-data is given; password hashes, code and token
digests are never shown.")]
    History(HistoryArgs),
    /// Show a login identity's "My applications" exactly as they were at an
    /// instant, from the events recorded at or before it.
    #[command(after_help = "\
Examples:
  replay-tool as-of 2026-03-05T12:00:00Z --identity account:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b
  replay-tool as-of 2028-01-01T00:00:00+01:00 --email kari@example.no

With --email, every account that held the email's reservation by then is
shown (an email may have had several accounts over time), deleted ones too.")]
    AsOf(AsOfArgs),
    /// Rebuild every read model from zero and compare its digest with the
    /// live snapshot's; then report the digest at the head.
    #[command(after_help = "\
Examples:
  replay-tool --data-dir ./data rebuild
  CASELEDGER_DATA_DIR=/var/lib/caseledger replay-tool rebuild || alert

The log is folded from zero to the position of <data-dir>/projections.snapshot
and the digests compared (exit 1 on a mismatch), then folded on to the head.
The snapshot is only read, never written.")]
    Rebuild,
    /// Write every event as one JSON object a line (position, stream,
    /// revision, id, type, schemaVersion, recordedAt, metadata, data).
    #[command(after_help = "\
Examples:
  replay-tool export --format jsonl > events.jsonl
  replay-tool export --format jsonl --output events.jsonl --show-personal-data

Personal data in `data` is \"[masked]\" unless --show-personal-data is given;
credential verifiers are always \"[redacted]\". An event that does not decode
stops the export with its position (run verify).")]
    Export(ExportArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// A head file written earlier by `head --out`: also fail when the log
    /// no longer holds that position with that link (a cut tail).
    #[arg(long)]
    expect_head: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct HeadArgs {
    /// Write the head here (it is printed either way).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("subject")
        .required(true)
        .args(["account", "application", "email"])
))]
struct HistoryArgs {
    /// An account id (uuid), with or without the `account:` prefix.
    #[arg(long)]
    account: Option<String>,
    /// An application id (uuid).
    #[arg(long)]
    application: Option<String>,
    /// An email address: every account ever registered with it.
    #[arg(long)]
    email: Option<String>,
    /// Show emails, names, birth dates and nationalities.
    #[arg(long)]
    show_personal_data: bool,
}

#[derive(Debug, Args)]
struct AsOfArgs {
    /// The instant (RFC 3339, e.g. 2026-03-05T12:00:00Z).
    instant: DateTime<Utc>,
    /// The login identity: `account:<uuid>`.
    #[arg(long, required_unless_present = "email", conflicts_with = "email")]
    identity: Option<String>,
    /// An email address: the account(s) that held it by the instant.
    #[arg(long)]
    email: Option<String>,
    /// Show emails, names, birth dates and nationalities.
    #[arg(long)]
    show_personal_data: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Write here instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Show emails, names, birth dates and nationalities.
    #[arg(long)]
    show_personal_data: bool,
}

fn disclosure(show: bool) -> Disclosure {
    if show {
        Disclosure::Shown
    } else {
        Disclosure::Masked
    }
}

fn account_id(raw: &str) -> anyhow::Result<AccountId> {
    let id = raw.trim();
    let id = id.strip_prefix("account:").unwrap_or(id);
    Uuid::parse_str(id)
        .map(AccountId)
        .map_err(|_| anyhow::anyhow!("{raw:?} is not an account id (account:<uuid>)"))
}

fn email(raw: &str) -> anyhow::Result<Email> {
    // The error says what is wrong with the address, never the address.
    Email::parse(raw).map_err(|error| anyhow::anyhow!("--email: {error}"))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data_dir = log::Source {
        data_dir: cli.data_dir,
        store: cli.store,
        secret_file: cli.secret_file,
    };
    match cli.command {
        Command::Verify(args) => verify::run(&data_dir, args.expect_head.as_deref()),
        Command::Head(args) => head::run(&data_dir, args.out.as_deref()),
        Command::Rebuild => rebuild::run(&data_dir),
        Command::History(args) => {
            let subject = if let Some(raw) = &args.account {
                history::Subject::Account(account_id(raw)?)
            } else if let Some(raw) = &args.application {
                let id = Uuid::parse_str(raw.trim())
                    .map_err(|_| anyhow::anyhow!("{raw:?} is not an application id"))?;
                history::Subject::Application(ApplicationId(id))
            } else if let Some(raw) = &args.email {
                history::Subject::Email(email(raw)?)
            } else {
                anyhow::bail!("give --account, --application or --email");
            };
            history::run(&data_dir, &subject, disclosure(args.show_personal_data))
        }
        Command::AsOf(args) => {
            let who = match (&args.identity, &args.email) {
                (Some(identity), _) => as_of::Who::Account(account_id(identity)?),
                (None, Some(raw)) => as_of::Who::Email(email(raw)?),
                (None, None) => anyhow::bail!("give --identity or --email"),
            };
            as_of::run(
                &data_dir,
                args.instant,
                &who,
                disclosure(args.show_personal_data),
            )
        }
        Command::Export(args) => match args.format {
            Format::Jsonl => export::run(
                &data_dir,
                args.output.as_deref(),
                disclosure(args.show_personal_data),
            ),
        },
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("replay-tool: {error:#}");
            ExitCode::from(2)
        }
    }
}
