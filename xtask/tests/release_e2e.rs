//! `cargo xtask release --bump minor` end to end, for real: all seven services built for both
//! platforms, published to a registry, files edited, committed and tagged, in a clone of this
//! repository; then the refusal of a second identical release, and a release stopped mid
//! publish that `--resume` finishes.
#![allow(clippy::print_stderr, reason = "tests narrate to stderr, which cargo test captures")]

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

fn release_in(clone: &Path, args: &[&str]) -> Command {
    let mut command = xtask(args);
    command.current_dir(clone).env("XTASK_ROOT", clone);
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// The end state of a finished v3.1.0 release, checked from the registry, the files and git.
fn assert_released(clone: &Path, registry: &str, organization: &str) {
    for service in SERVICES {
        let repository = format!("{organization}/{service}");
        let digests = tag_digests(registry, &repository);
        let index = digest_of(&digests, "v3.1.0").unwrap_or_else(|| panic!("{repository}:v3.1.0 missing"));
        let children = index_platforms(&manifest(registry, &repository, &index));
        assert_eq!(children.len(), 2, "{repository}: both platforms");
        for tag in ["v3.1.0", "v3.1", "v3", "latest"] {
            assert_eq!(digest_of(&digests, tag).as_ref(), Some(&index), "{repository}:{tag}");
            for (platform, child) in &children {
                let arch = platform.trim_start_matches("linux/");
                assert_eq!(
                    digest_of(&digests, &format!("{tag}-{arch}")).as_ref(),
                    Some(child),
                    "{repository}:{tag}-{arch}"
                );
            }
        }
    }
    let changed = git(clone, &["diff", "--name-only", "HEAD~1", "HEAD"]);
    let mut changed: Vec<&str> = changed.lines().collect();
    changed.sort();
    let mut expected = vec!["CHANGELOG.md".to_string(), "services/services.toml".to_string()];
    for service in SERVICES {
        expected.push(format!("docs/registry/{service}/README.md"));
        expected.push(format!("services/{service}/k8s/deployment.yaml"));
    }
    expected.sort();
    assert_eq!(changed, expected, "the release commit changes exactly these files");
    let manifest_diff = git(clone, &["diff", "-U0", "HEAD~1", "HEAD", "--", "services/services.toml"]);
    assert!(manifest_diff.contains("-version = \"3.0.0\"\n+version = \"3.1.0\""), "{manifest_diff}");
    for service in SERVICES {
        let diff =
            git(clone, &["diff", "-U0", "HEAD~1", "HEAD", "--", &format!("services/{service}/k8s/deployment.yaml")]);
        let changed: Vec<&str> = diff
            .lines()
            .filter(|line| {
                (line.starts_with('-') || line.starts_with('+')) && !line.starts_with("---") && !line.starts_with("+++")
            })
            .collect();
        assert_eq!(
            changed,
            [
                format!("-          image: docker.io/battlescope/{service}:v3.0.0"),
                format!("+          image: docker.io/battlescope/{service}:v3.1.0")
            ],
            "{service}: only the image tag changes"
        );
    }
    let changelog = std::fs::read_to_string(clone.join("CHANGELOG.md")).unwrap();
    assert!(changelog.contains("## [Unreleased]\n\n## [3.1.0] - 20"), "{changelog}");
    assert!(changelog.contains("[unreleased]: https://github.com/battlescope/battle-monitor/compare/v3.1.0...HEAD"));
    assert!(changelog.contains("[3.1.0]: https://github.com/battlescope/battle-monitor/compare/v3.0.0...v3.1.0"));
    assert_eq!(git(clone, &["log", "-1", "--format=%s"]).trim(), "release: v3.1.0");
    assert_eq!(git(clone, &["cat-file", "-t", "v3.1.0"]).trim(), "tag", "an annotated tag");
    assert_eq!(git(clone, &["status", "--porcelain"]).trim(), "", "nothing left uncommitted");
    for check in [["dockerfiles", "--check"], ["docs", "--check"]] {
        assert!(release_in(clone, &check).output().unwrap().status.success(), "{check:?} after the release");
    }
    if let Ok(validate) = which::which("kubernetes-validate") {
        let manifests: Vec<String> =
            SERVICES.iter().map(|service| format!("services/{service}/k8s/deployment.yaml")).collect();
        let output = Command::new(validate).args(&manifests).current_dir(clone).output().unwrap();
        assert!(
            output.status.success(),
            "kubernetes-validate after the release: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

#[test]
fn release_minor_of_all_services_then_refuse_the_same_release() {
    let Some(registry) = test_registry() else { return };
    let organization = "rel-e2e";
    let clone = clone_repository();
    let common =
        ["--registry", &registry, "--organization", organization, "--base-mirror", &registry, "--network", "host"];
    let release = |clone: &Path, extra: &[&str]| {
        release_in(clone, &[&["release", "--bump", "minor"][..], &common, extra].concat()).output().unwrap()
    };

    let dry_run = release(clone.path(), &["--dry-run", "--json"]);
    assert!(dry_run.status.success(), "{}", stderr(&dry_run));
    let plan: Value = serde_json::from_slice(&dry_run.stdout).unwrap();
    assert_eq!(plan["version"], "v3.1.0");
    assert_eq!(plan["images"].as_array().unwrap().len(), 84, "12 references for each of 7 services");
    assert_eq!(git(clone.path(), &["status", "--porcelain"]).trim(), "", "a dry run changes no file");
    assert!(tag_digests(&registry, &format!("{organization}/frontend")).is_empty(), "nor the registry");

    let started = Instant::now();
    let output = release(clone.path(), &["--yes", "--json"]);
    eprintln!("{}", stderr(&output));
    assert!(output.status.success());
    eprintln!("figure: end-to-end release of 7 services took {:.1}s", started.elapsed().as_secs_f64());
    let outcome: Value = serde_json::from_slice(&output.stdout).unwrap();
    let checklist = outcome["checklist"].as_array().unwrap();
    assert_eq!(checklist.len(), 8, "every R15 item");
    assert!(checklist.iter().all(|item| item["ok"] != false), "{checklist:?}");
    assert!(
        checklist.iter().any(|item| item["item"] == "image scanned" && item["ok"].is_null()),
        "not done is said, not assumed"
    );
    assert_released(clone.path(), &registry, organization);

    // The real run executed exactly the planned steps, each after what it needs: a service's
    // scan and SBOM after its build (overlapping other builds), every tag after every gate.
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(clone.path().join("target/xtask/release/v3.1.0.json")).unwrap())
            .unwrap();
    assert_eq!(record["plan"], plan, "the journal's plan is the dry run's plan");
    let mut planned: Vec<&str> =
        plan["steps"].as_array().unwrap().iter().map(|step| step["id"].as_str().unwrap()).collect();
    let done: Vec<&str> = record["done"].as_array().unwrap().iter().map(|id| id.as_str().unwrap()).collect();
    let at = |id: &str| done.iter().position(|done| *done == id).unwrap_or_else(|| panic!("{id} was not done"));
    let last_gate = done.iter().rposition(|id| id.starts_with("scan:") || id.starts_with("sbom:")).unwrap();
    let first_publish = done.iter().position(|id| id.starts_with("publish:")).unwrap();
    assert!(last_gate < first_publish, "no tag before every gate passed: {done:?}");
    for service in SERVICES {
        for after in ["scan", "sbom"] {
            assert!(at(&format!("build:{service}")) < at(&format!("{after}:{service}")), "{done:?}");
        }
        assert!(at(&format!("publish:{service}")) < at(&format!("verify:{service}")), "{done:?}");
        assert!(at(&format!("verify:{service}")) < at("write-files"), "{done:?}");
    }
    assert!(at("write-files") < at("git-commit") && at("git-commit") < at("git-tag"), "{done:?}");
    let mut done_sorted = done.clone();
    done_sorted.sort();
    planned.sort();
    assert_eq!(done_sorted, planned, "every planned step done, once");

    // The same release from another clone: refused before any build, nothing changed.
    let before = tag_digests(&registry, &format!("{organization}/battle-service"));
    let again = clone_repository();
    let output = release(again.path(), &["--yes"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("{registry}/{organization}/ingestion-service:v3.1.0 already exists")),
        "{}",
        stderr(&output)
    );
    assert!(!again.path().join("target/xtask/build").exists(), "refused before any build");
    assert_eq!(tag_digests(&registry, &format!("{organization}/battle-service")), before);
    assert_eq!(git(again.path(), &["status", "--porcelain"]).trim(), "");

    // Build avoidance: one service changes, the next release builds only it and tags the six
    // unchanged images of v3.1.0 as v3.1.1, registry-side.
    let page = clone.path().join("services/frontend/public/index.html");
    std::fs::write(&page, std::fs::read_to_string(&page).unwrap().replace("Loading battles", "Loading the battles"))
        .unwrap();
    let changelog = clone.path().join("CHANGELOG.md");
    std::fs::write(
        &changelog,
        std::fs::read_to_string(&changelog).unwrap().replacen(
            "## [Unreleased]\n",
            "## [Unreleased]\n\n### Fixed\n\n- The frontend's loading message.\n",
            1,
        ),
    )
    .unwrap();
    git(clone.path(), &["commit", "--quiet", "--all", "--message", "frontend: clearer loading message"]);
    let patch = |extra: &[&str]| {
        release_in(clone.path(), &[&["release", "--bump", "patch"][..], &common, extra].concat()).output().unwrap()
    };
    let output = patch(&["--dry-run", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    let ids: Vec<&str> = plan["steps"].as_array().unwrap().iter().map(|step| step["id"].as_str().unwrap()).collect();
    assert_eq!(ids.iter().filter(|id| id.starts_with("build:")).collect::<Vec<_>>(), [&"build:frontend"], "{ids:?}");
    assert_eq!(ids.iter().filter(|id| id.starts_with("reuse:")).count(), 6, "{ids:?}");
    let output = patch(&["--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));
    for service in SERVICES {
        let digests = tag_digests(&registry, &format!("{organization}/{service}"));
        let (previous, next) = (digest_of(&digests, "v3.1.0").unwrap(), digest_of(&digests, "v3.1.1").unwrap());
        assert_eq!(digest_of(&digests, "latest").as_ref(), Some(&next), "{service}: the full scheme moves to v3.1.1");
        assert!(digest_of(&digests, "v3.1.1-arm64").is_some(), "{service}");
        if service == "frontend" {
            assert_ne!(previous, next, "the changed service was built");
        } else {
            assert_eq!(previous, next, "{service}: unchanged, so the same image");
        }
    }
}

/// `release --resume`, which must succeed; its output.
fn resume(clone: &Path, registry: &str, organization: &str) -> Output {
    let output =
        release_in(clone, &["release", "--resume", "--registry", registry, "--organization", organization, "--yes"])
            .output()
            .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

/// A registry of this test's own, stopped with the guard.
struct OwnRegistry {
    address: String,
    directory: tempfile::TempDir,
    port: String,
}

impl OwnRegistry {
    fn start() -> OwnRegistry {
        let directory = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
        let output =
            xtask(&["local-registry", "start", "--port", &port, "--dir", &directory.path().display().to_string()])
                .output()
                .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        OwnRegistry { address: String::from_utf8(output.stdout).unwrap().trim().to_string(), directory, port }
    }

    fn signal(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.directory.path().join("pid")).unwrap();
        assert!(Command::new("kill").args([signal, pid.trim()]).status().unwrap().success());
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = xtask(&[
            "local-registry",
            "stop",
            "--port",
            &self.port,
            "--dir",
            &self.directory.path().display().to_string(),
        ])
        .output();
    }
}

#[test]
fn a_release_stopped_mid_publish_resumes_to_the_same_end_state() {
    let Some(mirror) = test_registry() else { return };
    let registry = OwnRegistry::start();
    let organization = "rel-resume";
    let clone = clone_repository();
    let common = [
        "--registry",
        registry.address.as_str(),
        "--organization",
        organization,
        "--base-mirror",
        &mirror,
        "--network",
        "host",
        "--yes",
    ];
    let mut child = release_in(clone.path(), &[&["release", "--bump", "minor"][..], &common].concat())
        .env("XTASK_RETRY_ATTEMPTS", "1")
        .env("XTASK_HTTP_TIMEOUT_SECS", "2")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // Freeze the registry at the first release-tag write: the publish stops mid-way.
    let log = registry.directory.path().join("registry.log");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().any(|line| line.contains("\"PUT /v2/rel-resume/") && line.contains("/manifests/v3.1.0-amd64 "))
        {
            registry.signal("-STOP");
            break;
        }
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "the release ended before its publish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    registry.signal("-CONT");
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("run `cargo xtask release --resume`"), "{message}");
    assert_ne!(git(clone.path(), &["log", "-1", "--format=%s"]).trim(), "release: v3.1.0", "no release commit yet");

    // A new release is refused while this one is unfinished.
    let output = release_in(clone.path(), &[&["release", "--bump", "minor"][..], &common].concat()).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("stopped before finishing") && stderr(&output).contains("--resume"),
        "{}",
        stderr(&output)
    );

    let output = resume(clone.path(), &registry.address, organization);
    assert!(stderr(&output).contains("resuming the release of v3.1.0"));
    assert_released(clone.path(), &registry.address, organization);
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(clone.path().join("target/xtask/release/v3.1.0.json")).unwrap())
            .unwrap();
    let planned: Vec<&Value> = record["plan"]["steps"].as_array().unwrap().iter().map(|step| &step["id"]).collect();
    let mut done: Vec<&Value> = record["done"].as_array().unwrap().iter().collect();
    done.sort_by_key(|id| planned.iter().position(|planned| planned == id));
    assert_eq!(done, planned, "every step done exactly once");
}

/// A clone whose releases skip SBOMs (syft's minute is not what these tests are about).
fn clone_without_sboms() -> tempfile::TempDir {
    let clone = clone_repository();
    let manifest = clone.path().join("services/services.toml");
    std::fs::write(&manifest, std::fs::read_to_string(&manifest).unwrap().replace("sbom = true", "sbom = false"))
        .unwrap();
    git(clone.path(), &["commit", "--quiet", "--all", "--message", "no SBOMs"]);
    clone
}

/// Waits until `ready` holds (polling), or panics naming `what`.
fn wait_for(what: &str, child: &mut std::process::Child, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !ready() {
        assert!(child.try_wait().unwrap().is_none(), "the release ended before {what}");
        assert!(Instant::now() < deadline, "{what} did not happen within 10 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_stops_a_release_cleanly_and_sigkill_leaves_it_resumable() {
    let Some(mirror) = test_registry() else { return };
    let registry = OwnRegistry::start();
    let args = |organization: &'static str, extra: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "release",
            "--registry",
            &registry.address,
            "--organization",
            organization,
            "--base-mirror",
            &mirror,
            "--network",
            "host",
            "--yes",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        args.extend(extra.iter().map(|arg| arg.to_string()));
        args
    };
    let start = |clone: &Path, args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        release_in(clone, &args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };

    // SIGTERM while building: the builds are stopped, the journal kept, the lock released.
    let clone = clone_without_sboms();
    let mut child = start(clone.path(), &args("rel-term", &["--bump", "minor", "--no-cache"]));
    let logs = clone.path().join("target/xtask/build");
    wait_for("the builds", &mut child, || std::fs::read_dir(&logs).is_ok_and(|mut entries| entries.next().is_some()));
    std::thread::sleep(Duration::from_millis(500));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let stopped = Instant::now();
    let output = child.wait_with_output().unwrap();
    eprintln!("figure: the release stopped {:.1}s after SIGTERM", stopped.elapsed().as_secs_f64());
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{message}");
    assert!(
        message.contains("interrupted by a signal") && message.contains("cargo xtask release --resume"),
        "{message}"
    );
    assert!(clone.path().join("target/xtask/release/journal.json").exists(), "the journal is kept");
    assert!(!clone.path().join("target/xtask/release/lock.json").exists(), "the lock is released");
    let builds = Command::new("pgrep").args(["-f", "rel-term/.*v3.1.0-dev"]).output().unwrap();
    assert!(builds.stdout.is_empty(), "no build is left running: {}", String::from_utf8_lossy(&builds.stdout));
    resume(clone.path(), &registry.address, "rel-term");
    assert_released(clone.path(), &registry.address, "rel-term");

    // SIGKILL while publishing: nothing can clean up, the next start explains, --resume finishes.
    let clone = clone_without_sboms();
    let mut child = start(clone.path(), &args("rel-kill", &["--bump", "minor"]));
    let log = registry.directory.path().join("registry.log");
    wait_for("the publish", &mut child, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|line| line.contains("\"PUT /v2/rel-kill/") && line.contains("/manifests/v3.1.0-amd64 "))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let output = release_in(
        clone.path(),
        &args("rel-kill", &["--bump", "minor"]).iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("stopped without finishing") && stderr(&output).contains("is gone"),
        "{}",
        stderr(&output)
    );
    resume(clone.path(), &registry.address, "rel-kill");
    assert_released(clone.path(), &registry.address, "rel-kill");
}
