//! The retention policy (R11), pure: which tags of a repository stay, which go, and which
//! digests may be deleted without breaking a kept tag.
//!
//! Reading of "keep all major versions": the newest release of every major stays (with the
//! major's floating tags), so every major remains pullable by its newest version. In the
//! current (highest) major, the newest patch of each of the last `minors` minor lines stays,
//! and in the current minor line the last `patches` patches stay. Floating tags (`vX`, `vX.Y`,
//! `latest` and per-arch twins) are never deleted by the policy. Dev tags go once older than
//! `dev_max_age_days` (age read from the image). A pre-release goes once its version is
//! released or a newer stable version exists.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::tags::{self, ReleaseVersion};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub minors: usize,
    pub patches: usize,
    pub dev_max_age_days: u64,
    /// What marks a dev/test tag.
    pub dev_pattern: String,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy { minors: 10, patches: 5, dev_max_age_days: 30, dev_pattern: "-dev-".into() }
    }
}

/// What the registry holds for one repository.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every tag and the digest it points at.
    pub tags: Vec<(String, String)>,
    /// For each index digest, the digests it references (platform images and attestations).
    pub children: BTreeMap<String, Vec<String>>,
    /// Creation time (Unix seconds) of the images behind dev tags, read from the images.
    pub created: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// `DELETE /v2/<name>/manifests/<digest>`: the manifest and every tag on it.
    Digest,
    /// A registry that deletes single tags (Docker Hub's `hub.docker.com/v2` API).
    Tag,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub tag: String,
    pub digest: String,
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deletion {
    /// The digest deleted (method digest) or the tag deleted (method tag).
    pub target: String,
    pub method: Method,
    /// The tags that go with it.
    pub tags: Vec<String>,
    pub rule: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub kept: Vec<Decision>,
    pub deleted: Vec<Decision>,
    /// In order: tags and indexes first, then the manifests they leave unreferenced.
    pub deletions: Vec<Deletion>,
}

enum Verdict {
    Keep(String),
    Delete(String),
}

fn is_floating(tag: &str) -> bool {
    let base = crate::manifest::Platform::ALL
        .iter()
        .find_map(|platform| tag.strip_suffix(&format!("-{}", platform.arch())))
        .unwrap_or(tag);
    if base == "latest" {
        return true;
    }
    let Some(numbers) = base.strip_prefix('v') else { return false };
    let parts: Vec<&str> = numbers.split('.').collect();
    (1..=2).contains(&parts.len())
        && parts.iter().all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// Why each release version stays or goes.
fn version_verdicts(versions: &BTreeSet<VersionKey>, policy: &Policy) -> BTreeMap<VersionKey, Verdict> {
    let stable: Vec<&ReleaseVersion> =
        versions.iter().map(|key| &key.0).filter(|version| version.is_stable()).collect();
    let newest_stable = stable.iter().max_by(|a, b| a.precedence(b)).copied();
    let current_major = newest_stable.map(|version| version.0.major);
    let mut verdicts = BTreeMap::new();
    // The last `minors` minor lines of the current major, newest first.
    let mut current_minors: Vec<u64> =
        stable.iter().filter(|version| Some(version.0.major) == current_major).map(|version| version.0.minor).collect();
    current_minors.sort_unstable_by(|a, b| b.cmp(a));
    current_minors.dedup();
    let kept_minors: Vec<u64> = current_minors.iter().take(policy.minors).copied().collect();
    let current_minor = kept_minors.first().copied();
    for key in versions {
        let version = &key.0;
        let v = &version.0;
        let verdict = if !version.is_stable() {
            let released = stable
                .iter()
                .any(|stable| stable.0.major == v.major && stable.0.minor == v.minor && stable.0.patch == v.patch);
            match newest_stable {
                _ if released => {
                    Verdict::Delete(format!("pre-release of v{}.{}.{}, which is released", v.major, v.minor, v.patch))
                }
                Some(newest) if newest.precedence(version).is_gt() => {
                    Verdict::Delete(format!("pre-release superseded by {newest}"))
                }
                _ => Verdict::Keep("pre-release of an upcoming version".into()),
            }
        } else {
            let same_major: Vec<&&ReleaseVersion> = stable.iter().filter(|other| other.0.major == v.major).collect();
            let newest_of_major = same_major.iter().all(|other| version.precedence(other).is_ge());
            let same_minor: Vec<&&ReleaseVersion> =
                same_major.iter().filter(|other| other.0.minor == v.minor).copied().collect();
            let newer_patches = same_minor.iter().filter(|other| other.precedence(version).is_gt()).count();
            if Some(v.major) == current_major && Some(v.minor) == current_minor && newer_patches < policy.patches {
                Verdict::Keep(format!("one of the last {} patches of v{}.{}", policy.patches, v.major, v.minor))
            } else if Some(v.major) == current_major && kept_minors.contains(&v.minor) && newer_patches == 0 {
                Verdict::Keep(format!("newest patch of one of the last {} minor lines of v{}", policy.minors, v.major))
            } else if newest_of_major {
                Verdict::Keep(format!("newest release of major v{}", v.major))
            } else if Some(v.major) != current_major {
                Verdict::Delete(format!("older release of major v{} (only its newest release is kept)", v.major))
            } else if !kept_minors.contains(&v.minor) {
                Verdict::Delete(format!(
                    "minor line v{}.{} is beyond the last {} of v{}",
                    v.major, v.minor, policy.minors, v.major
                ))
            } else {
                Verdict::Delete(format!("superseded patch of v{}.{}", v.major, v.minor))
            }
        };
        verdicts.insert(key.clone(), verdict);
    }
    verdicts
}

/// Orders release versions by SemVer precedence for use as a map key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VersionKey(ReleaseVersion);

impl PartialOrd for VersionKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for VersionKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.precedence(&other.0).then_with(|| self.0.0.pre.as_str().cmp(other.0.0.pre.as_str()))
    }
}

/// The plan for one repository. `now` is Unix seconds; `tag_deletes` says whether the registry
/// can delete a single tag (else only whole digests go).
pub fn plan(snapshot: &Snapshot, policy: &Policy, now: i64, tag_deletes: bool) -> Plan {
    let versions: BTreeSet<VersionKey> = snapshot
        .tags
        .iter()
        .filter(|(tag, _)| !tag.contains(&policy.dev_pattern))
        .filter_map(|(tag, _)| tags::release_version_of(tag))
        .map(VersionKey)
        .collect();
    let version_verdicts = version_verdicts(&versions, policy);
    let mut kept = Vec::new();
    let mut deleted = Vec::new();
    for (tag, digest) in &snapshot.tags {
        let verdict = if is_floating(tag) {
            Verdict::Keep("floating tags are never deleted".into())
        } else if tag.contains(&policy.dev_pattern) {
            match snapshot.created.get(tag) {
                Some(created) if now - created > (policy.dev_max_age_days * 86_400) as i64 => Verdict::Delete(format!(
                    "dev tag older than {} days ({} days)",
                    policy.dev_max_age_days,
                    (now - created) / 86_400
                )),
                Some(_) => Verdict::Keep(format!("dev tag younger than {} days", policy.dev_max_age_days)),
                None => Verdict::Keep("dev tag whose age the image does not tell".into()),
            }
        } else {
            match tags::release_version_of(tag).and_then(|version| version_verdicts.get(&VersionKey(version))) {
                Some(Verdict::Keep(rule)) => Verdict::Keep(rule.clone()),
                Some(Verdict::Delete(rule)) => Verdict::Delete(rule.clone()),
                None => Verdict::Keep("not a release, floating or dev tag: left alone".into()),
            }
        };
        let decision = |rule: String| Decision { tag: tag.clone(), digest: digest.clone(), rule };
        match verdict {
            Verdict::Keep(rule) => kept.push(decision(rule)),
            Verdict::Delete(rule) => deleted.push(decision(rule)),
        }
    }

    // Nothing a kept tag needs may go: its digest, or a child of its index.
    let needed = |kept: &[Decision]| -> BTreeSet<String> {
        let mut needed = BTreeSet::new();
        for decision in kept {
            needed.insert(decision.digest.clone());
            needed.extend(snapshot.children.get(&decision.digest).into_iter().flatten().cloned());
        }
        needed
    };
    let reachable = needed(&kept);
    let mut deletions = Vec::new();
    let mut still_deleted = Vec::new();
    for decision in deleted {
        if !reachable.contains(&decision.digest) {
            still_deleted.push(decision);
        } else if tag_deletes {
            deletions.push(Deletion {
                target: decision.tag.clone(),
                method: Method::Tag,
                tags: vec![decision.tag.clone()],
                rule: decision.rule.clone(),
            });
            still_deleted.push(decision);
        } else {
            let holder = kept.iter().find(|kept| {
                kept.digest == decision.digest
                    || snapshot.children.get(&kept.digest).is_some_and(|children| children.contains(&decision.digest))
            });
            let holder = holder.map_or("a kept tag".to_string(), |holder| format!("kept tag {}", holder.tag));
            kept.push(Decision {
                rule: format!(
                    "{}, but {holder} needs its digest and the registry deletes by digest only",
                    decision.rule
                ),
                ..decision
            });
        }
    }
    let reachable = needed(&kept);
    // Whole digests, each with every tag on it (all of them deleted, or it would be reachable).
    let mut by_digest: BTreeMap<String, Vec<&Decision>> = BTreeMap::new();
    for decision in still_deleted.iter().filter(|decision| !reachable.contains(&decision.digest)) {
        by_digest.entry(decision.digest.clone()).or_default().push(decision);
    }
    let mut orphans = BTreeSet::new();
    // Indexes before the images they reference, so no index is ever left pointing at nothing.
    let mut digests: Vec<(&String, &Vec<&Decision>)> = by_digest.iter().collect();
    digests.sort_by_key(|(digest, _)| !snapshot.children.contains_key(*digest));
    for (digest, decisions) in digests {
        let mut tags: Vec<String> = decisions.iter().map(|decision| decision.tag.clone()).collect();
        tags.sort();
        deletions.push(Deletion {
            target: digest.clone(),
            method: Method::Digest,
            tags,
            rule: decisions[0].rule.clone(),
        });
        orphans.extend(
            snapshot
                .children
                .get(digest)
                .into_iter()
                .flatten()
                .filter(|child| !reachable.contains(*child) && !by_digest.contains_key(*child))
                .cloned(),
        );
    }
    for orphan in orphans {
        deletions.push(Deletion {
            target: orphan,
            method: Method::Digest,
            tags: Vec::new(),
            rule: "untagged manifest left by the deletions above".into(),
        });
    }
    kept.sort_by(|a, b| a.tag.cmp(&b.tag));
    still_deleted.sort_by(|a, b| a.tag.cmp(&b.tag));
    Plan { kept, deleted: still_deleted, deletions }
}

#[cfg(test)]
mod tests;
