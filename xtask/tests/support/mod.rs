//! Shared by the integration tests: running the built `xtask` binary, the one loopback
//! registry of the test run, and reading what is in it without the tool's own code.
#![allow(dead_code, reason = "each test binary uses part of this module")]

pub mod fault_proxy;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The seven services of the manifest, in its order.
pub const SERVICES: [&str; 7] = [
    "ingestion-service",
    "enrichment-service",
    "battle-service",
    "search-service",
    "notification-service",
    "frontend-bff",
    "frontend",
];

/// A clone of this repository's committed state, with a git identity to commit with.
pub fn clone_repository() -> tempfile::TempDir {
    let clone = tempfile::tempdir().unwrap();
    let status =
        Command::new("git").args(["clone", "--quiet"]).arg(repository_root()).arg(clone.path()).status().unwrap();
    assert!(status.success(), "git clone");
    git(clone.path(), &["config", "user.email", "xtask-test@example.com"]);
    git(clone.path(), &["config", "user.name", "Xtask Test"]);
    clone
}

/// Runs git in `directory`; its stdout.
pub fn git(directory: &Path, args: &[&str]) -> String {
    let output = Command::new("git").args(args).current_dir(directory).output().unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `cargo xtask` as a user runs it, from the repository root (or `XTASK_ROOT` when given).
pub fn xtask(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(args).current_dir(repository_root());
    command
}

pub fn run(mut command: impl std::borrow::BorrowMut<Command>) -> Output {
    let command = command.borrow_mut();
    let output = command.output().expect("start the xtask binary");
    eprintln!("--- stderr of {command:?}:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The registry `scripts/test.sh` started and seeded, shared by every end-to-end test.
/// Outside CI a missing registry skips the test; in CI (`CI=true`) it fails it, because a
/// skipped end-to-end test proves nothing.
pub fn test_registry() -> Option<String> {
    match std::env::var("XTASK_TEST_REGISTRY") {
        Ok(registry) if !registry.is_empty() => Some(registry),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true" || ci == "1") => {
            panic!(
                "XTASK_TEST_REGISTRY is not set: run the tests with scripts/test.sh (it starts and seeds the registry)"
            )
        }
        _ => {
            eprintln!("skipped: XTASK_TEST_REGISTRY is not set (scripts/test.sh sets it)");
            None
        }
    }
}

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// GET a JSON document from the registry API (plain HTTP: it is on loopback).
pub fn registry_json(registry: &str, path: &str) -> Value {
    let url = format!("http://{registry}/v2/{path}");
    let mut response =
        ureq::get(&url).header("Accept", ACCEPT).call().unwrap_or_else(|error| panic!("GET {url}: {error}"));
    let body = response.body_mut().read_to_string().unwrap_or_else(|error| panic!("GET {url}: {error}"));
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("GET {url}: not JSON: {error}"))
}

/// A manifest by tag or digest.
pub fn manifest(registry: &str, repository: &str, reference: &str) -> Value {
    registry_json(registry, &format!("{repository}/manifests/{reference}"))
}

/// The platforms of an index's image manifests (`os/arch`), leaving out build attestations.
pub fn index_platforms(index: &Value) -> Vec<(String, String)> {
    index["manifests"]
        .as_array()
        .expect("an index lists manifests")
        .iter()
        .filter(|entry| entry["annotations"]["vnd.docker.reference.type"] != "attestation-manifest")
        .map(|entry| {
            let platform = &entry["platform"];
            (
                format!("{}/{}", platform["os"].as_str().unwrap(), platform["architecture"].as_str().unwrap()),
                entry["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The image config (user, labels, ...) of one image manifest.
pub fn image_config(registry: &str, repository: &str, manifest_digest: &str) -> Value {
    let image = manifest(registry, repository, manifest_digest);
    let config_digest = image["config"]["digest"].as_str().expect("an image manifest has a config");
    registry_json(registry, &format!("{repository}/blobs/{config_digest}"))
}

/// Pushes content straight through the registry API, with optional basic auth: how tests make
/// images without an engine.
pub struct Pusher {
    pub registry: String,
    pub authorization: Option<String>,
}

impl Pusher {
    pub fn new(registry: &str) -> Pusher {
        Pusher { registry: registry.to_string(), authorization: None }
    }

    fn request(&self, method: &str, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        let mut request = match method {
            "POST" => ureq::post(url),
            _ => ureq::put(url),
        };
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        request
    }

    pub fn blob(&self, repository: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let start = self
            .request("POST", &format!("http://{}/v2/{repository}/blobs/uploads/", self.registry))
            .send_empty()
            .expect("start a blob upload");
        assert_eq!(start.status(), 202);
        let location = start.headers().get("location").unwrap().to_str().unwrap().to_string();
        let location =
            if location.starts_with("http") { location } else { format!("http://{}{location}", self.registry) };
        let separator = if location.contains('?') { '&' } else { '?' };
        let done = self
            .request("PUT", &format!("{location}{separator}digest={digest}"))
            .send(bytes)
            .expect("finish a blob upload");
        assert_eq!(done.status(), 201);
        digest
    }

    pub fn manifest(&self, repository: &str, reference: &str, media_type: &str, bytes: &[u8]) -> String {
        let url = format!("http://{}/v2/{repository}/manifests/{reference}", self.registry);
        let response = self
            .request("PUT", &url)
            .header("Content-Type", media_type)
            .send(bytes)
            .unwrap_or_else(|error| panic!("PUT {url}: {error}"));
        assert_eq!(response.status(), 201, "PUT {url}");
        sha256(bytes)
    }

    /// A small multi-platform image (one layer per platform, configs with user 1001), tagged
    /// `tag`; `seed` makes its content unique. Returns the index digest.
    pub fn image(&self, repository: &str, tag: &str, seed: &str, platforms: &[&str]) -> String {
        self.image_created(repository, tag, seed, platforms, "2026-01-01T00:00:00Z")
    }

    /// As [`Pusher::image`], with the images' config `created` time.
    pub fn image_created(&self, repository: &str, tag: &str, seed: &str, platforms: &[&str], created: &str) -> String {
        let mut entries = Vec::new();
        for platform in platforms {
            let (os, architecture) = platform.split_once('/').unwrap();
            let layer = self.blob(repository, format!("{seed} {platform} layer").as_bytes());
            let config = format!(
                r#"{{"architecture":"{architecture}","os":"{os}","created":"{created}","config":{{"User":"1001:1001","Labels":{{"seed":"{seed}"}}}},"rootfs":{{"type":"layers","diff_ids":["{layer}"]}}}}"#
            );
            let config_digest = self.blob(repository, config.as_bytes());
            let image = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{}}}]}}"#,
                config.len(),
                format!("{seed} {platform} layer").len()
            );
            let image_digest = self.manifest(
                repository,
                &sha256(image.as_bytes()),
                "application/vnd.oci.image.manifest.v1+json",
                image.as_bytes(),
            );
            entries.push(format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{image_digest}","size":{},"platform":{{"architecture":"{architecture}","os":"{os}"}}}}"#,
                image.len()
            ));
        }
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            entries.join(",")
        );
        self.manifest(repository, tag, "application/vnd.oci.image.index.v1+json", index.as_bytes())
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(bytes);
    format!("sha256:{}", hash.iter().map(|byte| format!("{byte:02x}")).collect::<String>())
}

/// The digest each tag of a repository points at, read with HEAD (no tool code involved).
pub fn tag_digests(registry: &str, repository: &str) -> Vec<(String, String)> {
    let url = format!("http://{registry}/v2/{repository}/tags/list");
    let mut response = ureq::get(&url).config().http_status_as_error(false).build().call().unwrap();
    if response.status() == 404 {
        return Vec::new();
    }
    let tags: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    let mut digests: Vec<(String, String)> = tags["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|tag| {
                    let tag = tag.as_str().unwrap().to_string();
                    let url = format!("http://{registry}/v2/{repository}/manifests/{tag}");
                    let response = ureq::head(&url).header("Accept", ACCEPT).call().unwrap();
                    let digest = response.headers().get("docker-content-digest").unwrap().to_str().unwrap().to_string();
                    (tag, digest)
                })
                .collect()
        })
        .unwrap_or_default();
    digests.sort();
    digests
}

pub fn digest_of(digests: &[(String, String)], tag: &str) -> Option<String> {
    digests.iter().find(|(name, _)| name == tag).map(|(_, digest)| digest.clone())
}

/// The digest a tag points at, by HEAD.
pub fn manifest_digest(registry: &str, repository: &str, reference: &str) -> String {
    let url = format!("http://{registry}/v2/{repository}/manifests/{reference}");
    let response =
        ureq::head(&url).header("Accept", ACCEPT).call().unwrap_or_else(|error| panic!("HEAD {url}: {error}"));
    response.headers().get("docker-content-digest").unwrap().to_str().unwrap().to_string()
}
