//! Publish plans from registry snapshots: immutability, idempotence, forward-only floating tags.

use super::*;

fn manifest(text: &str) -> Manifest {
    Manifest::from_bytes(text.as_bytes().to_vec(), None, None).unwrap()
}

fn snapshot(tags: &[&str], exact: &[(&str, &str)]) -> Snapshot {
    let amd64 = manifest(
        r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"c","digest":"sha256:1","size":1},"layers":[]}"#,
    );
    let arm64 = manifest(
        r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"c","digest":"sha256:2","size":1},"layers":[]}"#,
    );
    let index = manifest(&format!(
        r#"{{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"m","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},{{"mediaType":"m","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#,
        amd64.digest, arm64.digest
    ));
    let digest_of = |which: &str| match which {
        "index" => index.digest.clone(),
        "amd64" => amd64.digest.clone(),
        "arm64" => arm64.digest.clone(),
        other => other.to_string(),
    };
    Snapshot {
        exact_digests: exact.iter().map(|(tag, which)| (tag.to_string(), digest_of(which))).collect(),
        source: index.clone(),
        children: vec![(Platform::LinuxAmd64, amd64), (Platform::LinuxArm64, arm64)],
        tags: tags.iter().map(|tag| tag.to_string()).collect(),
    }
}

fn plan_for(version: &str, snapshot: &Snapshot) -> anyhow::Result<PublishPlan> {
    let version = ReleaseVersion::parse(version).unwrap();
    plan(
        "battle-service",
        "127.0.0.1:5000/battlescope/battle-service",
        "v3.0.0-dev-0123456",
        &version,
        &Platform::ALL,
        snapshot,
    )
}

#[test]
fn a_new_version_writes_twelve_tags_children_first() {
    let plan = plan_for("v3.0.0", &snapshot(&["v3.0.0-dev-0123456"], &[])).unwrap();
    assert_eq!(plan.writes.len(), 12);
    assert_eq!(plan.writes[0].tag, "v3.0.0-amd64");
    assert_eq!(plan.writes[0].digest, plan.writes[0].manifest.digest);
    let index = plan.writes.iter().find(|write| write.tag == "v3.0.0").unwrap();
    assert_eq!(index.digest, plan.source_digest, "the index is re-tagged byte for byte");
}

#[test]
fn the_same_image_again_is_an_idempotent_success() {
    let existing = snapshot(
        &["v3.0.0", "v3.0.0-amd64", "v3.0.0-arm64"],
        &[("v3.0.0", "index"), ("v3.0.0-amd64", "amd64"), ("v3.0.0-arm64", "arm64")],
    );
    let plan = plan_for("v3.0.0", &existing).unwrap();
    assert_eq!(plan.unchanged, ["v3.0.0-amd64", "v3.0.0-arm64", "v3.0.0"]);
    assert!(plan.writes.iter().all(|write| write.kind == TagKind::Floating));
}

#[test]
fn different_content_under_an_exact_tag_refuses_everything() {
    let other = format!("sha256:{}", "f".repeat(64));
    let existing = snapshot(&["v3.0.0", "v3.0.0-amd64"], &[("v3.0.0", other.as_str()), ("v3.0.0-amd64", "amd64")]);
    let error = plan_for("v3.0.0", &existing).unwrap_err();
    assert_eq!(crate::error::exit_code(&error), 2);
    let message = error.to_string();
    assert!(message.contains(&format!("v3.0.0 holds {other}")), "{message}");
    assert!(message.contains("never overwritten") && message.contains("nothing was changed"), "{message}");
    assert!(message.contains("--bump patch"), "{message}");
}

#[test]
fn a_hotfix_behind_a_newer_minor_leaves_v3_and_latest_alone() {
    let plan = plan_for("v3.0.5", &snapshot(&["v3.0.4", "v3.2.0", "v3.2.0-amd64", "v3", "latest"], &[])).unwrap();
    let tags: Vec<&str> = plan.writes.iter().map(|write| write.tag.as_str()).collect();
    assert_eq!(tags, ["v3.0.5-amd64", "v3.0.5-arm64", "v3.0.5", "v3.0-amd64", "v3.0-arm64", "v3.0"]);
    let held: Vec<&str> = plan.held.iter().map(|held| held.tag.as_str()).collect();
    assert_eq!(held, ["v3", "latest"]);
}

#[test]
fn a_source_missing_a_platform_is_refused() {
    let mut one_arch = snapshot(&[], &[]);
    one_arch.children.truncate(1);
    let message = plan_for("v3.0.0", &one_arch).unwrap_err().to_string();
    assert!(message.contains("has no linux/arm64 image"), "{message}");
}

#[test]
fn a_tag_changed_by_another_writer_during_the_publish_is_reported() {
    use crate::test_server::{reply, serve};
    let plan = plan_for("v3.0.0", &snapshot(&[], &[])).unwrap();
    let rival = format!("sha256:{}", "e".repeat(64));
    let stored = std::sync::Mutex::new(std::collections::HashMap::<String, String>::new());
    let rival_digest = rival.clone();
    let (address, _) = serve(move |request, _| {
        let tag = request.path.rsplit('/').next().unwrap().to_string();
        match request.method.as_str() {
            "PUT" => {
                let digest = oci::sha256_digest(&request.body);
                stored.lock().unwrap().insert(tag, digest.clone());
                reply(201, &[("Docker-Content-Digest", &digest)], b"")
            }
            // Another writer moved `v3` after this publish wrote it.
            _ if tag == "v3" => reply(200, &[("Docker-Content-Digest", &rival_digest)], b""),
            _ => {
                let digest = stored.lock().unwrap().get(&tag).cloned().unwrap_or_default();
                reply(200, &[("Docker-Content-Digest", &digest)], b"")
            }
        }
    });
    let client = crate::test_server::client(&address, None);
    let message = execute(&client, "battlescope/battle-service", &plan).unwrap_err().to_string();
    assert!(message.contains("another writer is publishing the same tags"), "{message}");
    assert!(message.contains(&format!("v3 holds {rival}")), "{message}");
    assert!(!message.contains("latest holds"), "only the raced tag is reported: {message}");
    assert_eq!(client.request_count(), 24, "one PUT and one read-back per tag");
}
