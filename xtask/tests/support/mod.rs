//! Shared by the integration tests: running the built `xtask` binary, the one loopback
//! registry of the test run, and reading what is in it without the tool's own code.
#![allow(dead_code, reason = "each test binary uses part of this module")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

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
