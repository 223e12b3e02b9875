//! OCI image and Docker v2 manifest formats: just the fields this tool reads, with the raw
//! bytes kept so a manifest is re-tagged byte for byte (same digest).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::manifest::Platform;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Every manifest type this tool understands, for `Accept`.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Manifests are small; the OCI spec lets registries refuse above 4 MiB.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// A manifest as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<OciPlatform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciPlatform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImageManifest {
    pub config: Descriptor,
}

/// The parts of an image config this tool checks.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    /// When the image was made (RFC 3339).
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub config: RuntimeConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuntimeConfig {
    #[serde(rename = "User", default)]
    pub user: String,
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut digest = String::with_capacity(71);
    digest.push_str("sha256:");
    for byte in hash {
        digest.push_str(&format!("{byte:02x}"));
    }
    digest
}

impl Manifest {
    /// Builds a manifest from fetched bytes, checking them against the digest the registry
    /// announced (or that was asked for): content that does not match is never used.
    pub fn from_bytes(
        bytes: Vec<u8>,
        content_type: Option<&str>,
        expected_digest: Option<&str>,
    ) -> anyhow::Result<Manifest> {
        let digest = sha256_digest(&bytes);
        if let Some(expected) = expected_digest {
            if expected.starts_with("sha256:") && expected != digest {
                bail!("the registry sent content whose digest is {digest}, not {expected}: refusing to use it");
            }
        }
        #[derive(Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
        }
        let probe: Probe = serde_json::from_slice(&bytes).context("the manifest is not valid JSON")?;
        let media_type = probe
            .media_type
            .or_else(|| content_type.map(|value| value.split(';').next().unwrap_or(value).trim().to_string()))
            .context("the manifest has no media type")?;
        if ![OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].contains(&media_type.as_str()) {
            bail!("unsupported manifest media type `{media_type}`");
        }
        Ok(Manifest { media_type, digest, bytes })
    }

    pub fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_LIST
    }

    pub fn index(&self) -> anyhow::Result<Index> {
        anyhow::ensure!(self.is_index(), "{} is a single-platform image, not a multi-platform index", self.digest);
        serde_json::from_slice(&self.bytes).context("read the image index")
    }

    pub fn image(&self) -> anyhow::Result<ImageManifest> {
        anyhow::ensure!(!self.is_index(), "{} is an index, not an image manifest", self.digest);
        serde_json::from_slice(&self.bytes).context("read the image manifest")
    }
}

/// A build attestation (provenance, SBOM) riding in an index: never a platform of its own.
pub fn is_attestation(descriptor: &Descriptor) -> bool {
    descriptor.annotations.get("vnd.docker.reference.type").is_some_and(|kind| kind == "attestation-manifest")
        || descriptor
            .platform
            .as_ref()
            .is_some_and(|platform| platform.os == "unknown" || platform.architecture == "unknown")
}

/// The image manifest of each known platform in an index, attestations set apart.
pub fn platform_children(index: &Index) -> Vec<(Platform, &Descriptor)> {
    let mut children = Vec::new();
    for descriptor in index.manifests.iter().filter(|descriptor| !is_attestation(descriptor)) {
        let Some(platform) = &descriptor.platform else { continue };
        let name = format!("{}/{}", platform.os, platform.architecture);
        if let Some(known) = Platform::parse(&name) {
            if !children.iter().any(|(seen, _)| *seen == known) {
                children.push((known, descriptor));
            }
        }
    }
    children
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index as buildx pushes it: two platforms and their provenance attestations.
    fn buildx_index() -> Vec<u8> {
        let entry = |digest: char, arch: &str, os: &str, attestation: Option<char>| {
            let annotations = attestation
                .map(|of| format!(r#","annotations":{{"vnd.docker.reference.digest":"sha256:{}","vnd.docker.reference.type":"attestation-manifest"}}"#, of.to_string().repeat(64)))
                .unwrap_or_default();
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{}","size":1,"platform":{{"architecture":"{arch}","os":"{os}"}}{annotations}}}"#,
                digest.to_string().repeat(64)
            )
        };
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{},{},{}]}}"#,
            entry('a', "amd64", "linux", None),
            entry('b', "arm64", "linux", None),
            entry('c', "unknown", "unknown", Some('a')),
            entry('d', "unknown", "unknown", Some('b'))
        )
        .into_bytes()
    }

    #[test]
    fn attestations_are_not_platforms() {
        let manifest = Manifest::from_bytes(buildx_index(), None, None).unwrap();
        let index = manifest.index().unwrap();
        let children: Vec<Platform> = platform_children(&index).into_iter().map(|(platform, _)| platform).collect();
        assert_eq!(children, [Platform::LinuxAmd64, Platform::LinuxArm64]);
        assert_eq!(index.manifests.iter().filter(|descriptor| is_attestation(descriptor)).count(), 2);
    }

    #[test]
    fn content_that_does_not_match_its_digest_is_refused() {
        let bytes = buildx_index();
        let good = sha256_digest(&bytes);
        Manifest::from_bytes(bytes.clone(), None, Some(&good)).unwrap();
        let wrong = format!("sha256:{}", "0".repeat(64));
        let message = Manifest::from_bytes(bytes, None, Some(&wrong)).unwrap_err().to_string();
        assert!(message.contains("refusing to use it"), "{message}");
    }

    #[test]
    fn unknown_media_types_and_bad_json_are_refused() {
        assert!(
            Manifest::from_bytes(br#"{"mediaType":"text/html"}"#.to_vec(), None, None)
                .unwrap_err()
                .to_string()
                .contains("unsupported")
        );
        assert!(
            Manifest::from_bytes(b"<html>".to_vec(), None, None).unwrap_err().to_string().contains("not valid JSON")
        );
        let from_header = Manifest::from_bytes(
            br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(),
            Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
            None,
        )
        .unwrap();
        assert!(from_header.is_index());
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(sha256_digest(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
