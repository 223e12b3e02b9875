//! The policy on a realistic history, and properties over random histories: the guide's counts
//! hold, and nothing a kept tag needs is ever deleted.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

/// A repository as `publish` leaves it after releasing `versions`: each version an index with
/// two platform images and an attestation, exact and per-arch tags, floating tags on the
/// newest version of their scope. `same_as_previous` makes a version share its digests with the
/// one before it (a re-release of identical content).
fn history(versions: &[(u64, u64, u64)], same_as_previous: &BTreeSet<usize>) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let mut digests: Vec<(semver::Version, String)> = Vec::new();
    for (index, (major, minor, patch)) in versions.iter().enumerate() {
        let version = semver::Version::new(*major, *minor, *patch);
        let id = if same_as_previous.contains(&index) && index > 0 {
            digests[index - 1].1.clone()
        } else {
            format!("{major}-{minor}-{patch}")
        };
        let index_digest = format!("sha256:index-{id}");
        snapshot.children.insert(
            index_digest.clone(),
            vec![format!("sha256:amd64-{id}"), format!("sha256:arm64-{id}"), format!("sha256:att-{id}")],
        );
        snapshot.tags.push((format!("v{version}"), index_digest));
        for arch in ["amd64", "arm64"] {
            snapshot.tags.push((format!("v{version}-{arch}"), format!("sha256:{arch}-{id}")));
        }
        digests.push((version, id));
    }
    let newest = |scope: &dyn Fn(&semver::Version) -> bool| {
        digests.iter().filter(|(version, _)| scope(version)).max_by(|a, b| a.0.cmp(&b.0)).cloned()
    };
    let mut floating: BTreeMap<String, String> = BTreeMap::new();
    for (version, _) in &digests {
        let (major, minor) = (version.major, version.minor);
        for (name, found) in [
            (format!("v{major}.{minor}"), newest(&|v: &semver::Version| v.major == major && v.minor == minor)),
            (format!("v{major}"), newest(&|v: &semver::Version| v.major == major)),
            ("latest".to_string(), newest(&|_: &semver::Version| true)),
        ] {
            floating.insert(name, found.unwrap().1);
        }
    }
    for (name, id) in floating {
        snapshot.tags.push((name.clone(), format!("sha256:index-{id}")));
        for arch in ["amd64", "arm64"] {
            snapshot.tags.push((format!("{name}-{arch}"), format!("sha256:{arch}-{id}")));
        }
    }
    snapshot
}

const NOW: i64 = 1_800_000_000;

fn kept_tags(plan: &Plan) -> BTreeSet<&str> {
    plan.kept.iter().map(|decision| decision.tag.as_str()).collect()
}

#[test]
fn the_guide_counts_on_a_long_history() {
    let mut versions = Vec::new();
    for minor in 0..4 {
        for patch in 0..3 {
            versions.push((2, minor, patch));
        }
    }
    for minor in 0..13 {
        for patch in 0..(if minor == 12 { 8 } else { 2 }) {
            versions.push((3, minor, patch));
        }
    }
    let mut snapshot = history(&versions, &BTreeSet::new());
    snapshot.tags.push(("v3.12.8-dev-aaaaaaa".into(), "sha256:dev-old".into()));
    snapshot.tags.push(("v3.12.8-dev-bbbbbbb".into(), "sha256:dev-new".into()));
    snapshot.tags.push(("buildcache".into(), "sha256:cache".into()));
    snapshot.created.insert("v3.12.8-dev-aaaaaaa".into(), NOW - 40 * 86_400);
    snapshot.created.insert("v3.12.8-dev-bbbbbbb".into(), NOW - 3 * 86_400);
    let plan = plan(&snapshot, &Policy::default(), NOW, false);
    let kept = kept_tags(&plan);
    // The last 5 patches of the current minor, v3.12.
    for patch in 3..8 {
        assert!(kept.contains(format!("v3.12.{patch}").as_str()), "v3.12.{patch}");
    }
    assert!(!kept.contains("v3.12.2"), "a sixth-newest patch goes");
    // The newest patch of each of the last 10 minor lines of v3: v3.3 to v3.12.
    for minor in 3..12 {
        assert!(kept.contains(format!("v3.{minor}.1").as_str()), "v3.{minor}.1");
        assert!(!kept.contains(format!("v3.{minor}.0").as_str()), "v3.{minor}.0 is superseded");
    }
    assert!(!kept.contains("v3.2.0") && !kept.contains("v3.2.0-arm64"), "v3.2 is beyond the last 10 minor lines");
    // Every major: its newest release.
    assert!(kept.contains("v2.3.2") && kept.contains("v2.3.2-amd64"));
    assert!(!kept.contains("v2.3.1") && !kept.contains("v2.0.0"));
    for floating in ["latest", "latest-arm64", "v3", "v2", "v2.0", "v3.2", "v3.2-amd64"] {
        assert!(kept.contains(floating), "{floating}");
    }
    assert!(!kept.contains("v3.12.8-dev-aaaaaaa") && kept.contains("v3.12.8-dev-bbbbbbb"));
    assert!(kept.contains("buildcache"));
    let rule =
        |tag: &str| plan.deleted.iter().chain(&plan.kept).find(|decision| decision.tag == tag).unwrap().rule.clone();
    assert_eq!(rule("v3.12.2"), "superseded patch of v3.12");
    assert_eq!(
        rule("v3.2.1"),
        "minor line v3.2 is beyond the last 10 of v3, but kept tag v3.2 needs its digest and the registry deletes by digest only"
    );
    assert_eq!(
        rule("v2.1.2"),
        "older release of major v2 (only its newest release is kept), but kept tag v2.1 needs its digest and the registry deletes by digest only"
    );
    assert_eq!(rule("v3.12.8-dev-aaaaaaa"), "dev tag older than 30 days (40 days)");
}

#[test]
fn a_registry_that_deletes_tags_removes_shared_ones_by_tag() {
    let snapshot = history(&[(3, 0, 0), (3, 1, 0), (3, 1, 1)], &BTreeSet::new());
    let by_digest = plan(&snapshot, &Policy { minors: 1, ..Policy::default() }, NOW, false);
    assert!(kept_tags(&by_digest).contains("v3.0.0"), "v3.0 holds its digest");
    let by_tag = plan(&snapshot, &Policy { minors: 1, ..Policy::default() }, NOW, true);
    let deletion = by_tag.deletions.iter().find(|deletion| deletion.target == "v3.0.0").unwrap();
    assert_eq!(deletion.method, Method::Tag);
    assert!(kept_tags(&by_tag).contains("v3.0"));
}

#[test]
fn indexes_go_before_their_images_and_leave_no_orphan() {
    let snapshot =
        history(&[(3, 0, 0), (3, 0, 1), (3, 0, 2), (3, 0, 3), (3, 0, 4), (3, 0, 5), (3, 0, 6)], &BTreeSet::new());
    let plan = plan(&snapshot, &Policy::default(), NOW, false);
    let targets: Vec<&str> = plan.deletions.iter().map(|deletion| deletion.target.as_str()).collect();
    let index = targets.iter().position(|target| *target == "sha256:index-3-0-0").unwrap();
    let image = targets.iter().position(|target| *target == "sha256:amd64-3-0-0").unwrap();
    let attestation = targets.iter().position(|target| *target == "sha256:att-3-0-0").unwrap();
    assert!(index < image && index < attestation, "{targets:?}");
    let orphan = plan.deletions.iter().find(|deletion| deletion.target == "sha256:att-3-0-0").unwrap();
    assert_eq!(orphan.rule, "untagged manifest left by the deletions above");
}

fn versions_strategy() -> impl Strategy<Value = (Vec<(u64, u64, u64)>, BTreeSet<usize>)> {
    (prop::collection::btree_set((1u64..4, 0u64..14, 0u64..9), 1..70), prop::collection::btree_set(0usize..70, 0..10))
        .prop_map(|(versions, shared)| (versions.into_iter().collect(), shared))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn nothing_a_kept_tag_needs_is_deleted(
        (versions, shared) in versions_strategy(),
        minors in 1usize..12,
        patches in 1usize..7,
        tag_deletes: bool,
    ) {
        let snapshot = history(&versions, &shared);
        let policy = Policy { minors, patches, ..Policy::default() };
        let plan = plan(&snapshot, &policy, NOW, tag_deletes);
        // Every tag is decided exactly once.
        prop_assert_eq!(plan.kept.len() + plan.deleted.len(), snapshot.tags.len());
        let mut needed = BTreeSet::new();
        for kept in &plan.kept {
            needed.insert(kept.digest.clone());
            needed.extend(snapshot.children.get(&kept.digest).into_iter().flatten().cloned());
        }
        for deletion in plan.deletions.iter().filter(|deletion| deletion.method == Method::Digest) {
            prop_assert!(!needed.contains(&deletion.target), "{} is needed by a kept tag", deletion.target);
        }
        for (tag, _) in &snapshot.tags {
            if is_floating(tag) {
                prop_assert!(kept_tags(&plan).contains(tag.as_str()), "floating {} deleted", tag);
            }
        }
        // The guide's counts: newest of each major; the last `minors` minor lines of the
        // current major (their newest patch); the last `patches` patches of the current minor.
        let kept = kept_tags(&plan);
        let all: Vec<semver::Version> = versions.iter().map(|(a, b, c)| semver::Version::new(*a, *b, *c)).collect();
        let current_major = all.iter().map(|version| version.major).max().unwrap();
        for major in all.iter().map(|version| version.major).collect::<BTreeSet<_>>() {
            let newest = all.iter().filter(|version| version.major == major).max().unwrap();
            prop_assert!(kept.contains(format!("v{newest}").as_str()), "newest of major {}", major);
        }
        let mut minor_lines: Vec<u64> = all.iter().filter(|version| version.major == current_major).map(|version| version.minor).collect::<BTreeSet<_>>().into_iter().collect();
        minor_lines.reverse();
        for minor in minor_lines.iter().take(minors) {
            let newest = all.iter().filter(|version| version.major == current_major && version.minor == *minor).max().unwrap();
            prop_assert!(kept.contains(format!("v{newest}").as_str()), "newest of v{}.{}", current_major, minor);
        }
        let current_minor = minor_lines[0];
        let mut patch_line: Vec<&semver::Version> = all.iter().filter(|version| version.major == current_major && version.minor == current_minor).collect();
        patch_line.sort();
        for version in patch_line.iter().rev().take(patches) {
            prop_assert!(kept.contains(format!("v{version}").as_str()), "one of the last patches: {}", version);
        }
    }
}
