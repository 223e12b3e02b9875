//! The repository checks itself: every xtask command the Makefile and workflows call exists,
//! the workflows pass actionlint, the Kubernetes manifests pass kubernetes-validate, and the
//! Makefile only forwards to the xtask.
#![allow(clippy::print_stderr, reason = "tests narrate to stderr, which cargo test captures")]

mod support;

use std::process::Command;

use support::*;

/// A linter from scripts/provision.sh: missing is a failure in CI, a skip elsewhere.
fn tool(name: &str) -> Option<std::path::PathBuf> {
    match which::which(name) {
        Ok(path) => Some(path),
        Err(_) => {
            assert!(std::env::var("CI").is_err(), "{name} is not installed: scripts/provision.sh installs it");
            eprintln!("skipped: {name} is not installed");
            None
        }
    }
}

fn files(directory: &str, extension: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![repository_root().join(directory)];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|found| found == extension) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_xtask_command_called_by_make_and_ci_exists() {
    let mut sources = vec![repository_root().join("Makefile")];
    sources.extend(files(".github/workflows", "yml"));
    let mut checked = 0;
    for source in sources {
        let text = std::fs::read_to_string(&source).unwrap();
        for call in text.split("cargo xtask ").skip(1) {
            let command =
                call.split_whitespace().next().unwrap().trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
            let output = xtask(&[command, "--help"]).output().unwrap();
            assert!(output.status.success(), "{}: `cargo xtask {command}` is not a command", source.display());
            checked += 1;
        }
    }
    assert!(checked >= 10, "found {checked} calls");
}

#[test]
fn the_makefile_only_forwards_to_the_xtask() {
    let makefile = std::fs::read_to_string(repository_root().join("Makefile")).unwrap();
    for line in makefile.lines().filter(|line| line.starts_with('\t')) {
        assert!(line.trim_start().starts_with("cargo xtask "), "a recipe does more than call the xtask: {line}");
    }
    for target in
        ["docker-build:", "docker-build-multi:", "docker-push:", "docker-build-push:", "docker-build-push-multi:"]
    {
        assert!(makefile.contains(target), "R8 target {target}");
    }
    for variable in [
        "DOCKER_REGISTRY ?= docker.io",
        "DOCKER_ORG ?= battlescope",
        "VERSION ?=",
        "PLATFORMS ?= linux/amd64,linux/arm64",
        "SERVICE_NAME ?=",
    ] {
        assert!(makefile.contains(variable), "R8 variable {variable}");
    }
}

#[test]
fn workflows_pass_actionlint() {
    let Some(actionlint) = tool("actionlint") else { return };
    let output = Command::new(actionlint).current_dir(repository_root()).output().unwrap();
    assert!(output.status.success(), "actionlint:\n{}", String::from_utf8_lossy(&output.stdout));
}

#[test]
fn kubernetes_manifests_pass_kubernetes_validate() {
    let Some(validate) = tool("kubernetes-validate") else { return };
    let manifests = files("services", "yaml");
    assert_eq!(manifests.len(), 7);
    let output = Command::new(validate).args(&manifests).output().unwrap();
    assert!(
        output.status.success(),
        "kubernetes-validate:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn ci_matrix_lists_every_service() {
    let output = xtask(&["ci-matrix"]).output().unwrap();
    let matrix: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(matrix["include"].as_array().unwrap().len(), 7);
    let output = xtask(&["ci-matrix", "--per-platform"]).output().unwrap();
    let matrix: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(matrix["include"].as_array().unwrap().len(), 14);
    assert_eq!(matrix["include"][1]["platform"], "linux/arm64");
}
