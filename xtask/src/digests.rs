//! Builds spread over machines, joined registry-side: `build --digest-file F` records what one
//! runner pushed (service, repository, platform, digest); `publish --from-digests DIR` joins the
//! records of every runner into one multi-platform index per service, which is then published.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::error::bad_input;
use crate::manifest::Platform;
use crate::registry::Client;
use crate::registry::oci::{self, Descriptor, ImageConfig, Manifest, OciPlatform};

/// One platform image a runner pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestRecord {
    pub service: String,
    /// `host/org/service`: a digest is only valid in its repository.
    pub repository: String,
    pub platform: Platform,
    /// What the build pushed: the image manifest, or an index holding it (with attestations).
    pub digest: String,
}

/// Writes the records as a JSON array (the file's directory is created).
pub fn write(path: &Path, records: &[DigestRecord]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(records)? + "\n")
        .with_context(|| format!("write {}", path.display()))
}

/// Every record of every `*.json` file in `directory` (as CI artifacts gather them).
pub fn read_dir(directory: &Path) -> anyhow::Result<Vec<DigestRecord>> {
    let entries = std::fs::read_dir(directory).map_err(|error| {
        bad_input(format!(
            "--from-digests {}: {error} (the directory of `build --digest-file` files)",
            directory.display()
        ))
    })?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(bad_input(format!("--from-digests {}: no .json digest files in it", directory.display())));
    }
    let mut records = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
        records.extend(parse(&text, &file.display().to_string())?);
    }
    Ok(records)
}

/// The records of one digest file (`file` names it in errors).
pub fn parse(text: &str, file: &str) -> anyhow::Result<Vec<DigestRecord>> {
    let records: Vec<DigestRecord> = serde_json::from_str(text).map_err(|error| {
        bad_input(format!("{file}:{}: not a digest file written by `build --digest-file`: {error}", error.line()))
    })?;
    for record in &records {
        crate::reference::validate_digest(&record.digest).map_err(|message| bad_input(format!("{file}: {message}")))?;
    }
    Ok(records)
}

/// An OCI index of these platform images, with `annotations`; no I/O.
pub fn index_of(children: &[(Platform, &Manifest)], annotations: &[(String, String)]) -> Manifest {
    let manifests: Vec<Descriptor> = children
        .iter()
        .map(|(platform, manifest)| {
            let (os, architecture) = platform.as_str().split_once('/').unwrap();
            Descriptor {
                media_type: manifest.media_type.clone(),
                digest: manifest.digest.clone(),
                size: manifest.bytes.len() as u64,
                platform: Some(OciPlatform { architecture: architecture.into(), os: os.into(), variant: None }),
                annotations: BTreeMap::new(),
            }
        })
        .collect();
    let document = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_INDEX,
        "manifests": manifests,
        "annotations": annotations.iter().cloned().collect::<BTreeMap<String, String>>(),
    });
    let bytes = serde_json::to_vec(&document).expect("an index serializes");
    Manifest::from_bytes(bytes, None, None).expect("a well-formed index")
}

/// The image manifest for `platform` that `record` names, read from the registry and checked
/// against its config (an index is resolved to its child for the platform).
fn platform_image(client: &Client, path: &str, record: &DigestRecord) -> anyhow::Result<Manifest> {
    let pushed = client.get_manifest(path, &record.digest)?.with_context(|| {
        format!("{}@{} ({}) is not in the registry", record.repository, record.digest, record.platform)
    })?;
    let image = if pushed.is_index() {
        let index = pushed.index()?;
        let children = oci::platform_children(&index);
        let child = children
            .iter()
            .find(|(platform, _)| *platform == record.platform)
            .with_context(|| format!("{}@{} holds no {} image", record.repository, record.digest, record.platform))?;
        client
            .get_manifest(path, &child.1.digest)?
            .with_context(|| format!("{}@{} is not in the registry", record.repository, child.1.digest))?
    } else {
        pushed
    };
    let config: ImageConfig = client.get_blob_json(path, &image.image()?.config.digest)?;
    let actual = format!("{}/{}", config.os, config.architecture);
    anyhow::ensure!(
        actual == record.platform.as_str(),
        "{}@{} is a {actual} image, but its digest file says {}",
        record.repository,
        record.digest,
        record.platform
    );
    Ok(image)
}

/// Joins the records of one service into an index holding every platform (not written yet:
/// the caller tags it once every service is joined), with the platform images it lists.
pub fn join(
    client: &Client,
    path: &str,
    repository: &str,
    records: &[DigestRecord],
    platforms: &[Platform],
    annotations: &[(String, String)],
) -> anyhow::Result<(Manifest, Vec<(Platform, Manifest)>)> {
    let mut children = Vec::new();
    for platform in platforms {
        let matching: Vec<&DigestRecord> = records.iter().filter(|record| record.platform == *platform).collect();
        let record = match matching.as_slice() {
            [record] => *record,
            [] => {
                return Err(bad_input(format!(
                    "{repository}: no digest file records a {platform} image; run `cargo xtask build --platform {platform} --push --digest-file F` for it"
                )));
            }
            several => {
                return Err(bad_input(format!(
                    "{repository}: {} digest files record a {platform} image ({}); keep one",
                    several.len(),
                    several.iter().map(|record| record.digest.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
        };
        if record.repository != repository {
            return Err(bad_input(format!(
                "{}: recorded for {}, but this publish goes to {repository}; build and publish to the same repository",
                record.digest, record.repository
            )));
        }
        children.push((*platform, platform_image(client, path, record)?));
    }
    let borrowed: Vec<(Platform, &Manifest)> = children.iter().map(|(platform, image)| (*platform, image)).collect();
    Ok((index_of(&borrowed, annotations), children))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(seed: &str) -> Manifest {
        let bytes = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":2}},"layers":[]}}"#,
            oci::OCI_MANIFEST,
            seed.repeat(64)
        );
        Manifest::from_bytes(bytes.into_bytes(), None, None).unwrap()
    }

    #[test]
    fn the_index_lists_each_platform_image_with_its_size_and_the_annotations() {
        let (amd64, arm64) = (image("a"), image("b"));
        let annotations = vec![("org.opencontainers.image.version".to_string(), "3.1.0".to_string())];
        let index = index_of(&[(Platform::LinuxAmd64, &amd64), (Platform::LinuxArm64, &arm64)], &annotations);
        assert!(index.is_index());
        let parsed = index.index().unwrap();
        let children = oci::platform_children(&parsed);
        assert_eq!(children.len(), 2);
        assert_eq!(children[0].1.digest, amd64.digest);
        assert_eq!(children[1].1.size, arm64.bytes.len() as u64);
        let document: serde_json::Value = serde_json::from_slice(&index.bytes).unwrap();
        assert_eq!(document["annotations"]["org.opencontainers.image.version"], "3.1.0");
        assert_eq!(document["manifests"][1]["platform"]["architecture"], "arm64");
    }

    #[test]
    fn digest_files_round_trip_and_bad_ones_are_named() {
        let directory = tempfile::tempdir().unwrap();
        let record = DigestRecord {
            service: "frontend".into(),
            repository: "127.0.0.1:5000/battlescope/frontend".into(),
            platform: Platform::LinuxArm64,
            digest: format!("sha256:{}", "c".repeat(64)),
        };
        write(&directory.path().join("frontend-arm64.json"), std::slice::from_ref(&record)).unwrap();
        assert_eq!(read_dir(directory.path()).unwrap(), [record]);

        std::fs::write(directory.path().join("broken.json"), "[{\"service\": 1}]").unwrap();
        let error = read_dir(directory.path()).unwrap_err();
        assert_eq!(crate::error::exit_code(&error), 2);
        assert!(error.to_string().contains("broken.json:1: not a digest file"), "{error}");

        let empty = tempfile::tempdir().unwrap();
        assert!(read_dir(empty.path()).unwrap_err().to_string().contains("no .json digest files"));
    }
}
