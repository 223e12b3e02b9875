//! Faults x release phases, for real: releases of this repository (trimmed to the small
//! `frontend` service, so that each of the many releases is quick) go to the shared loopback
//! registry through a fault-injecting proxy. A transient fault must be absorbed and the release
//! complete; a persistent one must stop it with a message naming the request and `--resume`,
//! with no tag on a partial or wrong manifest; after healing, `--resume` must reach the same end
//! state as a release that met no fault. Prints the table the closing note quotes.
#![allow(clippy::print_stderr, reason = "tests narrate to stderr, which cargo test captures")]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use support::fault_proxy::{Client, Fault, FaultProxy, Matcher, Rule};
use support::*;

const SERVICE: &str = "frontend";
/// Each attempt's limit in the tool; a stall outlasts it.
const CLIENT_TIMEOUT_SECS: u64 = 2;
const STALL: Duration = Duration::from_secs(CLIENT_TIMEOUT_SECS + 2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Preflight,
    Build,
    Scan,
    Publish,
    Verify,
    Sbom,
}

impl Phase {
    const ALL: [Phase; 6] = [Phase::Preflight, Phase::Build, Phase::Scan, Phase::Publish, Phase::Verify, Phase::Sbom];

    /// A rule failing `times` requests characteristic of this phase.
    fn rule(self, fault: Fault, times: usize) -> Rule {
        let xtask = |method, path| Matcher { client: Client::Xtask, method, path };
        let (matcher, skip, armed_after) = match self {
            // The tool's first request to the target registry: the preflight's tag checks.
            Phase::Preflight => (xtask(None, None), 0, None),
            // The engine pushing the built image's manifests.
            Phase::Build => {
                (Matcher { client: Client::Engine, method: Some("PUT"), path: Some("/manifests/") }, 0, None)
            }
            // The gate reading image configs.
            Phase::Scan => (xtask(Some("GET"), Some("/blobs/")), 0, None),
            // The sixth of the twelve tag writes: some tags are written, some are not.
            Phase::Publish => (xtask(Some("PUT"), Some("/manifests/")), 5, None),
            // Reads once all twelve tags are written.
            Phase::Verify => {
                (xtask(Some("GET"), Some("/manifests/")), 0, Some((xtask(Some("PUT"), Some("/manifests/")), 12)))
            }
            // syft reading the image.
            Phase::Sbom => (Matcher { client: Client::Other, method: Some("GET"), path: Some("/manifests/") }, 0, None),
        };
        Rule { matcher, skip, times, fault, armed_after }
    }
}

#[derive(Debug, Clone, Copy)]
struct Case {
    phase: Phase,
    fault: Fault,
    persistent: bool,
}

/// Every transient fault in every phase, and a persistent fault in every phase (plus the
/// nastier persistent faults where a write is half done).
fn cases() -> Vec<Case> {
    let transient = [
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(503),
        Fault::TooManyRequests,
        Fault::DropMidResponse,
        Fault::Stall(STALL),
    ];
    let mut cases = Vec::new();
    for phase in Phase::ALL {
        for fault in transient {
            cases.push(Case { phase, fault, persistent: false });
        }
        cases.push(Case { phase, fault: Fault::Status(503), persistent: true });
    }
    cases.push(Case { phase: Phase::Publish, fault: Fault::DropMidResponse, persistent: true });
    cases.push(Case { phase: Phase::Publish, fault: Fault::Stall(STALL), persistent: true });
    cases
}

/// A clone of this repository releasing only `frontend` (SBOMs only when asked).
fn trimmed_clone(sbom: bool) -> tempfile::TempDir {
    let clone = clone_repository();
    let path = clone.path().join("services/services.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut kept = String::new();
    let mut keep = true;
    for section in text.split_inclusive('\n').collect::<Vec<_>>().chunk_by(|_, line| !line.starts_with('[')) {
        if section[0].starts_with("[[service]]") {
            keep = section.iter().any(|line| line.trim() == format!("name = \"{SERVICE}\""));
        } else if section[0].starts_with('[') {
            keep = true;
        }
        if keep {
            kept.extend(section.iter().copied());
        }
    }
    let kept = kept.replace("sbom = true", &format!("sbom = {sbom}"));
    assert!(kept.contains(&format!("sbom = {sbom}")) && kept.matches("[[service]]").count() == 1, "{kept}");
    std::fs::write(&path, kept).unwrap();
    for other in SERVICES.iter().filter(|name| **name != SERVICE) {
        git(
            clone.path(),
            &["rm", "--quiet", "-r", &format!("docker/{other}.Dockerfile"), &format!("docs/registry/{other}")],
        );
    }
    git(clone.path(), &["commit", "--quiet", "-am", "release only the frontend"]);
    clone
}

fn release(clone: &Path, proxy: &str, base_mirror: &str, organization: &str, resume: bool) -> Output {
    let action: &[&str] = if resume { &["release", "--resume"] } else { &["release", "--bump", "minor"] };
    let mut command = xtask(action);
    command
        .args(["--registry", proxy, "--organization", organization, "--yes"])
        .current_dir(clone)
        .env("XTASK_ROOT", clone)
        .env("XTASK_RETRY_ATTEMPTS", "4")
        .env("XTASK_RETRY_BASE_MS", "100")
        .env("XTASK_HTTP_TIMEOUT_SECS", CLIENT_TIMEOUT_SECS.to_string());
    if !resume {
        command.args(["--base-mirror", base_mirror, "--network", "host"]);
    }
    command.output().unwrap()
}

/// The repository's tags grouped by the digest they share, with a check that every tag
/// resolves to a complete image: an index whose platform images exist, or an image manifest.
fn tag_groups(registry: &str, repository: &str) -> Vec<Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (tag, digest) in tag_digests(registry, repository) {
        let document = manifest(registry, repository, &digest);
        if document["manifests"].is_array() {
            let children = index_platforms(&document);
            assert_eq!(children.len(), 2, "{repository}:{tag} is an index of both platforms");
            for (_, child) in children {
                assert!(
                    manifest(registry, repository, &child)["config"].is_object(),
                    "{repository}:{tag} child {child}"
                );
            }
        } else {
            assert!(document["config"].is_object(), "{repository}:{tag} is an image manifest");
        }
        // The staging tag names the commit, which differs between clones.
        let tag = match tag.split_once("-dev-") {
            Some((version, _)) => format!("{version}-dev-<commit>"),
            None => tag,
        };
        groups.entry(digest).or_default().push(tag);
    }
    let mut groups: Vec<Vec<String>> = groups.into_values().collect();
    groups.sort();
    groups
}

/// The end state a user checks: the repository's tags and which share an image, the release
/// commit's tree, the git tag, a clean tree and no unfinished journal.
#[derive(Debug, PartialEq, Eq)]
struct EndState {
    tags: Vec<Vec<String>>,
    tree: String,
    git_tags: String,
    status: String,
    journal_left: bool,
}

fn end_state(clone: &Path, registry: &str, organization: &str) -> EndState {
    EndState {
        tags: tag_groups(registry, &format!("{organization}/{SERVICE}")),
        tree: git(clone, &["rev-parse", "HEAD^{tree}"]).trim().to_string(),
        git_tags: git(clone, &["tag", "--list"]),
        status: git(clone, &["status", "--porcelain"]),
        journal_left: clone.join("target/xtask/release/journal.json").exists(),
    }
}

/// A release tag (`vX.Y.Z`, `vX.Y`, `vX`, `latest`, each with or without `-arch`) that exists must
/// be on the image the release built, never on anything else.
fn assert_no_wrong_release_tag(registry: &str, organization: &str, clone: &Path) {
    let repository = format!("{organization}/{SERVICE}");
    let digests = tag_digests(registry, &repository);
    let sha = git(clone, &["rev-parse", "--short=12", "HEAD"]);
    let Some(staged) = digests.iter().find(|(tag, _)| tag.contains("-dev-")).map(|(_, digest)| digest.clone()) else {
        assert!(digests.is_empty(), "release tags without a built image: {digests:?} ({sha})");
        return;
    };
    let children: BTreeMap<String, String> = index_platforms(&manifest(registry, &repository, &staged))
        .into_iter()
        .map(|(platform, digest)| (platform.trim_start_matches("linux/").to_string(), digest))
        .collect();
    for (tag, digest) in &digests {
        if tag.contains("-dev-") {
            continue;
        }
        let expected = match tag.rsplit_once('-') {
            Some((_, arch)) if children.contains_key(arch) => &children[arch],
            _ => &staged,
        };
        assert_eq!(digest, expected, "{repository}:{tag} points at the wrong manifest");
    }
    tag_groups(registry, &repository);
}

struct Outcome {
    case: Case,
    injected: usize,
    completed: bool,
    refused_cleanly: bool,
    inconsistent: bool,
    seconds: f64,
}

fn run_case(case: Case, index: usize, registry: &str, reference: &EndState) -> Outcome {
    let started = Instant::now();
    let organization = format!("fault-{}-{index}", std::process::id());
    let clone = trimmed_clone(case.phase == Phase::Sbom);
    let proxy = FaultProxy::start(registry);
    let times = match (case.persistent, case.fault) {
        (true, _) => usize::MAX,
        // Two failures in a row where a retry is cheap, one where it takes a timeout.
        (false, Fault::Stall(_) | Fault::DropMidResponse) => 1,
        (false, _) => 2,
    };
    proxy.add_rule(case.phase.rule(case.fault, times));
    let first = release(clone.path(), &proxy.address, registry, &organization, false);
    let stderr = String::from_utf8_lossy(&first.stderr).to_string();
    let injected = proxy.injected();
    if injected == 0 {
        for seen in proxy.seen() {
            eprintln!("SEEN {} {} {}", seen.method, seen.path, &seen.agent[..seen.agent.len().min(20)]);
        }
    }
    let label =
        format!("{:?} x {} ({})", case.phase, case.fault, if case.persistent { "persistent" } else { "transient" });
    assert!(injected > 0, "{label}: the proxy injected nothing; the rule matched no request:\n{stderr}");
    let mut outcome =
        Outcome { case, injected, completed: false, refused_cleanly: false, inconsistent: false, seconds: 0.0 };
    if first.status.success() {
        assert!(!case.persistent, "{label}: a persistent fault cannot let the release succeed:\n{stderr}");
        outcome.completed = true;
    } else {
        assert!(case.persistent, "{label}: a transient fault stopped the release:\n{stderr}");
        let last = stderr.lines().filter(|line| line.starts_with("error")).collect::<Vec<_>>().join("\n");
        // The last failed request, by its path, and what to do next.
        let failed = proxy.seen().into_iter().rev().find(|seen| seen.fault.is_some()).unwrap();
        let failed_path = failed.path.split('?').next().unwrap();
        assert!(stderr.contains(failed_path), "{label}: the error names the failing request {failed_path}:\n{stderr}");
        if case.phase == Phase::Publish {
            assert!(stderr.contains("tags written before it: "), "{label}: the error says what is pushed:\n{stderr}");
        }
        eprintln!("{label}: {}", last.lines().last().unwrap_or_default());
        assert_no_wrong_release_tag(registry, &organization, clone.path());
        let journal = clone.path().join("target/xtask/release/journal.json").exists();
        if journal {
            assert!(stderr.contains("cargo xtask release --resume"), "{label}: the error says how to resume:\n{last}");
        } else {
            assert_eq!(git(clone.path(), &["status", "--porcelain"]), "", "{label}: stopped before any change");
            assert_eq!(git(clone.path(), &["log", "-1", "--format=%s"]).trim(), "release only the frontend");
        }
        proxy.heal();
        let second = release(clone.path(), &proxy.address, registry, &organization, journal);
        assert!(second.status.success(), "{label}: after healing: {}", String::from_utf8_lossy(&second.stderr));
        outcome.refused_cleanly = true;
    }
    let state = end_state(clone.path(), registry, &organization);
    outcome.inconsistent = state != *reference;
    assert_eq!(state, *reference, "{label}: the end state differs from a release without faults");
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome
}

#[test]
fn every_fault_in_every_phase_completes_or_stops_cleanly_and_resumes() {
    let Some(registry) = test_registry() else { return };
    // The references: the same releases (without and with SBOMs) meeting no fault.
    let reference = |sbom: bool| {
        let started = Instant::now();
        let clone = trimmed_clone(sbom);
        let proxy = FaultProxy::start(&registry);
        // Unique per run: the registry may hold an earlier run's releases.
        let organization = format!("fault-{}-reference-{sbom}", std::process::id());
        let output = release(clone.path(), &proxy.address, &registry, &organization, false);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let state = end_state(clone.path(), &registry, &organization);
        assert_eq!(state.tags.iter().map(Vec::len).sum::<usize>(), 13, "12 release tags and the staging tag");
        eprintln!(
            "reference release (SBOMs {sbom}): {:.1}s, {} requests through the proxy",
            started.elapsed().as_secs_f64(),
            proxy.seen().len()
        );
        state
    };
    let references = [reference(false), reference(true)];

    // `FAULT_PHASES=Publish,Verify` runs only those phases' cases (while working on one).
    let only = std::env::var("FAULT_PHASES").unwrap_or_default();
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|case| only.is_empty() || only.split(',').any(|phase| phase == format!("{:?}", case.phase)))
        .collect();
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let (cases, registry, references) = (&cases, &registry, &references);
        let workers: Vec<_> = (0..3)
            .map(|worker| {
                scope.spawn(move || {
                    cases
                        .iter()
                        .enumerate()
                        .filter(|(index, _)| index % 3 == worker)
                        .map(|(index, case)| {
                            run_case(*case, index, registry, &references[usize::from(case.phase == Phase::Sbom)])
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().expect("a fault case failed")).collect()
    });

    eprintln!("\n| phase | fault | kind | injected | completed | refused cleanly, then resumed | inconsistent | s |");
    eprintln!("|---|---|---|---|---|---|---|---|");
    for outcome in &outcomes {
        eprintln!(
            "| {:?} | {} | {} | {} | {} | {} | {} | {:.1} |",
            outcome.case.phase,
            outcome.case.fault,
            if outcome.case.persistent { "persistent" } else { "transient" },
            outcome.injected,
            outcome.completed,
            outcome.refused_cleanly,
            outcome.inconsistent,
            outcome.seconds
        );
    }
    let total = |pick: fn(&Outcome) -> usize| outcomes.iter().map(pick).sum::<usize>();
    eprintln!(
        "\n{} releases, {} faults injected: {} completed, {} refused cleanly and resumed, {} inconsistent",
        outcomes.len(),
        total(|outcome| outcome.injected),
        total(|outcome| usize::from(outcome.completed)),
        total(|outcome| usize::from(outcome.refused_cleanly)),
        total(|outcome| usize::from(outcome.inconsistent)),
    );
    assert_eq!(total(|outcome| usize::from(outcome.inconsistent)), 0);
}
