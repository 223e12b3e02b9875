//! Publishing the tag scheme against the real registry: each test uses its own organization
//! on the shared loopback registry and makes its images through the registry API.
#![allow(clippy::print_stderr, reason = "tests narrate to stderr, which cargo test captures")]

mod support;

use support::*;

const BOTH: [&str; 2] = ["linux/amd64", "linux/arm64"];

fn publish(registry: &str, organization: &str, version: &str, from: &str) -> std::process::Output {
    run(xtask(&[
        "publish",
        "--service",
        "battle-service",
        "--registry",
        registry,
        "--organization",
        organization,
        "--version",
        version,
        "--from",
        from,
    ]))
}

#[test]
fn first_release_gets_the_full_tag_scheme_and_verifies() {
    let Some(registry) = test_registry() else { return };
    let repository = "pub-first/battle-service";
    let index = Pusher::new(&registry).image(repository, "build-1", "first", &BOTH);
    let output = publish(&registry, "pub-first", "v3.0.0", "build-1");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("wrote 12 tags, 0 already in place"), "{stderr}");

    let digests = tag_digests(&registry, repository);
    let children = index_platforms(&manifest(&registry, repository, &index));
    for tag in ["v3.0.0", "v3.0", "v3", "latest"] {
        assert_eq!(digest_of(&digests, tag), Some(index.clone()), "{tag} is the index");
        for (platform, child) in &children {
            let arch = platform.trim_start_matches("linux/");
            assert_eq!(digest_of(&digests, &format!("{tag}-{arch}")).as_ref(), Some(child), "{tag}-{arch}");
        }
    }
    assert_eq!(digests.len(), 13, "12 release tags and the build tag: {digests:?}");

    let output = run(xtask(&[
        "verify",
        "--service",
        "battle-service",
        "--registry",
        &registry,
        "--organization",
        "pub-first",
        "--version",
        "v3.0.0",
        "--json",
    ]));
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report[0]["platforms"], serde_json::json!(["linux/amd64", "linux/arm64"]));
    assert!(String::from_utf8_lossy(&output.stderr).contains("pull the index tag, not an arch tag"));
}

#[test]
fn republishing_the_same_image_is_idempotent() {
    let Some(registry) = test_registry() else { return };
    Pusher::new(&registry).image("pub-again/battle-service", "build-1", "again", &BOTH);
    assert!(publish(&registry, "pub-again", "v3.0.0", "build-1").status.success());
    let before = tag_digests(&registry, "pub-again/battle-service");
    let output = publish(&registry, "pub-again", "v3.0.0", "build-1");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("3 already in place"));
    assert_eq!(tag_digests(&registry, "pub-again/battle-service"), before);
}

#[test]
fn an_existing_release_is_never_overwritten_and_nothing_changes() {
    let Some(registry) = test_registry() else { return };
    let pusher = Pusher::new(&registry);
    pusher.image("pub-immutable/battle-service", "build-1", "immutable-1", &BOTH);
    pusher.image("pub-immutable/battle-service", "build-2", "immutable-2", &BOTH);
    assert!(publish(&registry, "pub-immutable", "v3.0.0", "build-1").status.success());
    let before = tag_digests(&registry, "pub-immutable/battle-service");

    let output = publish(&registry, "pub-immutable", "v3.0.0", "build-2");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("v3.0.0 is already released with other content, and release tags are never overwritten"),
        "{stderr}"
    );
    for tag in ["v3.0.0-amd64 holds", "v3.0.0-arm64 holds", "v3.0.0 holds"] {
        assert!(stderr.contains(tag), "{tag}: {stderr}");
    }
    assert_eq!(tag_digests(&registry, "pub-immutable/battle-service"), before, "not one tag moved");
}

#[test]
fn a_hotfix_moves_its_minor_line_but_not_v3_or_latest() {
    let Some(registry) = test_registry() else { return };
    let repository = "pub-hotfix/battle-service";
    let pusher = Pusher::new(&registry);
    let v304 = pusher.image(repository, "build-304", "hotfix-304", &BOTH);
    let v320 = pusher.image(repository, "build-320", "hotfix-320", &BOTH);
    let v305 = pusher.image(repository, "build-305", "hotfix-305", &BOTH);
    assert!(publish(&registry, "pub-hotfix", "v3.0.4", "build-304").status.success());
    assert!(publish(&registry, "pub-hotfix", "v3.2.0", "build-320").status.success());
    let output = publish(&registry, "pub-hotfix", "v3.0.5", "build-305");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("v3 not moved: stays on v3.2.0, which is newer"), "{stderr}");

    let digests = tag_digests(&registry, repository);
    assert_eq!(digest_of(&digests, "v3.0"), Some(v305.clone()));
    assert_eq!(digest_of(&digests, "v3.0.5"), Some(v305));
    assert_eq!(digest_of(&digests, "v3.0.4"), Some(v304));
    for tag in ["v3", "latest", "v3.2"] {
        assert_eq!(digest_of(&digests, tag), Some(v320.clone()), "{tag} stays on v3.2.0");
    }
    let v3_arm64 = digest_of(&digests, "v3-arm64");
    assert_eq!(v3_arm64, digest_of(&digests, "v3.2.0-arm64"), "per-arch floating tags stay too");
}

#[test]
fn a_pre_release_gets_only_its_exact_tags() {
    let Some(registry) = test_registry() else { return };
    let repository = "pub-pre/battle-service";
    let pusher = Pusher::new(&registry);
    let stable = pusher.image(repository, "build-1", "pre-stable", &BOTH);
    pusher.image(repository, "build-2", "pre-rc", &BOTH);
    assert!(publish(&registry, "pub-pre", "v3.0.0", "build-1").status.success());
    let output = publish(&registry, "pub-pre", "v3.1.0-rc.1", "build-2");
    assert!(output.status.success());
    let digests = tag_digests(&registry, repository);
    let rc_tags: Vec<&str> = digests.iter().map(|(tag, _)| tag.as_str()).filter(|tag| tag.contains("rc")).collect();
    assert_eq!(rc_tags, ["v3.1.0-rc.1", "v3.1.0-rc.1-amd64", "v3.1.0-rc.1-arm64"]);
    assert_eq!(digest_of(&digests, "latest"), Some(stable.clone()));
    assert_eq!(digest_of(&digests, "v3"), Some(stable));
    assert_eq!(digest_of(&digests, "v3.1"), None);
}

#[test]
fn verify_explains_a_missing_platform_and_a_missing_image() {
    let Some(registry) = test_registry() else { return };
    let repository = "pub-broken/battle-service";
    Pusher::new(&registry).image(repository, "v3.0.0", "broken", &["linux/amd64"]);
    let output = run(xtask(&[
        "verify",
        "--service",
        "battle-service",
        "--registry",
        &registry,
        "--organization",
        "pub-broken",
        "--version",
        "v3.0.0",
    ]));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("architecture mismatch: the index")
            && stderr.contains("has no linux/arm64 image (it holds linux/amd64)"),
        "{stderr}"
    );
    assert!(stderr.contains("v3.0.0-amd64 does not exist"), "{stderr}");

    let output = run(xtask(&[
        "verify",
        "--service",
        "battle-service",
        "--registry",
        &registry,
        "--organization",
        "pub-broken",
        "--version",
        "v3.9.9",
    ]));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("image not found") && stderr.contains("released versions there: v3.0.0"), "{stderr}");
}

#[test]
fn a_build_missing_a_platform_is_not_published() {
    let Some(registry) = test_registry() else { return };
    Pusher::new(&registry).image("pub-onearch/battle-service", "build-1", "onearch", &["linux/amd64"]);
    let output = publish(&registry, "pub-onearch", "v3.0.0", "build-1");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("has no linux/arm64 image"));
    assert_eq!(tag_digests(&registry, "pub-onearch/battle-service").len(), 1, "only the build tag");
}
