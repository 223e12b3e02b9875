//! `cargo xtask publish`: gives a built image its release tags registry-side (R3, R5, R6):
//! per-arch tags and multi-arch indexes, each one manifest PUT of bytes already in the
//! registry, read back after writing. Exact-version tags are never overwritten; floating tags
//! only move forward. The plan is computed (and refused) before anything is written.

use anyhow::{Context, bail};
use serde::Serialize;

use crate::manifest::Platform;
use crate::registry::Client;
use crate::registry::oci::{self, Manifest};
use crate::tags::{self, HeldTag, ReleaseVersion, TagKind, Target};

/// What the registry holds for one service, read before planning.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The source index (the built image).
    pub source: Manifest,
    /// Its image manifest for each platform.
    pub children: Vec<(Platform, Manifest)>,
    /// Every tag of the repository.
    pub tags: Vec<String>,
    /// Current digests of the exact-version tags that already exist.
    pub exact_digests: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TagWrite {
    pub tag: String,
    pub digest: String,
    pub target: Target,
    pub kind: TagKind,
    #[serde(skip)]
    pub manifest: Manifest,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishPlan {
    pub service: String,
    /// `host/org/service`.
    pub repository: String,
    pub version: String,
    pub source: String,
    pub source_digest: String,
    pub writes: Vec<TagWrite>,
    /// Exact tags that already hold this very image: an idempotent success.
    pub unchanged: Vec<String>,
    pub held: Vec<HeldTag>,
}

/// Computes the writes for one service; no I/O. An exact tag that holds another image refuses
/// the whole publish, naming each such tag.
pub fn plan(
    service: &str,
    repository: &str,
    source: &str,
    version: &ReleaseVersion,
    platforms: &[Platform],
    snapshot: &Snapshot,
) -> anyhow::Result<PublishPlan> {
    for platform in platforms {
        if !snapshot.children.iter().any(|(child, _)| child == platform) {
            bail!(
                "{repository}:{source} has no {platform} image, so it cannot be published as a multi-arch release; build it for every platform first"
            );
        }
    }
    let existing: Vec<ReleaseVersion> = snapshot.tags.iter().filter_map(|tag| tags::release_version_of(tag)).collect();
    let (planned, held) = tags::plan_tags(version, platforms, &existing);
    let mut writes = Vec::new();
    let mut unchanged = Vec::new();
    let mut conflicts = Vec::new();
    for planned in planned {
        let manifest = match planned.target {
            Target::Index => &snapshot.source,
            Target::Arch(platform) => &snapshot.children.iter().find(|(child, _)| *child == platform).unwrap().1,
        };
        let current = snapshot.exact_digests.iter().find(|(tag, _)| *tag == planned.tag).map(|(_, digest)| digest);
        match (planned.kind, current) {
            (TagKind::Exact, Some(digest)) if *digest == manifest.digest => unchanged.push(planned.tag),
            (TagKind::Exact, Some(digest)) => {
                conflicts.push(format!("{} holds {digest}, not {}", planned.tag, manifest.digest))
            }
            _ => writes.push(TagWrite {
                tag: planned.tag,
                digest: manifest.digest.clone(),
                target: planned.target,
                kind: planned.kind,
                manifest: manifest.clone(),
            }),
        }
    }
    if !conflicts.is_empty() {
        return Err(crate::error::bad_input(format!(
            "{repository}: {version} is already released with other content, and release tags are never overwritten:\n  {}\nnothing was changed; release a new version instead (for example `cargo xtask release --bump patch`)",
            conflicts.join("\n  ")
        )));
    }
    Ok(PublishPlan {
        service: service.to_string(),
        repository: repository.to_string(),
        version: version.to_string(),
        source: source.to_string(),
        source_digest: snapshot.source.digest.clone(),
        writes,
        unchanged,
        held,
    })
}

/// Reads what planning needs: the source index and its platform images, the tag list, and the
/// digests of exact tags that already exist.
pub fn snapshot(
    client: &Client,
    repository_path: &str,
    source: &str,
    version: &ReleaseVersion,
    platforms: &[Platform],
) -> anyhow::Result<Snapshot> {
    let index = client.get_manifest(repository_path, source)?.with_context(|| {
        format!(
            "{}/{repository_path}:{source} does not exist: build and push it first (`cargo xtask build --push`)",
            client.host
        )
    })?;
    let descriptors = oci::platform_children(&index.index().with_context(|| format!("{repository_path}:{source}"))?)
        .into_iter()
        .filter(|(platform, _)| platforms.contains(platform))
        .map(|(platform, descriptor)| (platform, descriptor.digest.clone()))
        .collect::<Vec<_>>();
    let mut children = Vec::new();
    for (platform, digest) in descriptors {
        let child = client
            .get_manifest(repository_path, &digest)?
            .with_context(|| format!("{repository_path}@{digest} ({platform}) is missing from the registry"))?;
        children.push((platform, child));
    }
    snapshot_of(client, repository_path, index, children, version, platforms)
}

/// The snapshot of a repository for publishing `source` (an index not necessarily tagged yet,
/// as one joined from digest files) with its platform images `children`.
pub fn snapshot_of(
    client: &Client,
    repository_path: &str,
    source: Manifest,
    children: Vec<(Platform, Manifest)>,
    version: &ReleaseVersion,
    platforms: &[Platform],
) -> anyhow::Result<Snapshot> {
    let tags = client.list_tags(repository_path)?;
    let mut exact_digests = Vec::new();
    let (planned, _) = tags::plan_tags(version, platforms, &[]);
    for exact in planned.iter().filter(|tag| tag.kind == TagKind::Exact) {
        // The tag list says which exist; only those need a HEAD.
        if tags.contains(&exact.tag) {
            if let Some(digest) = client.head_manifest(repository_path, &exact.tag)? {
                exact_digests.push((exact.tag.clone(), digest));
            }
        }
    }
    Ok(Snapshot { source, children, tags, exact_digests })
}

/// Writes the plan, one PUT per tag, then reads every tag back: a tag that now holds another
/// digest means another writer published to the same tags meanwhile, which is reported, never
/// accepted. Reading back after the last write covers the whole publish, not just each PUT.
pub fn execute(client: &Client, repository_path: &str, plan: &PublishPlan) -> anyhow::Result<()> {
    for (done, write) in plan.writes.iter().enumerate() {
        client.put_manifest(repository_path, &write.tag, &write.manifest).with_context(|| {
            let written: Vec<&str> = plan.writes[..done].iter().map(|write| write.tag.as_str()).collect();
            format!(
                "tag {}:{} (tags written before it: {}; the same command finishes the rest)",
                plan.repository,
                write.tag,
                if written.is_empty() { "none".to_string() } else { written.join(", ") }
            )
        })?;
    }
    let mut raced = Vec::new();
    for write in &plan.writes {
        let now = client.head_manifest(repository_path, &write.tag)?;
        if now.as_deref() != Some(write.digest.as_str()) {
            raced.push(format!("{} holds {}, not {}", write.tag, now.as_deref().unwrap_or("nothing"), write.digest));
        }
    }
    if !raced.is_empty() {
        bail!(
            "{}: tags changed while this publish ran, so another writer is publishing the same tags:\n  {}\nfind the other writer, then publish again",
            plan.repository,
            raced.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
