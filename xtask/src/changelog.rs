//! CHANGELOG.md in Keep a Changelog 1.1.0, edited as text (pure): the `Unreleased` section
//! becomes the release, a new empty `Unreleased` goes above it, and the compare links at the
//! bottom follow. Every byte the humans wrote stays.

use anyhow::bail;

use crate::error::bad_input;
use crate::tags::ReleaseVersion;

pub const PATH: &str = "CHANGELOG.md";

const UNRELEASED_HEADING: &str = "## [Unreleased]";

/// The lines of the `Unreleased` section (between its heading and the next `## ` heading).
fn unreleased_range(lines: &[&str]) -> anyhow::Result<(usize, usize)> {
    let Some(start) = lines.iter().position(|line| line.trim_end().eq_ignore_ascii_case(UNRELEASED_HEADING)) else {
        return Err(bad_input(format!(
            "{PATH} has no `{UNRELEASED_HEADING}` heading: add one above the newest release (Keep a Changelog 1.1.0)"
        )));
    };
    let end = lines[start + 1..]
        .iter()
        .position(|line| line.starts_with("## "))
        .map_or(lines.len(), |offset| start + 1 + offset);
    Ok((start, end))
}

/// The entries under `Unreleased` (list items), empty when there are none.
pub fn unreleased_entries(text: &str) -> anyhow::Result<Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let (start, end) = unreleased_range(&lines)?;
    Ok(lines[start + 1..end]
        .iter()
        .map(|line| line.trim())
        .filter(|line| line.starts_with("- ") || line.starts_with("* "))
        .map(str::to_string)
        .collect())
}

/// Moves `Unreleased` into `## [X.Y.Z] - date` under a fresh empty `Unreleased`, and updates
/// the link references: `[unreleased]` compares from the new tag, `[X.Y.Z]` from the previous.
pub fn release(text: &str, version: &ReleaseVersion, date: &str, repository_url: &str) -> anyhow::Result<String> {
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = text.lines().collect();
    let (start, end) = unreleased_range(&lines)?;
    let bare = version.0.to_string();
    if lines.iter().any(|line| line.starts_with(&format!("## [{bare}]"))) {
        return Err(bad_input(format!("{PATH} already has a `## [{bare}]` section: this version was released before")));
    }
    // The newest released version, for the compare link of this release.
    let previous = lines[end..].iter().find_map(|line| {
        line.strip_prefix("## [").and_then(|rest| rest.split_once(']')).map(|(name, _)| name.to_string())
    });
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 4);
    out.extend(lines[..=start].iter().map(|line| line.to_string()));
    out.push(String::new());
    out.push(format!("## [{bare}] - {date}"));
    // The section body as written, without the blank lines that surrounded the old heading.
    let body: Vec<&str> = lines[start + 1..end].to_vec();
    let first = body.iter().position(|line| !line.trim().is_empty()).unwrap_or(body.len());
    let last = body.iter().rposition(|line| !line.trim().is_empty()).map_or(first, |index| index + 1);
    out.push(String::new());
    out.extend(body[first..last].iter().map(|line| line.to_string()));
    out.push(String::new());
    out.extend(lines[end..].iter().map(|line| line.to_string()));

    let base = repository_url.trim_end_matches('/');
    let unreleased_link = format!("[unreleased]: {base}/compare/{version}...HEAD");
    let release_link = match &previous {
        Some(previous) => format!("[{bare}]: {base}/compare/v{previous}...{version}"),
        None => format!("[{bare}]: {base}/releases/tag/{version}"),
    };
    match out.iter().position(|line| line.to_ascii_lowercase().starts_with("[unreleased]:")) {
        Some(index) => {
            out[index] = unreleased_link;
            out.insert(index + 1, release_link);
        }
        None => {
            if out.last().is_some_and(|line| !line.is_empty()) {
                out.push(String::new());
            }
            out.push(unreleased_link);
            out.push(release_link);
        }
    }
    let mut result = out.join(newline);
    if text.ends_with('\n') {
        result.push_str(newline);
    }
    if result == text {
        bail!("{PATH}: the release changed nothing");
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# Changelog\n\nAll notable changes are documented here.\n\n## [Unreleased]\n\n### Added\n\n- Historical ingestion.\n\n### Fixed\n\n- A crash on empty killmails.\n\n## [3.0.0] - 2026-11-01\n\n### Added\n\n- The V3 services.\n\n[unreleased]: https://github.com/battlescope/battle-monitor/compare/v3.0.0...HEAD\n[3.0.0]: https://github.com/battlescope/battle-monitor/releases/tag/v3.0.0\n";

    fn v(text: &str) -> ReleaseVersion {
        ReleaseVersion::parse(text).unwrap()
    }

    #[test]
    fn unreleased_becomes_the_release_and_links_follow() {
        let after =
            release(BEFORE, &v("v3.1.0"), "2026-12-04", "https://github.com/battlescope/battle-monitor").unwrap();
        assert_eq!(
            after,
            "# Changelog\n\nAll notable changes are documented here.\n\n## [Unreleased]\n\n## [3.1.0] - 2026-12-04\n\n### Added\n\n- Historical ingestion.\n\n### Fixed\n\n- A crash on empty killmails.\n\n## [3.0.0] - 2026-11-01\n\n### Added\n\n- The V3 services.\n\n[unreleased]: https://github.com/battlescope/battle-monitor/compare/v3.1.0...HEAD\n[3.1.0]: https://github.com/battlescope/battle-monitor/compare/v3.0.0...v3.1.0\n[3.0.0]: https://github.com/battlescope/battle-monitor/releases/tag/v3.0.0\n"
        );
        assert!(unreleased_entries(&after).unwrap().is_empty());
    }

    #[test]
    fn entries_are_found_and_an_empty_section_has_none() {
        assert_eq!(unreleased_entries(BEFORE).unwrap(), ["- Historical ingestion.", "- A crash on empty killmails."]);
        let empty = BEFORE
            .replace("### Added\n\n- Historical ingestion.\n\n### Fixed\n\n- A crash on empty killmails.\n\n", "");
        assert!(unreleased_entries(&empty).unwrap().is_empty());
    }

    #[test]
    fn windows_line_endings_are_kept() {
        let crlf = BEFORE.replace('\n', "\r\n");
        let after = release(&crlf, &v("v3.1.0"), "2026-12-04", "https://x.test/r").unwrap();
        assert!(!after.replace("\r\n", "").contains('\n'), "every line ends in CRLF");
        assert!(after.contains("## [3.1.0] - 2026-12-04\r\n"));
    }

    #[test]
    fn a_first_release_without_links_gets_them() {
        let text = "# Changelog\n\n## [Unreleased]\n\n- First.\n";
        let after = release(text, &v("v1.0.0"), "2026-12-04", "https://x.test/r/").unwrap();
        assert!(
            after.ends_with(
                "[unreleased]: https://x.test/r/compare/v1.0.0...HEAD\n[1.0.0]: https://x.test/r/releases/tag/v1.0.0\n"
            ),
            "{after}"
        );
    }

    #[test]
    fn missing_heading_or_existing_version_is_bad_input() {
        let error = release("# Changelog\n", &v("v1.0.0"), "2026-12-04", "https://x.test").unwrap_err();
        assert!(error.to_string().contains("no `## [Unreleased]` heading"));
        assert_eq!(crate::error::exit_code(&error), 2);
        let error = release(BEFORE, &v("v3.0.0"), "2026-12-04", "https://x.test").unwrap_err();
        assert!(error.to_string().contains("already has a `## [3.0.0]` section"));
    }
}
