//! The tag scheme (R3, R6), pure: which tags a release version gets, which existing tags are
//! release versions, and which floating tags may move (only forward, `latest` only to the
//! highest stable release).

use std::cmp::Ordering;
use std::fmt;

use serde::Serialize;

use crate::manifest::Platform;

/// A release version as tags spell it: `v3.1.0`, `v3.1.0-rc.1`. Never build metadata (OCI tags
/// cannot hold `+`), never a pre-release that looks like an architecture suffix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReleaseVersion(pub semver::Version);

impl ReleaseVersion {
    /// Parses `vX.Y.Z[-pre]`; the error says what is wrong and how to write it.
    pub fn parse(text: &str) -> Result<ReleaseVersion, String> {
        let Some(bare) = text.strip_prefix('v') else {
            return Err(format!("`{text}` must start with `v`, for example `v3.1.0`"));
        };
        let version =
            semver::Version::parse(bare).map_err(|error| format!("`{text}` is not vMAJOR.MINOR.PATCH: {error}"))?;
        if !version.build.is_empty() {
            return Err(format!("`{text}` has build metadata (`+...`), which image tags cannot hold"));
        }
        if split_arch(text).1.is_some() {
            return Err(format!(
                "`{text}` ends like a per-arch tag (`-amd64`/`-arm64`): choose another pre-release name"
            ));
        }
        Ok(ReleaseVersion(version))
    }

    pub fn is_stable(&self) -> bool {
        self.0.pre.is_empty()
    }

    /// SemVer precedence (build metadata ignored).
    pub fn precedence(&self, other: &ReleaseVersion) -> Ordering {
        self.0.cmp_precedence(&other.0)
    }
}

impl fmt::Display for ReleaseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// `v3.1.0-amd64` is `(v3.1.0, amd64)`: the suffix is read as the architecture first, so a
/// per-arch tag is never mistaken for a pre-release.
fn split_arch(tag: &str) -> (&str, Option<Platform>) {
    for platform in Platform::ALL {
        if let Some(rest) = tag.strip_suffix(&format!("-{}", platform.arch())) {
            return (rest, Some(platform));
        }
    }
    (tag, None)
}

/// The release version an exact tag names (`v3.1.0`, `v3.1.0-rc.1`, `v3.1.0-arm64`), if any.
/// Floating tags, dev tags (`v3.0.0-dev-abc1234`) and others are not release versions.
pub fn release_version_of(tag: &str) -> Option<ReleaseVersion> {
    let (version, _) = split_arch(tag);
    let parsed = ReleaseVersion::parse(version).ok()?;
    let dev = parsed.0.pre.as_str().starts_with("dev-") || parsed.0.pre.as_str() == "dev";
    (!dev).then_some(parsed)
}

/// What a tag points at: the multi-platform index, or one platform's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Index,
    #[serde(untagged)]
    Arch(Platform),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TagKind {
    /// `vX.Y.Z` and its per-arch twins: never overwritten.
    Exact,
    /// `vX.Y`, `vX`, `latest` and their per-arch twins: move forward only.
    Floating,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedTag {
    pub tag: String,
    pub target: Target,
    pub kind: TagKind,
}

/// A floating tag this release leaves where it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldTag {
    pub tag: String,
    pub reason: String,
}

/// The tags `version` gets, given the release versions already in the registry: per-arch tags
/// first (the index's children), then the indexes; exact before floating.
pub fn plan_tags(
    version: &ReleaseVersion,
    platforms: &[Platform],
    existing: &[ReleaseVersion],
) -> (Vec<PlannedTag>, Vec<HeldTag>) {
    let v = &version.0;
    let mut names: Vec<(String, TagKind)> = vec![(version.to_string(), TagKind::Exact)];
    let mut held = Vec::new();
    if version.is_stable() {
        // Each floating tag and the versions it covers: (major, minor), `None` for any.
        let scopes = [
            (format!("v{}.{}", v.major, v.minor), Some(v.major), Some(v.minor)),
            (format!("v{}", v.major), Some(v.major), None),
            ("latest".to_string(), None, None),
        ];
        for (tag, major, minor) in scopes {
            let newest = existing
                .iter()
                .filter(|other| other.is_stable())
                .filter(|other| {
                    major.is_none_or(|major| other.0.major == major) && minor.is_none_or(|minor| other.0.minor == minor)
                })
                .max_by(|a, b| a.precedence(b));
            match newest {
                Some(newer) if newer.precedence(version) == Ordering::Greater => {
                    held.push(HeldTag { tag, reason: format!("stays on {newer}, which is newer") });
                }
                _ => names.push((tag, TagKind::Floating)),
            }
        }
    } else {
        held.push(HeldTag {
            tag: "floating tags".into(),
            reason: format!("{version} is a pre-release: only its exact tags are made"),
        });
    }
    let mut planned = Vec::new();
    for (name, kind) in &names {
        for platform in platforms {
            planned.push(PlannedTag {
                tag: format!("{name}-{}", platform.arch()),
                target: Target::Arch(*platform),
                kind: *kind,
            });
        }
    }
    for (name, kind) in names {
        planned.push(PlannedTag { tag: name, target: Target::Index, kind });
    }
    planned.sort_by_key(|tag| (tag.kind == TagKind::Floating, tag.target == Target::Index));
    (planned, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> ReleaseVersion {
        ReleaseVersion::parse(text).unwrap()
    }

    fn tag_names(version: &str, existing: &[&str]) -> Vec<String> {
        let existing: Vec<ReleaseVersion> = existing.iter().map(|text| v(text)).collect();
        plan_tags(&v(version), &Platform::ALL, &existing).0.into_iter().map(|tag| tag.tag).collect()
    }

    #[test]
    fn first_release_gets_all_twelve_tags_children_first() {
        assert_eq!(
            tag_names("v3.0.0", &[]),
            [
                "v3.0.0-amd64",
                "v3.0.0-arm64",
                "v3.0.0",
                "v3.0-amd64",
                "v3.0-arm64",
                "v3-amd64",
                "v3-arm64",
                "latest-amd64",
                "latest-arm64",
                "v3.0",
                "v3",
                "latest"
            ]
        );
    }

    #[test]
    fn a_hotfix_after_a_newer_minor_moves_only_its_minor_line() {
        let existing = [v("v3.0.4"), v("v3.2.0")];
        let (planned, held) = plan_tags(&v("v3.0.5"), &Platform::ALL, &existing);
        let names: Vec<&str> = planned.iter().map(|tag| tag.tag.as_str()).collect();
        assert_eq!(names, ["v3.0.5-amd64", "v3.0.5-arm64", "v3.0.5", "v3.0-amd64", "v3.0-arm64", "v3.0"]);
        assert_eq!(held[0], HeldTag { tag: "v3".into(), reason: "stays on v3.2.0, which is newer".into() });
        assert_eq!(held[1].tag, "latest");
    }

    #[test]
    fn an_older_major_keeps_latest_on_the_newest() {
        let names = tag_names("v2.9.1", &["v3.0.0", "v2.9.0"]);
        assert!(names.contains(&"v2".to_string()) && names.contains(&"v2.9".to_string()));
        assert!(!names.iter().any(|name| name.starts_with("latest")), "{names:?}");
    }

    #[test]
    fn pre_releases_get_only_their_exact_tags_and_never_hold_back_stable_ones() {
        assert_eq!(tag_names("v3.1.0-rc.1", &["v3.0.0"]), ["v3.1.0-rc.1-amd64", "v3.1.0-rc.1-arm64", "v3.1.0-rc.1"]);
        let names = tag_names("v3.0.1", &["v3.0.0", "v3.1.0-rc.1"]);
        assert!(names.contains(&"latest".to_string()), "a pre-release is not newer for floating tags: {names:?}");
    }

    #[test]
    fn republishing_the_newest_version_keeps_its_floating_tags() {
        assert_eq!(tag_names("v3.2.0", &["v3.2.0", "v3.1.0"]).len(), 12);
    }

    #[test]
    fn per_arch_tags_are_never_read_as_pre_releases() {
        assert_eq!(release_version_of("v3.1.0-amd64"), Some(v("v3.1.0")));
        assert!(release_version_of("v3.1.0-amd64").unwrap().is_stable());
        assert_eq!(release_version_of("v3.1.0-rc.1-arm64"), Some(v("v3.1.0-rc.1")));
        assert_eq!(release_version_of("v3.0.0-dev-abc1234"), None);
        assert_eq!(release_version_of("v3.0"), None);
        assert_eq!(release_version_of("latest-amd64"), None);
        assert_eq!(release_version_of("buildcache"), None);
    }

    #[test]
    fn versions_that_tags_cannot_carry_are_refused() {
        assert!(ReleaseVersion::parse("3.1.0").unwrap_err().contains("must start with `v`"));
        assert!(ReleaseVersion::parse("v3.1").unwrap_err().contains("not vMAJOR.MINOR.PATCH"));
        assert!(ReleaseVersion::parse("v3.1.0+build.5").unwrap_err().contains("build metadata"));
        assert!(ReleaseVersion::parse("v3.1.0-amd64").unwrap_err().contains("per-arch tag"));
    }

    #[test]
    fn precedence_follows_semver() {
        let mut versions = [v("v3.0.0"), v("v3.0.0-rc.2"), v("v3.0.0-rc.10"), v("v2.9.9"), v("v3.0.0-beta")];
        versions.sort_by(|a, b| a.precedence(b));
        let sorted: Vec<String> = versions.iter().map(ToString::to_string).collect();
        assert_eq!(sorted, ["v2.9.9", "v3.0.0-beta", "v3.0.0-rc.2", "v3.0.0-rc.10", "v3.0.0"]);
    }
}
