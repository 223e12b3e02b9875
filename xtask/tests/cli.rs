//! The command line as a user meets it: exit codes, messages, and files left untouched.
#![allow(clippy::print_stderr, reason = "tests narrate to stderr, which cargo test captures")]

mod support;

use std::path::Path;

use support::*;

/// A copy of the parts of the repository the tool reads, to break without harm.
fn scratch_copy() -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .args(["-r", "services", "docker"])
        .arg(copy.path())
        .current_dir(repository_root())
        .status()
        .unwrap();
    assert!(status.success());
    copy
}

fn snapshot(directory: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    files.sort();
    files
}

#[test]
fn dockerfiles_check_passes_on_the_repository() {
    let output = run(xtask(&["dockerfiles", "--check"]));
    assert!(output.status.success());
}

#[test]
fn a_bad_manifest_exits_2_names_file_line_key_and_writes_nothing() {
    let copy = scratch_copy();
    let manifest = copy.path().join("services/services.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replacen("port = 3000", "port = 99999", 1)).unwrap();
    std::fs::remove_file(copy.path().join("docker/frontend.Dockerfile")).unwrap();
    let before = snapshot(&copy.path().join("docker"));

    let output = run(xtask(&["dockerfiles"]).env("XTASK_ROOT", copy.path()));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("services/services.toml:23: service `ingestion-service`, key `port`: port 99999 is out of range"),
        "{stderr}"
    );
    assert!(stderr.contains("fix: use a port from 1024 to 65535"), "{stderr}");
    assert_eq!(snapshot(&copy.path().join("docker")), before, "nothing may be written");
}

#[test]
fn a_stale_dockerfile_fails_the_check_with_the_command_that_fixes_it() {
    let copy = scratch_copy();
    let stale = copy.path().join("docker/battle-service.Dockerfile");
    std::fs::write(&stale, "FROM node:20-alpine\n").unwrap();
    let output = run(xtask(&["dockerfiles", "--check"]).env("XTASK_ROOT", copy.path()));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("docker/battle-service.Dockerfile (out of date)"), "{stderr}");
    assert!(stderr.contains("run `cargo xtask dockerfiles`"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&stale).unwrap(), "FROM node:20-alpine\n");
}

#[test]
fn an_unknown_flag_value_is_a_usage_error() {
    let output = run(xtask(&["build", "--platform", "linux/s390x", "--dry-run"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown platform `linux/s390x`"));
    let output = run(xtask(&["build", "--frobnicate"]));
    assert_eq!(output.status.code(), Some(2));
}

/// Every committed Dockerfile, and the `rust` kind's, passes the real hadolint (installed by
/// scripts/provision.sh).
#[test]
fn generated_dockerfiles_pass_hadolint() {
    let Ok(hadolint) = which::which("hadolint") else {
        assert!(std::env::var("CI").is_err(), "hadolint is not installed: scripts/provision.sh installs it");
        eprintln!("skipped: hadolint is not installed");
        return;
    };
    let dockerfiles: Vec<_> = std::fs::read_dir(repository_root().join("docker"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "Dockerfile"))
        .collect();
    assert_eq!(dockerfiles.len(), 7);
    // The `rust` kind, which no service here uses, as its snapshot test renders it.
    let snapshot = std::fs::read_to_string(
        repository_root().join("xtask/src/snapshots/xtask__dockerfile__tests__rust_service.snap"),
    )
    .unwrap();
    let rust = tempfile::tempdir().unwrap();
    let rust_dockerfile = rust.path().join("rust.Dockerfile");
    std::fs::write(&rust_dockerfile, snapshot.splitn(3, "---\n").nth(2).unwrap()).unwrap();
    let output = std::process::Command::new(hadolint).args(&dockerfiles).arg(&rust_dockerfile).output().unwrap();
    assert!(output.status.success(), "hadolint:\n{}", String::from_utf8_lossy(&output.stdout));
}

/// Doctor against the real engine and the test registry: every check passes; an unreachable
/// registry fails with what to do.
#[test]
fn doctor_reports_each_check_and_what_to_fix() {
    let Some(registry) = test_registry() else { return };
    let output = run(xtask(&["doctor", "--registry", &registry]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for check in ["engine", "buildx", "builder", "qemu arm64", "registry", "kubernetes", "emulation", "hadolint"] {
        assert!(stderr.lines().any(|line| line.starts_with("ok") && line.contains(check)), "{check}: {stderr}");
    }
    let unused_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = run(xtask(&["doctor", "--registry", &format!("127.0.0.1:{unused_port}")]));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("FAIL  registry     127.0.0.1:{unused_port} cannot be reached")), "{stderr}");
    assert!(stderr.contains("1 of 9 checks failed"), "{stderr}");
}

/// The pull Secret of R12, as `kubectl create secret docker-registry --dry-run=client -o yaml`
/// writes it, from the credentials the tool resolves; to stdout only.
#[test]
fn k8s_pull_secret_from_resolved_credentials() {
    use base64::Engine;
    let empty = tempfile::tempdir().unwrap();
    let mut command = xtask(&["k8s", "pull-secret"]);
    command
        .env("DOCKER_CONFIG", empty.path())
        .env("XTASK_REGISTRY_USERNAME", "ci-bot")
        .env("XTASK_REGISTRY_PASSWORD", "pa55");
    let output = run(command);
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("pa55"), "never on stderr");
    let yaml = String::from_utf8(output.stdout).unwrap();
    assert!(yaml.starts_with("apiVersion: v1\nkind: Secret\nmetadata:\n  name: docker-hub-creds\n  namespace: battlescope\ntype: kubernetes.io/dockerconfigjson\n"), "{yaml}");
    let encoded = yaml.lines().find_map(|line| line.trim().strip_prefix(".dockerconfigjson: ")).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(encoded).unwrap()).unwrap();
    let entry = &config["auths"]["https://index.docker.io/v1/"];
    assert_eq!((entry["username"].as_str(), entry["password"].as_str()), (Some("ci-bot"), Some("pa55")));
    assert_eq!(entry["auth"], base64::engine::general_purpose::STANDARD.encode("ci-bot:pa55"));
    if let Ok(validate) = which::which("kubernetes-validate") {
        let file = empty.path().join("secret.yaml");
        std::fs::write(&file, &yaml).unwrap();
        assert!(std::process::Command::new(validate).arg(&file).output().unwrap().status.success());
    }

    let mut command = xtask(&["k8s", "pull-secret", "--registry", "ghcr.io"]);
    command
        .env("DOCKER_CONFIG", empty.path())
        .env_remove("XTASK_REGISTRY_USERNAME")
        .env_remove("XTASK_REGISTRY_PASSWORD");
    let output = run(command);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("run `docker login ghcr.io`"));
}

/// `pin-bases` against the test registry as the base mirror: each base gets the digest the
/// registry serves, the Dockerfiles follow, and a build from the pinned Dockerfile works.
#[test]
fn pin_bases_writes_digests_and_the_pinned_build_works() {
    let Some(registry) = test_registry() else { return };
    let clone = clone_repository();
    let output = run(xtask(&["pin-bases", "--base-mirror", &registry]).env("XTASK_ROOT", clone.path()));
    assert!(output.status.success());
    let node = format!("node:20-alpine@{}", manifest_digest(&registry, "library/node", "20-alpine"));
    let busybox = format!("busybox:1.36@{}", manifest_digest(&registry, "library/busybox", "1.36"));
    let services = std::fs::read_to_string(clone.path().join("services/services.toml")).unwrap();
    assert_eq!(services.matches(&format!("base = \"{node}\"")).count(), 6, "{services}");
    assert_eq!(services.matches(&format!("base = \"{busybox}\"")).count(), 1);
    let dockerfile = std::fs::read_to_string(clone.path().join("docker/frontend.Dockerfile")).unwrap();
    assert!(dockerfile.contains(&format!("FROM {busybox}\n")), "{dockerfile}");
    assert!(run(xtask(&["dockerfiles", "--check"]).env("XTASK_ROOT", clone.path())).status.success());
    let output = run(xtask(&[
        "build",
        "--service",
        "frontend",
        "--platform",
        "linux/amd64,linux/arm64",
        "--push",
        "--registry",
        &registry,
        "--organization",
        "pinned",
        "--base-mirror",
        &registry,
        "--network",
        "host",
        "--tag",
        "pinned",
    ])
    .env("XTASK_ROOT", clone.path())
    .current_dir(clone.path()));
    assert!(output.status.success(), "a build from digest-pinned bases");
    assert_eq!(index_platforms(&manifest(&registry, "pinned/frontend", "pinned")).len(), 2);
    let output = run(xtask(&["pin-bases", "--base-mirror", &registry]).env("XTASK_ROOT", clone.path()));
    assert!(String::from_utf8_lossy(&output.stderr).contains("every base image is already pinned"));
}
