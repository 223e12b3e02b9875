//! Git, through the `git` command: the revision images are labelled with.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::process::Cmd;

/// The commit being built: it names dev tags and fills the revision and created labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revision {
    pub sha: String,
    pub short_sha: String,
    /// The commit time in UTC, RFC 3339: reproducible, unlike the wall clock.
    pub created: String,
}

pub fn head_revision(root: &Path) -> anyhow::Result<Revision> {
    let line = Cmd::new("git")
        .args([
            "-c",
            "log.showSignature=false",
            "log",
            "-1",
            "--format=%H %h %cd",
            "--abbrev=7",
            "--date=format-local:%Y-%m-%dT%H:%M:%SZ",
        ])
        .env("TZ", "UTC")
        .read(root)
        .context("read the current commit (the tool needs a git checkout with at least one commit)")?;
    parse_revision(&line).with_context(|| format!("unexpected `git log` output: {line:?}"))
}

fn parse_revision(line: &str) -> Option<Revision> {
    let mut words = line.split(' ');
    let (sha, short_sha, created) = (words.next()?, words.next()?, words.next()?);
    Some(Revision { sha: sha.to_string(), short_sha: short_sha.to_string(), created: created.to_string() })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_log_line() {
        let revision =
            super::parse_revision("0123456789abcdef0123456789abcdef01234567 0123456 2026-12-04T15:40:00Z").unwrap();
        assert_eq!(revision.short_sha, "0123456");
        assert_eq!(revision.created, "2026-12-04T15:40:00Z");
    }
}
