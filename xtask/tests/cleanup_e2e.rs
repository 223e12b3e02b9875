//! Retention on the real registry: a service with 61 released versions across two majors (each
//! published with its per-arch and floating tags, so patches share digests with floating
//! tags) and dev tags of several ages. The cleanup deletes exactly its plan, and every kept tag
//! still resolves, children included.
#![allow(clippy::print_stderr, reason = "tests narrate to stderr, which cargo test captures")]

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::*;

const BOTH: [&str; 2] = ["linux/amd64", "linux/arm64"];

/// An RFC 3339 time `days` ago, from GNU date (not the tool's own calendar code).
fn days_ago(days: u64) -> String {
    let output = std::process::Command::new("date")
        .args(["-u", "-d", &format!("{days} days ago"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn cleanup_of_a_61_version_history_deletes_exactly_its_plan() {
    let Some(registry) = test_registry() else { return };
    let organization = "clean-e2e";
    let repository = format!("{organization}/battle-service");
    let pusher = Pusher::new(&registry);
    let mut versions = Vec::new();
    for minor in 0..5 {
        for patch in 0..3 {
            versions.push(format!("v2.{minor}.{patch}"));
        }
    }
    for minor in 0..12 {
        for patch in 0..3 {
            versions.push(format!("v3.{minor}.{patch}"));
        }
    }
    for patch in 0..10 {
        versions.push(format!("v3.12.{patch}"));
    }
    assert_eq!(versions.len(), 61);
    for version in &versions {
        pusher.image(&repository, version, version, &BOTH);
        let output = run(xtask(&[
            "publish",
            "--service",
            "battle-service",
            "--registry",
            &registry,
            "--organization",
            organization,
            "--version",
            version,
            "--from",
            version,
        ]));
        assert!(output.status.success(), "publish {version}");
    }
    pusher.image_created(&repository, "v3.13.0-dev-0000old", "dev-old", &BOTH, &days_ago(40));
    pusher.image_created(&repository, "v3.12.9-dev-000old2", "dev-older", &BOTH, &days_ago(50));
    pusher.image_created(&repository, "v3.13.0-dev-0000new", "dev-new", &BOTH, &days_ago(5));
    let before = tag_digests(&registry, &repository);

    let cleanup = |extra: &[&str]| {
        run(xtask(
            &[
                &[
                    "cleanup",
                    "--service",
                    "battle-service",
                    "--registry",
                    &registry,
                    "--organization",
                    organization,
                    "--json",
                ][..],
                extra,
            ]
            .concat(),
        ))
    };
    let output = cleanup(&["--dry-run"]);
    assert!(output.status.success());
    assert_eq!(tag_digests(&registry, &repository), before, "a dry run deletes nothing");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let requests =
        stderr.lines().find(|line| line.contains("registry requests to plan")).unwrap_or_default().to_string();
    eprintln!("figure: {} tags; {requests}", before.len());
    let plans: Value = serde_json::from_slice(&output.stdout).unwrap();
    let plan = &plans[0];
    let kept: BTreeSet<&str> =
        plan["kept"].as_array().unwrap().iter().map(|decision| decision["tag"].as_str().unwrap()).collect();
    let deleted: BTreeSet<&str> =
        plan["deleted"].as_array().unwrap().iter().map(|decision| decision["tag"].as_str().unwrap()).collect();
    let rule = |tag: &str| {
        plan["kept"]
            .as_array()
            .unwrap()
            .iter()
            .chain(plan["deleted"].as_array().unwrap())
            .find(|decision| decision["tag"] == tag)
            .unwrap()["rule"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // The guide's counts, and the rule that decided each.
    for patch in 5..10 {
        assert!(kept.contains(format!("v3.12.{patch}").as_str()), "v3.12.{patch}");
    }
    assert_eq!(rule("v3.12.5"), "one of the last 5 patches of v3.12");
    for minor in 3..12 {
        assert!(
            kept.contains(format!("v3.{minor}.2").as_str()) && kept.contains(format!("v3.{minor}.2-arm64").as_str())
        );
        assert!(
            deleted.contains(format!("v3.{minor}.0").as_str())
                && deleted.contains(format!("v3.{minor}.1-amd64").as_str())
        );
    }
    assert_eq!(rule("v3.3.0"), "superseded patch of v3.3");
    assert!(deleted.contains("v3.12.4") && deleted.contains("v3.0.1") && deleted.contains("v2.3.1"));
    assert!(rule("v2.3.2").contains("but kept tag v2.3 needs its digest"), "{}", rule("v2.3.2"));
    assert!(kept.contains("v2.4.2"), "the newest release of major v2");
    assert!(rule("v3.2.2").contains("but kept tag v3.2 needs its digest"), "{}", rule("v3.2.2"));
    for floating in ["latest", "latest-amd64", "v3", "v3-arm64", "v2", "v2.0", "v3.0", "v3.12-amd64"] {
        assert!(kept.contains(floating), "{floating}");
    }
    assert!(
        deleted.contains("v3.13.0-dev-0000old")
            && deleted.contains("v3.12.9-dev-000old2")
            && kept.contains("v3.13.0-dev-0000new")
    );
    assert!(
        rule("v3.13.0-dev-0000old").starts_with("dev tag older than 30 days (40 days"),
        "{}",
        rule("v3.13.0-dev-0000old")
    );
    assert_eq!(kept.len() + deleted.len(), before.len());
    let methods: BTreeSet<&str> =
        plan["deletions"].as_array().unwrap().iter().map(|deletion| deletion["method"].as_str().unwrap()).collect();
    assert_eq!(methods, BTreeSet::from(["digest"]), "this registry deletes by digest");

    let output = cleanup(&[]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("figure: {}", stderr.lines().find(|line| line.contains("registry requests to plan")).unwrap_or_default());
    let after = tag_digests(&registry, &repository);
    let remaining: BTreeSet<&str> = after.iter().map(|(tag, _)| tag.as_str()).collect();
    assert_eq!(remaining, kept, "exactly the planned tags are gone");
    for (tag, digest) in &after {
        assert_eq!(
            Some(digest.clone()),
            before.iter().find(|(old, _)| old == tag).map(|(_, digest)| digest.clone()),
            "{tag} did not move"
        );
        let resolved = manifest(&registry, &repository, digest);
        if let Some(children) = resolved["manifests"].as_array() {
            for child in children {
                let child_digest = child["digest"].as_str().unwrap();
                assert_eq!(
                    manifest_digest(&registry, &repository, child_digest),
                    child_digest,
                    "{tag}: child {child_digest} still resolves"
                );
            }
        }
    }
}
