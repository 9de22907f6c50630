//! `replay-tool head`: the position and hash-chain link of the log's last
//! event, saved to a file that `verify --expect-head` later checks the log
//! against (a cut tail is found only so).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use store::chain::{ChainLink, Link};

use crate::log;

/// The first line of a head file.
const HEADER: &str = "caseledger event log head";

/// The head of an empty log: position 0, the chain's first link.
fn empty_log() -> ChainLink {
    ChainLink {
        position: 0,
        link: store::chain::genesis(),
    }
}

/// A head as the text of a head file.
pub fn render(head: &ChainLink) -> String {
    format!(
        "{HEADER}\nposition: {}\nlink: {}\n",
        head.position,
        hex::encode(head.link)
    )
}

/// Read a head file written by [`render`].
pub fn parse(text: &str) -> anyhow::Result<ChainLink> {
    let mut lines = text.lines().map(str::trim);
    anyhow::ensure!(
        lines.next() == Some(HEADER),
        "not a head file (it does not start with {HEADER:?})"
    );
    let (mut position, mut link) = (None, None);
    for line in lines.filter(|line| !line.is_empty()) {
        match line.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("position", value)) => {
                position = Some(value.parse::<u64>().context("position is not a number")?);
            }
            Some(("link", value)) => {
                let bytes = hex::decode(value).context("link is not hex")?;
                let bytes: Link = bytes
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("link is not 32 bytes"))?;
                link = Some(bytes);
            }
            _ => anyhow::bail!("unexpected line {line:?}"),
        }
    }
    Ok(ChainLink {
        position: position.context("no position line")?,
        link: link.context("no link line")?,
    })
}

/// Read the head file at `path`.
pub fn read(path: &Path) -> anyhow::Result<ChainLink> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the head file {}", path.display()))?;
    parse(&text).with_context(|| format!("reading the head file {}", path.display()))
}

/// Write the log's head now to `out` (or print it), and print it.
pub fn run(source: &log::Source, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut reader = log::open(source)?;
    anyhow::ensure!(
        reader.has_chain(),
        "the event store has no hash chain yet (an older schema): the server adds it when it next opens the store"
    );
    let head = reader
        .chain_head()
        .context("reading the log's head")?
        .unwrap_or_else(empty_log);
    let text = render(&head);
    if let Some(path) = out {
        std::fs::write(path, &text)
            .with_context(|| format!("writing the head file {}", path.display()))?;
    }
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_head_parses_back_and_a_damaged_one_is_refused() {
        let head = ChainLink {
            position: 42,
            link: [7; 32],
        };
        assert_eq!(parse(&render(&head)).unwrap(), head);
        let short = render(&head).replace(&"07".repeat(32), &"07".repeat(31));
        assert!(parse(&short).is_err());
        assert!(parse("position: 1\n").is_err());
        assert!(parse(&format!("{HEADER}\nposition: 1\n")).is_err());
    }
}
