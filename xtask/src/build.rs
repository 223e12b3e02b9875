//! `cargo xtask build`: plans one `docker buildx build` per service (or per service and
//! platform, when the builder cannot do several at once), then runs the plan in parallel,
//! bounded, with progress and a log per service.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::dockerfile;
use crate::engine::Capabilities;
use crate::git::Revision;
use crate::manifest::{Manifest, Platform, Service};
use crate::process::Cmd;
use crate::progress::Progress;
use crate::reference::ImageRef;

/// Where build logs and buildx metadata files go, relative to the repository root.
pub const WORK_DIR: &str = "target/xtask/build";

/// What the user asked for, already validated.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub services: Vec<String>,
    /// `None`: the engine's own platform.
    pub platforms: Option<Vec<Platform>>,
    pub push: bool,
    /// Replaces the manifest's registry host (organization kept).
    pub registry: Option<String>,
    /// Replaces the manifest's organization.
    pub organization: Option<String>,
    /// The version the labels and annotations carry (default: the tag without its `v`).
    pub version: Option<String>,
    /// `docker buildx build --network` (this project's machines need `host`).
    pub network: Option<String>,
    /// Registry host that serves every base image under its usual path.
    pub base_mirror: Option<String>,
    pub builder: Option<String>,
    /// Build every step again, ignoring the build cache.
    pub no_cache: bool,
    /// Read and write the build cache at `<repository>:buildcache` in the registry.
    pub registry_cache: bool,
    /// Each service's input digest, recorded as an index annotation (build avoidance).
    pub input_digests: Vec<(String, String)>,
    /// Push without a tag, by digest only (for `publish --from-digests` to join).
    pub push_by_digest: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// One build for all platforms.
    MultiPlatform,
    /// One build per platform, tagged `<tag>-<arch>`; pushed ones are joined into an index.
    PerPlatform,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildPlan {
    pub builder: String,
    pub strategy: Strategy,
    pub images: Vec<ImageBuild>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageBuild {
    pub service: String,
    /// The reference the result is tagged with.
    pub image: String,
    pub platforms: Vec<Platform>,
    pub push: bool,
    pub steps: Vec<Cmd>,
    /// buildx `--metadata-file` of the build whose digest names the result (none when the
    /// result is joined from per-platform builds).
    pub metadata_file: Option<String>,
    pub log_file: String,
}

impl Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Platform, D::Error> {
        let text = String::deserialize(deserializer)?;
        Platform::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown platform `{text}`")))
    }
}

/// The tag of a development build: `v3.0.0-dev-<short sha>` (R9).
pub fn dev_tag(manifest: &Manifest, revision: &Revision) -> String {
    format!("v{}-dev-{}", manifest.release.version, revision.short_sha)
}

/// The OCI annotations of a service's index, which registries such as GHCR show.
pub fn oci_annotations(manifest: &Manifest, service: &Service, version: &str) -> Vec<(String, String)> {
    [
        ("description", crate::docs::short_description(manifest, service)),
        ("source", manifest.project.source.clone()),
        ("version", version.to_string()),
        ("licenses", manifest.project.license.clone()),
    ]
    .into_iter()
    .map(|(key, value)| (format!("org.opencontainers.image.{key}"), value))
    .collect()
}

/// `<registry>/<org>/<service>` with the request's overrides applied.
pub fn repository(manifest: &Manifest, request: &BuildRequest, service: &Service) -> String {
    manifest
        .registry
        .with_overrides(request.registry.as_deref(), request.organization.as_deref())
        .repository(&service.name)
}

/// Computes every command of the build; no I/O. `dockerfiles` holds each selected service's
/// Dockerfile text (its base images are redirected to the mirror).
pub fn plan(
    manifest: &Manifest,
    request: &BuildRequest,
    tag: &str,
    revision: &Revision,
    capabilities: &Capabilities,
    dockerfiles: &[(String, String)],
) -> anyhow::Result<BuildPlan> {
    let platforms = match &request.platforms {
        Some(platforms) => platforms.clone(),
        None => vec![capabilities.native_platform().with_context(|| {
            format!(
                "the engine's platform {} is not one the naming rule knows; pass --platform linux/amd64 or linux/arm64",
                capabilities.native
            )
        })?],
    };
    for platform in &platforms {
        if !capabilities.can_target(*platform) {
            bail!(
                "builder `{}` cannot build {platform} (it builds {}): register QEMU for it (`scripts/provision.sh`, or `update-binfmts --enable qemu-aarch64`) or use a builder with a native {} node (--builder)",
                capabilities.builder,
                capabilities.platforms.join(", "),
                platform.arch()
            );
        }
    }
    if request.registry_cache && !capabilities.multi_platform_build() {
        bail!(
            "builder `{}` (driver docker on the classic image store) cannot export a registry cache: enable the containerd image store or use a docker-container builder (--builder), or drop --registry-cache",
            capabilities.builder
        );
    }
    if request.push_by_digest && capabilities.driver == "docker" {
        bail!(
            "builder `{}` (driver docker) cannot push by digest: create a docker-container builder (`docker buildx create --name runner --driver docker-container`) and pass --builder runner, or push a per-platform --tag with --digest-file",
            capabilities.builder
        );
    }
    let several = platforms.len() > 1;
    let strategy =
        if !several || (capabilities.multi_platform_build() && (request.push || capabilities.multi_platform_load())) {
            Strategy::MultiPlatform
        } else {
            Strategy::PerPlatform
        };
    let label_version = request.version.as_deref().unwrap_or(tag.trim_start_matches('v'));
    let mut images = Vec::new();
    for service in manifest.select(&request.services)? {
        let dockerfile_path = service.dockerfile_path();
        let text = dockerfiles
            .iter()
            .find(|(name, _)| *name == service.name)
            .map(|(_, text)| text.as_str())
            .unwrap_or_default();
        let image = format!("{}:{tag}", repository(manifest, request, service));
        let mut common = Vec::new();
        if let Some(builder) = &request.builder {
            common.extend(["--builder".to_string(), builder.clone()]);
        }
        common.extend(["--file".to_string(), dockerfile_path]);
        if let Some(network) = &request.network {
            common.extend(["--network".to_string(), network.clone()]);
        }
        if let Some(mirror) = &request.base_mirror {
            for base in dockerfile::base_images(text) {
                let mirrored = ImageRef::parse(&base)
                    .map_err(|message| {
                        anyhow::anyhow!("{}: base image `{base}`: {message}", service.dockerfile_path())
                    })?
                    .through_mirror(mirror);
                common.extend(["--build-context".to_string(), format!("{base}=docker-image://{mirrored}")]);
            }
        }
        if request.no_cache {
            common.push("--no-cache".to_string());
        }
        if request.registry_cache {
            let cache = format!("{}:buildcache", repository(manifest, request, service));
            common.extend(["--cache-from".to_string(), format!("type=registry,ref={cache}")]);
            common.extend(["--cache-to".to_string(), format!("type=registry,ref={cache},mode=max")]);
        }
        for (name, value) in [("VERSION", label_version), ("REVISION", &revision.sha), ("CREATED", &revision.created)] {
            common.extend(["--build-arg".to_string(), format!("{name}={value}")]);
        }
        let annotations = oci_annotations(manifest, service, label_version);
        let input_digest =
            request.input_digests.iter().find(|(name, _)| *name == service.name).map(|(_, digest)| digest);
        let annotate = |level: &str| -> Vec<String> {
            let mut args: Vec<String> = annotations
                .iter()
                .flat_map(|(key, value)| ["--annotation".to_string(), format!("{level}:{key}={value}")])
                .collect();
            if let Some(digest) = input_digest {
                args.extend(["--annotation".to_string(), format!("{level}:{}={digest}", crate::inputs::ANNOTATION)]);
            }
            args
        };
        let buildx = |platforms: &[Platform], tag: &str, metadata: &str| {
            let platform_list: Vec<&str> = platforms.iter().map(|platform| platform.as_str()).collect();
            let output = if request.push_by_digest {
                // No tag: the image is only reachable by the digest the metadata file reports.
                let name = tag.rsplit_once(':').map_or(tag, |(name, _)| name);
                vec![
                    "--output".to_string(),
                    format!("type=image,name={name},push-by-digest=true,name-canonical=true,push=true"),
                ]
            } else {
                vec!["--tag".to_string(), tag.to_string(), if request.push { "--push" } else { "--load" }.to_string()]
            };
            Cmd::new("docker")
                .args(["buildx", "build", "--progress", "plain", "--platform", &platform_list.join(",")])
                .args(common.iter().cloned())
                .args(annotate(if platforms.len() > 1 { "index" } else { "manifest" }))
                .args(output)
                .args(["--metadata-file", metadata, &service.path])
        };
        let metadata_file = format!("{WORK_DIR}/{}.metadata.json", service.name);
        let (steps, metadata_file) = match strategy {
            Strategy::MultiPlatform => (vec![buildx(&platforms, &image, &metadata_file)], Some(metadata_file)),
            Strategy::PerPlatform => {
                let mut steps: Vec<Cmd> = platforms
                    .iter()
                    .map(|platform| {
                        let per_arch = format!("{image}-{}", platform.arch());
                        buildx(
                            &[*platform],
                            &per_arch,
                            &format!("{WORK_DIR}/{}-{}.metadata.json", service.name, platform.arch()),
                        )
                    })
                    .collect();
                if request.push {
                    // The registry joins the per-platform images into one index; no layer moves.
                    let sources = platforms.iter().map(|platform| format!("{image}-{}", platform.arch()));
                    steps.push(
                        Cmd::new("docker")
                            .args(["buildx", "imagetools", "create"])
                            .args(annotate("index"))
                            .args(["--tag", &image])
                            .args(sources),
                    );
                }
                (steps, None)
            }
        };
        images.push(ImageBuild {
            service: service.name.clone(),
            image,
            platforms: platforms.clone(),
            push: request.push,
            steps,
            metadata_file,
            log_file: format!("{WORK_DIR}/{}.log", service.name),
        });
    }
    Ok(BuildPlan { builder: capabilities.builder.clone(), strategy, images })
}

/// What a finished build produced.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltImage {
    pub service: String,
    pub image: String,
    /// The digest of the pushed or loaded image (an index for several platforms), when buildx
    /// reported one.
    pub digest: Option<String>,
}

/// Runs the plan with at most `jobs` services at once. After a failure no new service starts;
/// the ones running finish, and every failure is reported together.
pub fn execute(root: &Path, plan: &BuildPlan, jobs: usize) -> anyhow::Result<Vec<BuiltImage>> {
    std::fs::create_dir_all(root.join(WORK_DIR)).with_context(|| format!("create {WORK_DIR}"))?;
    let progress = Progress::new();
    // Per image: not started (`None`), started (`Some(None)`), built.
    let slots: Mutex<Vec<Option<Option<BuiltImage>>>> = Mutex::new(plan.images.iter().map(|_| None).collect());
    let outcome = crate::scheduler::run(jobs, (0..plan.images.len()).collect(), |index| {
        let image = &plan.images[index];
        slots.lock().unwrap()[index] = Some(None);
        let done = build_one(root, image, &progress).with_context(|| image.service.clone())?;
        slots.lock().unwrap()[index] = Some(Some(done));
        Ok(Vec::new())
    });
    let slots = slots.into_inner().unwrap();
    if !outcome.errors.is_empty() {
        let mut heading = format!("{} of {} builds failed", outcome.errors.len(), plan.images.len());
        let names = |pick: fn(&Option<Option<BuiltImage>>) -> bool| -> Vec<&str> {
            plan.images
                .iter()
                .zip(&slots)
                .filter(|(_, slot)| pick(slot))
                .map(|(image, _)| image.image.as_str())
                .collect()
        };
        for (what, list) in
            [("built", names(|slot| matches!(slot, Some(Some(_))))), ("not started", names(Option::is_none))]
        {
            if !list.is_empty() {
                heading.push_str(&format!("; {what}: {}", list.join(", ")));
            }
        }
        outcome.into_result(heading)?;
    }
    Ok(slots.into_iter().flatten().flatten().collect())
}

pub fn build_one(root: &Path, image: &ImageBuild, progress: &Progress) -> anyhow::Result<BuiltImage> {
    let platforms: Vec<&str> = image.platforms.iter().map(|platform| platform.arch()).collect();
    let task = progress.start(&image.service, &format!("building {} for {}", image.image, platforms.join(", ")));
    let log = root.join(&image.log_file);
    std::fs::write(&log, "").with_context(|| format!("create {}", image.log_file))?;
    for step in &image.steps {
        // The build is cached, so a retry only redoes the push.
        let run = || {
            step.run_logged(root, &log, |line| {
                // buildx's plain progress numbers its steps: `#7 [build 3/5] RUN npm ci`.
                if line.starts_with('#') && line.contains('[') {
                    task.update(line);
                }
            })
        };
        if let Err(error) = crate::retry::transient(run, |note| task.note(note)) {
            task.finish("FAILED");
            return Err(error);
        }
    }
    let digest = image
        .metadata_file
        .as_ref()
        .and_then(|file| std::fs::read_to_string(root.join(file)).ok())
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|metadata| metadata["containerimage.digest"].as_str().map(str::to_string));
    task.finish(if image.push { "pushed" } else { "built" });
    Ok(BuiltImage { service: image.service.clone(), image: image.image.clone(), digest })
}

#[cfg(test)]
mod tests;
