//! `cargo xtask`: builds, publishes and releases the BattleScope services from
//! `services/services.toml`. `main` only parses the command line and dispatches.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod build;
mod changelog;
mod cleanup;
mod codegen;
mod digests;
mod dockerfile;
mod docs;
mod doctor;
mod engine;
mod error;
#[cfg(test)]
mod fuzz;
mod git;
mod hub;
mod inputs;
mod k8s;
mod local_registry;
mod manifest;
mod pin;
mod process;
mod progress;
mod publish;
mod reference;
mod registry;
mod release;
mod retention;
mod retry;
mod scan;
mod scheduler;
mod tags;
#[cfg(test)]
mod test_server;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::error::bad_input;
use crate::manifest::{Manifest, Platform};

/// Release orchestrator for the BattleScope services.
#[derive(Parser)]
#[command(name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build service images with docker buildx (default: every service, the engine's platform,
    /// loaded into the local engine, tagged vX.Y.Z-dev-<short sha>).
    Build(BuildArgs),
    /// The whole release: preflight, build, publish, verify, then the version, CHANGELOG,
    /// Kubernetes manifests and docs committed and tagged.
    Release(ReleaseArgs),
    /// Give built images their release tags in the registry: per-arch tags and multi-arch
    /// indexes, never overwriting a release, moving floating tags only forward.
    Publish(PublishArgs),
    /// Apply the retention policy (R11) to each service's repository: keep what the guide keeps,
    /// delete the rest, never what a kept tag needs.
    Cleanup(CleanupArgs),
    /// Print benchmark figures (see README.md, Benchmarks).
    Bench {
        #[command(subcommand)]
        which: BenchKind,
    },
    /// Check a released version in the registry: it exists, holds every platform, its per-arch
    /// tags match the index, and it runs as a numeric non-root user.
    Verify(VerifyArgs),
    /// Write the registry documentation (short description and README per service) under
    /// docs/registry/, or check it, or push it to Docker Hub.
    Docs {
        /// Change nothing; fail if a docs file is stale, naming each one.
        #[arg(long)]
        check: bool,
        /// Also update each repository's descriptions on Docker Hub (token in $DOCKER_HUB_TOKEN).
        #[arg(long)]
        push_hub: bool,
    },
    /// Start or stop a loopback registry (what `--registry local` uses).
    LocalRegistry {
        #[command(subcommand)]
        action: LocalRegistryAction,
    },
    /// Resolve every base image tag to its digest and write `tag@digest` into the manifest,
    /// then regenerate the Dockerfiles.
    PinBases {
        /// Resolve through this mirror (same paths) instead of each base's own registry.
        #[arg(long, value_name = "HOST[:PORT]", env = "XTASK_BASE_MIRROR")]
        base_mirror: Option<String>,
    },
    /// Kubernetes helpers.
    K8s {
        #[command(subcommand)]
        action: K8sAction,
    },
    /// Print the CI build matrix (JSON for a GitHub Actions `strategy.matrix`).
    CiMatrix {
        /// One job per service and platform instead of one per service.
        #[arg(long)]
        per_platform: bool,
    },
    /// Check the engine, buildx, builder platforms, QEMU, registry and linters.
    Doctor {
        #[command(flatten)]
        target: TargetArgs,
        /// buildx builder to inspect instead of the current one.
        #[arg(long, value_name = "NAME", env = "XTASK_BUILDER")]
        builder: Option<String>,
    },
    /// Write the generated docker/<service>.Dockerfile files from services/services.toml.
    Dockerfiles {
        /// Change nothing; fail if a generated Dockerfile is stale, naming each one.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Args)]
struct CleanupArgs {
    /// Service to clean up (repeatable; default: every service).
    #[arg(long = "service", value_name = "S")]
    services: Vec<String>,
    #[command(flatten)]
    target: TargetArgs,
    /// Print the plan (each tag kept or deleted, with its rule; each deletion and its method)
    /// and delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Machine-readable plan or report on stdout.
    #[arg(long)]
    json: bool,
    /// Deletions at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    jobs: usize,
}

#[derive(Subcommand)]
enum BenchKind {
    /// Time to plan a cleanup of a synthetic repository with this many tags.
    Retention {
        #[arg(long, default_value_t = 10_000)]
        tags: usize,
    },
}

#[derive(Subcommand)]
enum K8sAction {
    /// Print the `kubernetes.io/dockerconfigjson` pull Secret (R12) built from the credentials
    /// the tool resolves for the registry, to stdout only (`kubectl apply -f -`).
    PullSecret {
        #[arg(long, default_value = "battlescope")]
        namespace: String,
        #[arg(long, default_value = k8s::PULL_SECRET)]
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
}

#[derive(Subcommand)]
enum LocalRegistryAction {
    /// Start one on 127.0.0.1:PORT (or reuse the one answering there); prints its address.
    Start(LocalRegistryArgs),
    /// Stop the one started on PORT.
    Stop(LocalRegistryArgs),
}

#[derive(Args)]
struct LocalRegistryArgs {
    #[arg(long, default_value_t = local_registry::DEFAULT_PORT)]
    port: u16,
    /// Where its data, config, pid and log go (default: target/xtask/registry-PORT).
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

/// How images are built: the settings `build` and `release` share.
#[derive(Args)]
struct EngineArgs {
    /// Network for RUN steps (`host` where the engine has no bridge network).
    #[arg(long, value_name = "MODE", env = "XTASK_BUILD_NETWORK")]
    network: Option<String>,
    /// Registry that mirrors every base image under its usual path (a pull-through cache).
    #[arg(long, value_name = "HOST[:PORT]", env = "XTASK_BASE_MIRROR")]
    base_mirror: Option<String>,
    /// buildx builder to use instead of the current one (for example one with native arm64 nodes).
    #[arg(long, value_name = "NAME", env = "XTASK_BUILDER")]
    builder: Option<String>,
    /// Build every step again, ignoring the build cache.
    #[arg(long)]
    no_cache: bool,
    /// Share the build cache through the registry (`<image>:buildcache`, mode=max), as CI does.
    #[arg(long)]
    registry_cache: bool,
    /// How many services build at once (default: the number of cores, at most 4).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
}

impl EngineArgs {
    fn jobs(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        self.jobs.unwrap_or(cores.min(4)).max(1)
    }

    /// The build request for these settings, validated: bad values are bad input (exit 2).
    fn request(&self, services: &[String], target: &TargetArgs) -> anyhow::Result<build::BuildRequest> {
        target.validate()?;
        if let Some(host) = &self.base_mirror {
            reference::validate_registry_host(host)
                .map_err(|message| bad_input(format!("--base-mirror: {message}")))?;
        }
        Ok(build::BuildRequest {
            services: services.to_vec(),
            platforms: None,
            push: false,
            registry: target.registry.clone(),
            organization: target.organization.clone(),
            version: None,
            network: self.network.clone(),
            base_mirror: self.base_mirror.clone(),
            builder: self.builder.clone(),
            no_cache: self.no_cache,
            registry_cache: self.registry_cache,
            input_digests: Vec::new(),
            push_by_digest: false,
        })
    }
}

#[derive(Args)]
struct ReleaseArgs {
    /// Which part of the version to raise.
    #[arg(long, value_enum)]
    bump: Option<release::Bump>,
    /// Make a pre-release with this label: `--pre rc` gives vX.Y.Z-rc.N.
    #[arg(long, value_name = "LABEL")]
    pre: Option<String>,
    /// Service to release (repeatable; default: every service).
    #[arg(long = "service", value_name = "S")]
    services: Vec<String>,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// Print the complete plan (version, every image reference, every file diff, every command)
    /// and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Machine-readable output on stdout: the plan with --dry-run, else the outcome and checklist.
    #[arg(long)]
    json: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// Finish the release that stopped, from its journal, without redoing finished steps.
    #[arg(long, conflicts_with_all = ["bump", "pre", "dry_run"])]
    resume: bool,
    /// Release even though CHANGELOG.md has nothing under Unreleased.
    #[arg(long)]
    allow_empty_changelog: bool,
    /// Push the release commit and tag to `origin`.
    #[arg(long)]
    git_push: bool,
    /// Build every service, even those whose inputs are unchanged since the last release.
    #[arg(long)]
    rebuild: bool,
}

fn run_release(root: &std::path::Path, manifest: &Manifest, args: &ReleaseArgs) -> anyhow::Result<()> {
    let build = args.engine.request(&args.services, &args.target)?;
    let options = release::Options {
        bump: args.bump,
        pre: args.pre.clone(),
        build,
        jobs: args.engine.jobs(),
        dry_run: args.dry_run,
        json: args.json,
        yes: args.yes,
        resume: args.resume,
        allow_empty_changelog: args.allow_empty_changelog,
        git_push: args.git_push,
        rebuild: args.rebuild,
    };
    let host = args.target.resolve(manifest)?.host;
    let client = registry::Client::new(&host)?;
    release::run(root, manifest, &options, &client)
}

fn run_cleanup(manifest: &Manifest, args: &CleanupArgs) -> anyhow::Result<()> {
    let registry = args.target.resolve(manifest)?;
    let client = registry::Client::new(&registry.host)?;
    let hub = registry.host == reference::DOCKER_HUB;
    let hub_token = if hub && !args.dry_run { Some(hub::token_from_env()?) } else { None };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    let mut plans = Vec::new();
    for service in manifest.select(&args.services)? {
        let path = registry.path(&service.name);
        let snapshot = cleanup::snapshot(&client, &path, &manifest.retention)?;
        let mut plan = retention::plan(&snapshot, &manifest.retention, now, hub);
        if hub {
            cleanup::for_docker_hub(&mut plan);
        }
        plans.push(cleanup::ServicePlan {
            service: service.name.clone(),
            repository: registry.repository(&service.name),
            plan,
        });
    }
    let reads = client.request_count();
    for service in &plans {
        eprintln!(
            "{}: keep {} tags, delete {} tags in {} deletions",
            service.repository,
            service.plan.kept.len(),
            service.plan.deleted.len(),
            service.plan.deletions.len()
        );
        if !args.json {
            for kept in &service.plan.kept {
                println!("keep   {}:{}  ({})", service.repository, kept.tag, kept.rule);
            }
            for deleted in &service.plan.deleted {
                println!("delete {}:{}  ({})", service.repository, deleted.tag, deleted.rule);
            }
            for deletion in &service.plan.deletions {
                let method = match deletion.method {
                    retention::Method::Digest => "by digest",
                    retention::Method::Tag => "by tag (Docker Hub API)",
                };
                println!(
                    "  {method}: {} {}",
                    deletion.target,
                    if deletion.tags.is_empty() {
                        format!("({})", deletion.rule)
                    } else {
                        format!("[{}]", deletion.tags.join(", "))
                    }
                );
            }
        }
    }
    if !args.dry_run {
        for service in &plans {
            let path = registry.path(&service.service);
            cleanup::execute(&client, &path, &service.plan, hub_token.as_ref(), args.jobs)?;
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plans)?);
    }
    eprintln!("{reads} registry requests to plan, {} in all", client.request_count());
    Ok(())
}

fn run_bench_retention(tags: usize) -> anyhow::Result<()> {
    // A synthetic repository of `tags` tags: releases of 3 tags each over several majors,
    // floating tags, and dev tags, as publish and build leave them.
    let mut snapshot = retention::Snapshot::default();
    let (mut major, mut minor, mut patch) = (1u64, 0u64, 0u64);
    while snapshot.tags.len() + 9 < tags {
        let id = format!("{major}-{minor}-{patch}");
        snapshot.children.insert(format!("sha256:i{id}"), vec![format!("sha256:a{id}"), format!("sha256:b{id}")]);
        snapshot.tags.push((format!("v{major}.{minor}.{patch}"), format!("sha256:i{id}")));
        snapshot.tags.push((format!("v{major}.{minor}.{patch}-amd64"), format!("sha256:a{id}")));
        snapshot.tags.push((format!("v{major}.{minor}.{patch}-arm64"), format!("sha256:b{id}")));
        if patch % 4 == 0 {
            snapshot.tags.push((format!("v{major}.{minor}.{patch}-dev-{id}"), format!("sha256:d{id}")));
            snapshot.created.insert(format!("v{major}.{minor}.{patch}-dev-{id}"), (patch as i64) * 86_400);
        }
        patch += 1;
        if patch == 12 {
            (minor, patch) = (minor + 1, 0);
        }
        if minor == 25 {
            (major, minor) = (major + 1, 0);
        }
    }
    for (tag, id) in [
        ("latest", format!("{major}-{minor}-{}", patch.saturating_sub(1))),
        (&format!("v{major}"), format!("{major}-{minor}-{}", patch.saturating_sub(1))),
    ] {
        snapshot.tags.push((tag.to_string(), format!("sha256:i{id}")));
    }
    let started = std::time::Instant::now();
    let plan = retention::plan(&snapshot, &retention::Policy::default(), 90 * 86_400, false);
    let elapsed = started.elapsed();
    println!(
        "planned a cleanup of {} tags in {:.1} ms: keep {}, delete {} tags in {} deletions",
        snapshot.tags.len(),
        elapsed.as_secs_f64() * 1000.0,
        plan.kept.len(),
        plan.deleted.len(),
        plan.deletions.len()
    );
    Ok(())
}

fn run_ci_matrix(manifest: &Manifest, per_platform: bool) -> anyhow::Result<()> {
    let mut include = Vec::new();
    for service in &manifest.services {
        if per_platform {
            for platform in &manifest.release.platforms {
                include.push(serde_json::json!({ "service": service.name, "platform": platform.as_str(), "arch": platform.arch() }));
            }
        } else {
            include.push(serde_json::json!({ "service": service.name }));
        }
    }
    println!("{}", serde_json::json!({ "include": include }));
    Ok(())
}

/// Where images live: the manifest's registry and organization unless overridden.
#[derive(Args)]
struct TargetArgs {
    /// Registry host to use instead of the manifest's (the organization is kept); `local`
    /// starts (or reuses) a loopback registry on 127.0.0.1:5000.
    #[arg(long, value_name = "HOST[:PORT]", env = "XTASK_REGISTRY")]
    registry: Option<String>,
    /// Organization to use instead of the manifest's.
    #[arg(long, value_name = "ORG", env = "XTASK_ORGANIZATION")]
    organization: Option<String>,
}

impl TargetArgs {
    /// `--registry local`: starts (or reuses) the loopback registry and uses its address.
    fn start_local(&mut self, root: &std::path::Path) -> anyhow::Result<()> {
        if self.registry.as_deref() == Some("local") {
            let port = local_registry::DEFAULT_PORT;
            let address = local_registry::start(root, port, &local_registry::default_directory(root, port))?;
            eprintln!("using the local registry at {address}");
            self.registry = Some(address);
        }
        Ok(())
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(host) = &self.registry {
            reference::validate_registry_host(host).map_err(|message| bad_input(format!("--registry: {message}")))?;
        }
        if let Some(organization) = &self.organization {
            if organization.contains('/') || reference::validate_repository(organization).is_err() {
                return Err(bad_input(format!(
                    "--organization: `{organization}` is not a lowercase organization name"
                )));
            }
        }
        Ok(())
    }

    fn resolve(&self, manifest: &Manifest) -> anyhow::Result<manifest::Registry> {
        self.validate()?;
        Ok(manifest.registry.with_overrides(self.registry.as_deref(), self.organization.as_deref()))
    }
}

#[derive(Args)]
struct PublishArgs {
    /// Service to publish (repeatable; default: every service).
    #[arg(long = "service", value_name = "S")]
    services: Vec<String>,
    /// The release version, for example v3.1.0 or v3.1.0-rc.1.
    #[arg(long, value_name = "vX.Y.Z")]
    version: String,
    /// The built image to publish, a tag in the same repository (default: v<manifest version>-dev-<short sha>).
    #[arg(long, value_name = "TAG")]
    from: Option<String>,
    /// Join the per-platform images that `build --digest-file` recorded (every *.json file in
    /// DIR) into one index per service, tag it as the --from tag, then publish it.
    #[arg(long, value_name = "DIR")]
    from_digests: Option<std::path::PathBuf>,
    #[command(flatten)]
    target: TargetArgs,
    /// Print the plan (every tag and the digest it will hold) and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Machine-readable output on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// Service to verify (repeatable; default: every service).
    #[arg(long = "service", value_name = "S")]
    services: Vec<String>,
    /// The version to check, for example v3.1.0.
    #[arg(long, value_name = "vX.Y.Z")]
    version: String,
    #[command(flatten)]
    target: TargetArgs,
    /// Machine-readable report on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_version(text: &str) -> anyhow::Result<tags::ReleaseVersion> {
    tags::ReleaseVersion::parse(text).map_err(|message| bad_input(format!("--version: {message}")))
}

fn run_publish(root: &std::path::Path, manifest: &Manifest, args: &PublishArgs) -> anyhow::Result<()> {
    let version = parse_version(&args.version)?;
    let registry = args.target.resolve(manifest)?;
    let services = manifest.select(&args.services)?;
    let source = match &args.from {
        Some(tag) => {
            reference::validate_tag(tag).map_err(|message| bad_input(format!("--from: {message}")))?;
            tag.clone()
        }
        None => build::dev_tag(manifest, &git::head_revision(root)?),
    };
    let client = registry::Client::new(&registry.host)?;
    let platforms = &manifest.release.platforms;
    if registry.host == reference::DOCKER_HUB {
        // Reading each source index and its platform images counts as pulls on Docker Hub.
        let pulls = services.len() * (1 + platforms.len());
        if let Some(limit) = client.rate_limit(&registry.path(&services[0].name), &source)? {
            eprintln!(
                "Docker Hub pull allowance: {} of {} left; this publish needs {pulls}",
                limit.remaining, limit.limit
            );
            if (limit.remaining as usize) < pulls {
                eprintln!(
                    "warning: the allowance is too small for this publish: it will meet HTTP 429 and wait, as the registry says"
                );
            }
        }
    }
    let records = args.from_digests.as_deref().map(digests::read_dir).transpose()?;
    // Every service is planned (and any refusal raised) before the first tag is written.
    let mut plans = Vec::new();
    let mut joined = Vec::new();
    for service in &services {
        let path = registry.path(&service.name);
        let snapshot = match &records {
            None => publish::snapshot(&client, &path, &source, &version, platforms)?,
            Some(records) => {
                let mine: Vec<_> = records.iter().filter(|record| record.service == service.name).cloned().collect();
                let annotations = build::oci_annotations(manifest, service, version.0.to_string().as_str());
                let (index, children) =
                    digests::join(&client, &path, &registry.repository(&service.name), &mine, platforms, &annotations)?;
                joined.push((path.clone(), index.clone()));
                publish::snapshot_of(&client, &path, index, children, &version, platforms)?
            }
        };
        plans.push(publish::plan(
            &service.name,
            &registry.repository(&service.name),
            &source,
            &version,
            platforms,
            &snapshot,
        )?);
    }
    if !args.dry_run {
        for (path, index) in &joined {
            client
                .put_manifest(path, &source, index)
                .with_context(|| format!("tag the joined index as {path}:{source}"))?;
            eprintln!("{path}: joined the platform images as {source} ({})", index.digest);
        }
        for plan in &plans {
            publish::execute(&client, &registry.path(&plan.service), plan)?;
        }
    }
    for plan in &plans {
        let verb = if args.dry_run { "would write" } else { "wrote" };
        eprintln!("{}: {verb} {} tags, {} already in place", plan.service, plan.writes.len(), plan.unchanged.len());
        for held in &plan.held {
            eprintln!("  {} not moved: {}", held.tag, held.reason);
        }
        if !args.json {
            for write in &plan.writes {
                println!("{}:{}@{}", plan.repository, write.tag, write.digest);
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plans)?);
    }
    eprintln!("{} registry requests", client.request_count());
    Ok(())
}

fn run_verify(manifest: &Manifest, args: &VerifyArgs) -> anyhow::Result<()> {
    let version = parse_version(&args.version)?;
    let registry = args.target.resolve(manifest)?;
    let client = registry::Client::new(&registry.host)?;
    let mut reports = Vec::new();
    for service in manifest.select(&args.services)? {
        let report = verify::verify(&client, &registry.path(&service.name), &version, &manifest.release.platforms)?;
        eprintln!("{}", report.image);
        for check in &report.checks {
            eprintln!("  {} {}", if check.ok { "ok  " } else { "FAIL" }, check.what);
            if let Some(fix) = &check.fix {
                eprintln!("       fix: {fix}");
            }
        }
        if report.ok() {
            eprintln!(
                "  pull the index tag, not an arch tag: `docker pull {}` picks the right architecture",
                report.image
            );
        }
        reports.push(report);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    let failed = reports.iter().filter(|report| !report.ok()).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} images failed verification (each FAIL says what to do)",
        reports.len()
    );
    Ok(())
}

#[derive(Args)]
struct BuildArgs {
    /// Service to build (repeatable; default: every service in services/services.toml).
    #[arg(long = "service", value_name = "S")]
    services: Vec<String>,
    /// Platforms to build, comma-separated (default: the engine's own).
    #[arg(long, value_name = "P,...", value_delimiter = ',')]
    platform: Vec<String>,
    /// Push the images to the registry instead of loading them into the local engine.
    #[arg(long)]
    push: bool,
    #[command(flatten)]
    target: TargetArgs,
    /// Tag to give the images instead of vX.Y.Z-dev-<short sha>.
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,
    /// With --push: record each pushed image's digest, per platform, in this JSON file, for
    /// `publish --from-digests` to join the builds of several machines.
    #[arg(long, value_name = "FILE")]
    digest_file: Option<std::path::PathBuf>,
    /// With --push: push without any tag, by digest only (needs a builder other than the
    /// docker driver, such as docker-container); use with --digest-file.
    #[arg(long)]
    push_by_digest: bool,
    #[command(flatten)]
    engine: EngineArgs,
    /// Print the plan (every command) and run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Machine-readable output on stdout: the plan with --dry-run, else the images built.
    #[arg(long)]
    json: bool,
}

impl BuildArgs {
    /// The domain request, validated: bad values are bad input (exit 2) before anything runs.
    fn request(&self) -> anyhow::Result<build::BuildRequest> {
        let mut request = self.engine.request(&self.services, &self.target)?;
        if !self.platform.is_empty() {
            let parsed = self
                .platform
                .iter()
                .map(|text| {
                    Platform::parse(text).ok_or_else(|| {
                        bad_input(format!("--platform: unknown platform `{text}`; use linux/amd64 and/or linux/arm64"))
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            request.platforms = Some(parsed);
        }
        if let Some(tag) = &self.tag {
            reference::validate_tag(tag).map_err(|message| bad_input(format!("--tag: {message}")))?;
        }
        request.push = self.push;
        request.push_by_digest = self.push_by_digest;
        if self.push_by_digest && !self.push {
            return Err(bad_input("--push-by-digest is a way to push: add --push"));
        }
        Ok(request)
    }
}

fn run_build(root: &std::path::Path, manifest: &Manifest, args: &BuildArgs) -> anyhow::Result<()> {
    let request = args.request()?;
    let revision = git::head_revision(root)?;
    let capabilities = engine::detect(root, request.builder.as_deref())?;
    let mut dockerfiles = Vec::new();
    for service in manifest.select(&request.services)? {
        let path = service.dockerfile_path();
        let text = std::fs::read_to_string(root.join(&path))
            .with_context(|| format!("read {path} (run `cargo xtask dockerfiles`)"))?;
        dockerfiles.push((service.name.clone(), text));
    }
    let tag = args.tag.clone().unwrap_or_else(|| build::dev_tag(manifest, &revision));
    let plan = build::plan(manifest, &request, &tag, &revision, &capabilities, &dockerfiles)?;
    if args.dry_run {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            for step in plan.images.iter().flat_map(|image| &image.steps) {
                println!("{step}");
            }
        }
        return Ok(());
    }
    if args.digest_file.is_some() && !request.push {
        return Err(bad_input("--digest-file records pushed images: add --push"));
    }
    let built = build::execute(root, &plan, args.engine.jobs())?;
    if let Some(file) = &args.digest_file {
        let mut records = Vec::new();
        for (image, done) in plan.images.iter().zip(&built) {
            let digest =
                done.digest.clone().with_context(|| format!("buildx reported no digest for {}", image.image))?;
            let service = manifest.select(std::slice::from_ref(&image.service))?.remove(0);
            for platform in &image.platforms {
                records.push(digests::DigestRecord {
                    service: image.service.clone(),
                    repository: build::repository(manifest, &request, service),
                    platform: *platform,
                    digest: digest.clone(),
                });
            }
        }
        digests::write(file, &records)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&built)?);
    } else {
        for image in &built {
            match &image.digest {
                Some(digest) => println!("{}@{digest}", image.image),
                None => println!("{}", image.image),
            }
        }
    }
    Ok(())
}

fn run_docs(root: &std::path::Path, manifest: &Manifest, check: bool, push_hub: bool) -> anyhow::Result<()> {
    let too_long = docs::check_lengths(manifest);
    if !too_long.is_empty() {
        return Err(bad_input(format!("{}: {}", manifest::MANIFEST_PATH, too_long.join("; "))));
    }
    let existing = codegen::read_files(root, docs::DIRECTORY)?;
    let mode = if check { codegen::Mode::Check } else { codegen::Mode::Write };
    codegen::ensure(root, &docs::expected_docs(manifest, &existing), &existing, mode, docs::REGENERATE_COMMAND)?;
    if push_hub {
        let token = hub::token_from_env()?;
        for service in &manifest.services {
            let short = docs::short_description(manifest, service);
            hub::update_repository(
                &hub::api_base(),
                &token,
                &manifest.registry.organization,
                &service.name,
                &short,
                &docs::readme(manifest, service),
            )?;
            eprintln!("updated {}/{} on Docker Hub", manifest.registry.organization, service.name);
        }
    }
    Ok(())
}

/// The repository root: `XTASK_ROOT` when set (tests run the tool on copies), else the parent
/// of this crate.
fn project_root() -> PathBuf {
    std::env::var_os("XTASK_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let root = project_root();
    if let Command::LocalRegistry { action } = &cli.command {
        return match action {
            LocalRegistryAction::Start(args) => {
                let directory = args.dir.clone().unwrap_or_else(|| local_registry::default_directory(&root, args.port));
                println!("{}", local_registry::start(&root, args.port, &directory)?);
                Ok(())
            }
            LocalRegistryAction::Stop(args) => {
                let directory = args.dir.clone().unwrap_or_else(|| local_registry::default_directory(&root, args.port));
                local_registry::stop(&root, args.port, &directory)
            }
        };
    }
    let manifest = Manifest::load(&root)?;
    match cli.command {
        Command::Build(mut args) => {
            args.target.start_local(&root)?;
            run_build(&root, &manifest, &args)
        }
        Command::Release(mut args) => {
            args.target.start_local(&root)?;
            run_release(&root, &manifest, &args)
        }
        Command::LocalRegistry { .. } => unreachable!("handled above"),
        Command::CiMatrix { per_platform } => run_ci_matrix(&manifest, per_platform),
        Command::Cleanup(mut args) => {
            args.target.start_local(&root)?;
            run_cleanup(&manifest, &args)
        }
        Command::Bench { which: BenchKind::Retention { tags } } => run_bench_retention(tags),
        Command::PinBases { base_mirror } => pin::run(&root, &manifest, base_mirror.as_deref()),
        Command::K8s { action: K8sAction::PullSecret { namespace, name, target } } => {
            let host = target.resolve(&manifest)?.host;
            let resolved = registry::auth::resolve(&host)?;
            let Some(registry::auth::Credential::Basic { username, password }) = resolved.credential else {
                return Err(bad_input(format!(
                    "no user name and password for {host} ({}): run `docker login {host}` or set $XTASK_REGISTRY_USERNAME/$XTASK_REGISTRY_PASSWORD",
                    resolved.source
                )));
            };
            // Docker Hub's credentials are keyed by its v1 index address, as kubectl writes them.
            let server = if host == reference::DOCKER_HUB { "https://index.docker.io/v1/" } else { host.as_str() };
            print!("{}", k8s::pull_secret_yaml(&name, &namespace, server, &username, password.expose()));
            Ok(())
        }
        Command::Publish(mut args) => {
            args.target.start_local(&root)?;
            run_publish(&root, &manifest, &args)
        }
        Command::Verify(mut args) => {
            args.target.start_local(&root)?;
            run_verify(&manifest, &args)
        }
        Command::Docs { check, push_hub } => run_docs(&root, &manifest, check, push_hub),
        Command::Doctor { mut target, builder } => {
            target.start_local(&root)?;
            target.validate()?;
            doctor::run(&root, &manifest, target.registry.as_deref(), builder.as_deref())
        }
        Command::Dockerfiles { check } => {
            let mode = if check { codegen::Mode::Check } else { codegen::Mode::Write };
            codegen::run(&root, &manifest, mode)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = process::install_signal_handlers() {
        eprintln!("warning: signals will not stop the tool cleanly: {error:#}");
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(error::exit_code(&error) as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
