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

/// Paths with uncommitted changes (tracked or untracked), as `git status --porcelain` lists them.
pub fn dirty_paths(root: &Path) -> anyhow::Result<Vec<String>> {
    let status = Cmd::new("git")
        .args(["status", "--porcelain", "--untracked-files=normal"])
        .read(root)
        .context("read git status")?;
    Ok(status
        .lines()
        .map(|line| line.get(3..).unwrap_or_default().to_string())
        .filter(|path| !path.is_empty())
        .collect())
}

pub fn tag_exists(root: &Path, tag: &str) -> anyhow::Result<bool> {
    let tags = Cmd::new("git").args(["tag", "--list", tag]).read(root).context("list git tags")?;
    Ok(tags.lines().any(|line| line == tag))
}

/// Every git tag, for picking the next pre-release number.
pub fn tags(root: &Path) -> anyhow::Result<Vec<String>> {
    Ok(Cmd::new("git")
        .args(["tag", "--list"])
        .read(root)
        .context("list git tags")?
        .lines()
        .map(str::to_string)
        .collect())
}

/// Whether commits can be made: git refuses them without a name and e-mail.
pub fn identity_configured(root: &Path) -> bool {
    Cmd::new("git").args(["config", "user.email"]).read(root).is_ok_and(|email| !email.is_empty())
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
